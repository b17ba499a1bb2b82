"""Evaluation of a P1 parameter model: every metric and figure of one predictions file,
into one directory, for the workflow (:func:`evaluate_parameter_model`)."""

from pathlib import Path

from ...datasets.netcdf import atomic_path
from ...inference.p1_formats import read_predictions
from .figures import (plot_error_correlation, plot_error_histograms, plot_pair_correlation,
                      plot_predicted_vs_true)
from .metrics import (paper_comparison, posterior_references, regression_metrics,
                      training_baseline_references)

__all__ = ["evaluate_parameter_model"]


def evaluate_parameter_model(predictions_path, output_dir, *, dataset_path=None,
                             train_path=None) -> dict:
    """Metrics, the paper comparison and the figures of one predictions file.

    Writes, atomically, into ``output_dir`` (created if needed):

    - ``metrics.csv``: :func:`.metrics.regression_metrics`;
    - ``paper_comparison.csv``: :func:`.metrics.paper_comparison`;
    - ``predicted_vs_true.png``: :func:`.figures.plot_predicted_vs_true`;
    - ``error_histograms.png``: :func:`.figures.plot_error_histograms`;
    - ``error_correlation.png``: P1 Fig. 3 (:func:`.figures.plot_error_correlation`) when the
      model predicts both ``dopant_distance`` and ``dopant_density``. Because a workflow rule
      needs fixed outputs, any other model gets under the same name the same view for the
      targets it has (:func:`.figures.plot_pair_correlation`): the relative errors of two
      targets against each other (``rms`` and ``correlation_length`` when both are there,
      else the first two) with marginal histograms, without colour or compensation line
      (those need s and N_d); for a single target, its relative error against its true value.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-predictions-1``) with at least one ``<target>_true``.
    output_dir : path-like
        Directory for the five files.
    dataset_path : path-like, optional
        The dataset file the predictions were made on: adds the rows of the Bayes ceiling
        (predictor ``potential_posterior``) to ``metrics.csv``.
    train_path : path-like, optional
        The model's training split (needs ``dataset_path``): adds the rows of the two
        baselines fitted on it, ``ridge_power_spectrum`` and ``nearest_training_map``
        (:mod:`.baselines`).

    Returns
    -------
    dict of str to Path
        Keys ``metrics``, ``paper_comparison``, ``predicted_vs_true``, ``error_histograms``,
        ``error_correlation``.

    Raises
    ------
    ValueError
        The file has no ``<target>_true`` variable, or ``train_path`` comes without
        ``dataset_path`` (before anything is written).
    """
    output_dir = Path(output_dir)
    if train_path is not None and dataset_path is None:
        raise ValueError("the baselines fitted on the training split need the dataset file "
                         "the predictions were made on (their input maps): pass dataset_path "
                         "(--dataset) with train_path (--train)")
    references = ({} if dataset_path is None
                  else posterior_references(predictions_path, dataset_path))
    if train_path is not None:
        references.update(training_baseline_references(predictions_path, dataset_path,
                                                        train_path))
    metrics = regression_metrics(predictions_path, references=references)
    comparison = paper_comparison(metrics)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": output_dir / "metrics.csv",
             "paper_comparison": output_dir / "paper_comparison.csv"}
    with atomic_path(paths["metrics"]) as tmp:
        metrics.to_csv(tmp, index=False)
    with atomic_path(paths["paper_comparison"]) as tmp:
        comparison.to_csv(tmp, index=False)
    paths["predicted_vs_true"] = plot_predicted_vs_true(
        predictions_path, output_dir / "predicted_vs_true.png")
    paths["error_histograms"] = plot_error_histograms(
        predictions_path, output_dir / "error_histograms.png")
    correlation = output_dir / "error_correlation.png"
    predictions = read_predictions(predictions_path)
    if {"dopant_distance", "dopant_density"} <= set(predictions.evaluated):
        paths["error_correlation"] = plot_error_correlation(predictions_path, correlation)
    else:
        paths["error_correlation"] = plot_pair_correlation(predictions, correlation)
    return paths
