"""Readers of the inputs of P1 prediction (:mod:`mesoinv.inference.p1_predict`).

Two kinds of input: a netCDF file in the dataset format (a split or a shard; its maps are
streamed by :func:`mesoinv.training.p1_data.iter_images`, the training stage's own reader, so
that a prediction sees a map exactly as training did), and a bare ``.npy`` array of PLDOS maps
(:func:`load_npy_maps`, :func:`select_channels`). From a dataset file also come the sample ids
and, where stored, the truth: the scalar targets (:func:`read_true_targets`), the potential and
its Fourier coefficients (:func:`read_true_potentials`).

Units: PLDOS in meV⁻¹ per site (as stored by the simulator), potentials in meV, fields in
tesla, Fourier coefficients dimensionless.
"""

from pathlib import Path

import netCDF4
import numpy as np

__all__ = ["read_sample_ids", "read_true_targets", "read_true_potentials", "load_npy_maps",
           "select_channels"]


def read_sample_ids(input_path) -> np.ndarray:
    """The ``sample_id`` of every row of a dataset-format netCDF file, int64, in row order."""
    with netCDF4.Dataset(input_path) as ds:
        return np.asarray(ds["sample_id"][:], dtype=np.int64)


def read_true_targets(input_path, names, positions):
    """True scalar targets of the rows ``positions``, shape (rows, targets), float64, in the
    file's units; None unless every target of ``names`` is stored in the file."""
    with netCDF4.Dataset(input_path) as ds:
        if not all(n in ds.variables for n in names):
            return None
        return np.stack([np.asarray(ds[n][:], np.float64)[positions] for n in names], axis=-1)


def read_true_potentials(path, positions):
    """True potentials and Fourier coefficients of the rows ``positions`` of a dataset file.

    Returns
    -------
    potential : ndarray, shape (n, nx, ny), or None
        V in meV, float64; None when the file stores no potential or ``positions`` is empty.
    coefficients : ndarray, shape (n, 2 N), or None
        Real parts then imaginary parts of C_j (dimensionless); None when not stored.
    modes : dict or None
        ``qx``, ``qy`` (nm⁻¹), ``mode_m``, ``mode_n`` of the stored modes; None when no
        coefficients are stored.

    All three are None when the file stores no potential.
    """
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        if "potential" not in ds.variables:
            return None, None, None
        potential = np.stack([np.asarray(ds["potential"][p], np.float64) for p in positions]) \
            if len(positions) else None
        coefficients, modes = None, None
        if "fourier_coefficient_real" in ds.variables:
            real = np.asarray(ds["fourier_coefficient_real"][:], np.float64)[positions]
            imag = np.asarray(ds["fourier_coefficient_imag"][:], np.float64)[positions]
            coefficients = np.concatenate([real, imag], axis=-1)
            modes = {name: np.asarray(ds[name][:]) for name in ("qx", "qy", "mode_m", "mode_n")}
    return potential, coefficients, modes


def load_npy_maps(npy_path, fields_T):
    """PLDOS maps from a ``.npy`` array, checked, as (maps, channels, nx, ny).

    Parameters
    ----------
    npy_path : path-like
        Array of shape (nx, ny), (channels, nx, ny) or (maps, channels, nx, ny): the PLDOS
        (meV⁻¹ per site, as stored by the simulator), one channel per field of ``fields_T``.
    fields_T : sequence of float
        The field (tesla) of each channel.

    Returns
    -------
    maps : ndarray, shape (maps, channels, nx, ny)
        As stored (dtype unchanged).
    fields_T : list of float

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Another number of dimensions, not as many channels as fields, or a value in the maps
        that is NaN, infinite or negative (named with its map, channel and site).
    """
    npy_path = Path(npy_path)
    if not npy_path.is_file():
        raise FileNotFoundError(f"input file {npy_path} does not exist")
    maps = np.load(npy_path, allow_pickle=False)
    fields_T = [float(f) for f in fields_T]
    if maps.ndim == 2:
        maps = maps[None, None]
    elif maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise ValueError(f"{npy_path}: expected (nx, ny), (channels, nx, ny) or "
                         f"(maps, channels, nx, ny), got shape {maps.shape}")
    if maps.shape[1] != len(fields_T):
        raise ValueError(f"{npy_path}: {maps.shape[1]} channel(s) but {len(fields_T)} field(s) "
                         f"given with --fields-T {fields_T}")
    for what, bad in (("not finite", ~np.isfinite(maps)), ("negative", maps < 0)):
        where = np.argwhere(bad)
        if len(where):
            m, c, x, y = (int(i) for i in where[0])
            raise ValueError(
                f"{npy_path}: map {m}, channel {c} (B = {fields_T[c]:g} T), site ({x}, {y}): "
                f"PLDOS = {float(maps[m, c, x, y]):.6g} is {what}"
                + (" (a density of states is ≥ 0)" if what == "negative" else ""))
    return maps, fields_T


def select_channels(maps, fields_T, model_fields_T) -> list:
    """The channels of each map at the model's fields (tesla, matched within 1e-9 T), in the
    model's order, as float64 arrays (channels, nx, ny)."""
    channel = [next(i for i, g in enumerate(fields_T) if abs(g - f) <= 1e-9)
               for f in model_fields_T]
    images = [m[channel].astype(np.float64) for m in maps]
    return images
