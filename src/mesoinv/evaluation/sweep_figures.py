"""Figures of sweeps and learning curves, drawn from the tables of :mod:`.sweeps` (numbers
there, pictures here)."""

import math
import textwrap

import numpy as np
import pandas as pd

from ..plotting import plt, save_figure

__all__ = ["plot_sweep", "plot_learning_curve"]


def _label(row: pd.Series, keys) -> str:
    return ", ".join(f"{key.split('.')[-1]} = {row[key]}" for key in keys)


def plot_sweep(table: pd.DataFrame, output, *, override_keys, title: str | None = None):
    """Validation score of every point with its 95 % interval, the chosen point marked.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`mesoinv.evaluation.sweeps.sweep_table`.
    output : path-like
        PNG.
    override_keys : sequence of str
        The table's override columns (the point labels).
    title : str, optional
    """
    table = table.sort_values("index")
    metric = str(table["selection_metric"].iloc[0])
    target = str(table["selection_target"].iloc[0])
    y = np.arange(len(table))[::-1]
    fig, ax = plt.subplots(figsize=(8.0, 1.6 + 0.42 * len(table)), layout="constrained")
    low = table["score"] - table["score_ci_low"]
    high = table["score_ci_high"] - table["score"]
    errors = np.vstack([low.fillna(0).clip(lower=0), high.fillna(0).clip(lower=0)])
    ax.errorbar(table["score"], y, xerr=errors, fmt="o", color="tab:blue", capsize=3,
                label=f"{metric} ({target}), 95 % interval")
    if target == "mean":
        targets = sorted({c.split(":")[0] for c in table.columns
                          if c.endswith(f":{metric}") and not c.startswith("mean:")})
        for k, name in enumerate(targets):
            ax.plot(table[f"{name}:{metric}"], y, linestyle="none",
                    marker="x^vs"[k % 4], alpha=0.45, label=f"{name} (point estimate)")
    chosen = table[table["chosen"].astype(bool)]
    ax.plot(chosen["score"], y[table["chosen"].astype(bool).to_numpy()], "o", ms=13,
            mfc="none", mec="tab:red", mew=2, label="chosen on validation")
    ax.set_yticks(y, [f"{row['point']}: {_label(row, override_keys)}"
                      for _, row in table.iterrows()], fontsize=8)
    better = "higher" if metric.startswith(("r2", "r_p", "fraction")) else "lower"
    ax.set_xlabel(f"validation {metric} of {target} ({better} is better)")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.5 / max(len(table), 1))
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    ax.set_title(title or f"sweep {table['sweep'].iloc[0]}: {len(table)} points, validation "
                          f"split (n = {int(table['n_val'].iloc[0])})", fontsize=10)
    return save_figure(fig, output)


def _error_bars(points: pd.DataFrame) -> np.ndarray:
    return np.vstack([(points["error"] - points["error_ci_low"]).fillna(0).clip(lower=0),
                      (points["error_ci_high"] - points["error"]).fillna(0).clip(lower=0)])


def _y_label(ax, metric: str) -> None:
    higher = metric.startswith(("r2", "r_p", "fraction"))
    ax.set_ylabel(f"1 − {metric}" if higher else metric)


def _fit_note(ax, fit: pd.Series) -> None:
    problem = "" if pd.isna(fit["fit_problem"]) else str(fit["fit_problem"])
    if problem:
        prefix = "note" if fit["form"] else "no fit"
        ax.text(0.02, 0.98, textwrap.fill(f"{prefix}: {problem}", 70), transform=ax.transAxes,
                fontsize=7, va="top", color="tab:red", in_layout=False)


#: How the validation (fitted) and test points are drawn.
_SPLIT_STYLES = (("val", dict(fmt="o", color="tab:blue", label="validation (fitted)")),
                 ("test", dict(fmt="s", mfc="none", color="tab:orange", label="test")))


def _split_points(ax, selected: pd.DataFrame, x: str) -> dict:
    """Draw the val and test points of ``selected`` against column ``x`` (test shifted 4 %
    to the right so the bars do not overlap); returns ``{split: points}`` sorted by x."""
    drawn = {}
    for split, style in _SPLIT_STYLES:
        points = selected[selected["split"] == split].sort_values(x)
        if points.empty:
            continue
        shift = 1.04 if split == "test" else 1.0
        ax.errorbar(points[x].to_numpy(float) * shift, points["error"],
                    yerr=_error_bars(points), capsize=3, **style)
        drawn[split] = points
    return drawn


def _draw_fit(ax, fit: pd.Series, low: float, high: float, far: float, *, span: float,
              fit_label: str, far_label: str) -> None:
    """The fitted law, solid over [low, high] (what was measured) and dashed on to ``far``
    on a grey background labelled "extrapolation" (where ``far`` is beyond ``high``), and the
    fit's note."""
    beyond_data = far > high * (1 + 1e-9)
    if beyond_data:
        ax.axvspan(high, far * span, color="0.92", zorder=0)
        ax.text(math.sqrt(high * far * span), 0.02, "extrapolation", ha="center", va="bottom",
                transform=ax.get_xaxis_transform(), fontsize=8, color="0.35")
    if fit["form"]:
        for start, stop, style, label in ((low, high, "-", fit_label),
                                          (high, far, "--", far_label)):
            if style == "--" and not beyond_data:
                continue
            x = np.geomspace(start, stop, 50)
            ax.plot(x, fit["a"] * x ** (-fit["b"]) + fit["c"], style, color="tab:blue",
                    alpha=0.8, label=label)
    _fit_note(ax, fit)


def _paper_mark(ax, fit: pd.Series, x: float, where: str) -> None:
    """The paper's number at ``x`` (a star; a downward triangle where it is an upper bound)."""
    if np.isfinite(fit["paper_error"]):
        marker = "v" if fit["paper_is_bound"] else "*"
        ax.plot([x], [fit["paper_error"]], marker, ms=13, color="tab:green",
                label=("paper (upper bound)" if fit["paper_is_bound"] else "paper")
                + f", {where}: {fit['paper_error']:.3g}")


def _samples_panel(ax, table: pd.DataFrame, fit: pd.Series) -> None:
    """Error against N for one target (and dataset)."""
    target = fit["target"]
    dataset = fit.get("dataset", "") or ""
    in_curve = (table["target"] == target) & ((table.get("dataset", "") == dataset)
                                              if dataset else True)
    _split_points(ax, table[in_curve], "n_train")
    far = float(fit["extrapolate_to"])
    _draw_fit(ax, fit, float(fit["n_min"]), float(fit["n_max"]), far, span=1.6,
              fit_label=f"fit {str(fit['formula']).split(' (')[0]}: a = {fit['a']:.3g}, "
                        f"b = {fit['b']:.3g}, c = {fit['c']:.3g}",
              far_label=f"extrapolated to N = {int(far):,}: {fit['extrapolated_error']:.3g}")
    _paper_mark(ax, fit, far, f"N = {int(far):,}")
    if np.isfinite(fit["ceiling_error"]):
        ax.axhline(fit["ceiling_error"], color="tab:red", linestyle=":",
                   label=f"Bayes ceiling (test): {fit['ceiling_error']:.3g}")
    ax.set_xlabel("training samples N")
    ax.set_title(f"{target}" + (f" ({dataset})" if dataset else ""), fontsize=10)


def _region_panel(ax, table: pd.DataFrame, fit: pd.Series) -> None:
    """Error against the region's area at one N for one target."""
    target, n = fit["target"], int(fit["n_max"])
    at_n = (table["target"] == target) & (table["n_train"] == n)
    test = _split_points(ax, table[at_n], "region_area_um2").get("test")
    if test is not None and test["ceiling_value"].notna().any():
        ceiling = test["ceiling_value"]
        higher = str(test["metric"].iloc[0]).startswith(("r2", "r_p", "fraction"))
        ax.plot(test["region_area_um2"], 1.0 - ceiling if higher else ceiling, "x:",
                color="tab:red", label="Bayes ceiling of each region (test)")
    far = float(fit["extrapolate_to_area_um2"])
    _draw_fit(ax, fit, float(fit["area_min_um2"]), float(fit["area_max_um2"]), far, span=1.4,
              fit_label=f"fit error = a A^-b: a = {fit['a']:.3g}, b = {fit['b']:.3g}",
              far_label=f"extrapolated to P1's area: {fit['extrapolated_error']:.3g}")
    _paper_mark(ax, fit, far, f"its N = 57,600 (not {n:,})")
    ax.set_xlabel("region area A (µm²)")
    ax.set_title(f"{target}, N = {n:,} training maps per region", fontsize=10)


def plot_learning_curve(table: pd.DataFrame, fits: pd.DataFrame, output, *,
                        title: str | None = None):
    """Error against training samples (log-log), one panel per target (and dataset), and,
    for a curve over several regions, the error against the region's area (log-log), one
    panel per target and training-set size.

    Validation points (filled, with 95 % intervals; the fit is made on them) and test points
    (open squares), the fitted power law (solid over the measured sizes or areas, dashed
    beyond: an extrapolation, on a grey background), the paper's number at the extrapolation
    size or at P1's area (a star; a downward triangle where the paper gives an upper bound)
    and the test split's Bayes ceiling (dotted; per region on the area panels), where there
    are ones. Curves against N of a single size (a region curve's datasets) get no panel:
    their numbers are in the fit table.

    Parameters
    ----------
    table, fits : pandas.DataFrame
        :func:`mesoinv.evaluation.sweeps.learning_curve_table` and
        :func:`~mesoinv.evaluation.sweeps.learning_curve_fits`.
    output : path-like
        PNG.
    """
    axis = fits["axis"] if "axis" in fits else pd.Series("n_train", index=fits.index)
    samples = fits[axis == "n_train"]
    regions = fits[axis == "region_area_um2"]
    drawn = samples[samples["n_points"] >= 2] if len(regions) else samples
    panels = [("n", fit) for _, fit in drawn.iterrows()] + \
             [("area", fit) for _, fit in regions.iterrows()]
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 4.6 * rows),
                             layout="constrained", squeeze=False)
    for ax, (which, fit) in zip(axes.flat, panels):
        (_samples_panel if which == "n" else _region_panel)(ax, table, fit)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _y_label(ax, str(fit["metric"]))
        ax.grid(which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    what = "training samples" + (" and region area" if len(regions) else "")
    fig.suptitle(textwrap.fill(title or f"learning curve {fits['sweep'].iloc[0]}: error "
                                        f"against {what} (fit on validation)",
                               60 * columns), fontsize=11)
    return save_figure(fig, output)
