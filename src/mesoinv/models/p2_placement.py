"""P2's direct placement regressor: a G(B) trace → the two antidot centres, no image.

The same trace encoding as the diffusion model's condition (:class:`.p2_unet.TraceEncoder`:
one token per field value, a linear embedding of the normalised conductance plus a learned
embedding of its field position, a pre-norm transformer encoder), mean-pooled over the field
tokens, then a small MLP head to four numbers: (x₁, y₁, x₂, y₂) of the two centres in
coordinates scaled to [0, 1] by the wire's extent (the caller scales). The antidots are
unordered; the loss that respects that lives with the training loop
(:func:`mesoinv.evaluation.p2_generation.placement_baseline.swap_invariant_mse`).

It answers, independently of image generation, whether the placement is in the trace and
learnable from this much data (the "direct placement model" baseline of a P2 evaluation).
"""

import torch
from torch import nn

from .p2_unet import trace_transformer

__all__ = ["PlacementRegressor", "TraceMLPRegressor"]


class PlacementRegressor(nn.Module):
    """Trace (batch, n_fields) → centres (batch, 2, 2), scaled coordinates.

    Parameters
    ----------
    n_fields : int
        Length of the trace.
    token_dim, layers, heads : int
        Transformer width, depth and heads (``token_dim`` divisible by ``heads``).
    hidden : int
        Width of the MLP head.
    """

    def __init__(self, n_fields: int, *, token_dim: int = 32, layers: int = 2, heads: int = 4,
                 hidden: int = 64):
        super().__init__()
        if token_dim % heads:
            raise ValueError(f"token_dim {token_dim} must be divisible by heads {heads}")
        self.n_fields = n_fields
        self.value_embedding = nn.Linear(1, token_dim)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(n_fields, token_dim))
        self.encoder = trace_transformer(token_dim, layers, heads)
        self.head = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, hidden),
                                  nn.GELU(), nn.Linear(hidden, 4))

    def forward(self, trace: torch.Tensor) -> torch.Tensor:
        if trace.ndim != 2 or trace.shape[1] != self.n_fields:
            raise ValueError(f"trace has shape {tuple(trace.shape)}, expected "
                             f"(batch, {self.n_fields})")
        weight = self.position_embedding
        tokens = self.value_embedding(trace[..., None].to(weight.dtype)) + weight
        pooled = self.encoder(tokens).mean(dim=1)
        return self.head(pooled).reshape(-1, 2, 2)


class TraceMLPRegressor(nn.Module):
    """Trace (batch, n_fields) → centres (batch, 2, 2), scaled coordinates, by an MLP of the
    whole trace (``depth`` GELU layers of ``width``).

    The second direct regressor of a P2 evaluation: on held-out placements it regresses the
    centres better than the token transformer of :class:`PlacementRegressor` (docs/models.md,
    "the three questions"), so the skeptic's strongest direct model is reported too.
    """

    def __init__(self, n_fields: int, *, width: int = 256, depth: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.n_fields = n_fields
        layers, previous = [], n_fields
        for _ in range(depth):
            layers += [nn.Linear(previous, width), nn.GELU()]
            previous = width
        self.mlp = nn.Sequential(*layers, nn.Linear(previous, 4))

    def forward(self, trace: torch.Tensor) -> torch.Tensor:
        if trace.ndim != 2 or trace.shape[1] != self.n_fields:
            raise ValueError(f"trace has shape {tuple(trace.shape)}, expected "
                             f"(batch, {self.n_fields})")
        return self.mlp(trace.to(self.mlp[0].weight.dtype)).reshape(-1, 2, 2)
