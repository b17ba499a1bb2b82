"""Figures of a P2 diffusion model's evaluation: P2's views of what the model learned, and
the accuracy plot. Every figure is written atomically by :func:`mesoinv.plotting.save_figure`;
images are drawn on axes in site indices (:func:`mesoinv.inference.p2_figures.image_extent`).

``snapshots.png`` (P2 Fig. 3)
    One generation for one trace (its first draw's seed, the file's sampler, steps and γ):
    x_t and the network's estimate x̂_0 at six steps from the first to the last, the true
    LDOS and the generated image with the antidots the detector finds in it (solid), all in
    the network's normalised units (−1 = zero LDOS), on axes in wire sites, the true
    antidots dashed on every panel.
``attention.png`` (P2 Fig. 4)
    The importance B_j = Σ_i A_ij of each bottleneck head (P2 Eqs. 1–2; ``A`` from the
    4-head self-attention at the most downsampled level, conditional pass) over the bottleneck
    grid, at the same six steps of the same generation, true antidots dashed. Rows sum to 1,
    so B_j averages 1 over the grid; every head has one colour scale over the six steps. Each
    panel's maximum is marked, and the title counts how many maxima fall on a cell holding a
    true antidot site, beside the fraction of such cells (:func:`attention_on_antidots`).
``score_field.png`` (P2 Fig. 5)
    The model's score s(x_t, t) = −ε̂/σ_t
    (:meth:`mesoinv.models.gaussian_diffusion.GaussianDiffusion.score`, guided with the file's
    γ) at ``score_points`` noisy images x_t = √ᾱ_t x_0 + σ_t ε around the true image x_0 of
    the snapshot trace, at ``t = score_timestep`` (P2: "each with 100 steps of added noise",
    index 99), projected on three pixel pairs (image column j, row k, padding included; the
    axes name them as wire sites (i, k) = (j − p, k), as the other P2 figures):

    (a) the centres of the two true antidots (both inside a hole: x_0 = −1 there);
    (b) the centre of the first antidot and the brightest true-LDOS pixel at more than r + 1
        sites from both antidots (inside / outside);
    (c) that bright pixel and the pixel of median true LDOS among those far pixels (both
        outside).

    Arrows (with heads) are σ_t² s, so that x_t + σ_t² s is the model's (Tweedie) estimate of
    √ᾱ_t x_0: a perfect score ends each arrow on the cross √ᾱ_t x_0; the star is x_0; a
    second row zooms on the arrowheads. The title gives the
    mean cosine similarity, over all pixels, between the model's score and the exact score of
    the noising distribution around this image, −ε/σ_t.
``accuracy.png``
    Accuracy (strict, mirrors, classes) of the model and its baselines, with 95 % intervals
    over traces as error bars, and histograms of the strict position error.
``depth_distribution.png``
    The depths (:mod:`mesoinv.inference.antidot_detector`: mean hole map over a disk, 0 = a
    clean hole, ≈ 1 = none) of the detector's two best disks in every generated image, those
    it counts as antidots (depth ≤ its threshold) apart from those it rejects, beside the true
    images of the same traces at their antidots and at their deepest disk touching no
    antidot, with the threshold (:func:`hole_depths`, :func:`plot_depth_distribution`).
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...inference.antidot_detector import GEOMETRY_TOLERANCE, AntidotDetector, disk_offsets
from ...inference.p2_figures import draw_antidots, image_extent
from ...inference.p2_format import GeneratedFile
from ...inference.p2_generate import generate_images, trace_seed
from ...plotting import plt, save_figure
from ...training.model_file import ModelFile
from ...training.normalization import LDOSNormalization, TraceNormalization
from .metrics import P2_CRITERION, PREDICTORS
from .positions import CRITERIA

__all__ = ["SNAPSHOT_COUNT", "Snapshot", "snapshot_run", "pixel_pairs", "score_field",
           "plot_snapshots", "plot_attention", "attention_on_antidots", "plot_score",
           "plot_accuracy", "HoleDepths",
           "hole_depths", "plot_depth_distribution"]

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
                   output, colour_range=(-1.0, 1.0), *, final=None, found=None):
    """``snapshots.png`` (module docstring): x_t and x̂_0 of each :class:`Snapshot` and the
    true image, in normalised units, on one colour scale ``colour_range``, on axes in wire
    sites (i across, the padding at i < 0 and i ≥ W; k along), the true antidots dashed on
    every panel.

    ``final`` (image_x, y), normalised: the generated image, drawn under the true LDOS with
    the antidots ``found`` in it (``[[cx, cy], ...]``, sites; NaN: not found) as solid
    circles."""
    low, high = colour_range
    columns = len(snapshots) + 1
    fig, axes = plt.subplots(2, columns, figsize=(min(12.6, 1.75 * columns + 0.9), 4.6),
                             constrained_layout=True, squeeze=False, sharex=True, sharey=True)
    extent = image_extent(true_normalised.shape, padding)
    mesh = None

    def show(ax, image, label):
        shown = ax.imshow(image.T, origin="lower", cmap="inferno", vmin=low, vmax=high,
                          extent=extent, aspect="equal")
        draw_antidots(ax, placement, radius, "cyan", "--", linewidth=0.8)
        ax.set_title(label, fontsize=8)
        return shown

    for c, snap in enumerate(snapshots):
        for r, (image, what) in enumerate(((snap.x, "x_t"), (snap.x0, "x̂₀"))):
            mesh = show(axes[r, c], image, f"{what}, step {snap.index + 1}/{n_steps}\n"
                                           f"(t = {snap.t})")
    show(axes[0, -1], true_normalised, "true LDOS\n(antidots dashed)")
    if final is not None:
        found = np.full((2, 2), np.nan) if found is None else np.asarray(found, np.float64)
        count = int(np.isfinite(found).all(axis=-1).sum())
        show(axes[1, -1], final, f"generated image\n{count} antidot{'s' * (count != 1)} "
                                 "found (solid)")
        draw_antidots(axes[1, -1], found, radius, "lime", "-", linewidth=1.1)
    else:
        axes[1, -1].set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("k (sites)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("i (sites)", fontsize=8)
    for ax in axes.ravel():
        ax.tick_params(labelsize=7)
    fig.colorbar(mesh, ax=axes, shrink=0.7,
                 label=f"normalised LDOS\n({low:.2g} = 0, {high:.2g} = training max)")
    fig.suptitle(title + "; true antidots dashed (cyan)", fontsize=9)
    return save_figure(fig, output)


def _antidot_pixels(image_shape, placement, radius, padding) -> np.ndarray:
    """Boolean (image_x, y) mask of the removed sites of the antidots ``placement``."""
    mask = np.zeros(image_shape, dtype=bool)
    for cx, cy in np.asarray(placement, dtype=np.float64).reshape(-1, 2):
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        offsets = disk_offsets(radius, int(round(2 * cx)) % 2, int(round(2 * cy)) % 2)
        sites = offsets + (int(math.floor(cx)) + padding, int(math.floor(cy)))
        inside = ((sites >= 0) & (sites < image_shape)).all(axis=1)
        mask[sites[inside, 0], sites[inside, 1]] = True
    return mask


def attention_on_antidots(snapshots, image_shape, placement, radius, padding):
    """Where the attention importance peaks: for every head and :class:`Snapshot`, is the
    token of largest B_j one whose bottleneck cell holds a removed site of a true antidot?

    Returns
    -------
    on : ndarray of bool, shape (heads, snapshots)
    chance : float
        The fraction of cells that hold an antidot site (what a random maximum would hit).
    """
    tokens = snapshots[0].importance.shape[1]
    side = int(round(math.sqrt(tokens)))
    rows, columns = side, tokens // side
    mask = _antidot_pixels(image_shape, placement, radius, padding)
    edges_x = np.linspace(0, image_shape[0], rows + 1).round().astype(int)
    edges_y = np.linspace(0, image_shape[1], columns + 1).round().astype(int)
    cells = np.array([[mask[edges_x[a]:edges_x[a + 1], edges_y[b]:edges_y[b + 1]].any()
                       for b in range(columns)] for a in range(rows)])
    on = np.array([[cells.ravel()[int(np.argmax(s.importance[h]))] for s in snapshots]
                   for h in range(snapshots[0].importance.shape[0])])
    return on, float(cells.mean())


def plot_attention(snapshots, image_shape, placement, radius, padding, title, output,
                   colour_range=(-1.0, 1.0)):
    """``attention.png`` (module docstring): x̂_0 and the importance B_j of each head at each
    :class:`Snapshot`; each panel's maximum marked (+), and the title counts the maxima that
    fall on a cell holding a true antidot site (:func:`attention_on_antidots`)."""
    heads = snapshots[0].importance.shape[0]
    tokens = snapshots[0].importance.shape[1]
    side = int(round(math.sqrt(tokens)))
    columns = len(snapshots)
    on, chance = attention_on_antidots(snapshots, image_shape, placement, radius, padding)
    fig, axes = plt.subplots(heads + 1, columns, figsize=(min(12.6, 1.85 * columns + 0.9),
                                                          1.85 * (heads + 1) + 0.2),
                             constrained_layout=True, squeeze=False, sharex=True,
                             sharey=True)
    extent = image_extent(image_shape, padding)
    cell_x = (extent[1] - extent[0]) / side
    cell_y = (extent[3] - extent[2]) / (tokens // side)
    for c, snap in enumerate(snapshots):
        ax = axes[0, c]
        ax.imshow(snap.x0.T, origin="lower", cmap="inferno", vmin=colour_range[0],
                  vmax=colour_range[1], extent=extent, aspect="equal")
        draw_antidots(ax, placement, radius, "cyan", "--", linewidth=0.8)
        ax.set_title(f"x̂₀, step {snap.index + 1} (t = {snap.t})", fontsize=8)
    axes[0, 0].set_ylabel("x̂₀\nk (sites)", fontsize=8)
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
            a, b = np.unravel_index(int(np.argmax(grid)), grid.shape)
            ax.plot(extent[0] + (a + 0.5) * cell_x, extent[2] + (b + 0.5) * cell_y,
                    marker="+", ms=9, mew=1.6, color="lime" if on[h, c] else "w")
            if c == 0:
                ax.set_ylabel(f"head {h + 1}\nk (sites)", fontsize=8)
            if h == heads - 1:
                ax.set_xlabel("i (sites)", fontsize=8)
        fig.colorbar(mesh, ax=axes[h + 1, -1], shrink=0.8, label="B_j = Σ_i A_ij")
    for ax in axes.ravel():
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{title}\nmaximum of each panel (+): on a cell with a true antidot site in "
                 f"{int(on.sum())} of {on.size} (lime), elsewhere in {int((~on).sum())} "
                 f"(white); such cells are {chance:.0%} of the grid", fontsize=9)
    return save_figure(fig, output)


def plot_score(field, pairs, title, output, *, padding: int = 0):
    """``score_field.png`` (module docstring) from :func:`score_field` and
    :func:`pixel_pairs` (image indices, converted to wire sites (i, k) = (j − ``padding``,
    k) on the axes, as in the other P2 figures). Arrows with heads from each noisy point x_t
    to x_t + σ_t² s; top row: all points, bottom row: the same arrows zoomed on their heads
    around √ᾱ_t x₀ (where a perfect score ends every arrow)."""
    fig, axes = plt.subplots(2, len(pairs), figsize=(min(12.6, 4.1 * len(pairs)), 8.2),
                             constrained_layout=True, squeeze=False)
    sigma2 = field["sigma"] ** 2
    r = field["sqrt_alpha_bar"]

    def site(pixel):
        return f"site (i, k) = ({pixel[0] - padding}, {pixel[1]})"

    def square(ax, xs, ys, margin=0.55):
        half = margin * max(np.ptp(xs), np.ptp(ys), 1e-6)
        mid_x, mid_y = (np.max(xs) + np.min(xs)) / 2, (np.max(ys) + np.min(ys)) / 2
        ax.set_xlim(mid_x - half, mid_x + half)
        ax.set_ylim(mid_y - half, mid_y + half)
        ax.set_aspect("equal", adjustable="box")

    for column, (a, b, what) in enumerate(pairs):
        xa, xb = field["x_t"][:, a[0], a[1]], field["x_t"][:, b[0], b[1]]
        ua, ub = sigma2 * field["score"][:, a[0], a[1]], sigma2 * field["score"][:, b[0], b[1]]
        x0a, x0b = field["x0"][a], field["x0"][b]
        for row, ax in enumerate(axes[:, column]):
            zoom = row == 1
            ax.scatter(xa, xb, s=9, color="0.35", zorder=3, label="noisy points x_t")
            ax.quiver(xa, xb, ua, ub, angles="xy", scale_units="xy", scale=1.0,
                      width=0.003 if zoom else 0.004, headwidth=4.5, headlength=6,
                      headaxislength=5.5, color="tab:blue", alpha=0.75, zorder=4,
                      label="σ_t² s(x_t, t)")
            # hollow markers on top: the arrowheads that end near them stay visible
            ax.plot([x0a], [x0b], marker="*", ms=14, mfc="none", mec="tab:red", mew=1.5,
                    ls="none", zorder=5, label="true x₀")
            ax.plot([r * x0a], [r * x0b], marker="x", ms=10, mew=1.5, color="k", ls="none",
                    zorder=5, label="√ᾱ_t x₀")
            if zoom:
                tips_a = np.concatenate([xa + ua, [x0a, r * x0a]])
                tips_b = np.concatenate([xb + ub, [x0b, r * x0b]])
                square(ax, tips_a, tips_b, margin=0.8)
                ax.set_title("zoom on the arrowheads", fontsize=8)
            else:
                square(ax, np.concatenate([xa, xa + ua, [x0a, r * x0a]]),
                       np.concatenate([xb, xb + ub, [x0b, r * x0b]]))
                ax.set_title(what, fontsize=9)
            ax.set_xlabel(f"LDOS at {site(a)}, normalised", fontsize=8)
            ax.set_ylabel(f"LDOS at {site(b)}, normalised", fontsize=8)
            ax.tick_params(labelsize=7)
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
    left.set_ylim(0, 1.32)                 # room for the legend above the bars
    left.set_yticks(np.linspace(0, 1, 6))
    left.axhline(1.0, color="0.8", lw=0.6, zorder=0)
    left.set_ylabel("accuracy (both antidots within tolerance)")
    left.set_title(f"tolerance {tolerance:g} sites; error bars: 95 % Wilson intervals over "
                   "traces", fontsize=9)
    left.legend(fontsize=7, loc="upper center", ncols=3)
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


# -- hole depths (the detector's criterion) ---------------------------------------------------

@dataclass
class HoleDepths:
    """Depths (mean hole map over a disk: 0 = clean hole, ≈ 1 = no hole) of
    :func:`hole_depths`; dimensionless.

    Attributes
    ----------
    generated : ndarray (n, k, 2)
        The detector's two best candidate disks in each generated image (first, second).
    found : ndarray (n, k, 2) of bool
        Which of them the detector counts as antidots (depth ≤ ``max_depth``): their sum is
        the detector's count of holes.
    true_holes : ndarray (n, 2)
        The true images at the true antidot disks.
    true_nearest_non_hole : ndarray (n,)
        The true images' deepest candidate disk that shares no site with a true antidot: the
        shallowest thing a threshold must reject.
    max_depth : float
    """

    generated: np.ndarray
    found: np.ndarray
    true_holes: np.ndarray
    true_nearest_non_hole: np.ndarray
    max_depth: float


def _candidate_sites(detector: AntidotDetector):
    """Sites (M, m, 2) of every candidate disk of ``detector`` (m: the largest disk; smaller
    disks repeat their first site), in wire site indices."""
    r = float(detector.geometry.antidot_radius)
    disks = []
    for cx, cy in detector.candidates:
        px, py = int(round(2 * cx)) % 2, int(round(2 * cy)) % 2
        disks.append(disk_offsets(r, px, py) + (int(math.floor(cx)), int(math.floor(cy))))
    size = max(len(d) for d in disks)
    return np.stack([np.concatenate([d, np.repeat(d[:1], size - len(d), axis=0)])
                     for d in disks])


def hole_depths(detector: AntidotDetector, generated, true_images, true_placements
                ) -> HoleDepths:
    """Depths of the holes the detector finds in generated images, and of the true images of
    the same traces at and away from their true antidots (for ``depth_distribution.png``).

    Parameters
    ----------
    detector : AntidotDetector
        The one that scored the images (its ``max_depth`` is the threshold; not None).
    generated : array (n, k, image_x, y)
        Generated images, states per t per site.
    true_images : array (n, image_x, y)
    true_placements : array (n, 2, 2)
        True centres ``[[cx1, cy1], [cx2, cy2]]``, site indices.
    """
    if detector.max_depth is None:
        raise ValueError("the detector has no depth threshold (max_depth None)")
    detection = detector.detect(np.asarray(generated, dtype=np.float64))
    found = (np.isfinite(detection.centres).all(axis=-1)
             & (detection.depth <= detector.max_depth + GEOMETRY_TOLERANCE))
    true_images = np.asarray(true_images, dtype=np.float64)
    scores = detector.scores(true_images)                       # (n, M)
    candidates = detector.candidates
    sites = _candidate_sites(detector)
    W, L = detector.geometry.shape
    r = float(detector.geometry.antidot_radius)
    holes = np.empty((len(true_images), 2))
    non_hole = np.empty(len(true_images))
    for i, placement in enumerate(np.asarray(true_placements, dtype=np.float64)):
        removed = np.zeros((W, L), dtype=bool)
        for j, (cx, cy) in enumerate(placement):
            near = np.hypot(*(candidates - (cx, cy)).T) <= 0.5 + GEOMETRY_TOLERANCE
            holes[i, j] = scores[i, near].min() if near.any() else np.nan
            offsets = disk_offsets(r, int(round(2 * cx)) % 2, int(round(2 * cy)) % 2)
            disk = offsets + (int(math.floor(cx)), int(math.floor(cy)))
            inside = ((disk >= 0) & (disk < (W, L))).all(axis=1)
            removed[disk[inside, 0], disk[inside, 1]] = True
        touching = removed[sites[..., 0].clip(0, W - 1), sites[..., 1].clip(0, L - 1)].any(-1)
        non_hole[i] = scores[i, ~touching].min() if (~touching).any() else np.nan
    return HoleDepths(detection.depth, found, holes, non_hole, float(detector.max_depth))


def plot_depth_distribution(depths: HoleDepths, title, output):
    """``depth_distribution.png`` (module docstring): histograms of the hole depths of the
    generated images (the detector's two best candidates, found and rejected ones apart)
    beside the true images' depths at their antidots and at their deepest non-hole disk, on
    the same bins, with the threshold."""
    edges = np.linspace(0.0, 1.0, 41)           # the threshold 0.5 is an edge
    if not np.any(np.isclose(edges, depths.max_depth)):
        edges = np.unique(np.append(edges, depths.max_depth))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.0), constrained_layout=True,
                                      sharex=True)
    d = depths.generated
    kept, rejected = d[depths.found], d[~depths.found & np.isfinite(d)]
    images = d.shape[0] * d.shape[1]
    left.hist([np.clip(kept, 0, 1), np.clip(rejected, 0, 1)], bins=edges, stacked=True,
              color=["C2", "0.6"],
              label=[f"counted as antidots: {kept.size} of {2 * images} candidates",
                     f"rejected (no antidot): {rejected.size}"])
    both = int(depths.found.all(axis=-1).sum())
    left.set_title(f"generated: {images} images, the detector's two best disks each; "
                   f"two holes in {both}", fontsize=9)
    left.set_ylabel("candidate disks (count)")
    holes = depths.true_holes[np.isfinite(depths.true_holes)]
    other = depths.true_nearest_non_hole[np.isfinite(depths.true_nearest_non_hole)]
    right.hist([np.clip(holes, 0, 1), np.clip(other, 0, 1)], bins=edges, histtype="bar",
               color=["k", "C0"],
               label=[f"true antidot disks: max {holes.max():.3g}" if holes.size
                      else "true antidot disks", f"deepest disk touching no antidot: "
                      f"min {other.min():.3g}, median {np.median(other):.3g}" if other.size
                      else "deepest disk touching no antidot"])
    right.set_title(f"true LDOS of the same {len(depths.true_holes)} traces", fontsize=9)
    right.set_ylabel("disks (count)")
    for ax in (left, right):
        ax.axvline(depths.max_depth, color="C3", ls="--", lw=1.2,
                   label=f"threshold {depths.max_depth:g}: an antidot when depth ≤ it")
        ax.set_xlabel("depth = mean of clip(ρ/ρ_ref, 0, 1) over the disk (0: clean hole, "
                      "1: none)", fontsize=8)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="upper center")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, output)
