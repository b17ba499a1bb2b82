"""Figures of the evaluation of P1 parameter models (P1 Sec. III, Fig. 3).

Predicted against true values (:func:`plot_predicted_vs_true`), the histograms of relative
errors normalised by the number of test samples (:func:`plot_error_histograms`), and P1
Fig. 3: ΔN_d/N_d against Δs/s coloured by the relative error of the rms that the predicted
(s, N_d) give through P1 Eq. 5, with the line on which that error vanishes to first order
(:func:`plot_error_correlation`); for models without both s and N_d, the same view of the
targets they have (:func:`plot_pair_correlation`).

Each reads a predictions file (``mesoinv-predictions-1``) and writes one PNG atomically.
"""

import math
from pathlib import Path

import numpy as np
from matplotlib import colors

from ...inference.p1_formats import Predictions, read_predictions
from ...plotting import plt, save_figure
from .metrics import (error_statistics, relative_errors, require_truth, rms_compensation_slope,
                      rms_relative_error, target_symbol)

__all__ = ["plot_error_correlation", "plot_pair_correlation", "plot_predicted_vs_true",
           "plot_error_histograms"]

_UNIT_LABELS = {"cm-2": "cm⁻²", "nm-1": "nm⁻¹", "per_nm": "nm⁻¹", "1": "1"}


def _unit_label(units: str) -> str:
    return _UNIT_LABELS.get(units, units)


def _n_bins(n: int) -> int:
    return int(np.clip(round(2 * math.sqrt(max(n, 1))), 3, 60))


def _finite(*arrays):
    keep = np.ones(len(arrays[0]), bool)
    for a in arrays:
        keep &= np.isfinite(a)
    return [a[keep] for a in arrays]


def _title(p: Predictions, what: str) -> str:
    return f"{what}: model '{p.model_name}', {p.split} split"


def _fig3_layout(figsize=(7.6, 7.0)):
    """Main scatter axes with marginal axes on top and right, a corner axes and a colour bar."""
    fig = plt.figure(figsize=figsize, constrained_layout=True)
    grid = fig.add_gridspec(2, 3, width_ratios=(4, 1.3, 0.15), height_ratios=(1.3, 4))
    main = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=main)
    right = fig.add_subplot(grid[1, 1], sharey=main)
    corner = fig.add_subplot(grid[0, 1])
    colour_axes = fig.add_subplot(grid[1, 2])
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    return fig, main, top, right, corner, colour_axes


def _marginal(ax, values, n_total, orientation, label):
    """Histogram of values (%) normalised by the number of samples, P1 Fig. 3 style."""
    values = values[np.isfinite(values)]
    if len(values):
        ax.hist(values, bins=_n_bins(len(values)), weights=np.full(len(values), 1 / n_total),
                orientation=orientation, color="C1", alpha=0.85)
    if orientation == "vertical":
        ax.set_ylabel(f"counts / N ({label})", fontsize=8)
    else:
        ax.set_xlabel(f"counts / N ({label})", fontsize=8)


def _relative_percent(p: Predictions, target: str) -> np.ndarray:
    return 100.0 * relative_errors(p.predicted[target], p.true[target])


def plot_error_correlation(predictions_path, output) -> Path:
    """P1 Fig. 3 for a model that predicts both ``dopant_distance`` and ``dopant_density``.

    Scatter of ΔN_d/N_d (y, %) against Δs/s (x, %) for every sample, coloured by the
    relative error (%) of the rms (P1 Eq. 5) that the predicted (s, N_d) give against the rms
    of the true (s, N_d) (:func:`rms_relative_error`; diverging colour map centred on 0);
    the dashed line on which the predicted rms equals the true one to first order,
    linearised at the mean true s (:func:`rms_compensation_slope`); marginal histograms of
    both relative errors normalised by the number of samples (top and right); in the
    corner, the histogram of the rms relative error from Eq. 5 at the predicted (s, N_d).
    Departure from P1: P1's inset shows the errors of its second CNN, which predicts the rms
    directly; the corner's title says so.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with ``dopant_distance``, ``dopant_density`` and their truths.
    output : path-like
        PNG to write (atomically).

    Raises
    ------
    ValueError
        No truth in the file, or s and N_d are not both predicted with their truth (use
        :func:`evaluate_parameter_model`, which falls back to the other targets' view).
    """
    p = read_predictions(predictions_path)
    require_truth(p)
    if not {"dopant_distance", "dopant_density"} <= set(p.evaluated):
        raise ValueError(f"{p.path}: P1 Fig. 3 needs predicted and true dopant_distance and "
                         f"dopant_density (evaluated targets: {p.evaluated})")
    s_true, nd_true = p.true["dopant_distance"], p.true["dopant_density"]
    s_pred, nd_pred = p.predicted["dopant_distance"], p.predicted["dopant_density"]
    ds = 100.0 * relative_errors(s_pred, s_true)
    dn = 100.0 * relative_errors(nd_pred, nd_true)
    drms = 100.0 * rms_relative_error(s_true, nd_true, s_pred, nd_pred, p.metadata)
    n = p.n

    fig, main, top, right, corner, colour_axes = _fig3_layout()
    x, y, c = _finite(ds, dn, drms)
    halfrange = float(np.max(np.abs(c))) if len(c) and np.max(np.abs(c)) > 0 else 1.0
    norm = colors.CenteredNorm(vcenter=0.0, halfrange=halfrange)
    points = main.scatter(x, y, c=c, cmap="RdBu_r", norm=norm, s=9, edgecolors="none")
    fig.colorbar(points, cax=colour_axes).set_label(
        "Δrms/rms (%), Eq. 5 at predicted (s, N_d)", fontsize=8)

    text = [f"N = {n} samples ({p.split} split)"]
    s_valid = s_true[np.isfinite(s_true) & (s_true > 0)]
    if len(s_valid):
        s_mean = float(np.mean(s_valid))
        slope = rms_compensation_slope(s_mean, p.metadata)
        xs = np.array(main.get_xlim()) if len(x) else np.array([-1.0, 1.0])
        main.plot(xs, slope * xs, "k--", lw=1.0,
                  label=f"predicted rms = true rms\n(linearised at s̄ = {s_mean:.1f} nm, "
                        f"slope {slope:.2f})")
        main.set_xlim(*xs)
        main.legend(loc="lower right", fontsize=7)
    if len(x) >= 2 and np.std(x) > 0 and np.std(y) > 0:
        text.append(f"corr(Δs/s, ΔN_d/N_d) = {np.corrcoef(x, y)[0, 1]:.2f}")
    main.axhline(0, color="0.7", lw=0.5, zorder=0)
    main.axvline(0, color="0.7", lw=0.5, zorder=0)
    main.set_xlabel("Δs/s (%), s = dopant distance (nm)")
    main.set_ylabel("ΔN_d/N_d (%), N_d = dopant density (cm⁻²)")
    main.text(0.02, 0.98, "\n".join(text), transform=main.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))

    _marginal(top, ds, n, "vertical", "Δs/s")
    _marginal(right, dn, n, "horizontal", "ΔN_d/N_d")
    _marginal(corner, drms, n, "vertical", "Δrms/rms")
    corner.set_xlabel("Δrms/rms (%)", fontsize=8)
    corner.tick_params(labelsize=7)
    corner.set_title("Δrms from Eq. 5 at the predicted (s, N_d)\n(P1's inset: its rms CNN's "
                     "errors)", fontsize=7)
    top.set_title(_title(p, "P1 Fig. 3, relative errors"), fontsize=9)
    return save_figure(fig, output)


def plot_pair_correlation(p: Predictions, output) -> Path:
    """Fig. 3-style view for targets other than (s, N_d): relative errors of two targets
    against each other with marginal histograms (no colour, no compensation line), or for a
    single target its relative error against its true value.

    Parameters
    ----------
    p : Predictions
        A predictions file as read by :func:`mesoinv.inference.p1_formats.read_predictions`,
        with at least one truth.
    output : path-like
        PNG to write (atomically).
    """
    evaluated = p.evaluated
    preferred = [t for t in ("rms", "correlation_length") if t in evaluated]
    pair = preferred if len(preferred) == 2 else evaluated[:2]
    fig, main, top, right, corner, colour_axes = _fig3_layout()
    colour_axes.axis("off")
    text = [f"N = {p.n} samples ({p.split} split)"]
    if len(pair) == 2:
        tx, ty = pair
        ex, ey = _relative_percent(p, tx), _relative_percent(p, ty)
        x, y = _finite(ex, ey)
        main.scatter(x, y, s=9, color="C0", edgecolors="none")
        main.set_xlabel(f"Δ{target_symbol(tx)}/{target_symbol(tx)} (%), {tx} "
                        f"({_unit_label(p.units[tx])})")
        main.set_ylabel(f"Δ{target_symbol(ty)}/{target_symbol(ty)} (%), {ty} "
                        f"({_unit_label(p.units[ty])})")
        _marginal(top, ex, p.n, "vertical", f"Δ{target_symbol(tx)}/{target_symbol(tx)}")
        _marginal(right, ey, p.n, "horizontal", f"Δ{target_symbol(ty)}/{target_symbol(ty)}")
        if len(x) >= 2 and np.std(x) > 0 and np.std(y) > 0:
            text.append(f"correlation = {np.corrcoef(x, y)[0, 1]:.2f}")
        main.axhline(0, color="0.7", lw=0.5, zorder=0)
        main.axvline(0, color="0.7", lw=0.5, zorder=0)
        name = f"{tx} and {ty}"
    else:
        (t,) = pair
        error = _relative_percent(p, t)
        x, y = _finite(p.true[t], error)
        main.scatter(x, y, s=9, color="C0", edgecolors="none")
        main.set_xlabel(f"true {target_symbol(t)} ({_unit_label(p.units[t])})")
        main.set_ylabel(f"Δ{target_symbol(t)}/{target_symbol(t)} (%)")
        _marginal(top, p.true[t], p.n, "vertical", f"true {target_symbol(t)}")
        _marginal(right, error, p.n, "horizontal", f"Δ{target_symbol(t)}/{target_symbol(t)}")
        main.axhline(0, color="0.7", lw=0.5, zorder=0)
        name = t
    corner.axis("off")
    corner.text(0.0, 0.5, "P1 Fig. 3 needs s and N_d;\nthis model predicts\n"
                + ", ".join(p.targets), fontsize=7, va="center")
    main.text(0.02, 0.98, "\n".join(text), transform=main.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
    top.set_title(_title(p, f"relative errors of {name}"), fontsize=9)
    return save_figure(fig, output)


def plot_predicted_vs_true(predictions_path, output) -> Path:
    """Predicted against true value, one panel per target with a stored truth.

    Each panel: the samples, the line y = x, the training-split mean as a horizontal
    dashed line (the baseline's prediction), and R² and σ of the error (target units).

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with at least one ``<target>_true``.
    output : path-like
        PNG to write (atomically).
    """
    p = read_predictions(predictions_path)
    require_truth(p)
    targets = p.evaluated
    fig, axes = plt.subplots(1, len(targets), figsize=(4.3 * len(targets), 4.2),
                             constrained_layout=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        true, pred = p.true[target], p.predicted[target]
        units = _unit_label(p.units[target])
        stats = error_statistics(pred, true)
        x, y = _finite(true, pred)
        ax.scatter(x, y, s=7, alpha=0.6, edgecolors="none", label="samples")
        values = np.concatenate([x, y])
        if len(values):
            low, high = float(values.min()), float(values.max())
            pad = 0.03 * (high - low) if high > low else max(abs(low) * 0.05, 1e-12)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "k-", lw=0.8,
                    label="y = x")
        if target in p.training_mean:
            ax.axhline(p.training_mean[target], color="C3", ls="--", lw=1.0,
                       label=f"training mean {p.training_mean[target]:.4g} {units}")
        ax.set_xlabel(f"true {target_symbol(target)} ({units})")
        ax.set_ylabel(f"predicted {target_symbol(target)} ({units})")
        ax.set_title(f"{p.long_names.get(target, target)}", fontsize=9)
        ax.text(0.03, 0.97, f"R² = {stats['r2']:.4f}\nσ = {stats['error_std']:.3g} {units}\n"
                f"σ_rel = {100 * stats['relative_error_std']:.2f} %\nN = {stats['n']}",
                transform=ax.transAxes, va="top", fontsize=8,
                bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(_title(p, "predicted vs true"), fontsize=10)
    return save_figure(fig, output)


def _shared_edges(model, baseline) -> np.ndarray:
    """Bin edges with the model's resolution, wide enough for the baseline (≤ 200 bins)."""
    model, baseline = model[np.isfinite(model)], baseline[np.isfinite(baseline)]
    edges = np.histogram_bin_edges(model if len(model) else baseline,
                                   bins=_n_bins(max(len(model), 1)))
    width = edges[1] - edges[0]
    if len(baseline):
        low = min(edges[0], float(baseline.min()))
        high = max(edges[-1], float(baseline.max()))
        count = int(math.ceil((high - low) / width))
        if count > 200:
            count, width = 200, (high - low) / 200
        edges = low + width * np.arange(max(count, 1) + 1)
    return edges


def plot_error_histograms(predictions_path, output) -> Path:
    """Histograms of relative errors (pred − true)/true in %, one panel per target.

    Normalised like P1 Fig. 3: counts divided by the number of samples. The baseline's
    (training-split mean) relative errors are drawn as a step outline on the same bins; σ of
    the relative errors of both is in the legend.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with at least one ``<target>_true``.
    output : path-like
        PNG to write (atomically).
    """
    p = read_predictions(predictions_path)
    require_truth(p)
    targets = p.evaluated
    fig, axes = plt.subplots(1, len(targets), figsize=(4.3 * len(targets), 3.8),
                             constrained_layout=True, squeeze=False)
    n = max(p.n, 1)
    for ax, target in zip(axes[0], targets):
        model = _relative_percent(p, target)
        mean = p.training_mean.get(target, np.nan)
        baseline = 100.0 * relative_errors(np.full_like(p.true[target], mean), p.true[target])
        edges = _shared_edges(model, baseline)
        symbol = target_symbol(target)
        for values, style in (
                (model, dict(color="C1", alpha=0.85, histtype="stepfilled", label="model")),
                (baseline, dict(color="k", histtype="step", lw=1.0,
                                label="baseline (training mean)"))):
            finite = values[np.isfinite(values)]
            sigma = float(np.std(finite)) if len(finite) else np.nan
            style["label"] += f", σ = {sigma:.2f} %"
            if len(finite):
                ax.hist(finite, bins=edges, weights=np.full(len(finite), 1 / n), **style)
            else:
                ax.plot([], [], **{k: v for k, v in style.items()
                                   if k in ("color", "label")})
        ax.set_xlabel(f"Δ{symbol}/{symbol} (%), {target} in {_unit_label(p.units[target])}")
        ax.set_ylabel("counts / N_test (1)")
        ax.legend(fontsize=7)
    fig.suptitle(_title(p, f"relative errors, N = {p.n}"), fontsize=10)
    return save_figure(fig, output)
