"""Normalisation of inputs and targets, with statistics from the training split only.

P1 App. A: standardisation (Eq. A1) ``(X − μ)/σ`` and min–max (Eq. A2)
``(X − min)/(max − min)``. P1 does not say over which axes μ and σ are taken; here they are
per input channel over all pixels of the training split (``standardize``), or per pixel
(``standardize_per_pixel``), as configured (docs/models.md). Statistics are accumulated in
float64 over the file, one sample at a time, so a split larger than memory is fine.

Statistics are plain lists in :meth:`to_dict`, so the model file loads with
``torch.load(weights_only=True)``.
"""

import numpy as np

__all__ = ["ImageNormalization", "TargetStandardization", "INPUT_TRANSFORMS"]

INPUT_TRANSFORMS = ("standardize", "standardize_per_pixel", "log_standardize", "minmax")


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
