"""The results page: what the models achieved, beside the skeptic's baselines and the papers.

The report's landing page (``snakemake --report``: ``workflow/report/workflow.rst`` includes
``results/reports/results.html``) and a machine-readable copy of its numbers
(``results/reports/results.json``). Per paper one table: per model and question (target or
criterion) the headline metric with its 95 % interval for the model, for every baseline of the
metric file and for the ceiling where one exists, and the paper's number; then the key figure
and the prediction example of every model, the detailed tables (:mod:`.tables`), the split
sizes and the commands.

Predictors are read from the metric files, never listed here: a baseline added to
``mesoinv evaluate`` appears as one more column without a change to this module. The families
(:data:`FAMILIES`) say only which metric heads each table and which predictors are ceilings.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .intervals import INTERVAL_DESCRIPTION
from .summary import models_summary
from .tables import (criterion_label, format_number, fragment, html_table, interval_cell,
                     metrics_table_html, paper_table_html, percent_cell, predictor_label,
                     pretty_unit, provenance_html, target_label)

__all__ = ["Metric", "Family", "FAMILIES", "FIGURE_CAPTIONS", "RESULTS_FORMAT", "family_of",
           "results_data", "headline_table_html", "results_page_html", "write_results_page"]

#: ``format`` of results.json (and of its committed copy docs/demo-results.json).
RESULTS_FORMAT = "mesoinv-results-1"


@dataclass(frozen=True)
class Metric:
    """A metric of a headline table.

    Attributes
    ----------
    column : str
        Column of ``metrics.csv`` (its interval: ``<column>_ci_low`` / ``_ci_high``).
    label : str
    percent : bool
        A fraction shown in percent.
    higher_is_better : bool
    unit : str
    """

    column: str
    label: str
    percent: bool = False
    higher_is_better: bool = True
    unit: str = ""


@dataclass(frozen=True)
class Family:
    """The models of some kinds, compared in one headline table.

    Attributes
    ----------
    key : str
    paper : str
        ``"P1"`` or ``"P2"``.
    title : str
    kinds : tuple of str
        Model kinds (``config['models'][name]['kind']``).
    question : tuple of str
        Columns that, with the model, name one row (``target``, ``criterion``).
    headline : Metric
    secondary : tuple of Metric
        Shown beneath the headline in each cell.
    ceilings : tuple of str
        Predictors that bound what any model can reach (no model can beat them on average).
    reading : str
        What the table compares (HTML).
    """

    key: str
    paper: str
    title: str
    kinds: tuple
    question: tuple
    headline: Metric
    secondary: tuple = ()
    ceilings: tuple = ()
    reading: str = ""
    paper_note: dict = field(default_factory=dict)


#: P2 Sec. IV: "our diffusion model can reproduce the interference patterns and the positions
#: of the antidots with high accuracy (over 95 percent) for other validation data as well";
#: Sec. III: 80,850 pairs of 60 × 50 sites, 56,595 training and 24,255 validation data.
_P2_PAPER = {"strict": ("> 95 %", "validation data; 80,850 pairs (56,595 training), "
                                  "60 × 50 sites; P2 Sec. III–IV")}

FAMILIES = (
    Family(
        key="p1_parameters", paper="P1",
        title="Sec. III: disorder parameters (s, N_d, rms, ξ) from one PLDOS map",
        kinds=("p1_parameter_cnn",), question=("target",),
        headline=Metric("relative_error_std", "σ/value", percent=True, higher_is_better=False),
        secondary=(Metric("r2", "R²"),),
        ceilings=("potential_posterior",),
        reading="Standard deviation of the relative prediction error (lower is better; P1 "
                "states its σ relative to a typical value), R² beneath. The ceiling is the "
                "Bayes posterior mean from each sample's <em>true potential</em>: no "
                "estimator reading a PLDOS map, a function of the potential, beats it on "
                "average."),
    Family(
        key="p1_potential", paper="P1",
        title="Sec. IV: the disorder potential V(x, y) from one PLDOS map",
        kinds=("p1_fourier_cnn", "p1_encoder_decoder"), question=(),
        headline=Metric("r_p_median", "r_P median"),
        secondary=(Metric("fraction_r_p_above_0_9", "r_P > 0.9", percent=True),
                   Metric("relative_rmse", "RMSE / rms(V)", higher_is_better=False)),
        reading="Median over the test maps of r_P, P1's Eq. (6): the Pearson correlation of "
                "predicted and true potential over the pixels of one map (higher is better); "
                "beneath, the fraction of maps above 0.9 and the RMSE relative to the rms of "
                "the true potentials."),
    Family(
        key="p2_antidots", paper="P2",
        title="Antidot positions from the magnetoconductance G(B)",
        kinds=("p2_diffusion",), question=("criterion",),
        headline=Metric("accuracy", "accuracy", percent=True),
        secondary=(Metric("mean_position_error_sites", "position error",
                          higher_is_better=False, unit="sites"),
                   Metric("pixel_correlation_mean", "pixel r")),
        reading="Fraction of generated images whose two antidots both lie within the "
                "tolerance of the true ones (higher is better); beneath, the mean position "
                "error over images with two holes and the pixel correlation of generated and "
                "true LDOS. Strict is P2's criterion; the others count images related by a "
                "symmetry of the wire (which give the same trace) as right.",
        paper_note=_P2_PAPER),
)

#: Inside the Snakemake report (9.x), the workflow description sits in a narrow column
#: (``max-w-lg``) beside the rule graph, in a pane that centres its content vertically (the top
#: of a tall page cannot be scrolled to). These rules, active only where the page is included,
#: give the results the pane's width (no wider: flex items default to their content's width,
#: so a wide table would push the page past the window), start them at the top and put the
#: rule graph below.
REPORT_LAYOUT = """
div.h-screen:has(#mesoinv-results) { align-items: flex-start; justify-content: flex-start; }
div.gap-3:has(#mesoinv-results) { flex-wrap: wrap; min-width: 0; max-width: 100%; }
div.gap-3:has(#mesoinv-results) > div:has(#mesoinv-results) { flex: 1 1 100%; min-width: 0;
  max-width: 100%; }
div.prose:has(#mesoinv-results) { max-width: 100%; }
"""

#: What the figures on the page show (the report's captions give the details).
FIGURE_CAPTIONS = {
    "predicted_vs_true.png": "Predicted against true values on the test split, one panel per "
                             "target, with y = x and the training-split mean (the baseline).",
    "r_p_histogram.png": "P1 Fig. 8: r_P of every test map, for the model and for the "
                         "training-mean potential.",
    "accuracy.png": "Antidot accuracy of the model and of every baseline with 95 % Wilson "
                    "intervals, and the position errors.",
    "prediction-example.png": "What <code>mesoinv predict --figure</code> draws for one sample "
                              "of the evaluation split.",
}


def family_of(kind: str) -> Family:
    """The :class:`Family` of a model kind."""
    for family in FAMILIES:
        if kind in family.kinds:
            return family
    raise ValueError(f"model kind {kind!r} is in no results family; add it to "
                     "mesoinv.evaluation.results_page.FAMILIES")


# -- the numbers ---------------------------------------------------------------------------
def _number(value, digits: int = 6):
    """A JSON number rounded to ``digits`` significant digits; None for NaN."""
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    if not math.isfinite(value):
        return None
    if value == int(value) and abs(value) < 2 ** 53:
        return int(value)
    return float(f"{value:.{digits}g}")


def _rows(table: pd.DataFrame) -> list[dict]:
    """Metric rows as {identity..., units, metrics: {name: {value, ci_low, ci_high}}}."""
    ids = [c for c in ("split", "target", "criterion", "predictor") if c in table.columns]
    skip = {"model", "baseline", "command", "model_kind", "units", *ids}
    bounds = {c for c in table.columns if c.endswith(("_ci_low", "_ci_high"))}
    out = []
    for _, row in table.iterrows():
        entry = {c: row[c] for c in ids}
        if "units" in table.columns and isinstance(row["units"], str):
            entry["units"] = row["units"]
        metrics = {}
        for column in table.columns:
            if column in skip or column in bounds:
                continue
            value = row[column]
            if isinstance(value, str):
                metrics[column] = {"value": value}
                continue
            if _number(value) is None:
                continue
            metric = {"value": _number(value)}
            low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
            if _number(low) is not None and _number(high) is not None:
                metric.update(ci_low=_number(low), ci_high=_number(high))
            metrics[column] = metric
        entry["metrics"] = metrics
        out.append(entry)
    return out


def _paper_rows(paper: pd.DataFrame) -> list[dict]:
    keep = [c for c in paper.columns if c.startswith("paper_") or c in ("target", "method")]
    return [{c: _number(row[c]) for c in keep if _number(row[c]) is not None}
            for _, row in paper.iterrows()]


def _split_sizes(manifest_path) -> dict:
    manifest = json.loads(Path(manifest_path).read_text())
    return {split: entry["samples"] for split, entry in sorted(manifest["splits"].items())}


def results_data(models: dict, metrics: dict, papers: dict, manifests: dict) -> dict:
    """The headline numbers as plain data (``results.json``).

    Parameters
    ----------
    models : dict
        ``{name: {"kind", "dataset", "split"}}`` in the configuration's order.
    metrics : dict
        ``{name: path of metrics.csv}``.
    papers : dict
        ``{name: path of paper_comparison.csv}`` (models that have one).
    manifests : dict
        ``{dataset: path of manifest.json}``.

    Returns
    -------
    dict
        ``format``, ``intervals``, ``datasets`` (split sizes), ``models`` (per model: kind,
        paper, family, dataset, split, headline metric, every metric row with its interval,
        and the paper's numbers).
    """
    out = {"format": RESULTS_FORMAT, "intervals": INTERVAL_DESCRIPTION,
           "datasets": {name: _split_sizes(path) for name, path in manifests.items()},
           "models": {}}
    for name, entry in models.items():
        family = family_of(entry["kind"])
        table = pd.read_csv(metrics[name])
        model = {"kind": entry["kind"], "paper": family.paper, "family": family.key,
                 "dataset": entry["dataset"], "split": entry["split"],
                 "headline": family.headline.column, "rows": _rows(table)}
        if name in papers:
            model["paper_comparison"] = _paper_rows(pd.read_csv(papers[name]))
        out["models"][name] = model
    return out


# -- the headline tables -------------------------------------------------------------------
def _predictor_order(table: pd.DataFrame, family: Family) -> list[str]:
    """``model`` first, the baselines in their order in the files, the ceilings last."""
    seen = list(dict.fromkeys(table["predictor"]))
    baselines = [p for p in seen if p != "model" and p not in family.ceilings]
    ceilings = [p for p in seen if p in family.ceilings]
    return (["model"] if "model" in seen else []) + baselines + ceilings


def _metric_html(row: pd.Series | None, metric: Metric, *, sub: bool = False) -> str:
    if row is None or metric.column not in row.index:
        return "–"
    low, high = row.get(f"{metric.column}_ci_low"), row.get(f"{metric.column}_ci_high")
    if metric.percent:
        cell = percent_cell(row[metric.column], low, high)
    else:
        cell = interval_cell(row[metric.column], low, high, unit=metric.unit)
    if sub:  # the label with its value on one line, the interval after it
        if '<span class="nowrap">' not in cell:
            return f'<div class="sub">{html.escape(metric.label)} {cell}</div>'
        cell = cell.replace('<span class="nowrap">',
                            f'<span class="nowrap">{html.escape(metric.label)} ', 1)
        return f'<div class="sub">{cell}</div>'
    return cell


def _better_or_equal(baseline, model, metric: Metric) -> bool:
    try:
        baseline, model = float(baseline), float(model)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(baseline) and math.isfinite(model)):
        return False
    return baseline >= model if metric.higher_is_better else baseline <= model


def _paper_cell(family: Family, model: str, key: dict, paper: pd.DataFrame) -> tuple[str, str]:
    """(HTML, tooltip) of the paper's number for one row."""
    if family.paper_note:
        note = family.paper_note.get(key.get("criterion"))
        if note is None:
            return "–", ""
        return (f'{html.escape(note[0])}<div class="sub">{html.escape(note[1])}</div>', note[1])
    if paper is None or paper.empty:
        return "–", ""
    rows = paper[paper["model"] == model] if "model" in paper.columns else paper
    if "target" in key and "target" in rows.columns:
        rows = rows[rows["target"] == key["target"]]
    if rows.empty:
        return "–", ""
    r = rows.iloc[0]
    source = str(r.get("paper_source", ""))
    if "paper_relative_percent" in r.index:
        sigma = (f"σ = {format_number(r.get('paper_error_std'), 2)} "
                 f"{pretty_unit(r.get('paper_units'))}")
        return (f"{format_number(r.get('paper_relative_percent'), decimals=1)} %"
                f'<div class="sub">{html.escape(sigma.strip())}</div>', source)
    statement = str(r.get("paper_statement", ""))
    data = (f"{format_number(r.get('paper_n_samples'))} samples, "
            f"{r.get('paper_sites', '')} sites")
    return (f'{html.escape(statement)}<div class="sub">{html.escape(data)}</div>', source)


def headline_table_html(family: Family, table: pd.DataFrame,
                        paper: pd.DataFrame | None = None, spread: dict | None = None) -> str:
    """One family's headline table: per model and question, every predictor's headline metric.

    Parameters
    ----------
    family : Family
    table : pandas.DataFrame
        The metric rows of the family's models (``metrics.csv`` concatenated).
    paper : pandas.DataFrame, optional
        Their ``paper_comparison.csv`` rows.
    spread : dict, optional
        ``{(model, question): HTML}``: the seed spread of the headline, shown beneath the
        model's cell (:func:`mesoinv.evaluation.seed_spread.spread_line`).
    """
    predictors = _predictor_order(table, family)
    header = ["model", *[{"target": "target", "criterion": "criterion"}[q]
                         for q in family.question], "split (n)"]
    titles = [""] * len(header)
    for p in predictors:
        header.append(predictor_label(p) if p != "model" else "the model")
        description = table.loc[table["predictor"] == p, "baseline"].dropna() \
            if "baseline" in table.columns else pd.Series(dtype=object)
        titles.append(str(description.iloc[0]) if len(description) else "")
    header.append(f"{family.paper} (paper)")
    titles.append("the paper's number for the same question (its data differ: see below)")
    rows, classes, row_classes = [], [], []
    keys = ["model", *[q for q in family.question if q in table.columns]]
    previous_model = None
    for key_values, group in table.groupby(keys, sort=False):
        key = dict(zip(keys, key_values if isinstance(key_values, tuple) else (key_values,)))
        by_predictor = {p: r for p, r in zip(group["predictor"], (r for _, r in group.iterrows()))}
        model_row = by_predictor.get("model")
        model = key["model"]
        cells = [html.escape(model if model != previous_model else "")]
        cell_classes = ["text model" if model != previous_model else "text"]
        for q in family.question:
            value = key.get(q)
            label = target_label(value) if q == "target" else criterion_label(value)
            unit = pretty_unit(group["units"].iloc[0]) if "units" in group.columns else ""
            cells.append(html.escape(label + (f" ({unit})" if q == "target" and unit
                                              and not family.headline.percent else "")))
            cell_classes.append("text")
        first = group.iloc[0]
        n = first.get("n_traces", first.get("n"))
        cells.append(html.escape(f"{first.get('split', '–')} ({format_number(n)})"))
        cell_classes.append("text nowrap")
        for p in predictors:
            row = by_predictor.get(p)
            cell = _metric_html(row, family.headline)
            cell += "".join(_metric_html(row, m, sub=True) for m in family.secondary
                            if row is not None and m.column in row.index)
            cells.append(cell)
            if p == "model":
                question = next((key[q] for q in family.question if q in key), "")
                if spread and (model, question) in spread:
                    cells[-1] += f'<div class="sub">{spread[(model, question)]}</div>'
                cell_classes.append("model")
            elif p in family.ceilings:
                cell_classes.append("ceiling")
            elif row is not None and model_row is not None and _better_or_equal(
                    row.get(family.headline.column), model_row.get(family.headline.column),
                    family.headline):
                cell_classes.append("beaten")
            else:
                cell_classes.append("")
        paper_html, _ = _paper_cell(family, model, key, paper)
        cells.append(paper_html)
        cell_classes.append("paper")
        rows.append(cells)
        classes.append(cell_classes)
        row_classes.append("first" if model != previous_model else "")
        previous_model = model
    return html_table(header, rows, header_titles=titles, row_classes=row_classes,
                      cell_classes=classes)


def _legend(table: pd.DataFrame, family: Family) -> str:
    items = []
    for p in _predictor_order(table, family):
        text = table.loc[table["predictor"] == p, "baseline"].dropna() \
            if "baseline" in table.columns else pd.Series(dtype=object)
        if p == "model" or not len(text):
            continue
        role = "ceiling" if p in family.ceilings else "baseline"
        items.append(f"<dt>{html.escape(predictor_label(p))} ({role}):</dt>"
                     f"<dd>{html.escape(str(text.iloc[0]))}</dd>")
    return f'<dl class="legend">{"".join(items)}</dl>' if items else ""


# -- the page ------------------------------------------------------------------------------
def _image(path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _figures_html(name: str, entry: dict, figures: list) -> str:
    parts = []
    for path in figures:
        caption = FIGURE_CAPTIONS.get(Path(path).name, html.escape(Path(path).name))
        parts.append(f'<figure><img src="{_image(path)}" alt="{html.escape(Path(path).name)} '
                     f'of {html.escape(name)}"><figcaption><code>{html.escape(Path(path).name)}'
                     f"</code>: {caption}</figcaption></figure>")
    return (f"<h4>{html.escape(name)} <span class=\"sub\">({html.escape(entry['kind'])}, "
            f"dataset <code>{html.escape(entry['dataset'])}</code>, {html.escape(entry['split'])}"
            f" split)</span></h4>\n" f'<div class="figures">{"".join(parts)}</div>')


def _datasets_html(data: dict, models: dict) -> str:
    used = {}
    for name, entry in models.items():
        used.setdefault(entry["dataset"], []).append(name)
    rows = []
    for dataset, sizes in data["datasets"].items():
        rows.append([f"<code>{html.escape(dataset)}</code>",
                     *(format_number(sizes.get(s)) for s in ("train", "val", "test")),
                     html.escape(", ".join(used.get(dataset, [])) or "–")])
    return html_table(["dataset", "train", "val", "test", "models"], rows,
                      cell_classes=[["text", "", "", "", "text"]] * len(rows))


def _spread_lines(path, family: Family) -> dict:
    """``{(model, question): HTML}`` of the headline rows of a seed_spread.csv."""
    from .seed_spread import spread_line

    if path is None:
        return {}
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    table = table[table["metric"] == family.headline.column]
    return {(row["model"], "" if not family.question or pd.isna(row["question"])
             else row["question"]): spread_line(row) for _, row in table.iterrows()}


def results_page_html(models: dict, metrics: dict, papers: dict, figures: dict,
                      data: dict, seed_spread=None) -> str:
    """The results page as an HTML fragment (:func:`mesoinv.evaluation.tables.fragment`).

    Parameters
    ----------
    models, metrics, papers : dict
        As for :func:`results_data`.
    figures : dict
        ``{name: [PNG paths]}``: the key figure(s) and the prediction example of each model.
    data : dict
        :func:`results_data`'s result (split sizes).
    seed_spread : path, optional
        ``seed_spread.csv`` (config ``seed_replicates``): a line "seed spread (n seeds):
        min–max" beneath each replicated model's headline.
    """
    body = ['<h2>Results</h2>',
            "<p>Every model on its evaluation split (test, or val where P2 reports val), the "
            "baselines a skeptic tries first on the same samples, the ceiling where one is "
            "known, and the paper's number. In brackets: "
            f"{html.escape(INTERVAL_DESCRIPTION)}. <span class=\"nowrap\" style=\"background:"
            "#fee2e2\">&nbsp;Red&nbsp;</span>: a baseline at least as good as the model "
            "(point estimates). Every figure with its caption, the dataset tables and the "
            "sample figures are in the menu on the left.</p>"]
    for paper in ("P1", "P2"):
        families = [f for f in FAMILIES if f.paper == paper
                    and any(family_of(e["kind"]) is f for e in models.values())]
        if not families:
            continue
        body.append("<h3>" + {"P1": "P1: Percebois &amp; Weinmann, PRB 104, 075422 (2021)",
                              "P2": "P2: Yokoi et al. (2025), arXiv 2506.08617"}[paper]
                    + "</h3>")
        for family in families:
            names = [n for n, e in models.items() if family_of(e["kind"]) is family]
            table = models_summary([metrics[n] for n in names])
            paper_files = [papers[n] for n in names if n in papers]
            paper_table = models_summary(paper_files)
            body.append(f"<h4>{html.escape(family.title)}</h4>")
            body.append(f'<p class="sub">{family.reading}</p>')
            body.append(headline_table_html(family, table, paper_table,
                                            _spread_lines(seed_spread, family)))
            body.append(_legend(table, family))
            if not paper_table.empty:
                body.append("<details><summary>Against the paper, in full (its data: "
                            "see the last column)</summary>\n"
                            + paper_table_html(paper_table) + "</details>")
            body.append("<details><summary>Every metric and predictor</summary>\n"
                        + metrics_table_html(table) + "</details>")
            body.append(provenance_html(table))
    body.append("<h3>Figures</h3>")
    body.append("<p>The key figure and a prediction example of every model; the other "
                "figures with their captions are under <em>Models</em> in the menu.</p>")
    for name, entry in models.items():
        if figures.get(name):
            body.append(_figures_html(name, entry, figures[name]))
    body.append("<h3>Provenance</h3>")
    body.append("<p>Split sizes (samples per split; a pure function of the configuration) "
                "and the models trained on each dataset:</p>")
    body.append(_datasets_html(data, models))
    body.append("<p>The same numbers, machine-readable: <code>results/reports/results.json"
                "</code>; every metric at full precision: <code>results/evaluation/&lt;model"
                "&gt;/metrics.csv</code>.</p>")
    return fragment(f"<style>{REPORT_LAYOUT}</style>\n" + "\n".join(body),
                    element_id="mesoinv-results")


def write_results_page(models: dict, *, metrics: dict, papers: dict, figures: dict,
                       manifests: dict, html_path, json_path, seed_spread=None) -> dict:
    """Write ``results.html`` and ``results.json`` atomically; return the JSON's data
    (``seed_spread``: path of seed_spread.csv, shown on the page where given)."""
    from ..datasets.netcdf import atomic_path

    data = results_data(models, metrics, papers, manifests)
    page = results_page_html(models, metrics, papers, figures, data, seed_spread)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return data
