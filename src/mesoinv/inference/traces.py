"""Readers of the G(B) traces a P2 diffusion model generates LDOS images from.

Two inputs (``mesoinv predict`` with a ``p2_diffusion`` model file):

* a netCDF file in the P2 dataset format (a split or shard file: ``conductance(sample,
  field)`` in e²/h, ``field`` in T): :func:`read_dataset_traces` reads the selected samples,
  with the truth (``ldos``, ``antidot_x``/``antidot_y``) where the file holds it;
* a CSV of field and conductance: :func:`read_trace_csv`.

CSV format
----------
A header row, then one row per field point, comma-separated; lines starting with ``#`` are
comments::

    field_T,conductance_e2_h
    0.0,15.93
    0.0408163265306122,15.71
    ...

* first column ``field_T``: the perpendicular field B in tesla, in the order of the training
  grid;
* one further column ``conductance_e2_h`` for one trace, or several columns (any header; the
  header becomes the trace's name) for several traces on the same field axis: the
  two-terminal conductance G(B) in e²/h, spinless (as the datasets store it).

Whether the field grid is the model's is checked by the caller
(:meth:`mesoinv.training.model_file.ModelFile.check_trace`).
"""

from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from ..training.p2_readers import load_ldos, read_placements, read_traces
from .selection import select_positions

__all__ = ["DatasetTraces", "read_sample_ids", "read_dataset_traces", "read_trace_csv"]


@dataclass
class DatasetTraces:
    """The selected traces of a P2 dataset-format file, with the truth where it is stored.

    Attributes
    ----------
    sample_ids : ndarray (n,), int64
    traces : ndarray (n, n_fields)
        Conductance in e²/h, float64.
    true_ldos : ndarray (n, image_x, y) or None
        Stored LDOS, states per t per site, float64.
    true_placements : ndarray (n, 2, 2) or None
        Stored antidot centres ``[[cx1, cy1], [cx2, cy2]]``, site indices.
    """

    sample_ids: np.ndarray
    traces: np.ndarray
    true_ldos: np.ndarray | None
    true_placements: np.ndarray | None


def read_sample_ids(path) -> np.ndarray:
    """The ``sample_id`` of every row of a P2 dataset-format file, (samples,) int64."""
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds["sample_id"][:], dtype=np.int64)


def read_dataset_traces(path, ids=None) -> DatasetTraces:
    """The traces of the samples ``ids`` (sample ids, not positions; default every sample, in
    file order) of a P2 dataset-format file, with the stored LDOS and antidot placements where
    the file has them.

    Raises
    ------
    ValueError
        Ids that are not in the file (named), or no trace selected.
    """
    with netCDF4.Dataset(path) as ds:
        sample_ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
        has_ldos = "ldos" in ds.variables
        has_placements = "antidot_x" in ds.variables and "antidot_y" in ds.variables
    positions = select_positions(sample_ids, ids, path)
    if not positions:
        raise ValueError(f"{path}: no traces selected")
    traces = read_traces(path)[positions]
    true_ldos = true_placements = None
    if has_ldos:
        true_ldos = load_ldos(path, positions)
    if has_placements:
        true_placements = read_placements(path)[positions]
    return DatasetTraces(sample_ids[positions], traces, true_ldos, true_placements)


def read_trace_csv(csv_path):
    """Read traces from a CSV file (format in the module docstring).

    Returns
    -------
    fields_T : ndarray (n_fields,)
        The field of each row, T.
    traces : ndarray (n_traces, n_fields), e²/h
    names : list of str
        The header of each trace column.

    Raises
    ------
    ValueError
        No header ``field_T`` first, no trace column, non-numeric or non-finite values.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"input file {csv_path} does not exist")
    try:
        table = pd.read_csv(csv_path, comment="#", skipinitialspace=True)
    except Exception as error:  # empty file, ragged rows: pandas' own exception types
        raise ValueError(f"{csv_path}: not a readable CSV of field and conductance "
                         f"({type(error).__name__}: {error})") from None
    columns = [str(c).strip() for c in table.columns]
    if not columns or columns[0] != "field_T":
        raise ValueError(f"{csv_path}: the first column must be 'field_T' (the field in tesla), "
                         f"got header {columns}")
    if len(columns) < 2:
        raise ValueError(f"{csv_path}: no conductance column after 'field_T' (expected "
                         "'field_T,conductance_e2_h' or one column per trace)")
    try:
        values = table.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{csv_path}: every value must be a number (field in T, "
                         "conductance in e²/h)") from None
    if values.shape[0] == 0:
        raise ValueError(f"{csv_path}: no rows")
    if not np.all(np.isfinite(values)):
        bad = sorted({columns[j] for j in np.nonzero(~np.isfinite(values))[1]})
        raise ValueError(f"{csv_path}: empty, NaN or infinite values in column(s) {bad}")
    return values[:, 0], values[:, 1:].T.copy(), columns[1:]
