"""The direct placement baseline of a P2 evaluation: a trace encoder with a small head,
trained on the same training split to predict the two antidot centres.

Where the diffusion model must *draw* an LDOS image whose holes the detector then finds, this
baseline regresses the centres directly (:class:`mesoinv.models.p2_placement.PlacementRegressor`).
It answers "is the placement in the trace, and learnable from this many samples?"
independently of image generation, so a diffusion model below it has an image-generation
problem, not an information problem.

Training (a plain, seeded PyTorch loop: a baseline, not a model of the pipeline):
traces standardised per field point with the training split's statistics; centres scaled to
[0, 1] by the wire's extent; Adam; the loss is :func:`swap_invariant_mse` (the two antidots
are unordered, so the loss takes the better of the two pairings); the weights after the last
step are used. Deterministic for a given seed and thread count.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ...models.p2_placement import PlacementRegressor
from ...training.p2_readers import read_placements, read_traces
from .baselines import standardise_traces

__all__ = ["PlacementBaselineOptions", "swap_invariant_mse", "fit_placement_baseline",
           "predict_placements"]


@dataclass(frozen=True)
class PlacementBaselineOptions:
    """Steps, batch, learning rate and seed of the direct placement baseline."""

    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    token_dim: int = 32
    layers: int = 2


def swap_invariant_mse(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over samples of min(MSE(pred, (a, b)), MSE(pred, (b, a))).

    ``predicted`` and ``true`` are (batch, 2, 2): two centres of two coordinates. Swapping the
    two true (or the two predicted) antidots leaves the loss unchanged.
    """
    direct = ((predicted - true) ** 2).mean(dim=(1, 2))
    swapped = ((predicted - true.flip(1)) ** 2).mean(dim=(1, 2))
    return torch.minimum(direct, swapped).mean()


def _scale(geometry) -> np.ndarray:
    """Per-coordinate extent (sites) of the wire: (width − 1, length − 1)."""
    return np.array([max(geometry.width_sites - 1, 1), max(geometry.length_sites - 1, 1)],
                    np.float64)


@dataclass
class FittedPlacementBaseline:
    network: PlacementRegressor
    train_traces: np.ndarray
    scale: np.ndarray
    final_loss: float


def fit_placement_baseline(train_path, geometry,
                           options: PlacementBaselineOptions = PlacementBaselineOptions()
                           ) -> FittedPlacementBaseline:
    """Train the regressor on the training split ``train_path`` (module docstring)."""
    traces = read_traces(train_path)
    placements = read_placements(train_path)
    scale = _scale(geometry)
    z, _ = standardise_traces(traces, traces[:1])
    x = torch.tensor(z, dtype=torch.float32)
    y = torch.tensor(placements / scale, dtype=torch.float32)
    generator = torch.Generator().manual_seed(options.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        network = PlacementRegressor(x.shape[1], token_dim=options.token_dim,
                                     layers=options.layers)
    optimizer = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    network.train()
    loss = torch.tensor(float("nan"))
    for _ in range(options.steps):
        rows = torch.randint(0, len(x), (min(options.batch_size, len(x)),), generator=generator)
        optimizer.zero_grad()
        loss = swap_invariant_mse(network(x[rows]), y[rows])
        loss.backward()
        optimizer.step()
    network.eval()
    return FittedPlacementBaseline(network, traces, scale, float(loss.detach()))


@torch.no_grad()
def predict_placements(fitted: FittedPlacementBaseline, traces) -> np.ndarray:
    """Predicted centres (n, 2, 2) in sites for traces (n, n_fields) in e²/h."""
    _, z = standardise_traces(fitted.train_traces, traces)
    scaled = fitted.network(torch.tensor(z, dtype=torch.float32)).double().numpy()
    return scaled * fitted.scale
