"""Normalisation of inputs and targets, with statistics from the training split only.

Statistics are plain lists and numbers in ``to_dict``, so the model file loads with
``torch.load(weights_only=True)``.

P1 (PLDOS maps → parameters or potentials)
------------------------------------------
P1 App. A: standardisation (Eq. A1) ``(X − μ)/σ`` and min–max (Eq. A2)
``(X − min)/(max − min)``. P1 does not say over which axes μ and σ are taken; here they are
per input channel over all pixels of the training split (``standardize``), or per pixel
(``standardize_per_pixel``), as configured (docs/models.md). Statistics are accumulated in
float64 over the file, one sample at a time, so a split larger than memory is fine
(:class:`ImageNormalization`, :class:`TargetStandardization`).

P2 (G(B) traces → LDOS images)
------------------------------
The diffusion model (:mod:`mesoinv.training.p2_data`) trains on LDOS images normalised by
:class:`LDOSNormalization` and is conditioned on traces normalised by
:class:`TraceNormalization`, both fitted on the training split.

LDOS image normalisation (``image_transform``, :data:`IMAGE_TRANSFORMS`). Diffusion models
start from N(0, 1) noise and are usually trained on data in [−1, 1]. The stored LDOS is ≥ 0,
exactly 0 on antidot sites and in the 2p zero padding columns (dataset-format.md). ``linear``
and ``log`` map 0 to exactly −1 and the training split's maximum LDOS ``s`` to +1, so holes
and padding keep one common value, −1, in the network's space; ``standardize`` maps them to
one common value too, −c/σ:

``linear`` (default)
    x̂ = 2 x / s − 1. Keeps the image space linear in |ψ|², the space P2 plots the score in.
``log``
    x̂ = 2 log(1 + x/c) / log(1 + s/c) − 1, with c the training split's mean LDOS over the
    wire's pixels (padding excluded); compresses the bright interference maxima.
``standardize``
    x̂ = (x − c) / σ, with c and σ the mean and standard deviation of the training split's
    LDOS over the wire's pixels (holes included, padding excluded). Not bounded to [−1, 1]:
    the data get unit variance, the scale the forward process's N(0, 1) noise assumes, so a
    hole (x̂ = −c/σ ≈ −1.5 in the demo) stands out from the wire's fluctuations about 4 times
    more than under ``linear`` (whose holes sit ≈ 0.4 below the wire's mean, against a spread
    of 0.2) and stays visible to the denoiser at higher noise levels.

Validation, test or new images may exceed ``s`` (they map above +1; nothing is clipped),
unless ``clip_sigma`` = k is set: then LDOS values above u = c₁ + k σ₁ (c₁, σ₁ the mean and
standard deviation of the raw training wire pixels) are set to u before any transform, and
every statistic (s, c, σ) is fitted on the clipped training images (a second pass). A rare
single-site resonance can hold a hundred times the typical LDOS (``p2_placements`` of
config/medium.yaml: one training pixel at 345 σ, one at 78 σ, against 8.7 σ for the next
sample); unclipped, such a pixel sets ``s`` (``linear``), inflates σ 1.56-fold
(``standardize``) and dominates the training loss of every epoch it is drawn in. The
antidots are where the LDOS is 0, so clipping a bright resonance loses nothing the detector
reads; u (``clip_ldos``, states per t per site) is stored with the model.
:meth:`LDOSNormalization.inverse` maps network output back to states per t per site and, by
default, sets the padding columns to exactly 0 (the model's output there carries no physics);
hole pixels are left as generated (the antidot detector reads them).

Trace normalisation (``trace_transform``, :data:`TRACE_TRANSFORMS`):

``per_field`` (default)
    ĝ_f = (G_f − μ_f) / σ_f with mean and standard deviation of each field point over the
    training split. The mean trace, dominated by the channel count falling with B (16 → 7
    open channels over 0–2 T in the demo), is common to all samples and carries no
    information about the antidots; removing it leaves the fluctuations (the fingerprint) at
    unit scale at every field for the transformer's value embedding. A field whose value
    never varies over the training split keeps σ = 1 (it only shifts).
``global``
    ĝ = (G − μ) / σ with one mean and one standard deviation over all fields and samples:
    keeps the trace's shape, including the channel-count staircase.
"""

import numpy as np
import torch

__all__ = ["ImageNormalization", "TargetStandardization", "INPUT_TRANSFORMS",
           "LDOSNormalization", "TraceNormalization", "IMAGE_TRANSFORMS", "TRACE_TRANSFORMS"]

INPUT_TRANSFORMS = ("standardize", "standardize_per_pixel", "log_standardize", "minmax")
IMAGE_TRANSFORMS = ("linear", "log", "standardize")
TRACE_TRANSFORMS = ("per_field", "global")


class ImageNormalization:
    """Maps stored images ``(..., channels, nx, ny)`` to network inputs, and back.

    Parameters
    ----------
    kind : str
        One of :data:`INPUT_TRANSFORMS`.
    shift, scale : ndarray
        ``x̂ = (f(x) − shift)/scale`` with f = log(x + offset) for ``log_standardize``, else
        identity; shape ``(channels, 1, 1)`` or ``(channels, nx, ny)`` (per pixel).
    offset : float
        Offset inside the logarithm (``log_standardize`` only), in the units of the data.
    """

    def __init__(self, kind: str, shift, scale, offset: float = 0.0):
        if kind not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown input transform {kind!r} (known: {INPUT_TRANSFORMS})")
        self.kind = kind
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.offset = float(offset)
        if np.any(self.scale <= 0) or not np.all(np.isfinite(self.scale)):
            raise ValueError("normalisation scale must be finite and positive (constant input "
                             "in the training split?)")

    @classmethod
    def fit(cls, kind: str, images) -> "ImageNormalization":
        """Statistics over an iterable of training images, each ``(channels, nx, ny)``."""
        if kind not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown input transform {kind!r} (known: {INPUT_TRANSFORMS})")
        per_pixel = kind == "standardize_per_pixel"
        images = iter(images)
        first = np.asarray(next(images), dtype=np.float64)
        offset = 0.0
        if kind == "log_standardize":
            # Two passes would double the I/O; the offset only regularises log(0) and is
            # taken from the first sample's mean (documented, stored with the model).
            offset = 1e-3 * float(first.mean())
            if not offset > 0:
                raise ValueError("log_standardize needs positive images")
        axes = None if per_pixel else (1, 2)
        count, total, total_sq = 0, 0.0, 0.0
        low, high = np.inf, -np.inf
        for image in _chain(first, images):
            image = np.asarray(image, dtype=np.float64)
            if kind == "log_standardize":
                image = np.log(image + offset)
            if kind == "minmax":
                low = np.minimum(low, image.min(axis=(1, 2), keepdims=True))
                high = np.maximum(high, image.max(axis=(1, 2), keepdims=True))
            elif per_pixel:
                total = total + image
                total_sq = total_sq + image**2
            else:
                total = total + image.sum(axis=axes, keepdims=True)
                total_sq = total_sq + (image**2).sum(axis=axes, keepdims=True)
            count += 1 if per_pixel else image.shape[1] * image.shape[2]
        if kind == "minmax":
            return cls(kind, low, high - low)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        if per_pixel:  # pixels that never vary (e.g. always 0): leave them unscaled
            std = np.where(std > 1e-12 * max(float(np.abs(mean).max()), 1e-300), std, 1.0)
        return cls(kind, mean, std, offset)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Stored image(s) → float32 network input (computed in float64)."""
        image = np.asarray(image, dtype=np.float64)
        if self.kind == "log_standardize":
            image = np.log(image + self.offset)
        return ((image - self.shift) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist(),
                "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict) -> "ImageNormalization":
        return cls(data["kind"], data["shift"], data["scale"], data["offset"])


def _chain(first, rest):
    yield first
    yield from rest


class TargetStandardization:
    """P1 Eq. (A1) per target: ``ŷ = (y − mean)/std`` with training-split mean and std.

    Parameters
    ----------
    names : list of str
        Target variable names (as stored in the dataset).
    mean, std : array-like
        Per target, in the target's physical units.
    units : list of str
        Units of each target (from the dataset's variable attributes).
    """

    def __init__(self, names, mean, std, units):
        self.names = list(names)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.units = list(units)
        if np.any(self.std <= 0):
            constant = [n for n, s in zip(self.names, self.std) if s <= 0]
            raise ValueError(f"target(s) {constant} are constant in the training split: "
                             "nothing to learn (is this the fixed-parameter dataset?)")

    @classmethod
    def fit(cls, names, values: np.ndarray, units) -> "TargetStandardization":
        """From the training split's targets, ``values`` of shape (samples, targets)."""
        values = np.asarray(values, dtype=np.float64)
        return cls(names, values.mean(axis=0), values.std(axis=0), units)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, np.float64) - self.mean) / self.std).astype(np.float32)

    def invert(self, standardized) -> np.ndarray:
        """Network output → targets in physical units (float64)."""
        return np.asarray(standardized, np.float64) * self.std + self.mean

    def to_dict(self) -> dict:
        return {"names": self.names, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "units": self.units}

    @classmethod
    def from_dict(cls, data: dict) -> "TargetStandardization":
        return cls(data["names"], data["mean"], data["std"], data["units"])


# -- P2: LDOS images and G(B) traces ----------------------------------------------------------

class LDOSNormalization:
    """Stored LDOS images (..., image_x, y) ↔ network images in about [−1, 1] (module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`IMAGE_TRANSFORMS` (``linear``, ``log``, ``standardize``).
    scale : float
        s, the training split's maximum LDOS (states per t per site); maps to +1.
    padding : int
        p, zero columns on each side of the image (first image axis).
    offset : float
        c of the ``log`` and ``standardize`` transforms (the training mean LDOS over wire
        pixels, states per t per site); unused by ``linear``.
    std : float
        σ of the ``standardize`` transform (the training standard deviation of the LDOS over
        wire pixels, states per t per site); unused otherwise.
    clip_ldos : float or None
        u: LDOS values above it are set to it before the transform (states per t per site;
        module docstring); None: no clipping.
    """

    def __init__(self, kind: str, scale: float, padding: int, offset: float = 0.0,
                 std: float = 0.0, clip_ldos: float | None = None):
        if kind not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {kind!r} (known: {IMAGE_TRANSFORMS})")
        self.kind = kind
        self.scale = float(scale)
        self.padding = int(padding)
        self.offset = float(offset)
        self.std = float(std)
        self.clip_ldos = None if clip_ldos is None else float(clip_ldos)
        if self.clip_ldos is not None and not (np.isfinite(self.clip_ldos)
                                               and self.clip_ldos > 0):
            raise ValueError(f"clip_ldos must be finite and positive, got {self.clip_ldos}")
        if kind == "standardize" and not (np.isfinite(self.std) and self.std > 0):
            raise ValueError(f"the standardize transform needs a positive std, got {self.std}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"LDOS scale must be finite and positive, got {self.scale} (an "
                             "all-zero training split?)")
        if kind == "log" and not (np.isfinite(self.offset) and self.offset > 0):
            raise ValueError(f"the log transform needs a positive offset, got {self.offset}")
        if self.padding < 0:
            raise ValueError(f"padding must be ≥ 0, got {self.padding}")

    @classmethod
    def fit(cls, kind: str, images, padding: int,
            clip_sigma: float | None = None) -> "LDOSNormalization":
        """Statistics over the training images, each (image_x, y), in float64.

        ``images`` is an iterable of images, or a callable returning a fresh one (needed with
        ``clip_sigma``, which reads the images twice: module docstring).
        """
        if kind not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {kind!r} (known: {IMAGE_TRANSFORMS})")
        if clip_sigma is not None and not (np.isfinite(clip_sigma) and clip_sigma > 0):
            raise ValueError(f"clip_sigma must be finite and positive, got {clip_sigma}")
        if clip_sigma is not None and not callable(images) and iter(images) is images:
            raise ValueError("clip_sigma reads the training images twice: pass a list, an "
                             "array or a callable returning a fresh iterator, not an iterator")
        fresh = images if callable(images) else (lambda: images)
        high, mean, std = cls._moments(fresh(), padding, None)
        clip = None
        if clip_sigma is not None:
            clip = mean + float(clip_sigma) * std
            high, mean, std = cls._moments(fresh(), padding, clip)
        return cls(kind, high, padding, mean if kind in ("log", "standardize") else 0.0,
                   std if kind == "standardize" else 0.0, clip_ldos=clip)

    @staticmethod
    def _moments(images, padding, clip):
        """(maximum, mean and std over wire pixels) of images clipped at ``clip`` (or not)."""
        high, total, squares, count = -np.inf, 0.0, 0.0, 0
        for image in images:
            image = np.asarray(image, dtype=np.float64)
            if clip is not None:
                image = np.minimum(image, clip)
            wire = image[padding:image.shape[0] - padding] if padding else image
            high = max(high, float(image.max()))
            total += float(wire.sum())
            squares += float(np.square(wire).sum())
            count += wire.size
        if count == 0:
            raise ValueError("no training images to fit the LDOS normalisation on")
        mean = total / count
        return high, mean, float(np.sqrt(max(squares / count - mean ** 2, 0.0)))

    def bounds(self, factor: float = 1.0) -> tuple[float, float]:
        """The network-space images of LDOS 0 and of ``factor`` × the training maximum: the
        range ``clip_x0 = factor`` clamps the denoised estimate to (LDOS is ≥ 0). (−1, 1) for
        ``linear`` and ``log`` at factor 1."""
        low, high = self(np.array([0.0, float(factor) * self.scale]), dtype=np.float64)
        return float(low), float(high)

    def _log_span(self) -> float:
        return float(np.log1p(self.scale / self.offset))

    def __call__(self, images, dtype=np.float32) -> np.ndarray:
        """Stored LDOS → network images (computed in float64, returned as ``dtype``)."""
        x = np.asarray(images, dtype=np.float64)
        if self.clip_ldos is not None:
            x = np.minimum(x, self.clip_ldos)
        if self.kind == "linear":
            out = 2.0 * x / self.scale - 1.0
        elif self.kind == "standardize":
            out = (x - self.offset) / self.std
        else:
            out = 2.0 * np.log1p(x / self.offset) / self._log_span() - 1.0
        return out.astype(dtype, copy=False)

    def inverse(self, images, zero_padding: bool = True) -> np.ndarray:
        """Network images (..., image_x, y) → LDOS (states per t per site), float64.

        ``zero_padding`` sets the 2p padding columns to exactly 0, as stored.
        """
        if isinstance(images, torch.Tensor):
            images = images.detach().to("cpu", torch.float64).numpy()
        x = np.asarray(images, dtype=np.float64)
        if self.kind == "linear":
            out = (x + 1.0) * (self.scale / 2.0)
        elif self.kind == "standardize":
            out = x * self.std + self.offset
        else:
            out = self.offset * np.expm1((x + 1.0) / 2.0 * self._log_span())
        if zero_padding and self.padding:
            out = out.copy()
            out[..., :self.padding, :] = 0.0
            out[..., out.shape[-2] - self.padding:, :] = 0.0
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "scale": self.scale, "padding": self.padding,
                "offset": self.offset, "std": self.std, "clip_ldos": self.clip_ldos}

    @classmethod
    def from_dict(cls, data: dict) -> "LDOSNormalization":
        return cls(data["kind"], data["scale"], data["padding"], data.get("offset", 0.0),
                   data.get("std", 0.0), data.get("clip_ldos"))


class TraceNormalization:
    """G(B) traces (..., n_fields) in e²/h ↔ normalised traces (module docstring).

    Parameters
    ----------
    kind : str
        ``per_field`` or ``global``.
    mean, std : array-like, shape (n_fields,)
        Per field (for ``global`` the same value repeated), e²/h.
    """

    def __init__(self, kind: str, mean, std):
        if kind not in TRACE_TRANSFORMS:
            raise ValueError(f"unknown trace transform {kind!r} (known: {TRACE_TRANSFORMS})")
        self.kind = kind
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError("mean and std need one value per field")
        if not (np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise ValueError("trace normalisation std must be finite and positive (constant "
                             "traces in the training split?)")

    @property
    def n_fields(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, kind: str, traces) -> "TraceNormalization":
        """From the training split's traces, shape (samples, n_fields)."""
        if kind not in TRACE_TRANSFORMS:
            raise ValueError(f"unknown trace transform {kind!r} (known: {TRACE_TRANSFORMS})")
        traces = np.asarray(traces, dtype=np.float64)
        if traces.ndim != 2 or traces.shape[0] == 0:
            raise ValueError(f"need training traces of shape (samples, fields), got "
                             f"{traces.shape}")
        n_fields = traces.shape[1]
        if kind == "global":
            mean, std = float(traces.mean()), float(traces.std())
            if not std > 0:
                raise ValueError("every training trace value is the same: nothing to condition on")
            return cls(kind, np.full(n_fields, mean), np.full(n_fields, std))
        mean, std = traces.mean(axis=0), traces.std(axis=0)
        scale = max(float(np.abs(mean).max()), 1e-300)
        std = np.where(std > 1e-12 * scale, std, 1.0)   # constant fields: shift only
        return cls(kind, mean, std)

    def __call__(self, traces, dtype=np.float32) -> np.ndarray:
        traces = np.asarray(traces, dtype=np.float64)
        if traces.shape[-1] != self.n_fields:
            raise ValueError(f"trace has {traces.shape[-1]} field values, the normalisation "
                             f"{self.n_fields}")
        return ((traces - self.mean) / self.std).astype(dtype, copy=False)

    def inverse(self, traces) -> np.ndarray:
        """Normalised traces → e²/h, float64."""
        if isinstance(traces, torch.Tensor):
            traces = traces.detach().to("cpu", torch.float64).numpy()
        return np.asarray(traces, dtype=np.float64) * self.std + self.mean

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "TraceNormalization":
        return cls(data["kind"], data["mean"], data["std"])
