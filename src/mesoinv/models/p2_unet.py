"""Conditional denoising U-Net of P2 (Yokoi et al., Sec. IV, Fig. 2): ε-prediction from a noisy
LDOS image, the diffusion timestep and a G(B) trace.

Read top-down: time embedding → residual block → the two attention blocks → trace encoder →
:class:`ConditionalUNet`.

Architecture (defaults for P2's 60 × 60 image)::

    encoder                                   decoder (after joining the skip of its level)
    60 × 60  2 residual blocks, linear attn   ─ skip ─▶  2 residual blocks, linear attn
      ↓ stride-2 conv                                      ↑ nearest ×2 + conv
    30 × 30  2 residual blocks, linear attn   ─ skip ─▶  2 residual blocks, linear attn
      ↓ stride-2 conv                                      ↑ nearest ×2 + conv
    15 × 15  residual block, 4-head self-attention, residual block (bottleneck)

Linear attention (Katharopoulos et al. 2020) at the high-resolution levels, full softmax
multi-head self-attention at the most downsampled level, as P2 states (its footnote 2); the
bottleneck attention can return its per-head weights ``A_ij`` (P2 Eq. 1) for P2 Fig. 4.

Trace conditioning (P2: "the one-dimensional magnetoconductance data are reshaped to match the
size of the interference images using an additional transformer network. The reshaped data are
then concatenated with the input vectors in the transformer block at each layer"): a small
transformer encoder reads the trace as one token per field value; a learned linear map turns
its tokens into a condition image of ``condition_channels`` × H × W ("image-sized tokens").
Every attention block (both levels of the encoder and decoder, and the bottleneck) average-pools
that image to its own resolution and **concatenates it along the channel axis** to the
normalised features before computing queries, keys and values. Attention therefore stays
self-attention over the image's pixels: the bottleneck weights are heads × N × N with
N = h · w pixels, rows summing to 1, which is what P2's importance B_j = Σ_i A_ij reads.

Optionally (``trace_mlp_width`` > 0; not in P2) the whole trace also enters every residual
block: an MLP of the normalised trace (:class:`TraceMLPEmbedding`) is added to the time
embedding, so it scales and shifts every block's features (FiLM) as the timestep does. Measured
reason: on held-out placements an MLP of the whole trace regresses the antidot centres better
than the per-field token transformer at the same data (docs/models.md, "the three questions").

Classifier-free guidance needs an unconditional prediction from the same network: a learned
null condition (one token sequence) replaces the encoded trace of the samples whose
``keep_condition`` is False. The network has no dropout anywhere: the two passes of SAM must
see the same function apart from the weight perturbation.

Normalisation is GroupNorm throughout (no running statistics, so SAM's second pass cannot
update them twice). Layout: images ``(batch, channels, height, width)``, traces
``(batch, n_fields)``; both normalised by the caller (the training module / model file hold
the statistics). Every constructor argument is a plain JSON type, so a model file can store
``{"class": "ConditionalUNet", "kwargs": {...}}`` and rebuild it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["trace_transformer", "TraceMLPEmbedding", "SinusoidalTimeEmbedding", "ResidualBlock", "LinearAttention",
           "MultiHeadSelfAttention", "TraceEncoder", "ConditionalUNet"]


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the diffusion timestep (Vaswani et al. 2017).

    Parameters
    ----------
    dim : int
        Embedding width, even: half sines, half cosines, frequencies geometric from 1 to 1/10⁴.

    The angles reach T ≈ 1000 radians, so they are computed in float32 for every narrower
    dtype (bfloat16 would keep 8 bits of them) and in float64 for float64, then cast.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"time embedding width must be even and at least 4, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``t`` (batch,) integer or real timesteps → (batch, dim) in ``dtype`` (None:
        float32), e.g. the dtype of the weights that read it."""
        dtype = torch.float32 if dtype is None else dtype
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        half = self.dim // 2
        frequencies = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=t.device, dtype=compute)
            / (half - 1))
        angles = t.to(compute)[:, None] * frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)


class ResidualBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, with the time embedding as scale and shift (FiLM)
    of the second normalisation, and a 1×1 skip when the width changes.

    Parameters
    ----------
    in_channels, out_channels : int
    time_dim : int
        Width of the time embedding it receives.
    groups : int
        GroupNorm groups; must divide ``in_channels`` and ``out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * out_channels))
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time_to_scale_shift(time_embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class _ConditionedAttention(nn.Module):
    """Shared front end of both attention blocks: normalise the features, concatenate the
    condition image (P2's "concatenated with the input vectors"), project to q, k, v per head."""

    def __init__(self, channels: int, condition_channels: int, heads: int, head_dim: int,
                 groups: int):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.norm = nn.GroupNorm(groups, channels)
        self.to_qkv = nn.Conv2d(channels + condition_channels, 3 * heads * head_dim, 1,
                                bias=False)
        self.to_out = nn.Conv2d(heads * head_dim, channels, 1)

    def _qkv(self, x: torch.Tensor, condition: torch.Tensor):
        """(b, c, h, w), (b, c_cond, h, w) → q, k, v each (b, heads, h·w, head_dim)."""
        b, _, h, w = x.shape
        qkv = self.to_qkv(torch.cat([self.norm(x), condition], dim=1))
        qkv = qkv.reshape(b, 3, self.heads, self.head_dim, h * w).transpose(-1, -2)
        return qkv.unbind(dim=1)

    def _out(self, values: torch.Tensor, shape) -> torch.Tensor:
        """(b, heads, h·w, head_dim) → (b, c, h, w) through the output projection."""
        b, _, h, w = shape
        merged = values.transpose(-1, -2).reshape(b, self.heads * self.head_dim, h, w)
        return self.to_out(merged)


class LinearAttention(_ConditionedAttention):
    """Linear attention (Katharopoulos et al. 2020, P2 footnote 2), residual.

    Softmax of queries over their features and of keys over the pixels makes the attention
    (keys · values) a (head_dim × head_dim) context per head: cost linear in the pixel count,
    which is what makes attention affordable at 60 × 60 and 30 × 30.

    Parameters
    ----------
    channels : int
        Feature channels in and out.
    condition_channels : int
        Channels of the condition image concatenated to the features.
    heads, head_dim : int
    groups : int
        GroupNorm groups of the input normalisation.
    """

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x, condition)                      # (b, heads, n, d)
        q = q.softmax(dim=-1) * self.head_dim ** -0.5
        k = k.softmax(dim=-2)
        context = k.transpose(-1, -2) @ v                      # (b, heads, d, d)
        return x + self._out(q @ context, x.shape)


class MultiHeadSelfAttention(_ConditionedAttention):
    """Softmax multi-head self-attention over the pixels (P2 Eqs. 1-2), residual.

    ``A = softmax(q kᵀ / √d)`` per head. With ``return_weights`` the weights are computed
    explicitly and returned; otherwise the same product runs through
    :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels, never returns
    weights). Both paths give the same output.

    Parameters
    ----------
    channels, condition_channels, heads, head_dim, groups
        As :class:`LinearAttention`.
    """

    def forward(self, x: torch.Tensor, condition: torch.Tensor, *,
                return_weights: bool = False):
        """Returns the updated features, and with ``return_weights`` also the attention
        weights (batch, heads, h·w, h·w): ``[b, head, i, j]`` is how much pixel i reads pixel
        j (row-major pixel order); each row sums to 1."""
        q, k, v = self._qkv(x, condition)
        if not return_weights:
            return x + self._out(F.scaled_dot_product_attention(q, k, v), x.shape)
        weights = (q @ k.transpose(-1, -2) * self.head_dim ** -0.5).float().softmax(dim=-1)
        out = x + self._out(weights.to(v.dtype) @ v, x.shape)
        return out, weights


def trace_transformer(token_dim: int, layers: int, heads: int) -> nn.TransformerEncoder:
    """The pre-norm transformer encoder over a trace's field tokens (GELU, no dropout), shared
    by the diffusion model's condition and the direct placement regressor."""
    layer = nn.TransformerEncoderLayer(token_dim, heads, dim_feedforward=2 * token_dim,
                                       dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
    # enable_nested_tensor only helps padded batches; traces have a fixed length.
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class TraceEncoder(nn.Module):
    """Transformer encoder of a G(B) trace, reshaped to a condition image (P2 Fig. 2).

    Each field value is one token: a linear embedding of the (normalised) conductance plus a
    learned embedding of its position on the field grid (the grid is fixed by the training
    data). After the encoder, samples without condition get the learned null tokens, and a
    linear map from the ``n_fields`` token positions to the ``height × width`` pixels
    ("reshaped to match the size of the interference images") gives the condition image.

    Parameters
    ----------
    n_fields : int
        Length of the trace (field values).
    image_size : int
        Side of the (square) condition image, in pixels.
    token_dim : int
        Width of the trace tokens.
    layers, heads : int
        Transformer encoder depth and heads (``token_dim`` divisible by ``heads``).
    condition_channels : int
        Channels of the condition image.
    """

    def __init__(self, n_fields: int, image_size: int, *, token_dim: int = 64, layers: int = 2,
                 heads: int = 4, condition_channels: int = 16):
        super().__init__()
        if token_dim % heads:
            raise ValueError(f"trace token_dim {token_dim} must be divisible by its heads {heads}")
        self.n_fields = n_fields
        self.image_size = image_size
        self.condition_channels = condition_channels
        self.value_embedding = nn.Linear(1, token_dim)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(n_fields, token_dim))
        self.encoder = trace_transformer(token_dim, layers, heads)
        self.null_tokens = nn.Parameter(0.02 * torch.randn(n_fields, token_dim))
        self.to_channels = nn.Sequential(nn.LayerNorm(token_dim),
                                         nn.Linear(token_dim, condition_channels))
        self.fields_to_pixels = nn.Linear(n_fields, image_size * image_size)

    def forward(self, trace: torch.Tensor | None, keep_condition: torch.Tensor | None,
                batch_size: int) -> torch.Tensor:
        """Condition image (batch, condition_channels, image_size, image_size).

        ``trace`` (batch, n_fields) or None (all unconditional); ``keep_condition`` (batch,)
        bool, False → null condition for that sample; None → keep all.
        """
        null = self.null_tokens.expand(batch_size, -1, -1)
        if trace is None:
            tokens = null
        else:
            if trace.shape != (batch_size, self.n_fields):
                raise ValueError(f"trace has shape {tuple(trace.shape)}, expected "
                                 f"({batch_size}, {self.n_fields}): one value per training field")
            tokens = self.value_embedding(trace[..., None].to(null.dtype)) + self.position_embedding
            tokens = self.encoder(tokens)
            if keep_condition is not None:
                tokens = torch.where(keep_condition.to(torch.bool)[:, None, None], tokens, null)
        per_field = self.to_channels(tokens).transpose(1, 2)    # (b, c_cond, n_fields)
        pixels = self.fields_to_pixels(per_field)               # (b, c_cond, H·W)
        return pixels.reshape(batch_size, self.condition_channels, self.image_size,
                              self.image_size)


class TraceMLPEmbedding(nn.Module):
    """An MLP of the whole normalised trace, added to the time embedding (a global condition).

    Two hidden GELU layers of ``width``, then a linear map to ``time_dim``. Samples without
    condition get a learned null vector instead (initialised to zero: an unconditional sample
    starts from the plain time embedding), so classifier-free guidance works as for the
    condition image.

    Parameters
    ----------
    n_fields : int
        Length of the trace.
    width : int
        Hidden width of the MLP.
    time_dim : int
        Width of the time embedding it is added to.
    """

    def __init__(self, n_fields: int, width: int, time_dim: int):
        super().__init__()
        self.n_fields = n_fields
        self.mlp = nn.Sequential(nn.Linear(n_fields, width), nn.GELU(), nn.Linear(width, width),
                                 nn.GELU(), nn.Linear(width, time_dim))
        self.null = nn.Parameter(torch.zeros(time_dim))

    def forward(self, trace: torch.Tensor | None, keep_condition: torch.Tensor | None,
                batch_size: int) -> torch.Tensor:
        """(batch, time_dim); ``trace`` and ``keep_condition`` as in :class:`TraceEncoder`."""
        null = self.null.expand(batch_size, -1)
        if trace is None:
            return null
        embedding = self.mlp(trace.to(null.dtype))
        if keep_condition is not None:
            embedding = torch.where(keep_condition.to(torch.bool)[:, None], embedding, null)
        return embedding


class ConditionalUNet(nn.Module):
    """Trace-conditioned denoising U-Net: predicts the noise ε in a noisy image (P2 Fig. 2).

    Parameters
    ----------
    image_size : int
        Side of the square input image in pixels (60 in P2: the 50 × 60 LDOS zero-padded).
        Must be divisible by 2^(len(channel_mults) − 1).
    in_channels : int
        Image channels (1: the LDOS).
    n_fields : int
        Length of the conditioning trace G(B).
    base_channels : int
        Width of the first level.
    channel_mults : list of int
        Width multiplier per level; its length is the number of levels, so the default
        three give two down- and two up-sampling stages (60 → 30 → 15).
    groups : int
        GroupNorm groups; must divide every level's width.
    time_dim : int or None
        Width of the time embedding after its MLP; None → 4 × base_channels.
    linear_attention_heads, linear_attention_head_dim : int
        Linear attention at every level but the last.
    attention_heads, attention_head_dim : int
        Softmax self-attention at the bottleneck (4 heads in P2).
    trace_token_dim, trace_layers, trace_heads : int
        The trace transformer (:class:`TraceEncoder`).
    condition_channels : int
        Channels of the condition image joined to every attention block.
    trace_mlp_width : int
        Hidden width of :class:`TraceMLPEmbedding`, whose output is added to the time
        embedding of every residual block; 0 (default, P2's design): none.
    """

    def __init__(self, image_size: int = 60, in_channels: int = 1, n_fields: int = 50, *,
                 base_channels: int = 64, channel_mults=(1, 2, 4), groups: int = 8,
                 time_dim: int | None = None, linear_attention_heads: int = 4,
                 linear_attention_head_dim: int = 32, attention_heads: int = 4,
                 attention_head_dim: int = 32, trace_token_dim: int = 64, trace_layers: int = 2,
                 trace_heads: int = 4, condition_channels: int = 16,
                 trace_mlp_width: int = 0):
        super().__init__()
        channel_mults = [int(m) for m in channel_mults]
        if len(channel_mults) < 2:
            raise ValueError("channel_mults needs at least two levels (one downsampling)")
        factor = 2 ** (len(channel_mults) - 1)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} is not divisible by {factor}: "
                             f"{len(channel_mults) - 1} downsamplings by 2 need it (pad the image "
                             "or change channel_mults)")
        widths = [base_channels * m for m in channel_mults]
        bad = [w for w in [base_channels, *widths] if w % groups]
        if bad:
            raise ValueError(f"groups={groups} must divide every level width; it does not "
                             f"divide {bad}")
        self.image_size = image_size
        self.in_channels = in_channels
        self.n_fields = n_fields
        self.levels = len(widths)
        time_dim = time_dim or 4 * base_channels

        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(base_channels), nn.Linear(base_channels, time_dim),
            nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.trace_encoder = TraceEncoder(n_fields, image_size, token_dim=trace_token_dim,
                                          layers=trace_layers, heads=trace_heads,
                                          condition_channels=condition_channels)
        if trace_mlp_width < 0:
            raise ValueError(f"trace_mlp_width must be >= 0 (0: none), got {trace_mlp_width}")
        self.trace_mlp = (TraceMLPEmbedding(n_fields, trace_mlp_width, time_dim)
                          if trace_mlp_width else None)
        self.init_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def linear_attention(width):
            return LinearAttention(width, condition_channels, linear_attention_heads,
                                   linear_attention_head_dim, groups)

        # Encoder: levels 0 .. L-2, each ending in a skip and a 2× downsampling.
        self.down = nn.ModuleList()
        previous = base_channels
        for width in widths[:-1]:
            self.down.append(nn.ModuleDict({
                "block1": ResidualBlock(previous, width, time_dim, groups),
                "block2": ResidualBlock(width, width, time_dim, groups),
                "attention": linear_attention(width),
                "downsample": nn.Conv2d(width, width, 3, stride=2, padding=1),
            }))
            previous = width

        bottleneck = widths[-1]
        self.mid_block1 = ResidualBlock(previous, bottleneck, time_dim, groups)
        self.mid_attention = MultiHeadSelfAttention(bottleneck, condition_channels,
                                                    attention_heads, attention_head_dim, groups)
        self.mid_block2 = ResidualBlock(bottleneck, bottleneck, time_dim, groups)

        # Decoder: mirror of the encoder; each level upsamples, then joins its skip.
        self.up = nn.ModuleList()
        previous = bottleneck
        for width in reversed(widths[:-1]):
            self.up.append(nn.ModuleDict({
                "upsample": nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          nn.Conv2d(previous, previous, 3, padding=1)),
                "block1": ResidualBlock(previous + width, width, time_dim, groups),
                "block2": ResidualBlock(width, width, time_dim, groups),
                "attention": linear_attention(width),
            }))
            previous = width

        self.out = nn.Sequential(nn.GroupNorm(groups, previous), nn.SiLU(),
                                 nn.Conv2d(previous, in_channels, 3, padding=1))

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """(batch,) timesteps → (batch, time_dim): the sinusoid in the dtype of the MLP's
        weights (float64 under Lightning's 64-true, bfloat16 for a bfloat16 network), then
        the MLP. Under autocast the weights stay float32 and so does the sinusoid."""
        sinusoid, *mlp = self.time_embedding
        h = sinusoid(t, dtype=mlp[0].weight.dtype)
        for layer in mlp:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, trace: torch.Tensor | None = None,
                keep_condition: torch.Tensor | None = None, *, return_attention: bool = False):
        """Predicted noise for noisy images ``x`` at timesteps ``t``.

        Parameters
        ----------
        x : tensor (batch, in_channels, image_size, image_size)
            Noisy normalised images x_t.
        t : tensor (batch,)
            Timestep indices 0 … T−1.
        trace : tensor (batch, n_fields) or None
            Normalised conductance traces; None → unconditional for every sample.
        keep_condition : bool tensor (batch,) or None
            False → the learned null condition replaces that sample's trace (condition
            dropout in training, the unconditional branch of guidance); None → keep all.
        return_attention : bool
            Also return the bottleneck attention weights.

        Returns
        -------
        tensor (batch, in_channels, image_size, image_size), or (that, weights)
            ``weights`` (batch, attention_heads, N, N), N = pixels at the bottleneck
            (15 · 15 = 225 for 60 × 60), row-major; rows sum to 1.
        """
        b, c, h, w = x.shape
        if (c, h, w) != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"input has shape {tuple(x.shape)}, expected (batch, "
                             f"{self.in_channels}, {self.image_size}, {self.image_size})")
        time_embedding = self.embed_time(t)
        if self.trace_mlp is not None:
            time_embedding = time_embedding + self.trace_mlp(trace, keep_condition, b).to(
                time_embedding.dtype)
        condition = self.trace_encoder(trace, keep_condition, b).to(x.dtype)
        # One condition image per level, pooled to that level's resolution.
        conditions = [condition] + [F.avg_pool2d(condition, 2 ** level)
                                    for level in range(1, self.levels)]

        h_ = self.init_conv(x)
        skips = []
        for level, stage in enumerate(self.down):
            h_ = stage["block1"](h_, time_embedding)
            h_ = stage["block2"](h_, time_embedding)
            h_ = stage["attention"](h_, conditions[level])
            skips.append(h_)
            h_ = stage["downsample"](h_)

        h_ = self.mid_block1(h_, time_embedding)
        attention = None
        if return_attention:
            h_, attention = self.mid_attention(h_, conditions[-1], return_weights=True)
        else:
            h_ = self.mid_attention(h_, conditions[-1])
        h_ = self.mid_block2(h_, time_embedding)

        for offset, stage in enumerate(self.up):
            level = self.levels - 2 - offset
            h_ = stage["upsample"](h_)
            h_ = torch.cat([h_, skips.pop()], dim=1)
            h_ = stage["block1"](h_, time_embedding)
            h_ = stage["block2"](h_, time_embedding)
            h_ = stage["attention"](h_, conditions[level])

        epsilon = self.out(h_)
        return (epsilon, attention) if return_attention else epsilon
