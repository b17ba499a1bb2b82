"""P2 training data: normalised LDOS images and G(B) traces from the netCDF split files.

A batch is ``(image, trace)``: ``image`` (B, 1, H, W) float32, the stored ``ldos(sample,
image_x, y)`` (H = image_x = W_wire + 2p columns, W = y = L rows; 60 × 60 in P2) normalised
by :class:`~mesoinv.training.normalization.LDOSNormalization`; ``trace`` (B, n_fields)
float32, ``conductance(sample, field)`` normalised by
:class:`~mesoinv.training.normalization.TraceNormalization`. That is what
:class:`mesoinv.training.p2_module.DiffusionModule` trains on. Both normalisations (their
transforms are described in :mod:`mesoinv.training.normalization`) are fitted on the
**training split only** and stored in the model file (``to_dict``: plain lists and numbers, so
the file loads with ``torch.load(weights_only=True)``). The files are read with
:mod:`mesoinv.training.p2_readers`.

Mirror augmentation (``symmetry_augmentation="mirrors"``, :mod:`mesoinv.training.p2_symmetry`)
mirrors each training image at random while the trace stays: the traces are invariant under
the wire's mirrors, the dataset stores one representative per symmetry class (p2.md §6), and
the model then learns every mirror image as an answer for the trace (scored modulo mirrors).
Off by default (``none``): the representative is then the one answer, as P2 trains.

Data modes (``data_mode``, as the P1 data module): ``ram`` loads each split once, normalised,
as float32 tensors; ``stream`` reads one sample per item from its netCDF chunk, opening the
file lazily in each DataLoader worker process (handles are never shared between processes);
``device`` holds the tensors on the accelerator; ``auto`` picks by size
(:func:`mesoinv.training.p1_data.choose_data_mode`).
"""

import logging

import netCDF4
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from .normalization import (IMAGE_TRANSFORMS, TRACE_TRANSFORMS, LDOSNormalization,
                            TraceNormalization)
from .p1_data import ProcessLocalNetCDF, _Indices, choose_data_mode, make_loader
from .p2_readers import iter_ldos, read_p2_split_info, read_traces
from .p2_symmetry import MIRROR_AUGMENTATIONS, MirrorAugmentation

__all__ = ["load_images", "StreamedP2Samples", "P2DataModule"]

log = logging.getLogger("mesoinv.training")


# -- loading split files ----------------------------------------------------------------------

def load_images(path, normalization: LDOSNormalization, positions=None) -> np.ndarray:
    """Normalised images (samples, 1, image_x, y), float32, read one sample at a time."""
    with netCDF4.Dataset(path) as ds:
        shape = ds["ldos"].shape
    n = shape[0] if positions is None else len(positions)
    out = np.empty((n, 1, shape[1], shape[2]), dtype=np.float32)
    for row, image in enumerate(iter_ldos(path, positions)):
        out[row, 0] = normalization(image)
    return out


class StreamedP2Samples(ProcessLocalNetCDF, Dataset):
    """``(image, trace)`` read from the file per item; the handle opens lazily per process."""

    def __init__(self, path, image_normalization: LDOSNormalization,
                 trace_normalization: TraceNormalization):
        self.path = str(path)
        self.image_normalization = image_normalization
        self.trace_normalization = trace_normalization
        with netCDF4.Dataset(self.path) as ds:
            self._length = int(ds["ldos"].shape[0])

    def __len__(self):
        return self._length


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
        :data:`~mesoinv.training.normalization.IMAGE_TRANSFORMS`.
    image_clip_sigma : float or None
        Clip training-split outliers of the LDOS at mean + this × std before the transform
        (:class:`~mesoinv.training.normalization.LDOSNormalization`); None: no clipping.
    trace_transform : str
        :data:`~mesoinv.training.normalization.TRACE_TRANSFORMS`.
    batch_size : int
    data_mode : str
        ``auto``, ``stream``, ``ram`` or ``device``.
    num_workers : int or "auto"
        Loader workers; ``auto``: ``max_workers`` for ``stream``, else 0.
    max_workers : int
        Never more workers than this (the job's CPUs per device minus one).
    symmetry_augmentation : str
        ``none`` or ``mirrors`` (module docstring): training batches only.
    augmentation_seed : int
        Seed of the mirror draws (with the global step).

    Raises
    ------
    ValueError
        Empty training split; a non-square image (the U-Net takes square images: pad the
        dataset with ``ldos_padding_sites`` so that W + 2p = L); val split with another image
        shape or field grid.
    """

    def __init__(self, train_path, val_path, *, image_transform: str = "linear",
                 image_clip_sigma: float | None = None, trace_transform: str = "per_field",
                 batch_size: int = 32,
                 data_mode: str = "auto", num_workers=0, max_workers: int = 0,
                 symmetry_augmentation: str = "none", augmentation_seed: int = 0):
        super().__init__()
        if symmetry_augmentation not in MIRROR_AUGMENTATIONS:
            raise ValueError(f"unknown symmetry_augmentation {symmetry_augmentation!r} (known: "
                             f"{MIRROR_AUGMENTATIONS})")
        self.symmetry_augmentation = symmetry_augmentation
        self._augment = (MirrorAugmentation(augmentation_seed)
                         if symmetry_augmentation == "mirrors" else None)
        if image_transform not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown image transform {image_transform!r} (known: "
                             f"{IMAGE_TRANSFORMS})")
        if trace_transform not in TRACE_TRANSFORMS:
            raise ValueError(f"unknown trace transform {trace_transform!r} (known: "
                             f"{TRACE_TRANSFORMS})")
        self.train_path, self.val_path = str(train_path), str(val_path)
        self.image_transform, self.trace_transform = image_transform, trace_transform
        self.image_clip_sigma = image_clip_sigma
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
                self.image_transform, lambda: iter_ldos(self.train_path), self.info.padding,
                clip_sigma=self.image_clip_sigma)
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
        trainer = self.trainer
        training = trainer is not None and trainer.training
        if self.data_mode == "device":
            images, traces = self._device_data["train" if training else "val"]
            batch = (images[batch], traces[batch])
        if training and self._augment is not None:
            batch = self._augment(batch[0], batch[1], trainer.global_step)
        return batch

    def describe(self) -> dict:
        """JSON-able summary for the model file and logs."""
        return {"train_file": self.train_path, "val_file": self.val_path,
                "n_train": self.info.n_samples, "n_val": self.val_info.n_samples,
                "data_mode": self.data_mode, "fields_T": self.fields_T,
                "image_shape": list(self.info.image_shape), "padding": self.info.padding,
                "image_transform": self.image_transform, "trace_transform": self.trace_transform,
                "symmetry_augmentation": self.symmetry_augmentation}
