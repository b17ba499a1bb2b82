"""Readable HTML of the metric tables: units in headers, sensible digits, no NaN, provenance apart.

The metric files of ``mesoinv evaluate`` (``metrics.csv``, ``paper_comparison.csv``) keep every
number at full precision under snake_case names, for scripts. The report shows the same rows
for a reader: a header names the quantity and its unit (``σ (nm)``, ``accuracy (%)``), a
number has three significant digits and its 95 % interval beside it (``0.585 [0.514,
0.641]``), a quantity of a large unit is shown in a scaled unit (``N_d (10¹² cm⁻²)``), a cell
without a value shows a dash, and the commands that made the numbers go to a collapsible
provenance section (``<details>``) instead of a column.

Columns are handled generically: a column of a new metric appears with its name made
readable, its interval merged in when ``<name>_ci_low`` / ``<name>_ci_high`` exist; a new
predictor is one more row. :data:`COLUMNS` only improves the headers of the known ones.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Column", "COLUMNS", "PREDICTOR_LABELS", "STYLE", "predictor_label", "target_label",
           "criterion_label", "pretty_unit", "format_number", "format_interval", "interval_cell",
           "percent_cell", "html_table", "metrics_table_html", "paper_table_html",
           "provenance_html", "fragment"]

#: Identity columns of a metric row, in the order they are shown.
ID_COLUMNS = ("model", "split", "target", "criterion", "predictor")
#: Text columns that describe rather than measure: shown in the legend and the provenance.
TEXT_COLUMNS = ("baseline", "command", "model_kind", "units")


@dataclass(frozen=True)
class Column:
    """How a metric column is shown.

    Attributes
    ----------
    label : str
        The header (the quantity's symbol or short name).
    unit : str
        ``""`` (dimensionless), ``"%"`` (a fraction shown in percent), ``"target"`` (the unit
        of the row's target, from the ``units`` column) or a fixed unit such as ``"sites"``.
    help : str
        Shown as the header's tooltip.
    """

    label: str
    unit: str = ""
    help: str = ""


COLUMNS = {
    "n": Column("n", "", "samples (P1) or traces (P2) evaluated"),
    "error_std": Column("σ", "target", "standard deviation of the prediction error"),
    "error_mean": Column("bias", "target", "mean prediction error (predicted − true)"),
    "rmse": Column("RMSE", "target", "root mean squared error"),
    "mae": Column("MAE", "target", "mean absolute error"),
    "relative_error_std": Column("σ/value", "%",
                                 "standard deviation of the error relative to the true value"),
    "r2": Column("R²", "", "coefficient of determination on the evaluated samples"),
    "true_mean": Column("mean true value", "target"),
    "training_mean": Column("training-split mean", "target"),
    "n_train": Column("training samples"),
    "n_r_p_undefined": Column("maps with r_P undefined", "",
                              "r_P is undefined for a constant prediction"),
    "r_p_mean": Column("r_P mean", "", "Pearson correlation over the pixels of one map (P1 Eq. 6)"),
    "r_p_median": Column("r_P median"),
    "r_p_q05": Column("r_P 5th percentile"),
    "r_p_min": Column("r_P min"),
    "r_p_max": Column("r_P max"),
    "fraction_r_p_above_0_9": Column("r_P > 0.9", "%", "fraction of maps"),
    "fraction_r_p_above_0_99": Column("r_P > 0.99", "%", "fraction of maps"),
    "relative_rmse": Column("RMSE / rms(V)", "", "RMSE divided by the rms of the true potentials"),
    "rms_true": Column("rms of the true V", "target"),
    "outside_eq1_relative_rms": Column("V outside Eq. 1 (relative rms)", "",
                                       "part of the prediction no Eq. 1 potential can have"),
    "nx_sites": Column("sites along x"),
    "ny_sites": Column("sites along y"),
    "dopant_distance_nm": Column("s", "nm"),
    "tolerance_sites": Column("tolerance", "sites", "both antidots within this distance"),
    "n_traces": Column("traces"),
    "samples_per_trace": Column("draws per trace"),
    "accuracy": Column("accuracy", "%", "fraction of draws with both antidots within tolerance"),
    "accuracy_std_over_draws": Column("accuracy spread over draws", "%"),
    "n_configurations": Column("placements", "", "distinct placements among the traces"),
    "accuracy_cluster_ci_low": Column("accuracy: 95 % low, over placements", "%",
                                      "cluster bootstrap: the realisations of a placement "
                                      "resampled together"),
    "accuracy_cluster_ci_high": Column("accuracy: 95 % high, over placements", "%",
                                       "cluster bootstrap: the realisations of a placement "
                                       "resampled together"),
    "accuracy_minus_lookup": Column("minus the 1-NN lookup", "%",
                                    "paired over the same traces; interval over placements"),
    "oracle_any_draw_correct": Column("any draw correct (oracle)", "%",
                                      "needs the truth to pick the draw: not a result"),
    "fraction_two_antidots_found": Column("images with two holes", "%"),
    "mean_position_error_sites": Column("position error", "sites",
                                        "mean over images with two holes"),
    "pixel_correlation_mean": Column("pixel correlation", "", "generated against true LDOS"),
    "ldos_mean_ratio": Column("mean LDOS generated / true"),
    "ldos_mse_per_t2": Column("LDOS MSE", "t⁻²"),
    "sampler": Column("sampler"),
    "steps": Column("steps"),
    "guidance_scale": Column("γ", "", "classifier-free guidance scale"),
    # paper_comparison.csv of the parameter models
    "relative_error_std_percent": Column("σ/value", "%·100"),
    "error_std_over_mean_percent": Column("σ / mean true value", "%·100"),
    "baseline_relative_error_std_percent": Column("training mean: σ/value", "%·100"),
    "baseline_error_std": Column("training mean: σ", "target"),
    # paper_comparison.csv of the potential models
    "training_mean_r_p_median": Column("training mean: r_P median"),
}

#: Short names of the predictors of the metric files; an unknown one shows its own name.
PREDICTOR_LABELS = {
    "model": "model",
    "training_mean": "training mean",
    "potential_posterior": "Bayes ceiling (true potential)",
    "ridge_power_spectrum": "ridge on the power spectrum",
    "nearest_training_map": "nearest training map (1-NN)",
    "training_mean_potential": "training-mean potential",
    "zero_potential": "V = 0",
    "model_consensus": "model, consensus of its draws",
    "nearest_training_trace": "nearest training trace (1-NN)",
    "nearest_traces_consensus": "k nearest training traces, consensus",
    "direct_placement_model": "direct placement model",
    "direct_placement_mlp": "direct placement MLP",
    "unconditional": "same model at γ = 0",
    "most_frequent_placement": "most frequent placement",
}

_TARGETS = {"dopant_distance": "s", "dopant_density": "N_d", "rms": "rms",
            "correlation_length": "ξ", "potential": "V(x, y)"}
_CRITERIA = {"strict": "strict (P2's criterion)", "mirrors": "modulo mirrors",
             "classes": "modulo the wire's symmetries"}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: Style of the tables, scoped to ``.mesoinv`` (the report's own styles reset headings and
#: tables; its typography plugin is switched off with ``not-prose``).
STYLE = """
.mesoinv { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px;
  line-height: 1.4; color: #1f2937; max-width: min(1400px, 100%); box-sizing: border-box; }
.mesoinv .table-wrap { max-width: 100%; overflow-x: auto; }
.mesoinv h2 { font-size: 1.5em; font-weight: 700; margin: 0.4em 0 0.3em; }
.mesoinv h3 { font-size: 1.2em; font-weight: 700; margin: 1.2em 0 0.3em;
  border-bottom: 1px solid #d1d5db; }
.mesoinv h4 { font-size: 1.05em; font-weight: 600; margin: 0.9em 0 0.3em; }
.mesoinv p { margin: 0.3em 0 0.6em; max-width: 75em; }
.mesoinv table { border-collapse: collapse; margin: 0.3em 0 0.4em; font-size: 13px; }
.mesoinv th, .mesoinv td { border-bottom: 1px solid #e5e7eb; padding: 3px 8px;
  vertical-align: top; text-align: right; }
.mesoinv th { background: #f3f4f6; text-align: center; font-weight: 600; }
.mesoinv td.text, .mesoinv th.text { text-align: left; }
.mesoinv tr.first td { border-top: 2px solid #9ca3af; }
.mesoinv tr.model td, .mesoinv td.model { font-weight: 600; background: #eff6ff; }
.mesoinv td.ceiling { background: #f0fdf4; }
.mesoinv td.paper { background: #fefce8; text-align: left; min-width: 12em; }
.mesoinv td.beaten { background: #fee2e2; }
.mesoinv .ci { color: #4b5563; font-weight: 400; white-space: nowrap; }
.mesoinv .sub { color: #4b5563; font-size: 0.92em; font-weight: 400; }
.mesoinv .nowrap { white-space: nowrap; }
.mesoinv .legend { font-size: 0.92em; color: #374151; margin: 0.2em 0 0.8em; }
.mesoinv .legend dt { font-weight: 600; float: left; clear: left; margin-right: 0.4em; }
.mesoinv .legend dd { margin: 0 0 0.1em 0; overflow-wrap: anywhere; }
.mesoinv details { margin: 0.4em 0; }
.mesoinv summary { cursor: pointer; font-weight: 600; }
.mesoinv code, .mesoinv pre { font-family: ui-monospace, monospace; font-size: 0.92em; }
.mesoinv pre { white-space: pre-wrap; word-break: break-all; background: #f9fafb;
  padding: 4px 6px; margin: 0.2em 0 0.5em; }
.mesoinv .figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.mesoinv figure { flex: 1 1 520px; max-width: 100%; margin: 0.3em 0; }
.mesoinv figure img { width: 100%; height: auto; border: 1px solid #e5e7eb; }
.mesoinv figcaption { font-size: 0.92em; color: #374151; }
.mesoinv ul { list-style: disc; padding-left: 1.4em; }
.mesoinv a { color: #1d4ed8; text-decoration: underline; }
"""


def predictor_label(predictor: str) -> str:
    """The readable name of a predictor (``nearest_training_trace`` → ``nearest training
    trace (1-NN)``); an unknown predictor's name with spaces for underscores."""
    return PREDICTOR_LABELS.get(predictor, str(predictor).replace("_", " "))


def target_label(target: str) -> str:
    """The paper's symbol of a target (s, N_d, rms, ξ, V(x, y)), else its name."""
    return _TARGETS.get(target, str(target).replace("_", " "))


def criterion_label(criterion: str) -> str:
    return _CRITERIA.get(criterion, str(criterion).replace("_", " "))


def pretty_unit(unit) -> str:
    """``cm-2`` → ``cm⁻²``, ``t-1`` → ``t⁻¹``; other units unchanged; NaN → ``""``."""
    if not isinstance(unit, str):
        return ""
    out = []
    for part in unit.split():
        base = part.rstrip("-0123456789")
        exponent = part[len(base):]
        out.append(base + exponent.translate(_SUPERSCRIPT) if exponent else part)
    return " ".join(out)


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _decimals(value: float, digits: int) -> int:
    """Decimals that give ``value`` ``digits`` significant digits (≥ 0)."""
    if value == 0:
        return digits - 1
    return max(digits - 1 - math.floor(math.log10(abs(value))), 0)


def _power_of_ten(exponent: int) -> str:
    return "10" + str(exponent).translate(_SUPERSCRIPT)


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def format_number(value, digits: int = 3, *, decimals: int | None = None) -> str:
    """A number for a reader: ``digits`` significant digits, thousands separators, a true
    minus sign; ``2.54·10¹¹`` outside [10⁻³, 10⁵); an integer as an integer; ``–`` for a
    missing or non-finite value.

    Parameters
    ----------
    value : float or None
    digits : int
        Significant digits (ignored where ``decimals`` is given).
    decimals : int, optional
        Fixed number of decimals.
    """
    if not _finite(value):
        return "–"
    value = float(value)
    if decimals is not None:
        return _fixed(value, decimals)
    if value == int(value) and abs(value) < 1e5:
        return _fixed(value, 0)
    exponent = math.floor(math.log10(abs(value))) if value else 0
    if exponent >= 5 or exponent < -3:
        mantissa = value / 10.0 ** exponent
        return f"{_fixed(mantissa, digits - 1)}·{_power_of_ten(exponent)}"
    return _fixed(value, _decimals(value, digits))


def _interval_decimals(value: float, low: float, high: float, digits: int) -> int:
    """Decimals shared by a value and its interval: the value's ``digits`` significant digits,
    but no more than give the interval's half-width two significant digits."""
    half = abs(high - low) / 2
    by_value = _decimals(value, digits)
    if half <= 0:
        return by_value
    by_width = max(1 - math.floor(math.log10(half)), 0)
    return min(by_value, by_width)


def format_interval(value, low=None, high=None, *, scale: float = 1.0, digits: int = 3,
                    unit: str = "") -> tuple[str, str]:
    """A value and its 95 % interval as two strings: ``("10.4 %", "[9.6, 11.1]")``.

    The three numbers share their decimals (:func:`_interval_decimals`); the interval is
    ``""`` when either end is missing.
    """
    if not _finite(value):
        return "–", ""
    value, suffix = float(value) * scale, f" {unit}" if unit else ""
    if not (_finite(low) and _finite(high)):
        return format_number(value, digits) + suffix, ""
    low, high = float(low) * scale, float(high) * scale
    magnitude = max(abs(value), abs(low), abs(high))
    if magnitude != 0 and not 1e-3 <= magnitude < 1e5:
        exponent = math.floor(math.log10(magnitude))
        factor = 10.0 ** exponent
        decimals = _interval_decimals(value / factor, low / factor, high / factor, digits)
        return (f"{_fixed(value / factor, decimals)}·{_power_of_ten(exponent)}{suffix}",
                f"[{_fixed(low / factor, decimals)}, {_fixed(high / factor, decimals)}]"
                f"·{_power_of_ten(exponent)}")
    decimals = _interval_decimals(value, low, high, digits)
    return (_fixed(value, decimals) + suffix,
            f"[{_fixed(low, decimals)}, {_fixed(high, decimals)}]")


def interval_cell(value, low=None, high=None, **kwargs) -> str:
    """The HTML of :func:`format_interval`: the value, and the interval in grey."""
    text, interval = format_interval(value, low, high, **kwargs)
    out = f'<span class="nowrap">{html.escape(text)}</span>'
    if interval:
        out += f' <span class="ci">{html.escape(interval)}</span>'
    return out


def html_table(header, rows, *, header_titles=None, row_classes=None, cell_classes=None) -> str:
    """A plain ``<table>``: ``header`` is escaped text, ``rows`` hold ready HTML cells.

    ``cell_classes[i][j]`` and ``row_classes[i]`` are CSS classes (``text``, ``model``, …).
    The table sits in a ``div.table-wrap`` that scrolls sideways on its own when the table is
    wider than the pane, so the page around it never does.
    """
    titles = header_titles or [""] * len(header)
    head = "".join(f'<th title="{html.escape(t)}">{html.escape(h)}</th>' if t
                   else f"<th>{html.escape(h)}</th>" for h, t in zip(header, titles))
    body = []
    for i, row in enumerate(rows):
        classes = cell_classes[i] if cell_classes else [""] * len(row)
        cells = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
                        for v, c in zip(row, classes))
        row_class = row_classes[i] if row_classes else ""
        body.append(f'<tr class="{row_class}">{cells}</tr>' if row_class else f"<tr>{cells}</tr>")
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(body) + "\n</tbody></table></div>")


# -- the detailed metric tables ----------------------------------------------------------
def _column(name: str) -> Column:
    return COLUMNS.get(name, Column(name.replace("_", " ")))


def _interval_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns
            if f"{c}_ci_low" in table.columns and f"{c}_ci_high" in table.columns]


def _constant(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) == len(series) and values.nunique() <= 1


def _row_scale(row: pd.Series) -> tuple[float, str]:
    """(factor, unit) for the target-unit columns of one row: a large or small unit is scaled
    by a power of ten, ``N_d`` in 10¹² cm⁻² rather than 1.06e+12 cm-2."""
    unit = pretty_unit(row.get("units"))
    reference = next((abs(float(row[c])) for c in ("true_mean", "rms_true", "error_std", "rmse")
                      if c in row.index and _finite(row[c]) and float(row[c]) != 0), None)
    if reference is None or 1e-2 <= reference < 1e4:
        return 1.0, unit
    exponent = math.floor(math.log10(reference))
    return 10.0 ** -exponent, f"{_power_of_ten(exponent)} {unit}".strip()


def _header(name: str, unit_of_table: str | None) -> tuple[str, str]:
    """(header text, tooltip) of a metric column."""
    column = _column(name)
    if column.unit in ("%", "%·100"):
        return f"{column.label} (%)", column.help
    if column.unit == "target":
        unit = unit_of_table if unit_of_table is not None else "unit of the target"
        return (f"{column.label} ({unit})" if unit else column.label), column.help
    return (f"{column.label} ({column.unit})" if column.unit else column.label), column.help


def _percent(value: float) -> str:
    """A percentage to one decimal; 0 and 100 without."""
    return _fixed(value, 0 if value in (0.0, 100.0) else 1)


def percent_cell(value, low=None, high=None, *, scale: float = 100.0, sign: bool = True) -> str:
    """A fraction (``scale`` 100) or a percentage (``scale`` 1) and its interval, in percent
    (the ``%`` sign after the value unless ``sign`` is false: the header says it)."""
    if not _finite(value):
        return "–"
    out = f'<span class="nowrap">{_percent(float(value) * scale)}{" %" if sign else ""}</span>'
    if _finite(low) and _finite(high):
        out += (f' <span class="ci">[{_percent(float(low) * scale)}, '
                f"{_percent(float(high) * scale)}]</span>")
    return out


def _plain(value) -> str:
    """A setting (1.5 sites, γ 2, 30 steps) as written: no padding zeros."""
    if isinstance(value, str):
        return value
    if not _finite(value):
        return "–"
    return f"{float(value):,.6g}".replace("-", "−")


def _cell(row: pd.Series, name: str, interval: bool, scale: float) -> str:
    column = _column(name)
    value = row.get(name)
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return html.escape(str(value))
    low = row.get(f"{name}_ci_low") if interval else None
    high = row.get(f"{name}_ci_high") if interval else None
    if column.unit in ("%", "%·100"):
        return percent_cell(value, low, high, scale=100.0 if column.unit == "%" else 1.0,
                            sign=False)
    if name in _SETTINGS:
        return html.escape(_plain(value))
    return interval_cell(value, low, high, scale=scale if column.unit == "target" else 1.0)


#: Columns that hold a setting rather than a measured number (shown as written).
_SETTINGS = {"n", "n_train", "n_traces", "n_configurations", "samples_per_trace", "steps", "guidance_scale",
             "tolerance_sites", "nx_sites", "ny_sites", "dopant_distance_nm",
             "n_r_p_undefined"}


def metrics_table_html(table: pd.DataFrame) -> str:
    """Every metric row of some models as one readable table.

    One row per (model, target or criterion, predictor), the model's own row first and in
    bold; a metric with ``_ci_low``/``_ci_high`` columns shows its interval in the same cell.
    Columns with one value for the whole table are stated once above it; the predictors'
    descriptions (column ``baseline``) are a legend below it; the commands are not shown (see
    :func:`provenance_html`).

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``metrics.csv`` files (:func:`mesoinv.evaluation.summary.models_summary`).
    """
    if table.empty:
        return "<p>No models of this kind in the configuration.</p>"
    table = table.dropna(axis=1, how="all").reset_index(drop=True)
    intervals = _interval_columns(table)
    bounds = {f"{c}_ci_low" for c in intervals} | {f"{c}_ci_high" for c in intervals}
    ids = [c for c in ID_COLUMNS if c in table.columns]
    metric_columns = [c for c in table.columns
                      if c not in ids and c not in bounds and c not in TEXT_COLUMNS]
    constant = [c for c in metric_columns if _constant(table[c]) and c not in intervals]
    shown = [c for c in metric_columns if c not in constant]
    units = table["units"].dropna().unique() if "units" in table.columns else []
    unit_of_table = pretty_unit(units[0]) if len(units) == 1 else None
    if unit_of_table is not None and _row_scale(table.iloc[0])[0] != 1.0:
        unit_of_table = None  # scaled per row: the unit goes into the target's cell

    # shown: the id columns that vary (split, model are context when constant)
    id_shown = [c for c in ids if not (c == "split" and _constant(table[c]))]
    header, titles = [], []
    for c in id_shown:
        header.append({"model": "model", "split": "split", "target": "target",
                       "criterion": "criterion", "predictor": "predictor"}[c])
        titles.append("")
    for c in shown:
        text, tip = _header(c, unit_of_table)
        header.append(text)
        titles.append(tip)

    predictors = table["predictor"] if "predictor" in table.columns else \
        pd.Series("model", index=table.index)
    order = table.assign(_model_first=predictors != "model")
    keys = [c for c in ("model", "target", "criterion") if c in table.columns]
    order["_pos"] = range(len(order))
    group_position = order.groupby(keys, sort=False, dropna=False)["_pos"].transform("min") \
        if keys else order["_pos"]
    order = order.assign(_group=group_position).sort_values(
        ["_group", "_model_first", "_pos"], kind="stable")

    rows, row_classes, cell_classes = [], [], []
    previous = None
    for _, row in order.iterrows():
        scale, unit = _row_scale(row)
        group = tuple(row.get(k) for k in keys)
        cells, classes = [], []
        for c in id_shown:
            value = row.get(c)
            if c == "target":
                text = target_label(value)
                if unit and unit_of_table is None:
                    text += f" ({unit})"
            elif c == "criterion":
                text = criterion_label(value)
            elif c == "predictor":
                text = predictor_label(value)
            else:
                text = "" if (c == "model" and group == previous) else str(value)
            cells.append(html.escape(text))
            classes.append("text")
        for c in shown:
            cells.append(_cell(row, c, c in intervals, scale))
            classes.append("")
        is_model = row.get("predictor") == "model"
        row_classes.append(" ".join(filter(None, ["model" if is_model else "",
                                                  "first" if group != previous else ""])))
        previous = group
        rows.append(cells)
        cell_classes.append(classes)

    context = []
    for c in (["split"] if "split" in ids and "split" not in id_shown else []) + constant:
        value = table[c].iloc[0]
        text, _ = _header(c, unit_of_table)
        shown_value = _plain(value) if c in _SETTINGS or isinstance(value, str) \
            else format_number(value)
        context.append(f"{html.escape(text)}: {html.escape(shown_value)}")
    out = []
    if context:
        out.append(f'<p class="sub">Same for every row: {"; ".join(context)}.</p>')
    out.append(html_table(header, rows, header_titles=titles, row_classes=row_classes,
                          cell_classes=cell_classes))
    out.append(_legend(table))
    return "\n".join(out)


def _legend(table: pd.DataFrame) -> str:
    """The predictors' descriptions (the ``baseline`` column), one line each."""
    if "predictor" not in table.columns or "baseline" not in table.columns:
        return ""
    items = []
    for predictor, group in table.groupby("predictor", sort=False):
        text = group["baseline"].dropna()
        if len(text) and str(text.iloc[0]).strip():
            items.append(f"<dt>{html.escape(predictor_label(predictor))}:</dt>"
                         f"<dd>{html.escape(str(text.iloc[0]))}</dd>")
    return f'<dl class="legend">{"".join(items)}</dl>' if items else ""


def provenance_html(table: pd.DataFrame, title: str = "Provenance: the commands") -> str:
    """A collapsible ``<details>`` with the distinct commands of some metric rows, per model."""
    if table.empty or "command" not in table.columns:
        return ""
    parts = []
    for model, group in table.groupby("model", sort=False):
        commands = [c for c in group["command"].dropna().unique() if str(c).strip()]
        kind = group["model_kind"].dropna().unique() if "model_kind" in group.columns else []
        head = f"<code>{html.escape(str(model))}</code>"
        if len(kind):
            head += f" ({html.escape(str(kind[0]))})"
        parts.append(head + "".join(f"<pre>{html.escape(str(c))}</pre>" for c in commands))
    return (f"<details><summary>{html.escape(title)}</summary>\n" + "\n".join(parts)
            + "\n</details>")


# -- the paper comparisons ---------------------------------------------------------------
def paper_table_html(paper: pd.DataFrame) -> str:
    """``paper_comparison.csv`` rows (P1 Sec. III or IV) as a readable table: ours beside the
    paper's, with the data each was measured on."""
    if paper.empty:
        return ""
    paper = paper.reset_index(drop=True)
    if "target" in paper.columns:  # parameter models: σ of each target
        header = ["model", "target", "n", "σ (ours)", "σ/typical value (ours, %)",
                  "σ/value, training mean (%)", "σ (P1)", "σ/typical value (P1, %)",
                  "P1's statement"]
        rows = []
        for _, r in paper.iterrows():
            unit, paper_unit = pretty_unit(r.get("units")), pretty_unit(r.get("paper_units"))
            rows.append([
                html.escape(str(r["model"])),
                html.escape(target_label(r["target"])),
                format_number(r.get("n")),
                html.escape(f"{format_number(r.get('error_std'))} {unit}".strip()),
                format_number(r.get("error_std_over_mean_percent"), decimals=1),
                format_number(r.get("baseline_relative_error_std_percent"), decimals=1),
                html.escape(f"{format_number(r.get('paper_error_std'), 2)} {paper_unit}".strip()),
                format_number(r.get("paper_relative_percent"), decimals=1),
                html.escape(str(r.get("paper_source", ""))),
            ])
        classes = [["text", "text", "", "", "model", "", "", "paper", "text"]] * len(rows)
        return html_table(header, rows, cell_classes=classes)
    header = ["model", "method", "n (train / test)", "sites", "r_P median", "r_P 5th pct",
              "r_P min", "r_P > 0.9 (%)", "r_P > 0.99 (%)", "RMSE / rms(V)",
              "training mean: r_P median", "P1's statement", "P1's data"]
    rows = []
    for _, r in paper.iterrows():
        rows.append([
            html.escape(str(r["model"])),
            html.escape(str(r.get("method", ""))),
            f"{format_number(r.get('n_train'))} / {format_number(r.get('n'))}",
            html.escape(str(r.get("sites", ""))),
            format_number(r.get("r_p_median")),
            format_number(r.get("r_p_q05")),
            format_number(r.get("r_p_min")),
            format_number(100 * float(r.get("fraction_r_p_above_0_9", np.nan)), decimals=1),
            format_number(100 * float(r.get("fraction_r_p_above_0_99", np.nan)), decimals=1),
            format_number(r.get("relative_rmse")),
            format_number(r.get("training_mean_r_p_median"), 2),
            html.escape(str(r.get("paper_statement", ""))),
            html.escape(f"{format_number(r.get('paper_n_samples'))} samples, "
                        f"{format_number(r.get('paper_n_test'))} test, "
                        f"{r.get('paper_sites', '')} sites; {r.get('paper_source', '')}"),
        ])
    classes = [["text", "text", "", "", "model", "", "", "", "", "", "", "paper", "text"]] \
        * len(rows)
    return html_table(header, rows, cell_classes=classes)


def fragment(body: str, *, element_id: str | None = None) -> str:
    """An HTML fragment that renders alone (UTF-8 declared, its style inside) and inside the
    report's page (scoped style, ``not-prose``)."""
    attribute = f' id="{element_id}"' if element_id else ""
    return (f'<meta charset="utf-8">\n<div{attribute} class="mesoinv not-prose">\n'
            f"<style>{STYLE}</style>\n{body}\n</div>\n")
