"""Evaluation of a P2 diffusion model (``mesoinv evaluate`` on a generated file): antidot
accuracy against trace-blind baselines, and P2's views of what the model learned.

:func:`evaluate_diffusion_model` reads a generated file
(:data:`mesoinv.inference.p2_format.GENERATED_FORMAT_VERSION`, written by
:mod:`mesoinv.inference.p2_generate` for a dataset split that holds the truth) and writes a
fixed set of files for the workflow rule (:data:`OUTPUT_FILES`):

``metrics.csv``
    One row per predictor × criterion (:mod:`mesoinv.evaluation.p2_generation.metrics`), with
    95 % intervals over traces: the model, the nearest training trace's stored image (1-NN
    lookup, :mod:`mesoinv.evaluation.p2_generation.baselines`; needs ``train_path``; with
    k ≥ 3 draws per trace also the consensus of the model's draws and of the k nearest
    training traces), the
    direct placement models (:mod:`mesoinv.evaluation.p2_generation.placement_baseline`, the
    trace transformer and an MLP of the whole trace, both trained on ``train_path``), the same
    model at γ = 0 (trace-blind), and the most frequent training placement.
``snapshots.png``, ``attention.png``, ``score_field.png`` (P2 Figs. 3–5), ``accuracy.png``,
``depth_distribution.png``
    :mod:`mesoinv.evaluation.p2_generation.figures`; the network runs behind them (one
    recorded generation, the score field) use the model file's network and noise schedule
    (:func:`mesoinv.inference.p2_generate.build_network_and_diffusion`).

Trace-blind baselines from the training split (``train_path``; the workflow rule
``evaluate_diffusion_model`` always passes it): the placement of
:func:`~mesoinv.evaluation.p2_generation.positions.most_frequent_placement` at the evaluation's
tolerance, and the training split's mean LDOS
(:func:`mesoinv.training.p2_readers.mean_ldos_image`, states per t per site) with holes cut at
that placement for its pixel correlation. Model files no longer store baselines; without
``train_path`` the ones stored by an older model file are used (placement at the default
tolerance, 1.5 sites), else nothing is evaluated.

Nothing is written when the generated file lacks the truth (``ldos_true``,
``antidot_x_true``/``antidot_y_true``: a ValueError names what is missing), was made by
another model file (sha256), or does not match ``dataset_path``.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from ...datasets.netcdf import atomic_path
from ...inference.antidot_detector import DEFAULT_MAX_DEPTH, AntidotDetector, read_geometry
from ...inference.p2_format import read_generated
from ...inference.p2_generate import (build_network_and_diffusion, generate_images,
                                      load_diffusion_model)
from ...inference.traces import read_sample_ids
from ...training.model_file import ModelFile, file_sha256
from ...training.normalization import LDOSNormalization
from ...training.p2_readers import (mean_ldos_image, read_configuration_ids,
                                    read_p2_split_info, read_placements)
from .baselines import NearestTraceLookup
from .figures import (hole_depths, pixel_pairs, plot_accuracy, plot_attention,
                      plot_depth_distribution, plot_score, plot_snapshots, score_field,
                      snapshot_run)
from .placement_baseline import (MLP_OPTIONS, PlacementBaselineOptions,
                                 fit_placement_baseline, predict_placements)
from .metrics import CONSENSUS_MIN_DRAWS, P2_CRITERION, diffusion_metrics
from .positions import DEFAULT_TOLERANCE, most_frequent_placement, placement_image

__all__ = ["evaluate_diffusion_model", "OUTPUT_FILES"]

#: Files :func:`evaluate_diffusion_model` writes (key → file name).
OUTPUT_FILES = {"metrics": "metrics.csv", "snapshots": "snapshots.png",
                "attention": "attention.png", "score_field": "score_field.png",
                "accuracy": "accuracy.png", "depth_distribution": "depth_distribution.png"}

#: Default cap on the trace-blind baseline's draws per trace. It is a few percent everywhere
#: and its interval is over traces, so more draws (a consensus needs many for the model) would
#: only double the evaluation's generation time.
UNCONDITIONAL_DRAWS = 2

#: Keys of the baselines an older model file may store (read only without ``train_path``).
_STORED_BASELINES = ("most_frequent_placement", "training_mean_ldos")


def _baselines(model: ModelFile, train_path, tolerance):
    """(most frequent training placement (2, 2) in site indices, training-mean LDOS
    (image_x, y) in states per t per site): from ``train_path``, else from an older model
    file that stores them (module docstring)."""
    if train_path is not None:
        placements = read_placements(train_path)
        return most_frequent_placement(placements, tolerance), mean_ldos_image(train_path)
    baselines = model.baselines or {}
    missing = [k for k in _STORED_BASELINES if k not in baselines]
    if missing:
        raise ValueError(f"model '{model.model_name}': no training split given and its model "
                         f"file stores no baseline(s) {missing}; pass the training split "
                         "(train_path; mesoinv evaluate --train <dataset>-train.nc)")
    return (np.asarray(baselines["most_frequent_placement"], np.float64),
            np.asarray(baselines["training_mean_ldos"], np.float64))


def _direct(fitted, traces, mean_ldos, geometry, padding):
    """(centres (n, 2, 2) in sites, their placements drawn on the training-mean LDOS) of a
    fitted direct regressor."""
    placements = predict_placements(fitted, traces)
    images = np.stack([placement_image(p, mean_ldos, geometry.antidot_radius, padding)
                       for p in placements])
    return placements, images


def evaluate_diffusion_model(generated_path, output_dir, *, model_path, dataset_path,
                             train_path=None, snapshot_sample: int = 0, score_points: int = 50,
                             tolerance: float = DEFAULT_TOLERANCE,
                             unconditional_draws: int | None = None, score_timestep: int = 99,
                             device="cpu",
                             placement_options: PlacementBaselineOptions | None = None,
                             mlp_options: PlacementBaselineOptions | None = None) -> dict:
    """Metrics and figures of a P2 diffusion model (module docstring for every file).

    Parameters
    ----------
    generated_path : path-like
        Generated file (:data:`mesoinv.inference.p2_format.GENERATED_FORMAT_VERSION`) of a
        split with the truth.
    output_dir : path-like
        Directory for :data:`OUTPUT_FILES` (created if needed; each file atomic).
    model_path : path-like
        The model file that generated it (its sha256 must match the file's).
    dataset_path : path-like
        The P2 split file the traces came from: its geometry and pair constraints define the
        symmetry classes; its placements must equal the file's truth.
    train_path : path-like, optional
        The training split: the ``most_frequent_placement`` baseline (at ``tolerance``) and
        the training-mean LDOS are computed from it (module docstring). Without it, only a
        model file written by an older version, which stored both (its placement chosen at the
        default tolerance, 1.5 sites), can be evaluated.
    snapshot_sample : int
        Position (not sample id) in the generated file of the trace of the snapshot,
        attention and score-field figures.
    score_points : int
        Noisy points of the score field (P2: 50).
    tolerance : float
        Matching tolerance, sites.
    unconditional_draws : int, optional
        Draws per trace of the trace-blind baseline; default the file's samples_per_trace,
        at most :data:`UNCONDITIONAL_DRAWS` (the same seeds, so draw j of both starts from
        the same noise).
    score_timestep : int
        Noise level of the score field (index; P2: 100 steps of noise → 99).
    device : str
        Where the network runs.
    placement_options : PlacementBaselineOptions, optional
        Steps, batch, learning rate and seed of the direct placement baseline (trained on
        ``train_path``; skipped without it); default
        :class:`~mesoinv.evaluation.p2_generation.placement_baseline.PlacementBaselineOptions`.
    mlp_options : PlacementBaselineOptions, optional
        The same for the MLP direct baseline; default
        :data:`~mesoinv.evaluation.p2_generation.placement_baseline.MLP_OPTIONS`.

    Returns
    -------
    dict of str to Path
        Keys of :data:`OUTPUT_FILES`.

    Raises
    ------
    ValueError
        No truth in the generated file (named), an empty file, another model file, traces
        that do not belong to ``dataset_path``, a bad ``snapshot_sample``, no ``train_path``
        and no baselines in the model file (before anything is written).
    """
    generated = read_generated(generated_path)
    if generated.missing_truth:
        raise ValueError(f"{generated_path} has no truth ({', '.join(generated.missing_truth)} "
                         "missing; generated from a CSV or a file without LDOS?): nothing to "
                         "evaluate against")
    n, k = generated.generated.shape[:2]
    if n == 0:
        raise ValueError(f"{generated_path}: no traces")
    if not 0 <= snapshot_sample < n:
        raise ValueError(f"snapshot_sample {snapshot_sample} is not a trace position of "
                         f"{generated_path} (0 … {n - 1})")
    if score_points < 1:
        raise ValueError(f"score_points must be at least 1, got {score_points}")
    model = load_diffusion_model(model_path)
    digest = file_sha256(model_path)
    if generated.attrs.get("model_file_sha256") != digest:
        raise ValueError(f"{generated_path} was generated by model file "
                         f"{generated.attrs.get('model_file')} (sha256 "
                         f"{str(generated.attrs.get('model_file_sha256'))[:12]}…), not by "
                         f"{model_path} (sha256 {digest[:12]}…)")
    info = read_p2_split_info(dataset_path)
    model.check_trace(fields_T=info.fields_T, metadata=info.metadata, source=str(dataset_path))
    dataset_ids = read_sample_ids(dataset_path)
    where = {int(s): i for i, s in enumerate(dataset_ids)}
    missing = [int(s) for s in generated.sample_ids if int(s) not in where]
    if missing:
        raise ValueError(f"{generated_path}: sample id(s) {missing[:10]} are not in "
                         f"{dataset_path}")
    positions = [where[int(s)] for s in generated.sample_ids]
    stored = read_placements(dataset_path)[positions]
    configurations = read_configuration_ids(dataset_path)[positions]
    if not np.array_equal(stored, generated.true_placements):
        raise ValueError(f"{generated_path}: its true antidot positions differ from "
                         f"{dataset_path}'s for the same sample ids (another dataset?)")
    geometry, constraints, padding = read_geometry(dataset_path)
    placement, mean_ldos = _baselines(model, train_path, tolerance)
    baseline_image = placement_image(placement, mean_ldos, geometry.antidot_radius, padding)

    # Everything computed before anything is written.
    network, diffusion = build_network_and_diffusion(model, device)
    options = generated.options
    blind = dataclasses.replace(
        options, samples_per_trace=int(unconditional_draws or min(k, UNCONDITIONAL_DRAWS)))
    unconditional = generate_images(model, generated.traces, generated.sample_ids, blind,
                                    unconditional=True, device=device, network=network)
    nearest = nearest_k = direct = direct_mlp = None
    if train_path is not None:
        nearest = NearestTraceLookup.from_training_split(train_path, generated.traces)
        if k >= CONSENSUS_MIN_DRAWS:
            nearest_k = NearestTraceLookup.from_training_split(train_path, generated.traces,
                                                               k=k)
        fitted = fit_placement_baseline(train_path, geometry,
                                        placement_options or PlacementBaselineOptions())
        direct = _direct(fitted, generated.traces, mean_ldos, geometry, padding)
        fitted_mlp = fit_placement_baseline(train_path, geometry, mlp_options or MLP_OPTIONS)
        direct_mlp = _direct(fitted_mlp, generated.traces, mean_ldos, geometry, padding)
    metrics, evaluations = diffusion_metrics(
        generated, geometry=geometry, constraints=constraints, tolerance=tolerance,
        unconditional_images=unconditional, baseline_placement=placement,
        baseline_image=baseline_image, model_name=model.model_name, nearest=nearest,
        nearest_k=nearest_k, direct=direct, direct_mlp=direct_mlp,
        configurations=configurations)
    row = int(snapshot_sample)
    snapshots, n_steps, final = snapshot_run(model, network, diffusion, generated, row, device)
    field = score_field(model, network, diffusion, generated, row, int(score_points),
                        score_timestep, device)
    image_norm = LDOSNormalization.from_dict(model.image_normalization)
    true_normalised = image_norm(generated.true_ldos[row], dtype=np.float64)
    truth = generated.true_placements[row]
    radius = float(geometry.antidot_radius)
    pairs = pixel_pairs(generated.true_ldos[row], truth, radius, padding)
    # the detector that scored the file's images (its threshold), for the depth figure and
    # the antidots found in the snapshot's generated image
    detector = AntidotDetector.from_metadata(
        json.loads(generated.attrs["data_metadata"]),
        max_depth=float(generated.attrs.get("detector_max_depth", DEFAULT_MAX_DEPTH)))
    depths = hole_depths(detector, generated.generated, generated.true_ldos,
                         generated.true_placements)
    found = detector.detect(final).centres
    name = generated.names[row]
    what = (f"{model.model_name}, {name}: {options.sampler} {options.steps} steps, "
            f"γ = {options.guidance_scale:g}, seed {options.seed}")

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / file for key, file in OUTPUT_FILES.items()}
    with atomic_path(paths["metrics"]) as tmp:
        metrics.to_csv(tmp, index=False)
    colour_range = image_norm.bounds(1.0)       # LDOS 0 … training maximum
    plot_snapshots(snapshots, n_steps, true_normalised, truth, radius, padding,
                   f"generation (P2 Fig. 3): {what}", paths["snapshots"], colour_range,
                   final=image_norm(final, dtype=np.float64), found=found)
    plot_attention(snapshots, true_normalised.shape, truth, radius, padding,
                   f"bottleneck attention importance B_j per head (P2 Fig. 4): {what}",
                   paths["attention"], colour_range)
    plot_score(field, pairs,
               f"score field (P2 Fig. 5) at t = {field['t']} (σ_t = {field['sigma']:.3f}), "
               f"{score_points} noisy points around the true image of {name}; mean cosine "
               f"(model score, exact −ε/σ_t) over all pixels = {field['cosine']:.3f}",
               paths["score_field"], padding=padding)
    strict = metrics[metrics["criterion"] == P2_CRITERION].set_index("predictor")["accuracy"]
    plot_accuracy(metrics, evaluations, tolerance,
                  f"{model.model_name} on {generated.attrs.get('split', 'unknown')} "
                  f"({n} traces × {k} draws; {options.sampler} {options.steps} steps, "
                  f"γ = {options.guidance_scale:g}): strict accuracy "
                  f"{strict['model']:.2f}"
                  + (f" vs nearest training trace {strict['nearest_training_trace']:.2f}"
                     if "nearest_training_trace" in strict else "")
                  + f", unconditional {strict['unconditional']:.2f}, "
                  f"most frequent placement {strict['most_frequent_placement']:.2f}",
                  paths["accuracy"])
    plot_depth_distribution(depths, f"hole depths: {model.model_name} on "
                                    f"{generated.attrs.get('split', 'unknown')} ({n} traces × "
                                    f"{k} draws), the detector's threshold "
                                    f"{detector.max_depth:g}", paths["depth_distribution"])
    return paths
