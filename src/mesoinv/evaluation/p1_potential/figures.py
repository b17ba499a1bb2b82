"""Figures of the evaluation of P1 potential-reconstruction models (P1 Figs. 4-8).

The distribution of r_P (P1 Fig. 8, :func:`plot_r_p_histogram`), the best, median and worst
samples (P1 Figs. 5, 7, :func:`plot_examples`), the local RMS error map (P1 Fig. 6,
:func:`plot_error_map`), the coefficient errors per mode (P1 Fig. 4,
:func:`plot_coefficient_errors`), r_P against the distance from the QPC
(:func:`plot_r_p_by_distance`) and the PLDOS consistency check
(:func:`plot_pldos_consistency`). Each writes one PNG atomically.

Units: lengths in nm, wave vectors in nm⁻¹, potentials in meV, PLDOS in meV⁻¹ per site,
Fourier coefficients dimensionless (their σ² = N_d L W/2, see
:mod:`mesoinv.physics.disorder`). Arrays of potentials are indexed (sample, x, y), x along
transport from the QPC (x = 0) to the drain (x = (nx - 1) a).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colors, ticker

from ...inference.p1_formats import PotentialPredictions
from ...plotting import plt, save_figure
from .consistency import POTENTIAL_SOURCES, PLDOSConsistency, read_stored_pldos
from .metrics import (PREDICTORS, coefficient_errors, example_indices, load_evaluated,
                      local_rms_error_map, per_sample_scores, reconstruction_by_distance,
                      root_mean_square)

__all__ = ["plot_r_p_histogram", "plot_examples", "plot_error_map", "plot_coefficient_errors",
           "plot_r_p_by_distance", "plot_pldos_consistency", "COEFFICIENT_ERROR_RANGE",
           "coefficient_error_range"]

_EXAMPLE_NAMES = {"a": "best", "b": "median", "c": "worst"}


@dataclass(frozen=True)
class _Frame:
    """Real-space frame of the maps: site coordinates and the leads."""

    x_nm: np.ndarray
    y_nm: np.ndarray
    a: float
    qpc_first: int
    qpc_width: int

    @classmethod
    def of(cls, p: PotentialPredictions) -> "_Frame":
        first, width = p.qpc_sites
        return cls(p.x_nm, p.y_nm, p.lattice_constant_nm, first, width)

    @property
    def extent(self):
        a = self.a
        return (self.x_nm[0] - a / 2, self.x_nm[-1] + a / 2,
                self.y_nm[0] - a / 2, self.y_nm[-1] + a / 2)

    def draw(self, fig, ax, image, *, cmap, vmin, vmax, label=None, title=None, leads=True):
        """``image`` (x, y) on ``ax``; a colour bar of its own when ``label`` is given (else
        the caller draws one shared bar)."""
        shown = ax.imshow(np.asarray(image).T, origin="lower", extent=self.extent, cmap=cmap,
                          vmin=vmin, vmax=vmax, interpolation="nearest")
        if label is not None:
            fig.colorbar(shown, ax=ax, label=label, shrink=0.9)
        if leads:
            self.mark_leads(ax)
        ax.set_xlabel("x (nm), QPC → drain")
        ax.set_ylabel("y (nm)")
        if title:
            ax.set_title(title, fontsize=9)
        return shown

    def mark_leads(self, ax):
        """QPC: its y span on the left edge; drain: the whole right edge."""
        left, right, bottom, top = self.extent
        last = min(self.qpc_first + self.qpc_width - 1, len(self.y_nm) - 1)
        ax.plot([left, left], [self.y_nm[self.qpc_first] - self.a / 2,
                               self.y_nm[last] + self.a / 2],
                color="lime", lw=4, solid_capstyle="butt", label="QPC", clip_on=False)
        ax.plot([right, right], [bottom, top], color="0.35", lw=4, solid_capstyle="butt",
                label="drain", clip_on=False)


def _title(p: PotentialPredictions, what: str) -> str:
    return f"{what}: model '{p.model_name}' ({p.model_kind}), {p.split} split, N = {p.n}"


def _symmetric_limit(*arrays) -> float:
    values = [float(np.max(np.abs(a))) for a in arrays if np.size(a)]
    top = max(values) if values else 1.0
    return top if top > 0 else 1.0


def _pldos_limit(image) -> float:
    top = float(np.percentile(image, 99.5)) if np.size(image) else 1.0
    return top if top > 0 else (float(np.max(image)) or 1.0)


def plot_r_p_histogram(predictions, output) -> Path:
    """Distribution of r_P over the samples (P1 Fig. 8), best/median/worst marked a, b, c.

    Left: the model's r_P, counts divided by the number of samples (the paper's
    normalisation), with the samples of :func:`plot_examples` marked by their letters.
    Right: the model beside the training-mean baseline on a common axis (the zero potential
    has no r_P).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
        PNG (written atomically).
    """
    p = load_evaluated(predictions)
    values = per_sample_scores(p)
    model = values["model"][0]
    baseline = values["training_mean_potential"][0]
    n = max(p.n, 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.9), constrained_layout=True)
    finite = model[np.isfinite(model)]
    bins = int(np.clip(round(2 * math.sqrt(max(len(finite), 1))), 5, 60))
    if len(finite):
        left.hist(finite, bins=bins, weights=np.full(len(finite), 1 / n), color="C1",
                  alpha=0.85, label="model")
        for letter, index in example_indices(model).items():
            if np.isfinite(model[index]):
                left.axvline(model[index], color="k", lw=0.8, ls=":")
                left.annotate(f"{letter}", (model[index], 1.0),
                              xycoords=("data", "axes fraction"), ha="center", va="bottom",
                              fontsize=10, fontweight="bold")
    else:
        left.text(0.5, 0.5, "r_P undefined for every sample\n(constant predictions)",
                  ha="center", va="center", transform=left.transAxes)
    for bound in (0.9, 0.99):
        left.axvline(bound, color="C3", lw=0.8, ls="--")
    stats = (f"median {np.median(finite):.4f}\n5th pct {np.percentile(finite, 5):.4f}\n"
             f"min {np.min(finite):.4f}\n> 0.9: {np.mean(finite > 0.9):.1%}\n"
             f"> 0.99: {np.mean(finite > 0.99):.1%}") if len(finite) else ""
    left.text(0.03, 0.95, stats, transform=left.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
    left.set_xlabel("r_P of predicted vs true V (Eq. 6), dimensionless")
    left.set_ylabel("counts / N (1)")
    left.set_title("model (a best, b median, c worst; dashed: 0.9, 0.99)", fontsize=9,
                   pad=14)                 # room for the letters above the axes

    both = np.concatenate([finite, baseline[np.isfinite(baseline)]])
    if len(both):
        edges = np.histogram_bin_edges(both, bins=min(80, max(10, 2 * bins)))
        for values_, style in ((finite, dict(color="C1", alpha=0.85, histtype="stepfilled",
                                             label="model")),
                               (baseline[np.isfinite(baseline)],
                                dict(color="k", histtype="step", lw=1.0,
                                     label="training-mean potential"))):
            if len(values_):
                right.hist(values_, bins=edges, weights=np.full(len(values_), 1 / n), **style)
        right.legend(fontsize=7)
    right.set_xlabel("r_P (1)")
    right.set_ylabel("counts / N (1)")
    right.set_title("model vs training-mean baseline", fontsize=9)
    fig.suptitle(_title(p, "P1 Fig. 8, Pearson r_P"), fontsize=10)
    return save_figure(fig, output)


def plot_examples(predictions, output, *, dataset_path=None) -> Path:
    """Best, median and worst reconstructions (P1 Figs. 5, 7), rows a, b, c.

    Columns: the input PLDOS at the first field (only with ``dataset_path``), the expected
    (true) V, the predicted V and the error V_pred − V_true; r_P and the RMSE in the titles.
    Every column has one colour scale for all three rows, with one colour bar under it: V
    and predicted V share one symmetric scale (the largest |V| of the six maps), the errors
    another (the largest |error| of the three), the PLDOS runs from 0 to the 99.5th
    percentile of the three maps. Rows are therefore compared directly, errors included.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    dataset_path : path-like, optional
        The dataset file the predictions were made on (for the PLDOS column).
    """
    p = load_evaluated(predictions)
    values = per_sample_scores(p)
    picks = example_indices(values["model"][0])
    frame = _Frame.of(p)
    pldos = field_T = None
    if dataset_path is not None:
        pldos, field_T = read_stored_pldos(dataset_path, [p.sample_id[i] for i in picks.values()])
    indices = list(picks.values())
    true = p.potential_true_meV[indices]
    predicted = p.potential_meV[indices]
    errors = predicted - true
    limit = _symmetric_limit(true, predicted)
    error_limit = _symmetric_limit(errors)
    columns = 4 if pldos is not None else 3
    fig, axes = plt.subplots(len(picks), columns, figsize=(3.05 * columns + 0.3, 7.9),
                             constrained_layout=True, squeeze=False, sharex=True, sharey=True)
    shown = {}
    for row, (letter, index) in enumerate(picks.items()):
        r_p, rmse = values["model"][0][index], values["model"][1][index]
        ax = list(axes[row])
        if pldos is not None:
            shown["pldos"] = frame.draw(
                fig, ax.pop(0), pldos[row], cmap="inferno", vmin=0,
                vmax=_pldos_limit(pldos), title=f"({letter}) input PLDOS, B = {field_T:g} T")
        shown["v"] = frame.draw(fig, ax[0], true[row], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                title=f"({letter}) {_EXAMPLE_NAMES[letter]}: true V, "
                                      f"sample {p.sample_id[index]}")
        frame.draw(fig, ax[1], predicted[row], cmap="RdBu_r", vmin=-limit, vmax=limit,
                   title=f"predicted V, r_P = {r_p:.4f}")
        shown["error"] = frame.draw(fig, ax[2], errors[row], cmap="PuOr_r",
                                    vmin=-error_limit, vmax=error_limit,
                                    title=f"error, RMSE = {rmse:.3g} meV")
    for ax in axes.ravel():
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
        if not ax.get_subplotspec().is_first_col():
            ax.set_ylabel("")
    bars = dict(location="bottom", shrink=0.85, aspect=25, pad=0.01)
    first = 0
    if pldos is not None:
        fig.colorbar(shown["pldos"], ax=axes[:, 0], label="PLDOS (meV⁻¹ per site)",
                     extend="max", **bars)
        first = 1
    fig.colorbar(shown["v"], ax=axes[:, first:first + 2],
                 label="V (meV): true and predicted, one scale for all rows", **bars)
    fig.colorbar(shown["error"], ax=axes[:, first + 2],
                 label="V_pred − V_true (meV), one scale", **bars)
    axes[0][0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, "P1 Figs. 5/7, best (a), median (b), worst (c) r_P"), fontsize=10)
    return save_figure(fig, output)


def plot_error_map(predictions, output) -> Path:
    """Local RMS error over the samples / rms of the true potentials (P1 Fig. 6).

    Left: the model (:func:`local_rms_error_map`); right: the training-mean baseline (the
    zero potential's map is the local rms, ≈ 1). Both on one colour scale from 0 to the
    larger maximum (one colour bar), so the two maps compare directly; each map's minimum,
    mean and maximum are in its title, and a few labelled contours (white) show its own
    structure. QPC and drain marked. The PLDOS is not drawn.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    """
    p = load_evaluated(predictions)
    frame = _Frame.of(p)
    rms_true = root_mean_square(p.potential_true_meV)
    images = [(name, local_rms_error_map(predicted, p.potential_true_meV))
              for name, predicted in (("model", p.potential_meV),
                                      ("training-mean potential",
                                       p.training_mean_potential_meV))]
    top = max(float(np.max(image)) for _, image in images) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), constrained_layout=True)
    shown = None
    for ax, (name, image) in zip(axes, images):
        shown = frame.draw(fig, ax, image, cmap="viridis", vmin=0.0, vmax=top,
                           title=f"{name}: min {np.min(image):.3f}, mean {np.mean(image):.3f}, "
                                 f"max {np.max(image):.3f}")
        # a few labelled contours keep each map's own structure readable on the shared scale
        levels = ticker.MaxNLocator(4).tick_values(float(np.min(image)), float(np.max(image)))
        levels = levels[(levels > np.min(image)) & (levels < np.max(image))]
        if len(levels) and image.shape[0] > 1 and image.shape[1] > 1:
            lines = ax.contour(frame.x_nm, frame.y_nm, np.asarray(image).T, levels=levels,
                               colors="w", linewidths=0.6, alpha=0.8)
            ax.clabel(lines, fontsize=6, fmt="%.2g")
    fig.colorbar(shown, ax=axes, shrink=0.9,
                 label="√⟨(V_pred − V_true)²⟩ / rms(V_true) (1), one scale")
    axes[0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, f"P1 Fig. 6, local RMS error (rms(V_true) = {rms_true:.3g} meV)"),
                 fontsize=10)
    return save_figure(fig, output)


#: Colour and y range of :func:`plot_coefficient_errors`, ⟨(ΔC)²⟩/σ² (dimensionless): fixed
#: so that the figures of different models compare at a glance (the zero predictor's 1 near
#: the top); widened to whole decades only when a value falls outside.
COEFFICIENT_ERROR_RANGE = (1e-3, 3.0)


def coefficient_error_range(*arrays) -> tuple[float, float]:
    """:data:`COEFFICIENT_ERROR_RANGE`, widened to whole decades to hold every finite positive
    value of ``arrays``."""
    low, high = COEFFICIENT_ERROR_RANGE
    values = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values):
        if values.min() < low:
            low = 10.0 ** math.floor(math.log10(values.min()))
        if values.max() > high:
            high = 10.0 ** math.ceil(math.log10(values.max()))
    return low, high


def plot_coefficient_errors(predictions, output, *, table: pd.DataFrame | None = None
                            ) -> Path:
    """MSE of Re C and Im C per mode over σ², at each mode's (q_x, q_y) (P1 Fig. 4).

    Left: real parts, middle: imaginary parts (P1 stacks them), at each mode's wave vector;
    right: the same values against |q| beside the training-mean baseline's, with the zero
    predictor's expected value 1 (⟨(Re C)²⟩ = σ²) drawn as a line (also on the colour bar).
    One logarithmic scale for all three (:func:`coefficient_error_range`: fixed, the same for
    every model). Only the stored half plane is drawn (the other half: C(−q) = C(q)*). The
    cutoff |q| = cutoff_factor/s is drawn when s is known.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    table : pandas.DataFrame, optional
        :func:`coefficient_errors` of these predictions (recomputed if not given).
    """
    p = load_evaluated(predictions)
    table = coefficient_errors(p) if table is None else table
    columns = ("mse_real_over_sigma2", "mse_imag_over_sigma2")
    baseline_columns = ("training_mean_mse_real_over_sigma2",
                        "training_mean_mse_imag_over_sigma2")
    low, high = coefficient_error_range(*(table[c] for c in columns + baseline_columns
                                          if c in table))
    norm = colors.LogNorm(vmin=low, vmax=high)
    fig = plt.figure(figsize=(12.4, 5.3), constrained_layout=True)
    grid = fig.add_gridspec(1, 5, width_ratios=(1, 1, 0.07, 0.12, 1.55))
    maps = [fig.add_subplot(grid[0, 0])]
    maps.append(fig.add_subplot(grid[0, 1], sharex=maps[0], sharey=maps[0]))
    bar_axes = fig.add_subplot(grid[0, 2])
    fig.add_subplot(grid[0, 3]).set_axis_off()         # room for the colour bar's label
    profile = fig.add_subplot(grid[0, 4])
    size = float(np.clip(2500 / max(len(table), 1), 10, 110))
    disorder = p.disorder()
    reach = max([float(np.max(table["q_per_nm"].to_numpy(), initial=0.0))]
                + ([disorder.cutoff_per_nm] if disorder is not None else [])) or 1.0
    pad = 0.08 * reach
    shown = None
    for ax, part, column in zip(maps, ("Re", "Im"), columns):
        shown = ax.scatter(table["qx_per_nm"], table["qy_per_nm"], c=table[column], s=size,
                           cmap="viridis", norm=norm, edgecolors="k", linewidths=0.3)
        if disorder is not None:
            angle = np.linspace(-np.pi / 2, np.pi / 2, 200)
            cutoff = disorder.cutoff_per_nm
            ax.plot(cutoff * np.cos(angle), cutoff * np.sin(angle), "k--", lw=0.7,
                    label=f"|q| = {disorder.cutoff_factor:g}/s")
        ax.set_xlim(-pad, reach + pad)
        ax.set_ylim(-reach - pad, reach + pad)
        ax.set_aspect("equal", adjustable="box")
        ax.axhline(0, color="0.8", lw=0.5, zorder=0)
        ax.set_xlabel("q_x (nm⁻¹)")
        ax.set_title(f"{part} C(q): ⟨(Δ{part} C)²⟩/σ²", fontsize=9)
    maps[0].set_ylabel("q_y (nm⁻¹)")
    maps[1].tick_params(labelleft=False)
    if disorder is not None:
        maps[0].legend(fontsize=7, loc="upper right")
    bar = fig.colorbar(shown if shown is not None else plt.cm.ScalarMappable(norm, "viridis"),
                       cax=bar_axes, label="⟨(ΔC)²⟩/σ² (1)")
    bar.ax.axhline(1.0, color="C3", lw=2.0)

    q = table["q_per_nm"].to_numpy()
    for column, marker, part in zip(columns, ("o", "^"), ("Re", "Im")):
        profile.scatter(q, table[column], marker=marker, s=28, color="C0" if part == "Re"
                        else "C1", edgecolors="k", linewidths=0.3, zorder=3,
                        label=f"model, {part} C")
    for column, marker, part in zip(baseline_columns, ("o", "^"), ("Re", "Im")):
        if column in table:
            profile.scatter(q, table[column], marker=marker, s=22, facecolors="none",
                            edgecolors="0.45", linewidths=0.8, zorder=2,
                            label=f"training-mean potential, {part} C")
    profile.axhline(1.0, color="C3", lw=1.2, zorder=1,
                    label="zero predictor: ⟨C²⟩/σ² = 1")
    if disorder is not None:
        profile.axvline(disorder.cutoff_per_nm, color="k", ls="--", lw=0.7,
                        label=f"|q| = {disorder.cutoff_factor:g}/s")
    profile.set_yscale("log")
    profile.set_ylim(low, high)
    profile.set_xlim(0, reach + pad)
    profile.set_xlabel("|q| (nm⁻¹)")
    profile.set_ylabel("⟨(ΔC)²⟩/σ² (1)")
    profile.set_title("per mode against |q|, with the baselines", fontsize=9)
    profile.grid(alpha=0.3, axis="y")
    profile.legend(fontsize=7, loc="lower right")
    source = str(table["coefficient_source"].iloc[0]) if len(table) else "no modes"
    sigma = p.coefficient_sigma
    fig.suptitle(_title(p, "P1 Fig. 4, coefficient errors") + f"\ncoefficients: {source}; "
                 f"σ = {sigma:.3g}; red line: zero predictor (1)", fontsize=9)
    return save_figure(fig, output)


def plot_r_p_by_distance(predictions, output, *, table: pd.DataFrame | None = None) -> Path:
    """r_P and relative RMS error against the distance from the QPC mouth.

    Left: median r_P within each ring (:func:`r_p_by_distance`) with the interquartile band
    over samples, for the model and the training-mean baseline. Right: the relative RMS error
    per ring for all three predictors (normalised by the global rms of the true potentials).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    table : pandas.DataFrame, optional
        :func:`reconstruction_by_distance` of these predictions.
    """
    p = load_evaluated(predictions)
    table = reconstruction_by_distance(p) if table is None else table
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0), constrained_layout=True)
    styles = {"model": dict(color="C1", marker="o"),
              "training_mean_potential": dict(color="k", marker="s", ls="--"),
              "zero_potential": dict(color="0.5", marker="^", ls=":")}
    for name in PREDICTORS:
        rows = table[table["predictor"] == name]
        d = rows["distance_center_nm"].to_numpy()
        if name != "zero_potential":
            left.plot(d, rows["r_p_median"], label=name.replace("_", " "), **styles[name])
            left.fill_between(d, rows["r_p_q25"], rows["r_p_q75"],
                              color=styles[name]["color"], alpha=0.2, lw=0)
        right.plot(d, rows["relative_rmse"], label=name.replace("_", " "), **styles[name])
    left.set_xlabel("distance from the QPC mouth (nm)")
    left.set_ylabel("r_P within the ring (1): median, quartiles")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.set_xlabel("distance from the QPC mouth (nm)")
    right.set_ylabel("RMS error in the ring / rms(V_true) (1)")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    right.set_ylim(bottom=0)
    fig.suptitle(_title(p, f"reconstruction vs distance from the QPC "
                           f"(mouth at x = 0, y = {p.qpc_center_y_nm:g} nm)"), fontsize=10)
    return save_figure(fig, output)


def plot_pldos_consistency(consistency: PLDOSConsistency | None, output, *,
                           reason: str = "", worst: int = 3) -> Path:
    """Input PLDOS beside the PLDOS recomputed from the true, predicted and training-mean
    potentials for one sample (the model's median), and the r_P of every recomputed sample.

    Bottom: every sample's r_P per potential source (points), with a box of the quartiles
    whose whiskers reach the minimum and maximum (nothing hidden as an outlier); each label
    gives the median, the 5th percentile and the minimum, and the ``worst`` samples of the
    model are marked with their sample ids (their maps are not drawn).

    Parameters
    ----------
    consistency : PLDOSConsistency or None
        None: a placeholder figure saying why the check was not run (``reason``).
    output : path-like
    reason : str
    worst : int
        Number of lowest-r_P model samples labelled by id.
    """
    if consistency is None or len(consistency.sample_id) == 0:
        fig, ax = plt.subplots(figsize=(6, 2.5), constrained_layout=True)
        ax.axis("off")
        ax.text(0.5, 0.5, "PLDOS consistency not computed\n" + reason, ha="center",
                va="center", fontsize=10)
        return save_figure(fig, output)
    c = consistency
    frame = _Frame(c.frame["x_nm"], c.frame["y_nm"], c.frame["a"], c.frame["qpc_first_y_site"],
                   c.frame["qpc_width_sites"])
    fig = plt.figure(figsize=(12.6, 7.4), constrained_layout=True)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.05))
    example = c.example
    k = int(np.flatnonzero(c.sample_id == example["sample_id"])[0])
    limit = _pldos_limit(example["stored"])
    panels = (("stored", "input PLDOS (stored)", None),
              ("true_potential", "from the true V", "true_potential"),
              ("model", "from the predicted V", "model"),
              ("training_mean_potential", "from the training-mean V", "training_mean_potential"))
    maps, shown = [], None
    for column, (key, title, source) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
        if source is not None:
            title += f"\nr_P = {c.r_p[source][k, 0]:.4f}"
        shown = frame.draw(fig, ax, example[key], cmap="inferno", vmin=0, vmax=limit,
                           title=title)
        if column:
            ax.set_ylabel("")
        maps.append(ax)
    fig.colorbar(shown, ax=maps, label="PLDOS (meV⁻¹ per site)", shrink=0.85, extend="max")
    ax = fig.add_subplot(grid[1, :])
    data = [c.r_p[source][:, 0] for source in POTENTIAL_SOURCES]

    def label(source, values):
        finite = values[np.isfinite(values)]
        if not len(finite):
            return source.replace("_", " ")
        return (f"{source.replace('_', ' ')}\nmedian {np.median(finite):.3f}, "
                f"5 % {np.percentile(finite, 5):.3f}\nmin {np.min(finite):.3f}")

    positions = np.arange(len(data))
    ax.boxplot([values[np.isfinite(values)] for values in data], positions=positions,
               widths=0.5, orientation="horizontal", whis=(0, 100), showfliers=False)
    jitter = np.random.default_rng(0)
    for y, values in zip(positions, data):
        ax.scatter(values, y + jitter.uniform(-0.15, 0.15, len(values)), s=8, alpha=0.6,
                   color="C1", edgecolors="none")
    model = data[POTENTIAL_SOURCES.index("model")]
    y = POTENTIAL_SOURCES.index("model")
    order = [i for i in np.argsort(model, kind="stable") if np.isfinite(model[i])][:worst]
    for rank, i in enumerate(order):
        ax.annotate(f"sample {int(c.sample_id[i])}: {model[i]:.3f}", (model[i], y),
                    xytext=(4, 14 + 11 * rank), textcoords="offset points", fontsize=7,
                    color="C3", arrowprops=dict(arrowstyle="-", color="C3", lw=0.6))
    ax.set_yticks(positions, [label(s, v) for s, v in zip(POTENTIAL_SOURCES, data)],
                  fontsize=7)
    ax.set_xlabel(f"r_P of recomputed vs stored PLDOS (1), B = {c.fields_T[0]:g} T; "
                  "box: quartiles, whiskers: min and max")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"PLDOS physics consistency: model '{c.model_name}', {c.split} split, "
                 f"{len(c.sample_id)} samples; maps: sample {example['sample_id']} "
                 f"(median model r_P); red: the {len(order)} lowest model r_P", fontsize=10)
    return save_figure(fig, output)
