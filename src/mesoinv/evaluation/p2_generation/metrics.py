"""``metrics.csv`` of a P2 diffusion model: antidot accuracy of the generated images against
two trace-blind baselines (:func:`diffusion_metrics`).

One row per predictor × criterion, columns :data:`METRICS_COLUMNS`. Predictors
(:data:`PREDICTORS`):

* ``model``: the generated images of the file (antidots found by the detector,
  :class:`mesoinv.inference.antidot_detector.AntidotDetector`);
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
"""

import json
import sys

import numpy as np
import pandas as pd

from ...inference.antidot_detector import AntidotDetector
from ...inference.p2_format import GeneratedFile
from .positions import CRITERIA, evaluate_positions, pixel_correlation

__all__ = ["METRICS_COLUMNS", "PREDICTORS", "P2_CRITERION", "diffusion_metrics"]

#: Columns of ``metrics.csv``, in order.
METRICS_COLUMNS = ["model", "split", "predictor", "criterion", "tolerance_sites", "n_traces",
                   "samples_per_trace", "accuracy", "accuracy_std_over_draws",
                   "any_draw_correct", "mean_position_error_sites", "pixel_correlation_mean",
                   "sampler", "steps", "guidance_scale", "baseline", "command"]

#: Predictors of ``metrics.csv`` and what each is.
PREDICTORS = {
    "model": "the generated images of the file (the trace-conditioned model)",
    "unconditional": "same model at guidance_scale 0 (null condition, trace-blind), same "
                     "traces, sampler, steps and seeds",
    "most_frequent_placement": "constant placement correct for the most training samples "
                               "(pixel correlation: training-mean LDOS with its holes)",
}

#: The criterion that corresponds to P2's "over 95 percent".
P2_CRITERION = "strict"


def _rows(evaluation, correlation, *, predictor, draws, common, sampling) -> list:
    summary = evaluation.summary()
    rows = []
    for criterion in CRITERIA:
        scores = getattr(evaluation, criterion)
        correct = scores.correct if scores.correct.ndim == 2 else scores.correct[:, None]
        rows.append({
            **common, "predictor": predictor, "criterion": criterion,
            "tolerance_sites": evaluation.tolerance, "n_traces": int(correct.shape[0]),
            "samples_per_trace": int(draws),
            "accuracy": summary[f"accuracy_{criterion}"],
            "accuracy_std_over_draws": (float(correct.mean(0).std()) if correct.shape[1] > 1
                                        else float("nan")),
            "any_draw_correct": float(correct.any(1).mean()),
            "mean_position_error_sites": summary[f"mean_error_{criterion}_sites"],
            "pixel_correlation_mean": float(np.nanmean(correlation)) if np.size(correlation)
            and np.any(np.isfinite(correlation)) else float("nan"),
            **sampling, "baseline": PREDICTORS[predictor]})
    return rows


def diffusion_metrics(generated: GeneratedFile, *, geometry, constraints, tolerance,
                      unconditional_images, baseline_placement, baseline_image,
                      model_name) -> tuple[pd.DataFrame, dict]:
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
    rows += _rows(evaluations["model"],
                  pixel_correlation(generated.generated, generated.true_ldos, padding),
                  predictor="model", draws=generated.generated.shape[1], common=common,
                  sampling=sampling)
    found = detector.detect(unconditional_images).centres
    evaluations["unconditional"] = evaluate_positions(found, true, geometry, constraints,
                                                      tolerance=tolerance)
    rows += _rows(evaluations["unconditional"],
                  pixel_correlation(unconditional_images, generated.true_ldos, padding),
                  predictor="unconditional", draws=unconditional_images.shape[1],
                  common=common, sampling={**sampling, "guidance_scale": 0.0})
    constant = np.broadcast_to(np.asarray(baseline_placement, np.float64), true.shape)
    evaluations["most_frequent_placement"] = evaluate_positions(
        constant, true, geometry, constraints, tolerance=tolerance)
    image = np.broadcast_to(np.asarray(baseline_image, np.float64), generated.true_ldos.shape)
    rows += _rows(evaluations["most_frequent_placement"],
                  pixel_correlation(image, generated.true_ldos, padding),
                  predictor="most_frequent_placement", draws=1, common=common, sampling=none)
    return pd.DataFrame(rows, columns=METRICS_COLUMNS), evaluations
