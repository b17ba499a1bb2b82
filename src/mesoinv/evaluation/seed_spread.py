"""Seed spread: how much a model's headline metric moves when only its training seed changes.

Config ``seed_replicates:`` trains every listed model again once per seed (entries
``<model>_seed<k>``, identical but for ``seed``), each scored on the model's evaluation split
by the ordinary rules. :func:`seed_spread_table` reads the ``metrics.csv`` of a model and of
its replicates and gives, per question (target or criterion) and metric, the value of every
seed, their mean, standard deviation and range, beside the model's own 95 % interval (which
covers the resampling of the evaluated samples, not the training seed). The metrics are the
results page's headline (:data:`mesoinv.evaluation.results_page.FAMILIES`) and, for parameter
models, R² as well.

Written by rule ``seed_spread_table`` (``snakemake seed_spread``) to
``results/reports/seed_spread.{csv,html}``; the results page adds a line per row.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .results_page import family_of
from .tables import criterion_label, format_number, fragment, html_table, percent_cell, \
    target_label

__all__ = ["EXTRA_METRICS", "spread_metrics", "seed_spread_table", "seed_spread_html",
           "seed_spread_markdown", "spread_line", "write_seed_spread"]

#: Metrics reported beside the family's headline (P1 states R² for the parameters too).
EXTRA_METRICS = {"p1_parameters": ("r2",)}

#: Columns of the table (``values`` and ``seeds`` are ``;``-separated, in seed order: the
#: model's own seed first).
COLUMNS = ("model", "kind", "split", "question", "metric", "n_seeds", "seeds", "values",
           "mean", "std", "min", "max", "base_seed", "base_value", "base_ci_low",
           "base_ci_high", "n_inside_base_ci")


def spread_metrics(kind: str) -> tuple[str, ...]:
    """Metric columns tabulated for a model kind: the results page's headline first."""
    family = family_of(kind)
    return (family.headline.column, *EXTRA_METRICS.get(family.key, ()))


def _question(row: pd.Series) -> str:
    for column in ("criterion", "target"):
        if column in row.index and isinstance(row[column], str):
            return row[column]
    return ""


def _model_rows(path) -> dict:
    """``{question: row}`` of the ``predictor == model`` rows of one metrics.csv."""
    table = pd.read_csv(path)
    table = table[table["predictor"] == "model"]
    return {_question(row): row for _, row in table.iterrows()}


def seed_spread_table(models: list[dict], metrics: dict) -> pd.DataFrame:
    """The spread of the headline metrics over training seeds.

    Parameters
    ----------
    models : list of dict
        Per replicated model: ``model`` (its name), ``kind``, ``split`` (evaluated split) and
        ``seeds``: ``[{"seed", "name"}]`` with the model itself first, then its replicates.
    metrics : dict
        ``{entry name: path of its metrics.csv}``.

    Returns
    -------
    pandas.DataFrame
        One row per model, question (target or criterion) and metric (:data:`COLUMNS`):
        ``mean``, ``std`` (sample standard deviation, ddof 1; NaN for one seed), ``min`` and
        ``max`` over the seeds, the model's own value and 95 % interval (``base_*``) and
        how many seeds' values lie inside that interval.

    Raises
    ------
    ValueError
        A replicate whose metrics file lacks a question or metric of the model's.
    """
    rows = []
    for model in models:
        seeds = [s["seed"] for s in model["seeds"]]
        per_seed = [_model_rows(metrics[s["name"]]) for s in model["seeds"]]
        base = per_seed[0]
        for question, base_row in base.items():
            for metric in spread_metrics(model["kind"]):
                if metric not in base_row.index:
                    continue
                values = []
                for seed, rows_of_seed in zip(model["seeds"], per_seed):
                    if question not in rows_of_seed or metric not in rows_of_seed[question]:
                        raise ValueError(f"{metrics[seed['name']]}: no {metric} of "
                                         f"{question or 'the model'} (predictor model)")
                    values.append(float(rows_of_seed[question][metric]))
                array = np.asarray(values)
                low = float(base_row.get(f"{metric}_ci_low", math.nan))
                high = float(base_row.get(f"{metric}_ci_high", math.nan))
                inside = int(np.sum((array >= low) & (array <= high))) \
                    if math.isfinite(low) and math.isfinite(high) else 0
                rows.append({
                    "model": model["model"], "kind": model["kind"], "split": model["split"],
                    "question": question, "metric": metric, "n_seeds": len(values),
                    "seeds": ";".join(str(s) for s in seeds),
                    "values": ";".join(repr(v) for v in values),
                    "mean": float(array.mean()),
                    "std": float(array.std(ddof=1)) if len(values) > 1 else math.nan,
                    "min": float(array.min()), "max": float(array.max()),
                    "base_seed": seeds[0], "base_value": values[0],
                    "base_ci_low": low, "base_ci_high": high, "n_inside_base_ci": inside,
                })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _text(value, percent: bool) -> str:
    """A value as plain text: a fraction in percent to one decimal, else 3 digits."""
    if percent:
        return f"{format_number(float(value) * 100, decimals=1)} %"
    return format_number(value)


def _format(value, percent: bool) -> str:
    return html.escape(_text(value, percent))


def _is_percent(kind: str, metric: str) -> bool:
    family = family_of(kind)
    return metric == family.headline.column and family.headline.percent


def _metric_label(kind: str, metric: str) -> str:
    family = family_of(kind)
    for m in (family.headline, *family.secondary):
        if m.column == metric:
            return m.label
    return metric


def _question_label(kind: str, question: str) -> str:
    if family_of(kind).key == "p2_antidots":
        return criterion_label(question)
    return target_label(question)


def _range(row) -> str:
    """``10.1–10.9 %`` (HTML): the min–max over seeds of one row."""
    percent = _is_percent(row["kind"], row["metric"])
    low, high = (_text(row[k], percent) for k in ("min", "max"))
    return html.escape(f"{low.removesuffix(' %')}–{high}")  # one % sign after the range


def spread_line(row: pd.Series | dict) -> str:
    """``seed spread (3 seeds): 10.1–10.9 %`` for one row of the table (HTML)."""
    return (f'<span class="nowrap">seed spread ({int(row["n_seeds"])} seeds): '
            f"{_range(row)}</span>")


def seed_spread_html(table: pd.DataFrame) -> str:
    """The table as a readable HTML fragment."""
    header = ["model", "question", "metric", "value per seed (the model's own first)",
              "mean ± std", "min–max", "the model (its seed), 95 % interval",
              "seeds inside the interval"]
    rows, classes = [], []
    for _, row in table.iterrows():
        percent = _is_percent(row["kind"], row["metric"])
        seeds = str(row["seeds"]).split(";")
        values = [float(v) for v in str(row["values"]).split(";")]
        per_seed = ", ".join(f"{html.escape(s)}: {_format(v, percent)}"
                             for s, v in zip(seeds, values))
        std = _format(row["std"], percent)
        base = (percent_cell(row["base_value"], row["base_ci_low"], row["base_ci_high"])
                if percent else
                f'{html.escape(format_number(row["base_value"]))} <span class="ci">['
                f'{html.escape(format_number(row["base_ci_low"]))}, '
                f'{html.escape(format_number(row["base_ci_high"]))}]</span>')
        rows.append([
            html.escape(row["model"]),
            html.escape(_question_label(row["kind"], row["question"])),
            html.escape(_metric_label(row["kind"], row["metric"])),
            per_seed,
            f"{_format(row['mean'], percent)} ± {std}",
            _range(row),
            f"{base} (seed {int(row['base_seed'])})",
            f"{int(row['n_inside_base_ci'])} of {int(row['n_seeds'])}",
        ])
        classes.append(["text model", "text", "text", "text", "", "", "", ""])
    body = ("<h3>Seed spread: the same models trained with other seeds</h3>\n"
            "<p>Each model retrained with only its training seed changed "
            "(<code>seed_replicates</code>, config/seeds.yaml), every replicate scored on the "
            "model's evaluation split. The 95 % interval resamples the evaluated samples of "
            "one trained model; the spread over seeds is a second, separate uncertainty. "
            "std: sample standard deviation (n − 1).</p>\n"
            + html_table(header, rows, cell_classes=classes))
    return fragment(body, element_id="mesoinv-seed-spread")


def seed_spread_markdown(table: pd.DataFrame) -> str:
    """The table as the README's Markdown table (README.md, "Seed spread"; tests/test_readme.py
    checks that the README holds exactly this for docs/demo-seed-spread.csv).

    Columns: model, question, metric, the model's own value with its 95 % interval (the value
    the README's demo tables state), the value of every seed, their min–max, and how many
    seeds lie inside the model's interval.
    """
    lines = ["| model | question | metric | the model (seed) [95 % interval] | every seed "
             "| min–max over seeds | seeds inside the interval |",
             "|---|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        percent = _is_percent(row["kind"], row["metric"])
        values = [float(v) for v in str(row["values"]).split(";")]
        low, high = _text(row["base_ci_low"], percent), _text(row["base_ci_high"], percent)
        base = (f"{_text(row['base_value'], percent)} (seed {int(row['base_seed'])}) "
                f"[{low.removesuffix(' %')}, {high.removesuffix(' %')}]")
        every = " / ".join(_text(v, percent).removesuffix(" %") for v in values) + \
            (" %" if percent else "")
        spread = html.unescape(_range(row))
        question = (_question_label(row["kind"], row["question"])
                    if isinstance(row["question"], str) and row["question"] else "—")
        lines.append(f"| `{row['model']}` | {question} | "
                     f"{_metric_label(row['kind'], row['metric'])} | {base} | {every} | "
                     f"{spread} | {int(row['n_inside_base_ci'])} of {int(row['n_seeds'])} |")
    return "\n".join(lines)


def write_seed_spread(models: list[dict], metrics: dict, *, csv_path, html_path) -> pd.DataFrame:
    """Write ``seed_spread.csv`` and its HTML table atomically; return the table."""
    from ..datasets.netcdf import atomic_path

    table = seed_spread_table(models, metrics)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text(seed_spread_html(table), encoding="utf-8")
    return table


if __name__ == "__main__":  # python -m mesoinv.evaluation.seed_spread seed_spread.csv
    import sys

    print(seed_spread_markdown(pd.read_csv(sys.argv[1])))
