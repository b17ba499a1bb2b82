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


def plot_learning_curve(table: pd.DataFrame, fits: pd.DataFrame, output, *,
                        title: str | None = None):
    """Error against training samples (log-log), one panel per target.

    Validation points (filled, with 95 % intervals; the fit is made on them) and test points
    (open squares), the fitted power law (solid over the measured sizes, dashed beyond: an
    extrapolation, on a grey background), the paper's number at the extrapolation size (a
    star; a downward triangle where the paper gives an upper bound) and the test split's Bayes
    ceiling (dotted), where there are ones.

    Parameters
    ----------
    table, fits : pandas.DataFrame
        :func:`mesoinv.evaluation.sweeps.learning_curve_table` and
        :func:`~mesoinv.evaluation.sweeps.learning_curve_fits`.
    output : path-like
        PNG.
    """
    n_panels = len(fits)
    columns = min(n_panels, 2)
    rows = math.ceil(n_panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 4.6 * rows),
                             layout="constrained", squeeze=False)
    for ax, (_, fit) in zip(axes.flat, fits.iterrows()):
        target = fit["target"]
        for split, style in (("val", dict(fmt="o", color="tab:blue", label="validation "
                                                                              "(fitted)")),
                             ("test", dict(fmt="s", mfc="none", color="tab:orange",
                                           label="test"))):
            points = table[(table["split"] == split) & (table["target"] == target)]
            if points.empty:
                continue
            points = points.sort_values("n_train")
            n = points["n_train"].to_numpy(float) * (1.04 if split == "test" else 1.0)
            errors = np.vstack([(points["error"] - points["error_ci_low"]).fillna(0).clip(lower=0),
                                (points["error_ci_high"] - points["error"]).fillna(0)
                                .clip(lower=0)])
            ax.errorbar(n, points["error"], yerr=errors, capsize=3, **style)
        n_max, far = float(fit["n_max"]), float(fit["extrapolate_to"])
        if far > n_max:
            ax.axvspan(n_max, far * 1.6, color="0.92", zorder=0)
            ax.text(math.sqrt(n_max * far * 1.6), 0.02, "extrapolation", ha="center",
                    va="bottom", transform=ax.get_xaxis_transform(), fontsize=8, color="0.35")
        if fit["form"]:
            inside = np.geomspace(float(fit["n_min"]), n_max, 50)
            curve = fit["a"] * inside ** (-fit["b"]) + fit["c"]
            ax.plot(inside, curve, "-", color="tab:blue", alpha=0.8,
                    label=f"fit {fit['formula'].split(' (')[0]}: a = {fit['a']:.3g}, "
                          f"b = {fit['b']:.3g}, c = {fit['c']:.3g}")
            if far > n_max:
                beyond = np.geomspace(n_max, far, 50)
                ax.plot(beyond, fit["a"] * beyond ** (-fit["b"]) + fit["c"], "--",
                        color="tab:blue", alpha=0.8,
                        label=f"extrapolated to N = {int(far):,}: {fit['extrapolated_error']:.3g}")
            problem = "" if pd.isna(fit["fit_problem"]) else str(fit["fit_problem"])
            if problem:
                ax.text(0.02, 0.98, textwrap.fill(f"note: {problem}", 70),
                        transform=ax.transAxes, fontsize=7, va="top", color="tab:red",
                        in_layout=False)
        else:
            ax.text(0.02, 0.98, textwrap.fill(f"no fit: {fit['fit_problem']}", 70),
                    transform=ax.transAxes, fontsize=7, va="top", color="tab:red",
                    in_layout=False)
        if np.isfinite(fit["paper_error"]):
            marker = "v" if fit["paper_is_bound"] else "*"
            ax.plot([far], [fit["paper_error"]], marker, ms=13, color="tab:green",
                    label=("paper (upper bound)" if fit["paper_is_bound"] else "paper")
                    + f", N = {int(far):,}: {fit['paper_error']:.3g}")
        if np.isfinite(fit["ceiling_error"]):
            ax.axhline(fit["ceiling_error"], color="tab:red", linestyle=":",
                       label=f"Bayes ceiling (test): {fit['ceiling_error']:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        metric = fit["metric"]
        higher = metric.startswith(("r2", "r_p", "fraction"))
        ax.set_ylabel(f"1 − {metric}" if higher else metric)
        ax.set_xlabel("training samples N")
        ax.set_title(f"{target}", fontsize=10)
        ax.grid(which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title or f"learning curve {fits['sweep'].iloc[0]}: error against training "
                          "samples (fit on validation)", fontsize=11)
    return save_figure(fig, output)
