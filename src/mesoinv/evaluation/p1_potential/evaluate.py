"""Evaluation of a P1 potential-reconstruction model: every table and figure of one
potential-predictions file, into one directory, for the workflow
(:func:`evaluate_potential_model`)."""

from pathlib import Path

import netCDF4
import pandas as pd

from ...datasets.netcdf import atomic_path
from ...inference.p1_formats import read_potential_predictions
from .consistency import (CONSISTENCY_COLUMNS, check_dataset_grid, compute_pldos_consistency,
                          dataset_rows)
from .figures import (plot_coefficient_errors, plot_error_map, plot_examples,
                      plot_pldos_consistency, plot_r_p_by_distance, plot_r_p_histogram)
from .metrics import (coefficient_errors, per_sample_r_p, reconstruction_by_distance,
                      reconstruction_metrics)
from .paper import paper_comparison

__all__ = ["OUTPUT_FILES", "evaluate_potential_model"]

#: Files written by :func:`evaluate_potential_model`, key → file name (fixed: a workflow rule
#: declares them as outputs).
OUTPUT_FILES = {
    "metrics": "metrics.csv",
    "paper_comparison": "paper_comparison.csv",
    "r_p": "r_p.csv",
    "r_p_by_distance": "r_p_by_distance.csv",
    "pldos_consistency": "pldos_consistency.csv",
    "coefficient_errors": "coefficient_errors.csv",
    "r_p_histogram": "r_p_histogram.png",
    "examples": "examples.png",
    "error_map": "error_map.png",
    "coefficient_errors_figure": "coefficient_errors.png",
    "r_p_by_distance_figure": "r_p_by_distance.png",
    "pldos_consistency_figure": "pldos_consistency.png",
}


def evaluate_potential_model(predictions_path, output_dir, *, dataset_path=None,
                             physics_samples: int = 100) -> dict:
    """Metrics, paper comparison, tables and figures of one potential-predictions file.

    Writes, atomically, into ``output_dir`` (created if needed) the fixed set
    :data:`OUTPUT_FILES`, the same for both model kinds:

    - ``metrics.csv`` (:func:`.metrics.reconstruction_metrics`), ``paper_comparison.csv``
      (:func:`.paper.paper_comparison`), ``r_p.csv`` (:func:`.metrics.per_sample_r_p`),
      ``r_p_by_distance.csv`` (:func:`.metrics.reconstruction_by_distance`),
      ``coefficient_errors.csv`` (:func:`.metrics.coefficient_errors`),
      ``pldos_consistency.csv`` (:func:`.consistency.pldos_consistency`; header only when no
      dataset is given or ``physics_samples`` is 0);
    - ``r_p_histogram.png``, ``examples.png``, ``error_map.png``, ``coefficient_errors.png``,
      ``r_p_by_distance.png``, ``pldos_consistency.png`` (:mod:`.figures`; a placeholder
      saying why when the check was not run).

    Every table is computed before the first file is written, so a file that cannot be
    evaluated (no ``potential_true``, a dataset lacking its samples) leaves nothing behind.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-potential-predictions-1``) with ``potential_true``.
    output_dir : path-like
    dataset_path : path-like, optional
        The P1 dataset file the predictions were made on (not guessed from the file's
        ``input_file``): adds the input PLDOS to ``examples.png`` and enables the PLDOS check.
    physics_samples : int
        Samples of the PLDOS check (the first ones of the file).

    Returns
    -------
    dict of str to Path
        Keys of :data:`OUTPUT_FILES`.

    Raises
    ------
    ValueError
        The file lacks ``potential_true`` (or is otherwise unreadable), or the dataset does
        not match it; nothing is written then.
    """
    p = read_potential_predictions(predictions_path)
    output_dir = Path(output_dir)
    metrics = reconstruction_metrics(p)
    tables = {"metrics": metrics, "paper_comparison": paper_comparison(metrics),
              "r_p": per_sample_r_p(p), "r_p_by_distance": reconstruction_by_distance(p),
              "coefficient_errors": coefficient_errors(p)}
    consistency, reason = None, ""
    if dataset_path is None:
        reason = "(no dataset file given)"
    elif int(physics_samples) <= 0:
        reason = "(physics_samples = 0)"
    else:
        consistency = compute_pldos_consistency(p, dataset_path, max_samples=physics_samples)
    tables["pldos_consistency"] = (consistency.table() if consistency is not None
                                   else pd.DataFrame(columns=CONSISTENCY_COLUMNS))
    if dataset_path is not None:  # fail on a mismatched dataset before writing anything
        with netCDF4.Dataset(dataset_path) as ds:
            check_dataset_grid(ds, p, dataset_path)
            dataset_rows(ds, p.sample_id, dataset_path)

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / name for key, name in OUTPUT_FILES.items()}
    for key, table in tables.items():
        with atomic_path(paths[key]) as tmp:
            table.to_csv(tmp, index=False)
    plot_r_p_histogram(p, paths["r_p_histogram"])
    plot_examples(p, paths["examples"], dataset_path=dataset_path)
    plot_error_map(p, paths["error_map"])
    plot_coefficient_errors(p, paths["coefficient_errors_figure"],
                            table=tables["coefficient_errors"])
    plot_r_p_by_distance(p, paths["r_p_by_distance_figure"], table=tables["r_p_by_distance"])
    plot_pldos_consistency(consistency, paths["pldos_consistency_figure"], reason=reason)
    return paths
