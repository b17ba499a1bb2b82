"""``metrics.csv`` of a P2 diffusion model: antidot accuracy of the generated images against
a lookup baseline and two trace-blind baselines (:func:`diffusion_metrics`), with 95 %
intervals over traces.

One row per predictor × criterion, columns :data:`METRICS_COLUMNS`. Predictors
(:data:`PREDICTORS`):

* ``model``: the generated images of the file (antidots found by the detector,
  :class:`mesoinv.inference.antidot_detector.AntidotDetector`);
* ``model_consensus`` (files with k ≥ 3 draws per trace): one answer per trace from the
  model's own draws, the draw whose placement the most other draws agree with
  (:func:`mesoinv.evaluation.p2_generation.positions.consensus_draw`). It uses no truth, so
  unlike ``oracle_any_draw_correct`` it is a predictor; ``model`` scores the draws one by one;
* ``nearest_training_trace``: the stored LDOS image of the training sample whose G(B) is
  nearest (1-NN, standardised per field point with training statistics;
  :mod:`mesoinv.evaluation.p2_generation.baselines`), scored by the same detector and
  matcher. Where evaluated placements also occur in training, this lookup is the bar;
* ``nearest_traces_consensus`` (with ``model_consensus``): the lookup given as many
  candidates as the model has draws: the stored images of the k nearest training traces, their
  antidots found by the same detector, and the consensus of those k placements by the same rule
  as ``model_consensus``. On held-out placements the neighbours are neighbouring placements,
  and their consensus can be nearer the truth than the single nearest one;
* ``direct_placement_model``: a trace encoder with a small head trained on the training split
  to regress the two centres (:mod:`mesoinv.evaluation.p2_generation.placement_baseline`):
  is the placement in the trace and learnable from this much data, without images? Its
  pixel correlation is that of the training-mean LDOS with holes cut at its placement;
* ``direct_placement_mlp``: the same question asked of an MLP of the whole trace, the
  stronger direct regressor on held-out placements;
* ``unconditional``: the same model at guidance scale γ = 0 (its learned null condition,
  i.e. trace-blind), generated on the same traces with the same sampler, steps, seeds and (by
  default) draws per trace as the file, so each unconditional draw starts from the same noise
  as the model's draw it is compared with;
* ``most_frequent_placement``: the constant placement that is correct for the most training
  samples (computed from the training split, :mod:`mesoinv.evaluation.p2_generation.evaluate`);
  its pixel correlation is that of the training-mean LDOS with holes cut at that placement
  (:func:`mesoinv.evaluation.p2_generation.positions.placement_image`).

Criteria (:mod:`mesoinv.evaluation.p2_generation.positions`): ``strict`` against the stored
placement, ``mirrors`` modulo the wire's mirror images, ``classes`` modulo its whole symmetry
class. **strict is the analogue of P2's "over 95 percent"** (P2's dataset holds one
representative per class, as ours does, and compares with the image of that configuration);
``mirrors`` and ``classes`` forgive answers that the trace cannot distinguish (G(B) is
invariant under those maps), so strict ≤ mirrors ≤ classes. Position errors and tolerances
are in sites; pixel correlations are Pearson r over the wire's pixels.

Intervals (95 %, :mod:`mesoinv.evaluation.intervals`): ``accuracy_ci_*`` are Wilson score
intervals of the accuracy with n = the number of traces (a trace's mean over its draws counts
as that fraction of a success). Traces of one placement (its potential realisations; at weak
disorder nearly the same trace) are not independent, so ``accuracy_cluster_ci_*`` resample
whole placements (cluster bootstrap over ``configuration_id``, ``n_configurations`` of them):
the interval to read when traces share placements. ``accuracy_minus_lookup`` is the accuracy
minus the nearest training trace's on the same traces (per trace, then averaged), with its
paired cluster-bootstrap interval: the model is shown better than the lookup where that
interval excludes 0; ``mean_position_error_sites_ci_*`` and
``pixel_correlation_mean_ci_*`` are percentile-bootstrap intervals over traces (per-trace
means over draws resampled). ``fraction_two_antidots_found``: the fraction of images in which
the detector found two holes (depth criterion of
:class:`mesoinv.inference.antidot_detector.AntidotDetector`); the position error is the mean
over those images only (an image with a missing antidot is wrong, not far).
``ldos_mean_ratio`` (generated over true mean LDOS over the wire, per image, averaged; 1 is the
right brightness; bootstrap interval over traces) and ``ldos_mse_per_t2`` (mean squared LDOS
difference over the wire's pixels, t⁻²) see the absolute scale that the pixel correlation
ignores. ``oracle_any_draw_correct`` — at least one of a trace's k draws
is correct — needs the truth to choose the draw: an oracle, never a headline number.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd

from ...inference.antidot_detector import AntidotDetector
from ...inference.p2_format import GeneratedFile
from ..intervals import (bootstrap_interval, cluster_bootstrap_interval, interval_columns,
                         wilson_interval)
from .positions import (CRITERIA, consensus_draw, evaluate_positions, ldos_scale,
                        pixel_correlation)

__all__ = ["METRICS_COLUMNS", "PREDICTORS", "P2_CRITERION", "CONSENSUS_MIN_DRAWS",
           "diffusion_metrics"]

#: Columns of ``metrics.csv``, in order.
METRICS_COLUMNS = ["model", "split", "predictor", "criterion", "tolerance_sites", "n_traces",
                   "n_configurations", "samples_per_trace", "accuracy", "accuracy_ci_low",
                   "accuracy_ci_high", "accuracy_cluster_ci_low", "accuracy_cluster_ci_high",
                   "accuracy_minus_lookup", "accuracy_minus_lookup_ci_low",
                   "accuracy_minus_lookup_ci_high",
                   "accuracy_std_over_draws", "oracle_any_draw_correct",
                   "fraction_two_antidots_found", "mean_position_error_sites", "mean_position_error_sites_ci_low",
                   "mean_position_error_sites_ci_high", "pixel_correlation_mean",
                   "pixel_correlation_mean_ci_low", "pixel_correlation_mean_ci_high",
                   "ldos_mean_ratio", "ldos_mean_ratio_ci_low", "ldos_mean_ratio_ci_high",
                   "ldos_mse_per_t2", "sampler", "steps", "guidance_scale", "baseline", "command"]

#: Predictors of ``metrics.csv`` and what each is.
PREDICTORS = {
    "model": "the generated images of the file (the trace-conditioned model)",
    "model_consensus": "the model's draw that the most of its other draws for the trace agree "
                       "with (within the tolerance; needs no truth)",
    "nearest_training_trace": "stored LDOS image of the training sample with the nearest G(B) "
                              "(1-NN, per-field standardised with training statistics)",
    "nearest_traces_consensus": "of the stored LDOS images of the k nearest training traces "
                                "(k = the model's draws per trace), the one the most others "
                                "agree with (same rule as model_consensus)",
    "direct_placement_model": "trace encoder + head regressing the two centres, trained on "
                              "the training split (swap-invariant MSE)",
    "direct_placement_mlp": "MLP of the whole standardised trace regressing the two centres, "
                            "trained on the training split (AdamW, cosine, 300 passes: "
                            "2,000 to 10,000 steps; swap-invariant MSE)",
    "unconditional": "same model at guidance_scale 0 (null condition, trace-blind), same "
                     "traces, sampler, steps and seeds",
    "most_frequent_placement": "constant placement correct for the most training samples "
                               "(pixel correlation: training-mean LDOS with its holes)",
}

#: Draws per trace from which ``model_consensus`` is reported (two draws cannot out-vote each
#: other).
CONSENSUS_MIN_DRAWS = 3

#: The criterion that corresponds to P2's "over 95 percent".
P2_CRITERION = "strict"


def _per_trace(values) -> np.ndarray:
    """(n,) or (n, k) → per-trace mean over draws (NaN-aware), (n,)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        return values
    with warnings.catch_warnings():  # an all-NaN trace (no defined r) stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values.reshape(len(values), -1), axis=1)


def _bootstrap_mean(per_trace: np.ndarray) -> tuple[float, float]:
    finite = per_trace[np.isfinite(per_trace)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    return bootstrap_interval(lambda v: v.mean(axis=1), finite)


def _rows(evaluation, images, true_ldos, padding, *, predictor, draws, common,
          sampling) -> list:
    summary = evaluation.summary()
    correlation = pixel_correlation(images, true_ldos, padding)
    correlation_per_trace = _per_trace(correlation) if np.size(correlation) else np.array([])
    ratio, mse = ldos_scale(images, true_ldos, padding)
    ratio_per_trace = _per_trace(ratio)
    rows = []
    for criterion in CRITERIA:
        scores = getattr(evaluation, criterion)
        correct = scores.correct if scores.correct.ndim == 2 else scores.correct[:, None]
        n = int(correct.shape[0])
        rows.append({
            **common, "predictor": predictor, "criterion": criterion,
            "tolerance_sites": evaluation.tolerance, "n_traces": n,
            "samples_per_trace": int(draws),
            "accuracy": summary[f"accuracy_{criterion}"],
            **interval_columns("accuracy", wilson_interval(float(correct.mean(1).sum()), n)),
            "accuracy_std_over_draws": (float(correct.mean(0).std()) if correct.shape[1] > 1
                                        else float("nan")),
            "oracle_any_draw_correct": float(correct.any(1).mean()),
            "fraction_two_antidots_found": summary[f"both_found_{criterion}"],
            "mean_position_error_sites": summary[f"mean_error_{criterion}_sites"],
            **interval_columns("mean_position_error_sites",
                               _bootstrap_mean(_per_trace(scores.error))),
            "pixel_correlation_mean": float(np.nanmean(correlation)) if np.size(correlation)
            and np.any(np.isfinite(correlation)) else float("nan"),
            **interval_columns("pixel_correlation_mean", _bootstrap_mean(correlation_per_trace)),
            "ldos_mean_ratio": float(np.nanmean(ratio_per_trace)),
            **interval_columns("ldos_mean_ratio", _bootstrap_mean(ratio_per_trace)),
            "ldos_mse_per_t2": float(np.mean(mse)),
            **sampling, "baseline": PREDICTORS[predictor]})
    return rows


def diffusion_metrics(generated: GeneratedFile, *, geometry, constraints, tolerance,
                      unconditional_images, baseline_placement, baseline_image,
                      model_name, nearest=None, nearest_k=None, direct=None,
                      direct_mlp=None, configurations=None) -> tuple[pd.DataFrame, dict]:
    """The rows of ``metrics.csv`` (:data:`METRICS_COLUMNS`) and the per-sample evaluations
    ``{predictor: PositionEvaluation}`` (for the figures).

    Parameters
    ----------
    generated : GeneratedFile
        With the truth.
    geometry, constraints
        Of the dataset (:func:`mesoinv.inference.antidot_detector.read_geometry`).
    tolerance : float
        Sites.
    unconditional_images : array (n, k', image_x, y)
        The trace-blind samples of the same model.
    baseline_placement : array (2, 2)
    baseline_image : array (image_x, y)
        The baseline placement drawn as an image (pixel correlation).
    nearest : NearestTraceLookup, optional
        The 1-NN lookup's answers for the same traces
        (:class:`mesoinv.evaluation.p2_generation.baselines.NearestTraceLookup`); its rows
        follow the model's.
    nearest_k : NearestTraceLookup, optional
        The k nearest training traces of each trace (``images`` (n, k, image_x, y)): the
        ``nearest_traces_consensus`` rows.
    direct : (placements (n, 2, 2), images (n, image_x, y)), optional
        The direct placement model's centres (sites) and its placements drawn on the
        training-mean LDOS (pixel correlation).
    direct_mlp : (placements, images), optional
        The same for the MLP direct regressor (predictor ``direct_placement_mlp``).
    configurations : array (n,), optional
        ``configuration_id`` of each trace (its placement's symmetry class): the clusters of
        the cluster-bootstrap columns (NaN without them).
    """
    options = generated.options
    true = generated.true_placements
    padding = generated.padding
    detector_meta = json.loads(generated.attrs["data_metadata"])
    detector = AntidotDetector.from_metadata(detector_meta)
    common = {"model": model_name, "split": str(generated.attrs.get("split", "unknown")),
              "command": " ".join(sys.argv)}
    sampling = {"sampler": options.sampler, "steps": options.steps,
                "guidance_scale": options.guidance_scale}
    none = {"sampler": "", "steps": float("nan"), "guidance_scale": float("nan")}
    evaluations = {}
    rows = []
    evaluations["model"] = evaluate_positions(generated.found, true, geometry, constraints,
                                              tolerance=tolerance)
    truth = generated.true_ldos
    rows += _rows(evaluations["model"], generated.generated, truth, padding,
                  predictor="model", draws=generated.generated.shape[1], common=common,
                  sampling=sampling)
    draws = generated.generated.shape[1]
    if draws >= CONSENSUS_MIN_DRAWS:
        traces = np.arange(len(true))
        choice = consensus_draw(generated.found, tolerance)
        evaluations["model_consensus"] = evaluate_positions(
            generated.found[traces, choice], true, geometry, constraints, tolerance=tolerance)
        rows += _rows(evaluations["model_consensus"], generated.generated[traces, choice], truth,
                      padding, predictor="model_consensus", draws=draws, common=common,
                      sampling=sampling)
    if nearest is not None:
        found = detector.detect(nearest.images).centres
        evaluations["nearest_training_trace"] = evaluate_positions(
            found, true, geometry, constraints, tolerance=tolerance)
        rows += _rows(evaluations["nearest_training_trace"], nearest.images, truth, padding,
                      predictor="nearest_training_trace", draws=1, common=common, sampling=none)
    if nearest_k is not None:
        candidates = detector.detect(nearest_k.images).centres             # (n, k, 2, 2)
        traces = np.arange(len(true))
        choice = consensus_draw(candidates, tolerance)
        evaluations["nearest_traces_consensus"] = evaluate_positions(
            candidates[traces, choice], true, geometry, constraints, tolerance=tolerance)
        rows += _rows(evaluations["nearest_traces_consensus"],
                      nearest_k.images[traces, choice], truth, padding,
                      predictor="nearest_traces_consensus", draws=nearest_k.images.shape[1],
                      common=common, sampling=none)
    for predictor, entry in (("direct_placement_model", direct),
                             ("direct_placement_mlp", direct_mlp)):
        if entry is None:
            continue
        placements, images = entry
        evaluations[predictor] = evaluate_positions(
            np.asarray(placements, np.float64), true, geometry, constraints, tolerance=tolerance)
        rows += _rows(evaluations[predictor], np.asarray(images, np.float64), truth, padding,
                      predictor=predictor, draws=1, common=common, sampling=none)
    found = detector.detect(unconditional_images).centres
    evaluations["unconditional"] = evaluate_positions(found, true, geometry, constraints,
                                                      tolerance=tolerance)
    rows += _rows(evaluations["unconditional"], unconditional_images, truth, padding,
                  predictor="unconditional", draws=unconditional_images.shape[1],
                  common=common, sampling={**sampling, "guidance_scale": 0.0})
    constant = np.broadcast_to(np.asarray(baseline_placement, np.float64), true.shape)
    evaluations["most_frequent_placement"] = evaluate_positions(
        constant, true, geometry, constraints, tolerance=tolerance)
    image = np.broadcast_to(np.asarray(baseline_image, np.float64), generated.true_ldos.shape)
    rows += _rows(evaluations["most_frequent_placement"], image, truth, padding,
                  predictor="most_frequent_placement", draws=1, common=common, sampling=none)
    _clustered(rows, evaluations, configurations)
    return pd.DataFrame(rows, columns=METRICS_COLUMNS), evaluations


def _correct_per_trace(evaluation, criterion) -> np.ndarray:
    return _per_trace(getattr(evaluation, criterion).correct.astype(np.float64))


def _clustered(rows, evaluations, configurations) -> None:
    """Fill the cluster-bootstrap columns of ``rows`` in place (module docstring); NaN where
    the configurations are unknown or there is no lookup to compare with."""
    lookup = evaluations.get("nearest_training_trace")
    for row in rows:
        row.update({"n_configurations": float("nan"),
                    **interval_columns("accuracy_cluster", (float("nan"), float("nan"))),
                    "accuracy_minus_lookup": float("nan"),
                    **interval_columns("accuracy_minus_lookup", (float("nan"), float("nan")))})
        if configurations is None:
            continue
        row["n_configurations"] = int(len(np.unique(configurations)))
        correct = _correct_per_trace(evaluations[row["predictor"]], row["criterion"])
        row.update(interval_columns("accuracy_cluster",
                                    cluster_bootstrap_interval(correct, configurations)))
        if lookup is None or row["predictor"] == "nearest_training_trace":
            continue
        difference = correct - _correct_per_trace(lookup, row["criterion"])
        row["accuracy_minus_lookup"] = float(difference.mean())
        row.update(interval_columns("accuracy_minus_lookup",
                                    cluster_bootstrap_interval(difference, configurations)))
