"""P2 training data: normalised LDOS images and G(B) traces from the netCDF split files.

A batch is ``(image, trace)``: ``image`` (B, 1, H, W) float32, the stored ``ldos(sample,
image_x, y)`` (H = image_x = W_wire + 2p columns, W = y = L rows; 60 × 60 in P2) normalised
by :class:`LDOSNormalization`; ``trace`` (B, n_fields) float32, ``conductance(sample, field)``
normalised by :class:`TraceNormalization`. That is what
:class:`mesoinv.training.diffusion_module.DiffusionModule` trains on. Both normalisations are
fitted on the **training split only** and stored in the model file (``to_dict``: plain lists
and numbers, so the file loads with ``torch.load(weights_only=True)``).

LDOS image normalisation (``image_transform``)
----------------------------------------------
Diffusion models start from N(0, 1) noise and are usually trained on data in [−1, 1]. The
stored LDOS is ≥ 0, exactly 0 on antidot sites and in the 2p zero padding columns
(dataset-format.md). ``linear`` and ``log`` map 0 to exactly −1 and the training split's
maximum LDOS ``s`` to +1, so holes and padding keep one common value, −1, in the network's
space; ``standardize`` maps them to one common value too, −c/σ:

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

Validation, test or new images may exceed ``s`` (they map above +1; nothing is clipped).
:meth:`LDOSNormalization.inverse` maps network output back to states per t per site and, by
default, sets the padding columns to exactly 0 (the model's output there carries no physics);
hole pixels are left as generated (the antidot detector reads them).

Trace normalisation (``trace_transform``)
-----------------------------------------
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

No mirror augmentation is offered: the traces are invariant under the wire's mirrors, but the
dataset stores one fixed representative per symmetry class (p2.md §6), so mirrored images
would teach the model two answers for one trace.

Data modes (``data_mode``, as the P1 data module): ``ram`` loads each split once, normalised,
as float32 tensors; ``stream`` reads one sample per item from its netCDF chunk, opening the
file lazily in each DataLoader worker process (handles are never shared between processes);
``device`` holds the tensors on the accelerator; ``auto`` picks by size
(:func:`mesoinv.training.data.choose_data_mode`).
"""

import logging
import os
from dataclasses import dataclass

import netCDF4
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from .data import _Indices, choose_data_mode, make_loader

__all__ = ["LDOSNormalization", "TraceNormalization", "IMAGE_TRANSFORMS", "TRACE_TRANSFORMS",
           "P2SplitInfo", "read_p2_split_info", "iter_ldos", "read_traces", "read_placements",
           "load_ldos", "load_images", "StreamedP2Samples", "P2DataModule", "P2_METADATA_KEYS"]

log = logging.getLogger("mesoinv.training")

IMAGE_TRANSFORMS = ("linear", "log", "standardize")
TRACE_TRANSFORMS = ("per_field", "global")

#: Global attributes of a P2 file that describe the physics a model is tied to.
P2_METADATA_KEYS = ("dataset_name", "dataset_kind", "format_version", "lattice_constant_nm",
                    "width_sites", "length_sites", "antidot_radius_sites", "energy_t",
                    "potential_amplitude_t", "realizations_per_configuration",
                    "n_configurations", "antidot_margin_x_sites", "antidot_margin_y_sites",
                    "antidot_min_separation_sites", "antidot_half_integer_centres",
                    "ldos_padding_sites", "storage_dtype", "sample_config_sha256")


# -- normalisations ---------------------------------------------------------------------------

class LDOSNormalization:
    """Stored LDOS images (..., image_x, y) ↔ network images in about [−1, 1] (module docstring).

    Parameters
    ----------
    kind : str
        ``linear`` or ``log``.
    scale : float
        s, the training split's maximum LDOS (states per t per site); maps to +1.
    padding : int
        p, zero columns on each side of the image (first image axis).
    offset : float
        c of the ``log`` transform (the training mean LDOS over wire pixels); unused by
        ``linear``.
    """

    def __init__(self, kind: str, scale: float, padding: int, offset: float = 0.0,
                 std: float = 0.0):
        if kind not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {kind!r} (known: {IMAGE_TRANSFORMS})")
        self.kind = kind
        self.scale = float(scale)
        self.padding = int(padding)
        self.offset = float(offset)
        self.std = float(std)
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
    def fit(cls, kind: str, images, padding: int) -> "LDOSNormalization":
        """Statistics over an iterable of training images, each (image_x, y), in float64."""
        if kind not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {kind!r} (known: {IMAGE_TRANSFORMS})")
        high, total, squares, count = -np.inf, 0.0, 0.0, 0
        for image in images:
            image = np.asarray(image, dtype=np.float64)
            wire = image[padding:image.shape[0] - padding] if padding else image
            high = max(high, float(image.max()))
            total += float(wire.sum())
            squares += float(np.square(wire).sum())
            count += wire.size
        if count == 0:
            raise ValueError("no training images to fit the LDOS normalisation on")
        mean = total / count
        std = float(np.sqrt(max(squares / count - mean ** 2, 0.0)))
        return cls(kind, high, padding, mean if kind in ("log", "standardize") else 0.0,
                   std if kind == "standardize" else 0.0)

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
                "offset": self.offset, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict) -> "LDOSNormalization":
        return cls(data["kind"], data["scale"], data["padding"], data.get("offset", 0.0),
                   data.get("std", 0.0))


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


# -- reading split files ----------------------------------------------------------------------

def _attribute(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class P2SplitInfo:
    """What a P2 split file holds: sizes, field grid, image shape, padding, physics."""

    path: str
    n_samples: int
    fields_T: list
    image_shape: tuple
    padding: int
    metadata: dict
    split: str


def read_p2_split_info(path) -> P2SplitInfo:
    """Sizes, field grid and the physical metadata of a P2 netCDF file.

    Raises
    ------
    ValueError
        When the file is not a P2 file (no ``ldos`` or ``conductance``).
    """
    with netCDF4.Dataset(path) as ds:
        if "ldos" not in ds.variables or "conductance" not in ds.variables:
            raise ValueError(f"{path}: no 'ldos' and 'conductance' variables (is it a P2 "
                             "dataset file?)")
        attrs = {k: _attribute(ds.getncattr(k)) for k in ds.ncattrs()}
        metadata = {k: attrs[k] for k in P2_METADATA_KEYS if k in attrs}
        fields = [float(f) for f in np.asarray(ds["field"][:])]
        if fields:
            metadata["field_range_T"] = [fields[0], fields[-1]]
        metadata["n_fields"] = len(fields)
        shape = ds["ldos"].shape
        return P2SplitInfo(str(path), int(shape[0]), fields, (int(shape[1]), int(shape[2])),
                           int(attrs.get("ldos_padding_sites", 0)), metadata,
                           attrs.get("split", "unknown"))


def iter_ldos(path, positions=None):
    """Yield the stored LDOS images (image_x, y), float64, one sample at a time."""
    with netCDF4.Dataset(path) as ds:
        var = ds["ldos"]
        var.set_auto_maskandscale(False)
        for index in (range(var.shape[0]) if positions is None else positions):
            yield np.asarray(var[index], dtype=np.float64)


def load_ldos(path, positions=None) -> np.ndarray:
    """All (or the given) stored LDOS images, (samples, image_x, y), float64."""
    with netCDF4.Dataset(path) as ds:
        var = ds["ldos"]
        var.set_auto_maskandscale(False)
        if positions is None:
            return np.asarray(var[:], dtype=np.float64)
        return np.stack([np.asarray(var[i], dtype=np.float64) for i in positions]) \
            if len(positions) else np.zeros((0, *var.shape[1:]))


def read_traces(path) -> np.ndarray:
    """``conductance(sample, field)`` in e²/h, float64."""
    with netCDF4.Dataset(path) as ds:
        var = ds["conductance"]
        var.set_auto_maskandscale(False)
        return np.asarray(var[:], dtype=np.float64).reshape(var.shape)


def read_placements(path) -> np.ndarray:
    """Antidot centres ``[[cx1, cy1], [cx2, cy2]]`` per sample, (samples, 2, 2), site indices."""
    with netCDF4.Dataset(path) as ds:
        x = np.asarray(ds["antidot_x"][:], dtype=np.float64)
        y = np.asarray(ds["antidot_y"][:], dtype=np.float64)
    return np.stack([x, y], axis=-1)


def load_images(path, normalization: LDOSNormalization, positions=None) -> np.ndarray:
    """Normalised images (samples, 1, image_x, y), float32, read one sample at a time."""
    with netCDF4.Dataset(path) as ds:
        shape = ds["ldos"].shape
    n = shape[0] if positions is None else len(positions)
    out = np.empty((n, 1, shape[1], shape[2]), dtype=np.float32)
    for row, image in enumerate(iter_ldos(path, positions)):
        out[row, 0] = normalization(image)
    return out


class StreamedP2Samples(Dataset):
    """``(image, trace)`` read from the file per item; the handle opens lazily per process."""

    def __init__(self, path, image_normalization: LDOSNormalization,
                 trace_normalization: TraceNormalization):
        self.path = str(path)
        self.image_normalization = image_normalization
        self.trace_normalization = trace_normalization
        self._handle = None
        self._pid = None
        with netCDF4.Dataset(self.path) as ds:
            self._length = int(ds["ldos"].shape[0])

    def __len__(self):
        return self._length

    def _dataset(self):
        if self._handle is None or self._pid != os.getpid():
            # A handle inherited from another process (fork) must not be used: open anew.
            self._handle = netCDF4.Dataset(self.path)
            self._handle.set_auto_maskandscale(False)
            self._pid = os.getpid()
        return self._handle

    def __getitem__(self, index):
        ds = self._dataset()
        image = np.asarray(ds["ldos"][index], dtype=np.float64)
        trace = np.asarray(ds["conductance"][index], dtype=np.float64)
        return (torch.from_numpy(self.image_normalization(image)[None]),
                torch.from_numpy(self.trace_normalization(trace)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state


# -- the data module --------------------------------------------------------------------------

class P2DataModule(pl.LightningDataModule):
    """Train/val loaders of ``(image, trace)`` over P2 split files (module docstring).

    Parameters
    ----------
    train_path, val_path : path-like
        ``<dataset>-train.nc`` and ``<dataset>-val.nc``; the val split may be empty (then no
        validation runs).
    image_transform : str
        :data:`IMAGE_TRANSFORMS`.
    trace_transform : str
        :data:`TRACE_TRANSFORMS`.
    batch_size : int
    data_mode : str
        ``auto``, ``stream``, ``ram`` or ``device``.
    num_workers : int or "auto"
        Loader workers; ``auto``: ``max_workers`` for ``stream``, else 0.
    max_workers : int
        Never more workers than this (the job's CPUs per device minus one).

    Raises
    ------
    ValueError
        Empty training split; a non-square image (the U-Net takes square images: pad the
        dataset with ``ldos_padding_sites`` so that W + 2p = L); val split with another image
        shape or field grid.
    """

    def __init__(self, train_path, val_path, *, image_transform: str = "linear",
                 trace_transform: str = "per_field", batch_size: int = 32,
                 data_mode: str = "auto", num_workers=0, max_workers: int = 0):
        super().__init__()
        if image_transform not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {image_transform!r} (known: "
                             f"{IMAGE_TRANSFORMS})")
        if trace_transform not in TRACE_TRANSFORMS:
            raise ValueError(f"unknown trace transform {trace_transform!r} (known: "
                             f"{TRACE_TRANSFORMS})")
        self.train_path, self.val_path = str(train_path), str(val_path)
        self.image_transform, self.trace_transform = image_transform, trace_transform
        self.batch_size = batch_size
        self.requested_mode = data_mode
        self.num_workers = num_workers
        self.max_workers = max_workers
        self.info = read_p2_split_info(self.train_path)
        if self.info.n_samples == 0:
            raise ValueError(f"{self.train_path}: the training split is empty")
        height, width = self.info.image_shape
        if height != width:
            raise ValueError(f"{self.train_path}: LDOS images are {height} × {width} "
                             "(image_x × y); the diffusion U-Net needs square images: set "
                             "the dataset's ldos_padding_sites so that W + 2p = L")
        self.val_info = read_p2_split_info(self.val_path)
        if self.val_info.image_shape != self.info.image_shape:
            raise ValueError(f"{self.val_path}: images {self.val_info.image_shape} differ from "
                             f"the training split's {self.info.image_shape}")
        if len(self.val_info.fields_T) != len(self.info.fields_T) or not np.allclose(
                self.val_info.fields_T, self.info.fields_T, rtol=0, atol=1e-9):
            raise ValueError(f"{self.val_path}: its field grid differs from the training split's")
        self.image_normalization = None
        self.trace_normalization = None
        self.data_mode = None
        self._device_data = {}

    @property
    def fields_T(self) -> list:
        return list(self.info.fields_T)

    @property
    def n_fields(self) -> int:
        return len(self.info.fields_T)

    @property
    def image_size(self) -> int:
        return self.info.image_shape[0]

    def fit_statistics(self):
        """(image normalisation, trace normalisation) from the training split (idempotent)."""
        if self.image_normalization is None:
            self.image_normalization = LDOSNormalization.fit(
                self.image_transform, iter_ldos(self.train_path), self.info.padding)
            self.trace_normalization = TraceNormalization.fit(
                self.trace_transform, read_traces(self.train_path))
        return self.image_normalization, self.trace_normalization

    @property
    def n_bytes(self) -> int:
        h, w = self.info.image_shape
        n = self.info.n_samples + self.val_info.n_samples
        return n * (h * w + self.n_fields) * 4

    def setup(self, stage=None):
        self.fit_statistics()
        if self.data_mode is not None:
            return
        device = (self.trainer.strategy.root_device if self.trainer is not None
                  else torch.device("cpu"))
        self.data_mode = choose_data_mode(self.requested_mode, self.n_bytes, device)
        log.info("data mode %s (%s requested; %.1f MB of float32 images and traces; device %s)",
                 self.data_mode, self.requested_mode, self.n_bytes / 1e6, device)
        self._datasets = {}
        for split, path in (("train", self.train_path), ("val", self.val_path)):
            if self.data_mode == "stream":
                self._datasets[split] = StreamedP2Samples(path, self.image_normalization,
                                                          self.trace_normalization)
                continue
            images = torch.from_numpy(load_images(path, self.image_normalization))
            traces = torch.from_numpy(self.trace_normalization(read_traces(path)))
            if self.data_mode == "device":
                self._device_data[split] = (images.to(device), traces.to(device))
                self._datasets[split] = _Indices(len(traces))
            else:
                self._datasets[split] = torch.utils.data.TensorDataset(images, traces)

    def _loader(self, split, shuffle):
        return make_loader(self._datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                           data_mode=self.data_mode, num_workers=self.num_workers,
                           max_workers=self.max_workers)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        if len(self._datasets["val"]) == 0:
            return []
        return self._loader("val", shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.data_mode == "device":
            trainer = self.trainer
            split = "train" if trainer is not None and trainer.training else "val"
            images, traces = self._device_data[split]
            batch = (images[batch], traces[batch])
        return batch

    def describe(self) -> dict:
        """JSON-able summary for the model file and logs."""
        return {"train_file": self.train_path, "val_file": self.val_path,
                "n_train": self.info.n_samples, "n_val": self.val_info.n_samples,
                "data_mode": self.data_mode, "fields_T": self.fields_T,
                "image_shape": list(self.info.image_shape), "padding": self.info.padding,
                "image_transform": self.image_transform, "trace_transform": self.trace_transform}
