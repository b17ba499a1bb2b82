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
from matplotlib import colors

from ...inference.p1_formats import PotentialPredictions
from ...plotting import plt, save_figure
from .consistency import POTENTIAL_SOURCES, PLDOSConsistency, read_stored_pldos
from .metrics import (PREDICTORS, coefficient_errors, example_indices, load_evaluated,
                      local_rms_error_map, per_sample_scores, reconstruction_by_distance,
                      root_mean_square)

__all__ = ["plot_r_p_histogram", "plot_examples", "plot_error_map", "plot_coefficient_errors",
           "plot_r_p_by_distance", "plot_pldos_consistency"]

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

    def draw(self, fig, ax, image, *, cmap, vmin, vmax, label, title=None, leads=True):
        shown = ax.imshow(np.asarray(image).T, origin="lower", extent=self.extent, cmap=cmap,
                          vmin=vmin, vmax=vmax, interpolation="nearest")
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
    left.set_title("model (a best, b median, c worst; dashed: 0.9, 0.99)", fontsize=9)

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
    (true) V, the predicted V on the same symmetric colour scale (per row), and the error
    V_pred − V_true on its own symmetric scale; r_P and the RMSE in the titles.

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
    columns = 4 if pldos is not None else 3
    width = 3.7 * columns * max(1.0, min(1.6, p.shape[0] / max(p.shape[1], 1)))
    fig, axes = plt.subplots(3, columns, figsize=(width, 8.4), constrained_layout=True,
                             squeeze=False)
    for row, (letter, index) in enumerate(picks.items()):
        true = p.potential_true_meV[index]
        predicted = p.potential_meV[index]
        error = predicted - true
        r_p, rmse = values["model"][0][index], values["model"][1][index]
        limit = _symmetric_limit(true, predicted)
        ax = list(axes[row])
        if pldos is not None:
            frame.draw(fig, ax.pop(0), pldos[row], cmap="inferno", vmin=0,
                       vmax=_pldos_limit(pldos[row]), label="PLDOS (meV⁻¹ per site)",
                       title=f"({letter}) input PLDOS, B = {field_T:g} T")
        frame.draw(fig, ax[0], true, cmap="RdBu_r", vmin=-limit, vmax=limit, label="V (meV)",
                   title=f"({letter}) {_EXAMPLE_NAMES[letter]}: expected V, "
                         f"sample {p.sample_id[index]}")
        frame.draw(fig, ax[1], predicted, cmap="RdBu_r", vmin=-limit, vmax=limit,
                   label="V (meV)", title=f"predicted V, r_P = {r_p:.4f}")
        error_limit = _symmetric_limit(error)
        frame.draw(fig, ax[2], error, cmap="PuOr_r", vmin=-error_limit, vmax=error_limit,
                   label="V_pred − V_true (meV)", title=f"error, RMSE = {rmse:.3g} meV")
    axes[0][0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, "P1 Figs. 5/7, best (a), median (b), worst (c) r_P"), fontsize=10)
    return save_figure(fig, output)


def plot_error_map(predictions, output) -> Path:
    """Local RMS error over the samples / rms of the true potentials (P1 Fig. 6).

    Left: the model (:func:`local_rms_error_map`); right: the training-mean baseline on its
    own scale (the zero potential's map is the local rms, ≈ 1). Colour scales run from each
    map's minimum to its maximum (given in the title). QPC and drain marked.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    """
    p = load_evaluated(predictions)
    frame = _Frame.of(p)
    rms_true = root_mean_square(p.potential_true_meV)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (name, predicted) in zip(axes, (("model", p.potential_meV),
                                            ("training-mean potential",
                                             p.training_mean_potential_meV))):
        image = local_rms_error_map(predicted, p.potential_true_meV)
        frame.draw(fig, ax, image, cmap="viridis", vmin=float(np.min(image)),
                   vmax=float(np.max(image)) or 1.0,
                   label="√⟨(V_pred − V_true)²⟩ / rms(V_true) (1)",
                   title=f"{name}: min {np.min(image):.3f}, mean {np.mean(image):.3f}, "
                         f"max {np.max(image):.3f}")
    axes[0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, f"P1 Fig. 6, local RMS error (rms(V_true) = {rms_true:.3g} meV)"),
                 fontsize=10)
    return save_figure(fig, output)


def plot_coefficient_errors(predictions, output, *, table: pd.DataFrame | None = None
                            ) -> Path:
    """MSE of Re C and Im C per mode over σ², at each mode's (q_x, q_y) (P1 Fig. 4).

    Left: real parts, right: imaginary parts (P1 stacks them); one shared colour scale,
    logarithmic when the values span more than a decade. Only the stored half plane is drawn
    (the other half: C(−q) = C(q)*). The cutoff |q| = cutoff_factor/s is drawn when s is
    known. The zero predictor's value is ≈ 1 (⟨(Re C)²⟩ = σ²).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    table : pandas.DataFrame, optional
        :func:`coefficient_errors` of these predictions (recomputed if not given).
    """
    p = load_evaluated(predictions)
    table = coefficient_errors(p) if table is None else table
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 6.2), constrained_layout=True)
    values = np.concatenate([table["mse_imag_over_sigma2"], table["mse_real_over_sigma2"]])
    finite = values[np.isfinite(values)]
    norm = None
    if len(finite):
        low, high = float(finite.min()), float(finite.max())
        if low > 0 and high / low > 10:
            norm = colors.LogNorm(vmin=low, vmax=high)
        else:
            norm = colors.Normalize(vmin=min(low, 0.0), vmax=high if high > 0 else 1.0)
    size = float(np.clip(4000 / max(len(table), 1), 12, 160))
    disorder = p.disorder()
    for ax, part, column in ((axes[0], "Re", "mse_real_over_sigma2"),
                             (axes[1], "Im", "mse_imag_over_sigma2")):
        shown = ax.scatter(table["qx_per_nm"], table["qy_per_nm"], c=table[column], s=size,
                           cmap="viridis", norm=norm, edgecolors="k", linewidths=0.3)
        if disorder is not None:
            angle = np.linspace(-np.pi / 2, np.pi / 2, 200)
            cutoff = disorder.cutoff_per_nm
            ax.plot(cutoff * np.cos(angle), cutoff * np.sin(angle), "k--", lw=0.7,
                    label=f"|q| = {disorder.cutoff_factor:g}/s")
            ax.legend(fontsize=7, loc="upper right")
        reach = max([float(np.max(table["q_per_nm"].to_numpy(), initial=0.0))]
                    + ([disorder.cutoff_per_nm] if disorder is not None else [])) or 1.0
        pad = 0.08 * reach
        ax.set_xlim(-pad, reach + pad)
        ax.set_ylim(-reach - pad, reach + pad)
        ax.set_aspect("equal", adjustable="box")
        ax.axhline(0, color="0.8", lw=0.5, zorder=0)
        ax.set_xlabel("q_x (nm⁻¹)")
        ax.set_ylabel("q_y (nm⁻¹)")
        ax.set_title(f"{part} C(q): ⟨(Δ{part} C)²⟩/σ²", fontsize=9)
        if len(finite):
            fig.colorbar(shown, ax=ax, label=f"⟨(Δ{part} C)²⟩/σ² (1)")
    source = str(table["coefficient_source"].iloc[0]) if len(table) else "no modes"
    sigma = p.coefficient_sigma
    fig.suptitle(_title(p, "P1 Fig. 4, coefficient errors") + f"\ncoefficients: {source}; "
                 f"σ = {sigma:.3g}; zero predictor ≈ 1", fontsize=9)
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
                           reason: str = "") -> Path:
    """Input PLDOS beside the PLDOS recomputed from the true, predicted and training-mean
    potentials for one sample (the model's median), and the r_P distributions of all sources.

    Parameters
    ----------
    consistency : PLDOSConsistency or None
        None: a placeholder figure saying why the check was not run (``reason``).
    output : path-like
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
    fig = plt.figure(figsize=(17, 7.6), constrained_layout=True)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 0.9))
    example = c.example
    k = int(np.flatnonzero(c.sample_id == example["sample_id"])[0])
    limit = _pldos_limit(example["stored"])
    panels = (("stored", "input PLDOS (stored)", None),
              ("true_potential", "from the true V", "true_potential"),
              ("model", "from the predicted V", "model"),
              ("training_mean_potential", "from the training-mean V", "training_mean_potential"))
    for column, (key, title, source) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
        if source is not None:
            title += f", r_P = {c.r_p[source][k, 0]:.4f}"
        frame.draw(fig, ax, example[key], cmap="inferno", vmin=0, vmax=limit,
                   label="PLDOS (meV⁻¹ per site)", title=title)
    ax = fig.add_subplot(grid[1, :])
    data = [c.r_p[source][:, 0] for source in POTENTIAL_SOURCES]
    labels = [f"{source.replace('_', ' ')}\nmedian {np.nanmedian(values):.4f}"
              if np.isfinite(values).any() else source for source, values in
              zip(POTENTIAL_SOURCES, data)]
    positions = np.arange(len(data))
    ax.boxplot([values[np.isfinite(values)] for values in data], positions=positions,
               widths=0.5, orientation="horizontal", showfliers=False)
    jitter = np.random.default_rng(0)
    for y, values in zip(positions, data):
        ax.scatter(values, y + jitter.uniform(-0.15, 0.15, len(values)), s=8, alpha=0.6,
                   color="C1", edgecolors="none")
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel(f"r_P of recomputed vs stored PLDOS (1), B = {c.fields_T[0]:g} T")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"PLDOS physics consistency: model '{c.model_name}', {c.split} split, "
                 f"{len(c.sample_id)} samples; maps: sample {example['sample_id']} "
                 "(median model r_P)", fontsize=10)
    return save_figure(fig, output)
