"""Training data from the netCDF split files: normalised PLDOS images and targets.

Three data modes (``data_mode`` in a model's config; docs/models.md):

``stream``
    Each sample is read from its own chunk of the file when the loader asks for it. The file
    is opened lazily, once per DataLoader worker process (netCDF/HDF5 handles must never be
    shared between processes), so any split size works.
``ram``
    The split is read once, normalised, and held as one float32 tensor in host memory.
``device``
    The same tensor held on the accelerator; batches are gathered there by index, so no
    loader worker is needed (a paper-scale P1 split, 72,000 × 256 × 192 float32 ≈ 14 GB, fits
    on one GPU).
``auto``
    ``device`` when the split takes less than half the GPU's free memory, else ``ram`` when it
    takes less than a quarter of the available RAM, else ``stream``.

A training subset (``train_subset: {n_samples, seed}``, for learning curves) trains on the
first n_samples positions of a seeded permutation of the training split
(:func:`train_subset_positions`): the subsets of one seed are nested, and every statistic
(input normalisation, target standardisation, the training-mean baselines) comes from the
subset actually used.

Mirror augmentation (y → −y) flips a sample's image across the QPC axis with probability 1/2
in training batches. It is a symmetry of the data only for a centred QPC at B = 0 (the
config check refuses other cases; tests/test_training.py checks with the simulator that the
PLDOS of the mirrored potential is the mirrored PLDOS). The targets are mirrored with the
image by their kind (:mod:`.targets`): scalar parameters (s, N_d, rms, ξ) are ensemble
parameters, unchanged; the potential image is flipped; the Fourier coefficients are mapped by
the mirror of Eq. (1).
"""

import logging
import os
from dataclasses import dataclass

import netCDF4
import numpy as np
import psutil
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from .normalization import ImageNormalization
from .targets import ScalarTargets, read_variables

__all__ = ["SplitInfo", "read_split_info", "read_targets", "iter_images", "load_images",
           "StreamedImages", "ProcessLocalNetCDF", "ImageDataModule", "DATA_MODES", "choose_data_mode", "make_loader",
           "train_subset_positions"]

log = logging.getLogger("mesoinv.training")

DATA_MODES = ("auto", "stream", "ram", "device")

#: Global attributes of a P1 file that describe the physics a model is tied to.
P1_METADATA_KEYS = ("dataset_name", "dataset_kind", "format_version", "lattice_constant_nm", "nx_sites",
                    "ny_sites", "length_nm", "width_nm", "qpc_first_y_site", "qpc_width_sites",
                    "energy_meV", "hopping_meV", "effective_mass_kg", "relative_permittivity",
                    "thomas_fermi_wavevector_per_nm", "cutoff_factor",
                    "dopant_distance_range_nm", "dopant_density_range_cm2")


@dataclass
class SplitInfo:
    """What a split file holds: sizes, fields, physical metadata, target units."""

    path: str
    n_samples: int
    fields_T: list
    image_shape: tuple
    metadata: dict
    variable_units: dict
    variable_long_names: dict
    split: str

    def field_indices(self, fields_T) -> list[int]:
        """Positions of the requested fields (tesla) in the file; None → all."""
        if fields_T is None:
            return list(range(len(self.fields_T)))
        indices = []
        for field in fields_T:
            matches = [i for i, f in enumerate(self.fields_T) if abs(f - float(field)) <= 1e-9]
            if not matches:
                raise ValueError(f"{self.path}: no PLDOS at B = {field} T (fields: "
                                 f"{self.fields_T} T)")
            indices.append(matches[0])
        return indices


def _attribute(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_split_info(path, variable: str = "pldos") -> SplitInfo:
    """Read sizes, fields and the physical metadata of a P1 netCDF file."""
    with netCDF4.Dataset(path) as ds:
        if variable not in ds.variables:
            raise ValueError(f"{path}: no variable '{variable}' (is it a P1 PLDOS file?)")
        attrs = {k: _attribute(ds.getncattr(k)) for k in ds.ncattrs()}
        metadata = {k: attrs[k] for k in P1_METADATA_KEYS if k in attrs}
        units = {name: getattr(var, "units", "") for name, var in ds.variables.items()}
        long_names = {name: getattr(var, "long_name", "") for name, var in ds.variables.items()}
        shape = ds[variable].shape
        return SplitInfo(str(path), int(shape[0]), [float(f) for f in ds["field"][:]],
                         (int(shape[-2]), int(shape[-1])), metadata, units, long_names,
                         attrs.get("split", "unknown"))


def train_subset_positions(n_available: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """Positions (rows of the split file, sorted) of a training subset of ``n_samples``.

    The first ``n_samples`` entries of ``numpy.random.default_rng(seed).permutation(
    n_available)``: for one seed and split, the subset of N₁ samples lies inside the subset
    of N₂ ≥ N₁ (nested learning curves), and it is a fixed function of (split, N, seed).

    Raises
    ------
    ValueError
        ``n_samples`` is not in 1 … ``n_available``.
    """
    if not 1 <= n_samples <= n_available:
        raise ValueError(f"train_subset.n_samples = {n_samples}: the training split has "
                         f"{n_available} samples (ask for 1 … {n_available})")
    order = np.random.default_rng(seed).permutation(n_available)
    return np.sort(order[:n_samples])


def read_targets(path, names) -> np.ndarray:
    """Per-sample target variables, shape (samples, len(names)), float64, physical units."""
    return read_variables(path, names)


def iter_images(path, field_indices, variable: str = "pldos", positions=None):
    """Yield the stored images ``(channels, nx, ny)`` one sample at a time (float64)."""
    with netCDF4.Dataset(path) as ds:
        var = ds[variable]
        var.set_auto_maskandscale(False)
        n = var.shape[0]
        for index in (range(n) if positions is None else positions):
            yield np.asarray(var[index], dtype=np.float64)[field_indices]


def load_images(path, field_indices, normalization: ImageNormalization, variable="pldos",
                positions=None) -> np.ndarray:
    """All (or the given) samples, normalised, as one float32 array (samples, c, nx, ny)."""
    with netCDF4.Dataset(path) as ds:
        n = ds[variable].shape[0] if positions is None else len(positions)
        shape = ds[variable].shape[-2:]
    out = np.empty((n, len(field_indices), *shape), dtype=np.float32)
    for row, image in enumerate(iter_images(path, field_indices, variable, positions)):
        out[row] = normalization(image)
    return out


class ProcessLocalNetCDF:
    """Mixin of the streamed datasets: ``self.path`` opened lazily, once per process (netCDF/HDF5
    handles must not cross a DataLoader worker's fork; NOTES §6), without masking or scaling."""

    _handle = None
    _pid = None

    def _dataset(self):
        if self._handle is None or self._pid != os.getpid():
            # A handle inherited from another process (fork) must not be used: open anew.
            self._handle = netCDF4.Dataset(self.path)
            self._handle.set_auto_maskandscale(False)
            self._pid = os.getpid()
        return self._handle


class StreamedImages(ProcessLocalNetCDF, Dataset):
    """Samples read from the file on demand; the handle is opened in the process that reads.

    ``targets`` is either an array held in memory (one row per sample) or, for image targets
    (the potential), a target object whose ``image_variable`` is read from the same file per
    sample and normalised by its ``normalize_image``.
    """

    def __init__(self, path, field_indices, normalization, targets,
                 variable: str = "pldos", positions=None):
        self.path = str(path)
        # rows of the file this dataset serves (a training subset), None: every row
        self.positions = None if positions is None else [int(p) for p in positions]
        self.field_indices = list(field_indices)
        self.normalization = normalization
        if isinstance(targets, np.ndarray):
            self.targets, self.target_set = torch.from_numpy(
                np.ascontiguousarray(targets, dtype=np.float32)), None
        else:
            self.targets, self.target_set = None, targets
        self.variable = variable
        with netCDF4.Dataset(self.path) as ds:
            self._length = int(ds[variable].shape[0])
        if self.positions is not None:
            self._length = len(self.positions)

    def __len__(self):
        return self._length


    def _variable(self):
        return self._dataset()[self.variable]

    def __getitem__(self, index):
        row = index if self.positions is None else self.positions[index]
        image = np.asarray(self._variable()[row], dtype=np.float64)[self.field_indices]
        if self.target_set is None:
            target = self.targets[index]  # held in memory for the served rows only
        else:
            stored = self._dataset()[self.target_set.image_variable][row]
            target = torch.from_numpy(self.target_set.normalize_image(stored))
        return torch.from_numpy(self.normalization(image)), target

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state


class _Indices(Dataset):
    """0 … n−1: the loader of the device mode hands out indices, gathered on the device."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return index


def choose_data_mode(requested: str, n_bytes: int, device: torch.device) -> str:
    """Resolve ``auto`` (see the module docstring); check an explicit ``device`` request."""
    if requested not in DATA_MODES:
        raise ValueError(f"unknown data mode {requested!r} (known: {DATA_MODES})")
    on_gpu = device.type == "cuda"
    if requested == "device" and not on_gpu:
        # On the CPU the 'device' is host memory: the same as ram, without workers.
        return "device"
    if requested != "auto":
        return requested
    if on_gpu:
        free, _ = torch.cuda.mem_get_info(device)
        if n_bytes < 0.5 * free:
            return "device"
    if n_bytes < 0.25 * psutil.virtual_memory().available:
        return "ram"
    return "stream"


def make_loader(dataset, *, batch_size, shuffle, data_mode, num_workers, max_workers,
                drop_last=False) -> DataLoader:
    """A DataLoader for a data mode: no workers in ``device`` mode (the batch is an index into
    device memory); ``auto`` workers = ``max_workers`` when streaming, else 0; never more than
    ``max_workers`` (the job's CPUs minus one)."""
    if data_mode == "device":
        workers = 0
    elif num_workers == "auto":
        workers = max_workers if data_mode == "stream" else 0
    else:
        workers = min(int(num_workers), max(max_workers, 0))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=False, drop_last=drop_last)


class ImageDataModule(pl.LightningDataModule):
    """Train/val loaders over P1 split files, with training-split statistics.

    Parameters
    ----------
    train_path, val_path : path-like
        Split files written by the workflow (``<dataset>-train.nc``, ``<dataset>-val.nc``).
        ``val_path`` may hold zero samples (then no validation runs).
    targets : list of str or target object
        Per-sample variables to predict (scalars), or a target object of
        :mod:`.targets` (Fourier coefficients, potential image).
    fields_T : list of float or None
        Input field channels (tesla); None takes every stored field.
    transform : str
        Input normalisation (:data:`mesoinv.training.normalization.INPUT_TRANSFORMS`).
    batch_size : int
    data_mode : str
        One of :data:`DATA_MODES`.
    num_workers : int or "auto"
        Loader worker processes. ``auto``: 0 for ``ram`` and ``device`` (the batch is an index
        into memory), ``max_workers`` for ``stream``.
    max_workers : int
        CPUs available per device minus one (never more workers than the job's CPUs).
    mirror_augmentation : bool
        Flip training images y → −y with probability 1/2 (see module docstring).
    variable : str
        Stored image variable (``pldos``).
    train_subset : dict, optional
        ``{"n_samples": N, "seed": S}``: train on :func:`train_subset_positions` of the
        training split (statistics from the subset too); None: the whole split.
    """

    def __init__(self, train_path, val_path, *, targets, fields_T=None,
                 transform="standardize", batch_size=32, data_mode="auto", num_workers=0,
                 mirror_augmentation=False, variable="pldos", max_workers=0,
                 train_subset=None):
        super().__init__()
        self.train_path, self.val_path = str(train_path), str(val_path)
        self.target_set = (ScalarTargets(targets) if isinstance(targets, (list, tuple))
                           else targets)
        self.targets = list(self.target_set.names) if self.target_set.kind == "scalars" \
            else []
        self.transform = transform
        self.batch_size = batch_size
        self.requested_mode = data_mode
        self.num_workers = num_workers
        self.max_workers = max_workers
        self.mirror_augmentation = mirror_augmentation
        self.variable = variable
        self.info = read_split_info(self.train_path, variable)
        if self.info.n_samples == 0:
            raise ValueError(f"{self.train_path}: the training split is empty")
        self.train_subset = None if train_subset is None else dict(train_subset)
        self.train_positions = None if train_subset is None else train_subset_positions(
            self.info.n_samples, int(train_subset["n_samples"]), int(train_subset.get("seed", 0)))
        self.val_info = read_split_info(self.val_path, variable)
        if self.val_info.image_shape != self.info.image_shape:
            raise ValueError(f"{self.val_path}: images {self.val_info.image_shape} differ from "
                             f"the training split's {self.info.image_shape}")
        self.fields_T = self.info.fields_T if fields_T is None else [float(f) for f in fields_T]
        self.field_indices = self.info.field_indices(fields_T)
        self.val_field_indices = self.val_info.field_indices(self.fields_T)
        self.normalization = None
        self.data_mode = None
        self._device_data = {}

    # -- statistics (training split only) ------------------------------------------------
    def fit_statistics(self):
        """Input and target statistics from the training split (idempotent).

        Returns (input normalisation, fitted target object)."""
        if self.normalization is None:
            self.normalization = ImageNormalization.fit(
                self.transform, iter_images(self.train_path, self.field_indices, self.variable,
                                            self.train_positions))
            self.target_set.fit(self.train_path, self.info, positions=self.train_positions)
        return self.normalization, self.target_set

    @property
    def n_train(self) -> int:
        """Training samples used (the subset's size, else the split's)."""
        return self.info.n_samples if self.train_positions is None else len(self.train_positions)

    @property
    def target_standardization(self):
        """The scalar targets' standardisation (scalar and coefficient targets)."""
        return getattr(self.target_set, "standardization", None)

    @property
    def n_bytes(self) -> int:
        nx, ny = self.info.image_shape
        n = self.n_train + self.val_info.n_samples
        target_channels = 1 if self.target_set.image_variable is not None else 0
        return n * (len(self.field_indices) + target_channels) * nx * ny * 4

    def setup(self, stage=None):
        self.fit_statistics()
        if self.data_mode is not None:
            return
        device = (self.trainer.strategy.root_device if self.trainer is not None
                  else torch.device("cpu"))
        self.data_mode = choose_data_mode(self.requested_mode, self.n_bytes, device)
        log.info("data mode %s (%s requested; %.1f MB of float32 images; device %s)",
                 self.data_mode, self.requested_mode, self.n_bytes / 1e6, device)
        self._datasets = {}
        for split, path, indices, positions in (
                ("train", self.train_path, self.field_indices, self.train_positions),
                ("val", self.val_path, self.val_field_indices, None)):
            streamed_targets = self.target_set.image_variable is not None
            if self.data_mode == "stream":
                targets = (self.target_set if streamed_targets
                           else self.target_set.load(path, positions))
                self._datasets[split] = StreamedImages(path, indices, self.normalization,
                                                       targets, self.variable, positions)
                continue
            images = torch.from_numpy(load_images(path, indices, self.normalization,
                                                  self.variable, positions))
            targets = torch.from_numpy(np.ascontiguousarray(
                self.target_set.load(path, positions)))
            if self.data_mode == "device":
                self._device_data[split] = (images.to(device), targets.to(device))
                self._datasets[split] = _Indices(len(targets))
            else:
                self._datasets[split] = torch.utils.data.TensorDataset(images, targets)

    def _loader(self, split, shuffle):
        # A last training batch of one sample is dropped (a different one each epoch, as the
        # split is shuffled): BatchNorm cannot normalise a single sample in training mode.
        # Under DDP each rank sees ⌈n / ranks⌉ samples.
        ranks = getattr(self.trainer, "world_size", 1) if self.trainer is not None else 1
        per_rank = -(-len(self._datasets[split]) // max(ranks, 1))
        drop_last = shuffle and per_rank % self.batch_size == 1
        return make_loader(self._datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                           data_mode=self.data_mode, num_workers=self.num_workers,
                           max_workers=self.max_workers, drop_last=drop_last)

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
            split = "train" if training else "val"
            images, targets = self._device_data[split]
            batch = (images[batch], targets[batch])
        if training and self.mirror_augmentation:
            images, targets = batch
            flip = torch.rand(images.shape[0], device=images.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            flip_targets = flip.view(-1, *([1] * (targets.ndim - 1)))
            targets = torch.where(flip_targets, self.target_set.mirror(targets), targets)
            batch = (images, targets)
        return batch

    def describe(self) -> dict:
        """JSON-able summary for the model file and logs."""
        return {"train_file": self.train_path, "val_file": self.val_path,
                "n_train": self.n_train, "n_val": self.val_info.n_samples,
                "train_subset": self.train_subset,
                "data_mode": self.data_mode, "fields_T": self.fields_T,
                "image_shape": list(self.info.image_shape),
                "mirror_augmentation": self.mirror_augmentation,
                "target_kind": self.target_set.kind}

