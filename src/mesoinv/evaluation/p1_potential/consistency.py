"""Physics consistency of predicted potentials: does the predicted V reproduce the PLDOS?

The dataset's own simulator (:class:`mesoinv.datasets.p1.P1Simulator`, rebuilt from the
dataset file's attributes) recomputes the PLDOS from the predicted, the true and the baseline
potentials, and each is compared with the stored input PLDOS (:func:`pldos_consistency`). The
true potential must give back the input (r_P ≈ 1); a predicted potential that reproduces the
measured map is, for the inverse problem, as good as the PLDOS can tell.

Also the readers of the dataset file the predictions were made on (rows by sample id, grid
check, stored PLDOS maps) that the evaluation and its figures share.

Units: PLDOS in meV⁻¹ per site, potentials in meV, fields in tesla. Kwant runs through the
simulator, imported only when the check runs.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

from ...inference.p1_formats import PotentialPredictions
from .metrics import example_indices, load_evaluated, pearson_r

__all__ = ["POTENTIAL_SOURCES", "CONSISTENCY_COLUMNS", "PLDOSConsistency", "dataset_rows",
           "check_dataset_grid", "read_stored_pldos", "compute_pldos_consistency",
           "pldos_consistency"]

#: Potentials the PLDOS is recomputed from, in the order of the tables.
POTENTIAL_SOURCES = ("model", "true_potential", "training_mean_potential", "zero_potential")

#: Columns of :func:`pldos_consistency`'s table.
CONSISTENCY_COLUMNS = ["model", "split", "dataset", "potential_source", "field_T", "row",
                       "sample_id", "n", "r_p", "r_p_median", "r_p_q05", "r_p_min",
                       "r_p_max", "relative_rmse", "command"]


@dataclass
class PLDOSConsistency:
    """Result of :func:`compute_pldos_consistency`.

    Attributes
    ----------
    model_name, split, dataset, command : str
    fields_T : ndarray, shape (field,)
    sample_id : ndarray of int64, shape (k,)
        The samples recomputed (the first k of the predictions file).
    r_p : dict of str to ndarray, shape (k, field)
        Per potential source (``model``, ``true_potential``, ``training_mean_potential``,
        ``zero_potential``): r_P of the recomputed PLDOS against the stored input PLDOS.
    mse : dict of str to ndarray, shape (k, field)
        Mean squared difference of those maps, (meV⁻¹)².
    mean_square_stored : ndarray, shape (k, field)
        ⟨ρ_stored²⟩ over pixels, (meV⁻¹)².
    example : dict
        One sample's maps at the first field (meV⁻¹): ``sample_id``, ``stored`` and one per
        source; the sample is the one whose model r_P is the median.
    frame : dict
        What the figures need: ``x_nm``, ``y_nm``, ``a``, ``qpc_first_y_site``,
        ``qpc_width_sites``.
    """

    model_name: str
    split: str
    dataset: str
    command: str
    fields_T: np.ndarray
    sample_id: np.ndarray
    r_p: dict
    mse: dict
    mean_square_stored: np.ndarray
    example: dict = field(default_factory=dict)
    frame: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Per-sample rows and summary rows (see :func:`pldos_consistency`)."""
        rows = []
        common = dict(model=self.model_name, split=self.split, dataset=self.dataset)
        for source in POTENTIAL_SOURCES:
            for f, field_T in enumerate(self.fields_T):
                r = self.r_p[source][:, f]
                mse = self.mse[source][:, f]
                stored = self.mean_square_stored[:, f]
                for k, sample_id in enumerate(self.sample_id):
                    rows.append({**common, "potential_source": source, "field_T": field_T,
                                 "row": "sample", "sample_id": int(sample_id), "n": 1,
                                 "r_p": r[k], "r_p_median": math.nan, "r_p_q05": math.nan,
                                 "r_p_min": math.nan, "r_p_max": math.nan,
                                 "relative_rmse": _ratio(mse[k], stored[k]),
                                 "command": self.command})
                finite = r[np.isfinite(r)]
                rows.append({**common, "potential_source": source, "field_T": field_T,
                             "row": "summary", "sample_id": pd.NA, "n": len(r),
                             "r_p": float(np.mean(finite)) if len(finite) else math.nan,
                             "r_p_median": float(np.median(finite)) if len(finite) else math.nan,
                             "r_p_q05": (float(np.percentile(finite, 5)) if len(finite)
                                         else math.nan),
                             "r_p_min": float(np.min(finite)) if len(finite) else math.nan,
                             "r_p_max": float(np.max(finite)) if len(finite) else math.nan,
                             "relative_rmse": _ratio(np.mean(mse), np.mean(stored))
                             if len(mse) else math.nan,
                             "command": self.command})
        table = pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS)
        table["sample_id"] = table["sample_id"].astype("Int64")
        return table


def _ratio(mse, mean_square) -> float:
    return float(np.sqrt(mse / mean_square)) if mean_square > 0 else math.nan


def dataset_rows(ds, sample_ids, path):
    """Row positions, in an open dataset file, of the given sample ids (ValueError naming the
    first ten missing ones)."""
    ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
    where = {int(i): k for k, i in enumerate(ids)}
    missing = [int(i) for i in sample_ids if int(i) not in where]
    if missing:
        raise ValueError(f"{path} lacks sample(s) {missing[:10]} of the predictions")
    return [where[int(i)] for i in sample_ids]


def check_dataset_grid(ds, p: PotentialPredictions, path):
    """ValueError unless the open dataset file has the predictions' nx × ny sites."""
    shape = (ds.dimensions["x"].size, ds.dimensions["y"].size)
    if shape != p.shape:
        raise ValueError(f"{path} has {shape[0]} × {shape[1]} sites, the predictions "
                         f"{p.shape[0]} × {p.shape[1]}")


def _simulator_from_dataset(ds, path):
    """The dataset's simulator, rebuilt from the file's own attributes."""
    from ...datasets.p1 import P1DatasetSpec, P1Simulator

    try:
        name = ds.getncattr("dataset_name")
        entry = json.loads(ds.getncattr("dataset_config_json"))
    except AttributeError:
        raise ValueError(f"{path} has no dataset_name / dataset_config_json: not a P1 "
                         "dataset file") from None
    spec = P1DatasetSpec.from_config(name, entry)
    g = spec.geometry
    stored = (int(ds.getncattr("nx_sites")), int(ds.getncattr("ny_sites")),
              int(ds.getncattr("qpc_first_y_site")), int(ds.getncattr("qpc_width_sites")))
    if (g.nx, g.ny, g.qpc_first_y, g.qpc_width) != stored:
        raise ValueError(f"{path}: the geometry rebuilt from dataset_config_json "
                         f"{(g.nx, g.ny, g.qpc_first_y, g.qpc_width)} differs from the file's "
                         f"(nx, ny, qpc_first_y_site, qpc_width_sites) = {stored}")
    return P1Simulator(spec)


def compute_pldos_consistency(predictions, dataset_path, *, max_samples: int = 100
                              ) -> PLDOSConsistency:
    """Recompute the PLDOS from predicted, true and baseline potentials (see
    :func:`pldos_consistency`); returns the arrays and one sample's maps for the figure."""
    p = load_evaluated(predictions)
    dataset_path = Path(dataset_path)
    count = min(int(max_samples), p.n)
    if count < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    with netCDF4.Dataset(dataset_path) as ds:
        ds.set_auto_mask(False)
        check_dataset_grid(ds, p, dataset_path)
        rows = dataset_rows(ds, p.sample_id[:count], dataset_path)
        simulator = _simulator_from_dataset(ds, dataset_path)
        fields = np.asarray(ds["field"][:], dtype=float)
        stored = np.stack([np.asarray(ds["pldos"][row], dtype=np.float64) for row in rows])
        frame = dict(x_nm=np.asarray(ds["x"][:], float), y_nm=np.asarray(ds["y"][:], float),
                     a=float(ds.getncattr("lattice_constant_nm")),
                     qpc_first_y_site=int(ds.getncattr("qpc_first_y_site")),
                     qpc_width_sites=int(ds.getncattr("qpc_width_sites")))
    if stored.shape[1] != len(fields):
        raise ValueError(f"{dataset_path}: pldos has {stored.shape[1]} field channels, "
                         f"field has {len(fields)}")
    solver = simulator.solver
    fixed = {"training_mean_potential": solver(p.training_mean_potential_meV),
             "zero_potential": solver(np.zeros(p.shape))}
    recomputed = {source: [] for source in POTENTIAL_SOURCES}
    r_p = {source: np.empty((count, len(fields))) for source in POTENTIAL_SOURCES}
    mse = {source: np.empty((count, len(fields))) for source in POTENTIAL_SOURCES}
    for k in range(count):
        maps = {"model": solver(p.potential_meV[k]),
                "true_potential": solver(p.potential_true_meV[k]), **fixed}
        for source, rho in maps.items():
            r_p[source][k] = pearson_r(rho, stored[k])
            mse[source][k] = np.mean((rho - stored[k]) ** 2, axis=(1, 2))
            if source in ("model", "true_potential"):
                recomputed[source].append(rho[0])
    pick = example_indices(r_p["model"][:, 0])["b"]
    example = {"sample_id": int(p.sample_id[pick]), "stored": stored[pick, 0],
               "model": recomputed["model"][pick],
               "true_potential": recomputed["true_potential"][pick],
               "training_mean_potential": fixed["training_mean_potential"][0],
               "zero_potential": fixed["zero_potential"][0], "field_T": float(fields[0])}
    return PLDOSConsistency(
        model_name=p.model_name, split=p.split, dataset=str(dataset_path), command=p.command,
        fields_T=fields, sample_id=p.sample_id[:count].copy(), r_p=r_p, mse=mse,
        mean_square_stored=np.mean(stored**2, axis=(2, 3)), example=example, frame=frame)


def pldos_consistency(predictions_path, dataset_path, *, max_samples: int = 100
                      ) -> pd.DataFrame:
    """Does the predicted potential reproduce the measured PLDOS? (physics consistency)

    The dataset's simulator is rebuilt from the dataset file's own attributes
    (``dataset_name``, ``dataset_config_json``: :class:`mesoinv.datasets.p1.P1DatasetSpec`,
    :class:`mesoinv.datasets.p1.P1Simulator`), and the PLDOS (all field channels) is
    recomputed from four potentials of each of the first ``max_samples`` samples of the
    predictions file (deterministic): the predicted one (``model``), the true one
    (``true_potential``: a sanity check of the pairing and the rebuild, r_P ≈ 1 up to the
    storage precision of the dataset), the training-mean map (``training_mean_potential``)
    and V = 0 (``zero_potential``: the clean QPC's flow, the same for every sample). Each is
    compared with the stored input PLDOS of the sample. Cost: two solves per sample
    (≈ 20 ms each at 64 × 48 sites) plus two in all.

    Parameters
    ----------
    predictions_path : path-like or PotentialPredictions
    dataset_path : path-like
        The P1 dataset file the predictions were made on (its samples must include the
        predictions' sample ids; matched by id).
    max_samples : int

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``split``, ``dataset``, ``potential_source``, ``field_T``,
        ``row`` ("sample" or "summary"), ``sample_id`` (empty in summary rows), ``n``
        (samples in the row), ``r_p`` (r_P of recomputed against stored PLDOS; the mean over
        samples in a summary row), ``r_p_median``, ``r_p_q05``, ``r_p_min``, ``r_p_max``
        (summary rows only), ``relative_rmse`` (√⟨(ρ_recomputed − ρ_stored)²⟩ / √⟨ρ_stored²⟩
        over pixels, pooled over samples in a summary row; dimensionless), ``command``.

    Raises
    ------
    ValueError
        The dataset lacks a sample of the predictions, has another grid, or is no P1 file.
    """
    return compute_pldos_consistency(predictions_path, dataset_path,
                                     max_samples=max_samples).table()


def read_stored_pldos(dataset_path, sample_ids, field_index=0):
    """(maps (k, nx, ny) in meV⁻¹, field in T) of the given sample ids from a dataset file."""
    with netCDF4.Dataset(dataset_path) as ds:
        ds.set_auto_mask(False)
        rows = dataset_rows(ds, sample_ids, dataset_path)
        maps = np.stack([np.asarray(ds["pldos"][row, field_index], dtype=np.float64)
                         for row in rows])
        field_T = float(ds["field"][field_index])
    return maps, field_T
