"""Figures of a P2 diffusion model's evaluation: P2's views of what the model learned, and
the accuracy plot. Every figure is written atomically by :func:`mesoinv.plotting.save_figure`;
images are drawn on axes in site indices (:func:`mesoinv.inference.p2_figures.image_extent`).

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
    The model's score s(x_t, t) = −ε̂/σ_t
    (:meth:`mesoinv.models.gaussian_diffusion.GaussianDiffusion.score`, guided with the file's
    γ) at ``score_points`` noisy images x_t = √ᾱ_t x_0 + σ_t ε around the true image x_0 of
    the snapshot trace, at ``t = score_timestep`` (P2: "each with 100 steps of added noise",
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
    Accuracy (strict, mirrors, classes) of the model and its baselines, with 95 % intervals
    over traces as error bars, and histograms of the strict position error.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...inference.p2_figures import draw_antidots, image_extent
from ...inference.p2_format import GeneratedFile
from ...inference.p2_generate import generate_images, trace_seed
from ...plotting import plt, save_figure
from ...training.model_file import ModelFile
from ...training.normalization import LDOSNormalization, TraceNormalization
from .metrics import P2_CRITERION, PREDICTORS
from .positions import CRITERIA

__all__ = ["SNAPSHOT_COUNT", "Snapshot", "snapshot_run", "pixel_pairs", "score_field",
           "plot_snapshots", "plot_attention", "plot_score", "plot_accuracy"]

#: Number of generation steps shown in the snapshot and attention figures.
SNAPSHOT_COUNT = 6


# -- the generation run behind Figs. 3 and 4 --------------------------------------------------

@dataclass
class Snapshot:
    """One recorded step of :func:`snapshot_run`; images in the network's normalised units."""

    index: int
    t: int
    x: np.ndarray               # (image_x, y) normalised
    x0: np.ndarray              # (image_x, y) normalised
    importance: np.ndarray | None   # (heads, N): B_j = Σ_i A_ij


def snapshot_run(model: ModelFile, network, diffusion, generated: GeneratedFile, row: int,
                 device):
    """One generation (1 draw, the trace's seed) recording :data:`SNAPSHOT_COUNT` steps.

    ``network`` and ``diffusion`` as
    :func:`mesoinv.inference.p2_generate.build_network_and_diffusion` returns them. Returns
    the snapshots (:class:`Snapshot`), the number of sampling steps and the final image
    (image_x, y), states per t per site.
    """
    options = dataclasses.replace(generated.options, samples_per_trace=1)
    n_steps = len(diffusion.ddim_timesteps(options.steps)) \
        if options.sampler == "ddim" else options.steps
    wanted = sorted({int(v) for v in np.linspace(0, n_steps - 1, SNAPSHOT_COUNT).round()})
    snapshots = []

    def keep(_, step):
        if step.index in wanted:
            importance = None
            if step.attention is not None:
                importance = step.attention[0].float().sum(dim=-2).cpu().numpy()
            snapshots.append(Snapshot(step.index, step.t, step.x[0, 0].cpu().numpy(),
                                      step.x0[0, 0].cpu().numpy(), importance))

    final = generate_images(model, generated.traces[row:row + 1],
                            generated.sample_ids[row:row + 1], options, device=device,
                            network=network, callback=keep, record_attention=True)
    return snapshots, n_steps, final[0, 0]


# -- the score field (Fig. 5) -----------------------------------------------------------------

def pixel_pairs(true_image, placement, radius, padding):
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
def score_field(model: ModelFile, network, diffusion, generated: GeneratedFile, row: int,
                points: int, timestep: int, device) -> dict:
    """The model's score at ``points`` noisy images around the true image of trace ``row``, at
    noise level ``timestep`` (module docstring, ``score_field.png``).

    Returns ``t``, ``sigma`` (σ_t), ``sqrt_alpha_bar`` (√ᾱ_t), ``x0`` (image_x, y), ``x_t``
    and ``score`` (points, image_x, y), all in the network's normalised units, and ``cosine``
    (mean cosine similarity of the model's score with the exact −ε/σ_t).
    """
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

def plot_snapshots(snapshots, n_steps, true_normalised, placement, radius, padding, title,
                   output, colour_range=(-1.0, 1.0)):
    """``snapshots.png`` (module docstring): x_t and x̂_0 of each :class:`Snapshot` and the
    true image, in normalised units, on one colour scale ``colour_range``."""
    low, high = colour_range
    columns = len(snapshots) + 1
    fig, axes = plt.subplots(2, columns, figsize=(2.2 * columns, 4.7), constrained_layout=True,
                             squeeze=False)
    extent = image_extent(true_normalised.shape, padding)
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
    draw_antidots(ax, placement, radius, "cyan", "--", linewidth=0.9)
    ax.set_title("true LDOS", fontsize=8)
    ax.set_xlabel("i (sites)")
    ax.set_ylabel("k (sites)")
    axes[1, -1].set_axis_off()
    fig.colorbar(mesh, ax=axes[0, -1], shrink=0.8,
                 label=f"normalised LDOS\n({low:.2g} = 0, {high:.2g} = training max)")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, output)


def plot_attention(snapshots, image_shape, placement, radius, padding, title, output,
                   colour_range=(-1.0, 1.0)):
    """``attention.png`` (module docstring): x̂_0 and the importance B_j of each head at each
    :class:`Snapshot`."""
    heads = snapshots[0].importance.shape[0]
    tokens = snapshots[0].importance.shape[1]
    side = int(round(math.sqrt(tokens)))
    columns = len(snapshots)
    fig, axes = plt.subplots(heads + 1, columns, figsize=(2.0 * columns + 0.9,
                                                          1.95 * (heads + 1)),
                             constrained_layout=True, squeeze=False)
    extent = image_extent(image_shape, padding)
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
            draw_antidots(ax, placement, radius, "cyan", "--", linewidth=0.9)
            if c == 0:
                ax.set_ylabel(f"head {h + 1}\nk (sites)", fontsize=8)
            if h == heads - 1:
                ax.set_xlabel("i (sites)", fontsize=8)
        fig.colorbar(mesh, ax=axes[h + 1, -1], shrink=0.8, label="B_j = Σ_i A_ij")
    for ax in axes.ravel():
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, output)


def plot_score(field, pairs, title, output):
    """``score_field.png`` (module docstring) from :func:`score_field` and
    :func:`pixel_pairs`."""
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
    return save_figure(fig, output)


def plot_accuracy(metrics: pd.DataFrame, evaluations, tolerance, title, output):
    """``accuracy.png`` (module docstring) from the rows of ``metrics.csv`` and the per-sample
    evaluations of :func:`mesoinv.evaluation.p2_generation.metrics.diffusion_metrics`;
    ``tolerance`` in sites."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.9), constrained_layout=True)
    predictors = [p for p in PREDICTORS if (metrics["predictor"] == p).any()]
    width = 0.8 / len(predictors)
    positions = np.arange(len(CRITERIA))
    for p, predictor in enumerate(predictors):
        rows = metrics[metrics["predictor"] == predictor].set_index("criterion")
        values = np.array([float(rows.loc[c, "accuracy"]) for c in CRITERIA])
        low = np.array([float(rows.loc[c, "accuracy_ci_low"]) for c in CRITERIA])
        high = np.array([float(rows.loc[c, "accuracy_ci_high"]) for c in CRITERIA])
        errors = np.nan_to_num(np.stack([values - low, high - values]), nan=0.0)
        left.bar(positions + (p - (len(predictors) - 1) / 2) * width, values, width,
                 yerr=np.maximum(errors, 0.0), capsize=3, label=predictor)
    left.set_xticks(positions, [f"{c}{' (P2)' if c == P2_CRITERION else ''}" for c in CRITERIA])
    left.set_ylim(0, 1.05)
    left.set_ylabel("accuracy (both antidots within tolerance)")
    left.set_title(f"tolerance {tolerance:g} sites; error bars: 95 % Wilson intervals over "
                   "traces", fontsize=9)
    left.legend(fontsize=7)
    errors = {name: np.asarray(e.strict.error, dtype=np.float64).ravel()
              for name, e in evaluations.items()}
    # images with a missing antidot have no position error (counted wrong in the accuracy)
    errors = {name: values[np.isfinite(values)] for name, values in errors.items()}
    high = max(float(np.max(v)) for v in errors.values() if v.size) or 1.0
    bins = np.linspace(0.0, high * 1.02 + 1e-9, 25)
    for name, values in errors.items():
        right.hist(values, bins=bins, histtype="step", lw=1.4,
                   weights=np.full(values.size, 1.0 / max(values.size, 1)), label=name)
    right.axvline(tolerance, color="k", ls="--", lw=0.8, label="tolerance")
    right.set_xlabel("strict position error (sites, mean of the two antidots)")
    right.set_ylabel("fraction of images with two antidots found")
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, output)
