"""Readers of P2 split files (netCDF, dataset-format.md): sizes and physics, LDOS images, G(B)
traces, antidot placements, and the training split's mean LDOS image.

A P2 file holds ``ldos(sample, image_x, y)`` in states per t per site (image_x = W + 2p
columns across the wire, p zero padding columns on each side; y = L rows along it),
``conductance(sample, field)`` in e²/h on the grid ``field`` (T), and the antidot centres
``antidot_x``/``antidot_y`` (sample, antidot) in site indices (i across, k along the wire).
Every reader opens the file, reads and closes it again; arrays are float64.
"""

from dataclasses import dataclass

import netCDF4
import numpy as np

from ..datasets.netcdf import attribute_value

__all__ = ["P2SplitInfo", "read_p2_split_info", "iter_ldos", "load_ldos", "read_traces",
           "read_placements", "read_configuration_ids", "mean_ldos_image", "P2_METADATA_KEYS"]

#: Global attributes of a P2 file that describe the physics a model is tied to.
P2_METADATA_KEYS = ("dataset_name", "dataset_kind", "format_version", "lattice_constant_nm",
                    "width_sites", "length_sites", "antidot_radius_sites", "energy_t",
                    "potential_amplitude_t", "realizations_per_configuration",
                    "n_configurations", "antidot_margin_x_sites", "antidot_margin_y_sites",
                    "antidot_min_separation_sites", "antidot_half_integer_centres",
                    "ldos_padding_sites", "storage_dtype", "sample_config_sha256")


@dataclass
class P2SplitInfo:
    """What a P2 split file holds: sizes, field grid, image shape, padding, physics.

    Attributes
    ----------
    path : str
    n_samples : int
    fields_T : list of float
        The field grid, T.
    image_shape : (int, int)
        (image_x, y) of the LDOS images, pixels (= sites, padding included).
    padding : int
        p, zero columns on each side of an image (``ldos_padding_sites``).
    metadata : dict
        The attributes of :data:`P2_METADATA_KEYS` present in the file, plus
        ``field_range_T`` (first and last field, T) and ``n_fields``.
    split : str
        ``train``, ``val``, ``test`` or ``unknown`` (the file's ``split`` attribute).
    """

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
        attrs = {k: attribute_value(ds.getncattr(k)) for k in ds.ncattrs()}
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
    """Yield the stored LDOS images (image_x, y), float64 states per t per site, one sample at
    a time (every sample, or the rows ``positions``)."""
    with netCDF4.Dataset(path) as ds:
        var = ds["ldos"]
        var.set_auto_maskandscale(False)
        for index in (range(var.shape[0]) if positions is None else positions):
            yield np.asarray(var[index], dtype=np.float64)


def load_ldos(path, positions=None) -> np.ndarray:
    """All (or the given rows') stored LDOS images, (samples, image_x, y), float64 states per
    t per site."""
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


def read_configuration_ids(path) -> np.ndarray:
    """``configuration_id`` per sample (the antidot symmetry class; int64): the realisations of
    one placement share it."""
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds["configuration_id"][:], dtype=np.int64)


def read_placements(path) -> np.ndarray:
    """Stored antidot centres ``[[cx1, cy1], [cx2, cy2]]`` per sample, (samples, 2, 2), site
    indices (i across, k along the wire), float64."""
    with netCDF4.Dataset(path) as ds:
        x = np.asarray(ds["antidot_x"][:], dtype=np.float64)
        y = np.asarray(ds["antidot_y"][:], dtype=np.float64)
    return np.stack([x, y], axis=-1)


def mean_ldos_image(path) -> np.ndarray:
    """Pixelwise mean of the stored LDOS images of a split, (image_x, y), float64 states per t
    per site: the images summed in file order, one at a time, then divided by their number.

    Raises
    ------
    ValueError
        When the file holds no image.
    """
    total, count = None, 0
    for image in iter_ldos(path):
        total = image.copy() if total is None else total + image
        count += 1
    if total is None:
        raise ValueError(f"{path}: no LDOS images to average (empty split)")
    return total / count
