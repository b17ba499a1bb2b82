"""Evaluation of a P2 diffusion model: antidot accuracy against trace-blind baselines, and P2's
views of what the model learned (generation snapshots, bottleneck attention, score field).

:func:`evaluate_diffusion_model` reads a generated file (``mesoinv-generated-ldos-1``, written by
:mod:`mesoinv.evaluation.generate` for a dataset split that holds the truth) and writes a fixed
set of files for the workflow rule:

``metrics.csv``
    One row per predictor × criterion (:func:`diffusion_metrics`). Predictors:

    * ``model``: the generated images of the file (antidots found by the detector);
    * ``unconditional``: the same model at guidance scale γ = 0 (its learned null condition,
      i.e. trace-blind), generated here on the same traces with the same sampler, steps,
      seeds and (by default) draws per trace as the file, so each unconditional draw starts
      from the same noise as the model's draw it is compared with;
    * ``most_frequent_placement``: the constant placement that is correct for the most
      training samples (the model file's ``baselines``, or recomputed from ``train_path``);
      its pixel correlation is that of the training-mean LDOS with holes cut at that placement
      (:func:`mesoinv.evaluation.antidots.placement_image`).

    Criteria (:mod:`mesoinv.evaluation.antidots`): ``strict`` against the stored placement,
    ``mirrors`` modulo the wire's mirror images, ``classes`` modulo its whole symmetry class.
    **strict is the analogue of P2's "over 95 percent"** (P2's dataset holds one representative
    per class, as ours does, and compares with the image of that configuration);
    ``mirrors`` and ``classes`` forgive answers that the trace cannot distinguish (G(B) is
    invariant under those maps), so strict ≤ mirrors ≤ classes.
``snapshots.png`` (P2 Fig. 3)
    One generation for one trace (its first draw's seed, the file's sampler, steps and γ):
    x_t and the network's estimate x̂_0 at six steps from the first to the last, and the true
    LDOS, all in the network's normalised units (−1 = zero LDOS).
``attention.png`` (P2 Fig. 4)
    The importance B_j = Σ_i A_ij of each bottleneck head (P2 Eqs. 1–2; ``A`` from the
    4-head self-attention at the most downsampled level, conditional pass) over the bottleneck
    grid, at the same six steps of the same generation, true antidots dashed. Rows sum to 1,
    so B_j averages 1 over the grid; every head has one colour scale over the six steps.
``score_field.png`` (P2 Fig. 5)
    The model's score s(x_t, t) = −ε̂/σ_t (:meth:`GaussianDiffusion.score`, guided with the
    file's γ) at ``score_points`` noisy images x_t = √ᾱ_t x_0 + σ_t ε around the true image x_0
    of the snapshot trace, at ``t = score_timestep`` (P2: "each with 100 steps of added noise",
    index 99), projected on three pixel pairs (image column j, row k, padding included):

    (a) the centres of the two true antidots (both inside a hole: x_0 = −1 there);
    (b) the centre of the first antidot and the brightest true-LDOS pixel at more than r + 1
        sites from both antidots (inside / outside);
    (c) that bright pixel and the pixel of median true LDOS among those far pixels (both
        outside).

    Arrows are σ_t² s, so that x_t + σ_t² s is the model's (Tweedie) estimate of √ᾱ_t x_0: a
    perfect score ends each arrow on the cross √ᾱ_t x_0; the star is x_0. The title gives the
    mean cosine similarity, over all pixels, between the model's score and the exact score of
    the noising distribution around this image, −ε/σ_t.
``accuracy.png``
    Accuracy (strict, mirrors, classes) of the model and both baselines, with the standard
    deviation over draws as error bars, and histograms of the strict position error.

Nothing is written when the generated file lacks the truth (``ldos_true``,
``antidot_x_true``/``antidot_y_true``: a ValueError names what is missing), was made by
another model file (sha256), or does not match ``dataset_path``.
"""

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ..datasets.netcdf import atomic_path  # noqa: E402
from ..models.diffusion import GaussianDiffusion  # noqa: E402
from ..training.model_file import ModelFile, file_sha256  # noqa: E402
from ..training.p2_data import (LDOSNormalization, TraceNormalization, iter_ldos,  # noqa: E402
                                read_p2_split_info)
from .antidots import (CRITERIA, DEFAULT_TOLERANCE, AntidotDetector,  # noqa: E402
                       evaluate_positions, most_frequent_placement, pixel_correlation,
                       placement_image, read_geometry, read_placements)
from .figures import _save  # noqa: E402
from .generate import (GENERATED_FORMAT_VERSION, SamplingOptions,  # noqa: E402
                       generate_images, load_diffusion_model, trace_seed)

__all__ = ["GeneratedFile", "read_generated", "diffusion_metrics", "evaluate_diffusion_model",
           "METRICS_COLUMNS", "PREDICTORS", "OUTPUT_FILES", "P2_CRITERION", "SNAPSHOT_COUNT"]

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

#: Files :func:`evaluate_diffusion_model` writes (key → file name).
OUTPUT_FILES = {"metrics": "metrics.csv", "snapshots": "snapshots.png",
                "attention": "attention.png", "score_field": "score_field.png",
                "accuracy": "accuracy.png"}

#: Number of generation steps shown in the snapshot and attention figures.
SNAPSHOT_COUNT = 6

_TRUTH = ("ldos_true", "antidot_x_true", "antidot_y_true")


# -- reading ----------------------------------------------------------------------------------

@dataclass
class GeneratedFile:
    """Content of a generated file (:mod:`mesoinv.evaluation.generate`)."""

    path: str
    sample_ids: np.ndarray          # (n,)
    names: list
    fields_T: np.ndarray            # (n_fields,)
    traces: np.ndarray              # (n, n_fields) e²/h
    generated: np.ndarray           # (n, k, image_x, y) t⁻¹
    found: np.ndarray               # (n, k, 2, 2)
    true_ldos: np.ndarray | None    # (n, image_x, y)
    true_placements: np.ndarray | None  # (n, 2, 2)
    attrs: dict

    @property
    def options(self) -> SamplingOptions:
        return SamplingOptions.from_attributes(self.attrs)

    @property
    def padding(self) -> int:
        return int(self.attrs.get("ldos_padding_sites", 0))

    @property
    def missing_truth(self) -> list:
        return [name for name, value in (("ldos_true", self.true_ldos),
                                         ("antidot_x_true/antidot_y_true",
                                          self.true_placements)) if value is None]


def read_generated(path) -> GeneratedFile:
    """Read a generated file.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; another format (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generated file {path} does not exist")
    with netCDF4.Dataset(path) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        if attrs.get("format_version") != GENERATED_FORMAT_VERSION:
            raise ValueError(f"{path} has format {attrs.get('format_version')!r}, not "
                             f"{GENERATED_FORMAT_VERSION!r} (write it with mesoinv predict and a "
                             "p2_diffusion model)")
        ds.set_auto_mask(False)

        def get(name, dtype=np.float64):
            return np.asarray(ds[name][:], dtype=dtype)

        found = np.stack([get("antidot_x"), get("antidot_y")], axis=-1)
        true_ldos = get("ldos_true") if "ldos_true" in ds.variables else None
        true_placements = (np.stack([get("antidot_x_true"), get("antidot_y_true")], axis=-1)
                           if "antidot_x_true" in ds.variables
                           and "antidot_y_true" in ds.variables else None)
        names = [str(v) for v in ds["trace_name"][:]]
        return GeneratedFile(str(path), get("sample_id", np.int64), names, get("field"),
                             get("conductance"), get("generated_ldos"), found, true_ldos,
                             true_placements, attrs)


# -- metrics ----------------------------------------------------------------------------------

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
        Of the dataset (:func:`mesoinv.evaluation.antidots.read_geometry`).
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


# -- the generation run behind Figs. 3 and 4 --------------------------------------------------

@dataclass
class _Snapshot:
    index: int
    t: int
    x: np.ndarray               # (image_x, y) normalised
    x0: np.ndarray              # (image_x, y) normalised
    importance: np.ndarray | None   # (heads, N): B_j = Σ_i A_ij


def _snapshot_run(model: ModelFile, network, generated: GeneratedFile, row: int, device):
    """One generation (1 draw, the trace's seed) recording SNAPSHOT_COUNT steps."""
    options = dataclasses.replace(generated.options, samples_per_trace=1)
    n_steps = len(GaussianDiffusion(**model.diffusion).ddim_timesteps(options.steps)) \
        if options.sampler == "ddim" else options.steps
    wanted = sorted({int(v) for v in np.linspace(0, n_steps - 1, SNAPSHOT_COUNT).round()})
    snapshots = []

    def keep(_, step):
        if step.index in wanted:
            importance = None
            if step.attention is not None:
                importance = step.attention[0].float().sum(dim=-2).cpu().numpy()
            snapshots.append(_Snapshot(step.index, step.t, step.x[0, 0].cpu().numpy(),
                                       step.x0[0, 0].cpu().numpy(), importance))

    final = generate_images(model, generated.traces[row:row + 1],
                            generated.sample_ids[row:row + 1], options, device=device,
                            network=network, callback=keep, record_attention=True)
    return snapshots, n_steps, final[0, 0]


# -- the score field (Fig. 5) -----------------------------------------------------------------

def _pixel_pairs(true_image, placement, radius, padding):
    """The three pixel pairs of the score-field figure (module docstring), image indices."""
    height, width = true_image.shape
    inside = [(int(math.floor(cx)) + padding, int(math.floor(cy))) for cx, cy in placement]
    jj, kk = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    far = (jj >= padding) & (jj < height - padding)
    for cx, cy in placement:
        far &= (jj - padding - cx) ** 2 + (kk - cy) ** 2 > (radius + 1) ** 2
    if not far.any():      # tiny test lattices: fall back on any wire pixel outside a hole
        far = (jj >= padding) & (jj < height - padding) & (true_image > 0)
    candidates = np.argwhere(far)
    values = true_image[far]
    order = np.argsort(values, kind="stable")
    bright = tuple(int(v) for v in candidates[order[-1]])
    median = tuple(int(v) for v in candidates[order[len(order) // 2]])
    if median == bright and len(order) > 1:
        median = tuple(int(v) for v in candidates[order[0]])
    return [(inside[0], inside[1], "both inside antidots"),
            (inside[0], bright, "inside / outside (brightest far pixel)"),
            (bright, median, "both outside (brightest, median far pixel)")]


@torch.no_grad()
def _score_field(model: ModelFile, network, generated: GeneratedFile, row: int, points: int,
                 timestep: int, device):
    diffusion = GaussianDiffusion(**model.diffusion)
    image_norm = LDOSNormalization.from_dict(model.image_normalization)
    trace_norm = TraceNormalization.from_dict(model.trace_normalization)
    t = int(min(max(timestep, 0), diffusion.num_timesteps - 1))
    x0 = torch.from_numpy(image_norm(generated.true_ldos[row]))[None, None]
    x0 = x0.repeat(points, 1, 1, 1).to(device)
    generator = torch.Generator().manual_seed(trace_seed(generated.options.seed,
                                                         int(generated.sample_ids[row])) ^ 1)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    steps = torch.full((points,), t, dtype=torch.long, device=device)
    x_t = diffusion.q_sample(x0, steps, noise)
    trace = torch.from_numpy(trace_norm(generated.traces[row:row + 1])).to(device)
    score = diffusion.score(network, x_t, t, trace.repeat(points, 1),
                            guidance_scale=generated.options.guidance_scale)
    sigma = float(diffusion.sigmas[t])
    scale = float(diffusion.sqrt_alphas_cumprod[t])
    exact = -noise / sigma
    flat_s, flat_e = score.reshape(points, -1).double(), exact.reshape(points, -1).double()
    cosine = torch.nn.functional.cosine_similarity(flat_s, flat_e, dim=1).mean().item()
    return {"t": t, "sigma": sigma, "sqrt_alpha_bar": scale,
            "x0": x0[0, 0].cpu().numpy(), "x_t": x_t[:, 0].cpu().numpy(),
            "score": score[:, 0].cpu().numpy(), "cosine": cosine}


# -- figures ----------------------------------------------------------------------------------

def _extent(shape, padding):
    height, width = shape
    return (-padding - 0.5, height - padding - 0.5, -0.5, width - 0.5)


def _circles(ax, placement, radius, color="cyan"):
    from matplotlib.patches import Circle

    for cx, cy in placement:
        ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor=color, lw=0.9,
                            linestyle="--"))


def _plot_snapshots(snapshots, n_steps, true_normalised, placement, radius, padding, title,
                    output, colour_range=(-1.0, 1.0)):
    low, high = colour_range
    columns = len(snapshots) + 1
    fig, axes = plt.subplots(2, columns, figsize=(2.2 * columns, 4.7), constrained_layout=True,
                             squeeze=False)
    extent = _extent(true_normalised.shape, padding)
    mesh = None
    for c, snap in enumerate(snapshots):
        for r, (image, what) in enumerate(((snap.x, "x_t"), (snap.x0, "x̂₀"))):
            ax = axes[r, c]
            mesh = ax.imshow(image.T, origin="lower", cmap="inferno", vmin=low, vmax=high,
                             extent=extent, aspect="equal")
            ax.set_title(f"{what}, step {snap.index + 1}/{n_steps}\n(t = {snap.t})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    ax = axes[0, -1]
    ax.imshow(true_normalised.T, origin="lower", cmap="inferno", vmin=low, vmax=high,
              extent=extent, aspect="equal")
    _circles(ax, placement, radius)
    ax.set_title("true LDOS", fontsize=8)
    ax.set_xlabel("i (sites)")
    ax.set_ylabel("k (sites)")
    axes[1, -1].set_axis_off()
    fig.colorbar(mesh, ax=axes[0, -1], shrink=0.8,
                 label=f"normalised LDOS\n({low:.2g} = 0, {high:.2g} = training max)")
    fig.suptitle(title, fontsize=9)
    return _save(fig, output)


def _plot_attention(snapshots, image_shape, placement, radius, padding, title, output,
                    colour_range=(-1.0, 1.0)):
    heads = snapshots[0].importance.shape[0]
    tokens = snapshots[0].importance.shape[1]
    side = int(round(math.sqrt(tokens)))
    columns = len(snapshots)
    fig, axes = plt.subplots(heads + 1, columns, figsize=(2.0 * columns + 0.9,
                                                          1.95 * (heads + 1)),
                             constrained_layout=True, squeeze=False)
    extent = _extent(image_shape, padding)
    for c, snap in enumerate(snapshots):
        ax = axes[0, c]
        ax.imshow(snap.x0.T, origin="lower", cmap="inferno", vmin=colour_range[0],
                  vmax=colour_range[1], extent=extent, aspect="equal")
        ax.set_title(f"x̂₀, step {snap.index + 1} (t = {snap.t})", fontsize=8)
    for h in range(heads):
        values = np.stack([s.importance[h] for s in snapshots])
        low, high = float(values.min()), float(values.max())
        mesh = None
        for c, snap in enumerate(snapshots):
            ax = axes[h + 1, c]
            grid = snap.importance[h].reshape(side, tokens // side)
            mesh = ax.imshow(grid.T, origin="lower", cmap="magma", vmin=low, vmax=high,
                             extent=extent, aspect="equal")
            _circles(ax, placement, radius)
            if c == 0:
                ax.set_ylabel(f"head {h + 1}\nk (sites)", fontsize=8)
            if h == heads - 1:
                ax.set_xlabel("i (sites)", fontsize=8)
        fig.colorbar(mesh, ax=axes[h + 1, -1], shrink=0.8, label="B_j = Σ_i A_ij")
    for ax in axes.ravel():
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    return _save(fig, output)


def _plot_score(field, pairs, title, output):
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.0 * len(pairs), 4.0),
                             constrained_layout=True, squeeze=False)
    sigma2 = field["sigma"] ** 2
    for ax, (a, b, what) in zip(axes[0], pairs):
        xa, xb = field["x_t"][:, a[0], a[1]], field["x_t"][:, b[0], b[1]]
        sa, sb = field["score"][:, a[0], a[1]], field["score"][:, b[0], b[1]]
        ax.scatter(xa, xb, s=8, color="0.4", zorder=2, label="noisy points x_t")
        ax.quiver(xa, xb, sigma2 * sa, sigma2 * sb, angles="xy", scale_units="xy", scale=1.0,
                  width=0.004, color="tab:blue", zorder=3, label="σ_t² s(x_t, t)")
        x0a, x0b = field["x0"][a], field["x0"][b]
        ax.plot([x0a], [x0b], marker="*", ms=12, color="tab:red", ls="none", zorder=4,
                label="true x₀")
        r = field["sqrt_alpha_bar"]
        ax.plot([r * x0a], [r * x0b], marker="x", ms=9, mew=2, color="k", ls="none", zorder=4,
                label="√ᾱ_t x₀")
        ax.set_xlabel(f"pixel ({a[0]}, {a[1]}) (normalised)")
        ax.set_ylabel(f"pixel ({b[0]}, {b[1]}) (normalised)")
        ax.set_title(what, fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    return _save(fig, output)


def _plot_accuracy(metrics: pd.DataFrame, evaluations, tolerance, title, output):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.9), constrained_layout=True)
    predictors = list(PREDICTORS)
    width = 0.8 / len(predictors)
    positions = np.arange(len(CRITERIA))
    for p, predictor in enumerate(predictors):
        rows = metrics[metrics["predictor"] == predictor].set_index("criterion")
        values = [float(rows.loc[c, "accuracy"]) for c in CRITERIA]
        errors = [float(rows.loc[c, "accuracy_std_over_draws"]) for c in CRITERIA]
        errors = [0.0 if not np.isfinite(e) else e for e in errors]
        left.bar(positions + (p - (len(predictors) - 1) / 2) * width, values, width,
                 yerr=errors, capsize=3, label=predictor)
    left.set_xticks(positions, [f"{c}{' (P2)' if c == P2_CRITERION else ''}" for c in CRITERIA])
    left.set_ylim(0, 1.05)
    left.set_ylabel("accuracy (both antidots within tolerance)")
    left.set_title(f"tolerance {tolerance:g} sites; error bars: std over draws", fontsize=9)
    left.legend(fontsize=7)
    errors = {name: np.asarray(e.strict.error, dtype=np.float64).ravel()
              for name, e in evaluations.items()}
    high = max(float(np.max(v)) for v in errors.values() if v.size) or 1.0
    bins = np.linspace(0.0, high * 1.02 + 1e-9, 25)
    for name, values in errors.items():
        right.hist(values, bins=bins, histtype="step", lw=1.4,
                   weights=np.full(values.size, 1.0 / max(values.size, 1)), label=name)
    right.axvline(tolerance, color="k", ls="--", lw=0.8, label="tolerance")
    right.set_xlabel("strict position error (sites, mean of the two antidots)")
    right.set_ylabel("fraction of images")
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, output)


# -- everything ---------------------------------------------------------------------------------

def _baseline(model: ModelFile, train_path, tolerance):
    if train_path is not None:
        placements = read_placements(train_path)
        mean = None
        for image in iter_ldos(train_path):
            mean = image.copy() if mean is None else mean + image
        return most_frequent_placement(placements, tolerance), mean / len(placements)
    baselines = model.baselines or {}
    missing = [k for k in ("most_frequent_placement", "training_mean_ldos") if k not in baselines]
    if missing:
        raise ValueError(f"model '{model.model_name}' has no baseline(s) {missing} in its file; "
                         "pass train_path (the training split) to compute them")
    return (np.asarray(baselines["most_frequent_placement"], np.float64),
            np.asarray(baselines["training_mean_ldos"], np.float64))


def evaluate_diffusion_model(generated_path, output_dir, *, model_path, dataset_path,
                             train_path=None, snapshot_sample: int = 0, score_points: int = 50,
                             tolerance: float = DEFAULT_TOLERANCE,
                             unconditional_draws: int | None = None, score_timestep: int = 99,
                             device="cpu") -> dict:
    """Metrics and figures of a P2 diffusion model (module docstring for every file).

    Parameters
    ----------
    generated_path : path-like
        Generated file (``mesoinv-generated-ldos-1``) of a split with the truth.
    output_dir : path-like
        Directory for :data:`OUTPUT_FILES` (created if needed; each file atomic).
    model_path : path-like
        The model file that generated it (its sha256 must match the file's).
    dataset_path : path-like
        The P2 split file the traces came from: its geometry and pair constraints define the
        symmetry classes; its placements must equal the file's truth.
    train_path : path-like, optional
        The training split: recompute the ``most_frequent_placement`` baseline (at
        ``tolerance``) and the training-mean LDOS from it instead of reading them from the
        model file (whose placement was chosen at the default tolerance, 1.5 sites).
    snapshot_sample : int
        Position (not sample id) in the generated file of the trace of the snapshot,
        attention and score-field figures.
    score_points : int
        Noisy points of the score field (P2: 50).
    tolerance : float
        Matching tolerance, sites.
    unconditional_draws : int, optional
        Draws per trace of the trace-blind baseline; default the file's samples_per_trace
        (the same seeds, so draw j of both starts from the same noise).
    score_timestep : int
        Noise level of the score field (index; P2: 100 steps of noise → 99).
    device : str
        Where the network runs.

    Returns
    -------
    dict of str to Path
        Keys of :data:`OUTPUT_FILES`.

    Raises
    ------
    ValueError
        No truth in the generated file (named), an empty file, another model file, traces
        that do not belong to ``dataset_path``, a bad ``snapshot_sample`` (before anything is
        written).
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
    with netCDF4.Dataset(dataset_path) as ds:
        dataset_ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
    where = {int(s): i for i, s in enumerate(dataset_ids)}
    missing = [int(s) for s in generated.sample_ids if int(s) not in where]
    if missing:
        raise ValueError(f"{generated_path}: sample id(s) {missing[:10]} are not in "
                         f"{dataset_path}")
    stored = read_placements(dataset_path)[[where[int(s)] for s in generated.sample_ids]]
    if not np.array_equal(stored, generated.true_placements):
        raise ValueError(f"{generated_path}: its true antidot positions differ from "
                         f"{dataset_path}'s for the same sample ids (another dataset?)")
    geometry, constraints, padding = read_geometry(dataset_path)
    placement, mean_ldos = _baseline(model, train_path, tolerance)
    baseline_image = placement_image(placement, mean_ldos, geometry.antidot_radius, padding)

    # Everything computed before anything is written.
    network = model.build_network().to(device)
    options = generated.options
    blind = dataclasses.replace(options, samples_per_trace=int(unconditional_draws or k))
    unconditional = generate_images(model, generated.traces, generated.sample_ids, blind,
                                    unconditional=True, device=device, network=network)
    metrics, evaluations = diffusion_metrics(
        generated, geometry=geometry, constraints=constraints, tolerance=tolerance,
        unconditional_images=unconditional, baseline_placement=placement,
        baseline_image=baseline_image, model_name=model.model_name)
    row = int(snapshot_sample)
    snapshots, n_steps, _ = _snapshot_run(model, network, generated, row, device)
    field = _score_field(model, network, generated, row, int(score_points), score_timestep,
                         device)
    image_norm = LDOSNormalization.from_dict(model.image_normalization)
    true_normalised = image_norm(generated.true_ldos[row], dtype=np.float64)
    truth = generated.true_placements[row]
    radius = float(geometry.antidot_radius)
    pairs = _pixel_pairs(generated.true_ldos[row], truth, radius, padding)
    name = generated.names[row]
    what = (f"{model.model_name}, {name}: {options.sampler} {options.steps} steps, "
            f"γ = {options.guidance_scale:g}, seed {options.seed}")

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / file for key, file in OUTPUT_FILES.items()}
    with atomic_path(paths["metrics"]) as tmp:
        metrics.to_csv(tmp, index=False)
    colour_range = image_norm.bounds(1.0)       # LDOS 0 … training maximum
    _plot_snapshots(snapshots, n_steps, true_normalised, truth, radius, padding,
                    f"generation (P2 Fig. 3): {what}", paths["snapshots"], colour_range)
    _plot_attention(snapshots, true_normalised.shape, truth, radius, padding,
                    f"bottleneck attention importance B_j per head (P2 Fig. 4): {what}",
                    paths["attention"], colour_range)
    _plot_score(field, pairs,
                f"score field (P2 Fig. 5) at t = {field['t']} (σ_t = {field['sigma']:.3f}), "
                f"{score_points} noisy points around the true image of {name}; mean cosine "
                f"(model score, exact −ε/σ_t) over all pixels = {field['cosine']:.3f}",
                paths["score_field"])
    strict = metrics[metrics["criterion"] == P2_CRITERION].set_index("predictor")["accuracy"]
    _plot_accuracy(metrics, evaluations, tolerance,
                   f"{model.model_name} on {generated.attrs.get('split', 'unknown')} "
                   f"({n} traces × {k} draws; {options.sampler} {options.steps} steps, "
                   f"γ = {options.guidance_scale:g}): strict accuracy "
                   f"{strict['model']:.2f} vs unconditional {strict['unconditional']:.2f}, "
                   f"most frequent placement {strict['most_frequent_placement']:.2f}",
                   paths["accuracy"])
    return paths
