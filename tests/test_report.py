"""The report's results page and readable tables, from small metric files written here.

What a reader of ``snakemake --report`` sees first (``mesoinv.evaluation.results_page``) and
how every table shows its numbers (``mesoinv.evaluation.tables``): units in the headers,
intervals beside values, no NaN, no command column, new predictors without code changes, the
paper's number beside ours; and the landing mechanism itself (``workflow/report/workflow.rst``
rendered the way Snakemake renders it). The real-browser check of a full report is
``tests/test_workflow.py::test_report_opens_on_the_results_in_a_browser``.
"""

import html
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mesoinv.evaluation.results_page import (FAMILIES, RESULTS_FORMAT, family_of,
                                             write_results_page)
from mesoinv.evaluation.summary import models_summary, write_table
from mesoinv.evaluation.tables import (format_interval, format_number, metrics_table_html,
                                       pretty_unit)

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "/opt/venv/bin/mesoinv evaluate predictions.nc --dataset test.nc"


def _text(page: str) -> str:
    """The visible text of an HTML page (no tags, no embedded images)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", page)))


def _png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype("uint8")).save(
        path)
    return path


def _parameter_metrics(model="p1_s_nd"):
    rows = []
    for target, units, scale in (("dopant_distance", "nm", 50.0),
                                 ("dopant_density", "cm-2", 1e12)):
        for predictor, sigma, r2, text in (
                ("model", 0.10, 0.585, ""), ("training_mean", 0.17, -0.001, "training mean"),
                ("my_new_baseline", 0.08, 0.70, "a baseline this module never heard of"),
                ("potential_posterior", 0.03, 0.974, "Bayes posterior mean")):
            rows.append({"model": model, "split": "test", "target": target, "units": units,
                         "predictor": predictor, "n": 361, "error_std": sigma * scale,
                         "relative_error_std": sigma, "relative_error_std_ci_low": sigma - 0.01,
                         "relative_error_std_ci_high": sigma + 0.01, "r2": r2,
                         "r2_ci_low": r2 - 0.05, "r2_ci_high": r2 + 0.05,
                         "true_mean": scale, "n_train": 3252,
                         "mae": np.nan if predictor == "training_mean" else sigma * scale,
                         "baseline": text or np.nan, "command": COMMAND})
    return pd.DataFrame(rows)


def _parameter_paper(model="p1_s_nd"):
    return pd.DataFrame([
        {"model": model, "split": "test", "target": "dopant_distance", "symbol": "s", "n": 361,
         "error_std": 5.59, "units": "nm", "relative_error_std_percent": 10.4,
         "error_std_over_mean_percent": 10.1, "paper_error_std": 2.3, "paper_units": "nm",
         "paper_typical_value": 50.0, "paper_relative_percent": 4.6,
         "baseline_relative_error_std_percent": 16.7, "baseline_error_std": 8.7,
         "paper_source": "P1 Sec. III: σ_s = 2.3 nm"},
        {"model": model, "split": "test", "target": "dopant_density", "symbol": "N_d",
         "n": 361, "error_std": 2.5e11, "units": "cm-2", "relative_error_std_percent": 27.4,
         "error_std_over_mean_percent": 23.6, "paper_error_std": 1.8e11,
         "paper_units": "cm-2", "paper_typical_value": 1e12, "paper_relative_percent": 18.0,
         "baseline_relative_error_std_percent": 28.0, "baseline_error_std": 2.6e11,
         "paper_source": "P1 Sec. III: σ_Nd = 1.8e11 cm^-2"}])


def _potential_metrics(model="p1_potential"):
    rows = []
    for predictor, median, undefined in (("model", 0.969, 0),
                                         ("training_mean_potential", -0.016, 0),
                                         ("zero_potential", np.nan, 425)):
        rows.append({"model": model, "split": "test", "target": "potential", "units": "meV",
                     "predictor": predictor, "n": 425, "n_r_p_undefined": undefined,
                     "r_p_median": median, "r_p_median_ci_low": median - 0.002,
                     "r_p_median_ci_high": median + 0.001,
                     "fraction_r_p_above_0_9": 0.995 if predictor == "model" else 0.0,
                     "relative_rmse": 0.25 if predictor == "model" else 1.0, "rmse": 0.25,
                     "model_kind": "p1_encoder_decoder",
                     "baseline": np.nan if predictor == "model" else f"{predictor} baseline",
                     "command": COMMAND})
    return pd.DataFrame(rows)


def _potential_paper(model="p1_potential"):
    return pd.DataFrame([{
        "model": model, "model_kind": "p1_encoder_decoder", "method": "encoder-decoder",
        "split": "test", "n": 425, "n_train": 3181, "sites": "64 × 48", "r_p_median": 0.969,
        "r_p_q05": 0.937, "r_p_min": 0.88, "fraction_r_p_above_0_9": 0.995,
        "fraction_r_p_above_0_99": 0.007, "relative_rmse": 0.25,
        "training_mean_r_p_median": -0.016,
        "paper_statement": "r_P > 0.99 for all test samples", "paper_r_p_typical": np.nan,
        "paper_r_p_bound": 0.99, "paper_bound_meaning": "all samples above",
        "paper_n_samples": 88000, "paper_n_test": 3000, "paper_sites": "256 × 192",
        "paper_dopant_distance_nm": 50.0, "paper_dopant_density_cm2": 1e12,
        "paper_source": "P1 Sec. IV B"}])


def _diffusion_metrics(model="p2_ldos"):
    rows = []
    for criterion in ("strict", "classes"):
        for predictor, accuracy in (("model", 0.453), ("nearest_training_trace", 1.0),
                                    ("unconditional", 0.016)):
            rows.append({"model": model, "split": "test", "predictor": predictor,
                         "criterion": criterion, "tolerance_sites": 1.5, "n_traces": 127,
                         "accuracy": accuracy, "accuracy_ci_low": max(accuracy - 0.08, 0),
                         "accuracy_ci_high": min(accuracy + 0.08, 1),
                         "mean_position_error_sites": 0.19,
                         "guidance_scale": 2.0 if predictor == "model" else np.nan,
                         "baseline": f"{predictor} description", "command": COMMAND})
    return pd.DataFrame(rows)


@pytest.fixture
def run(tmp_path):
    """Metric files, paper comparisons, figures and manifests of three models, and the page."""
    evaluation = tmp_path / "results" / "evaluation"
    models = {"p1_s_nd": {"kind": "p1_parameter_cnn", "dataset": "p1_varying", "split": "test"},
              "p1_potential": {"kind": "p1_encoder_decoder", "dataset": "p1_fixed",
                               "split": "test"},
              "p2_ldos": {"kind": "p2_diffusion", "dataset": "p2_fingerprints",
                          "split": "test"}}
    tables = {"p1_s_nd": (_parameter_metrics(), _parameter_paper()),
              "p1_potential": (_potential_metrics(), _potential_paper()),
              "p2_ldos": (_diffusion_metrics(), None)}
    metrics, papers, figures, manifests = {}, {}, {}, {}
    for name, (table, paper) in tables.items():
        (evaluation / name).mkdir(parents=True)
        metrics[name] = evaluation / name / "metrics.csv"
        table.to_csv(metrics[name], index=False)
        if paper is not None:
            papers[name] = evaluation / name / "paper_comparison.csv"
            paper.to_csv(papers[name], index=False)
        figures[name] = [_png(evaluation / name / "key.png"),
                         _png(evaluation / name / "prediction-example.png")]
    for dataset, sizes in (("p1_varying", (3252, 387, 361)), ("p1_fixed", (3181, 394, 425)),
                           ("p2_fingerprints", (350, 123, 127))):
        directory = tmp_path / "results" / "datasets" / dataset
        directory.mkdir(parents=True)
        manifests[dataset] = directory / "manifest.json"
        manifests[dataset].write_text(json.dumps({"splits": {
            split: {"samples": n} for split, n in zip(("train", "val", "test"), sizes)}}))
    html_path = tmp_path / "results" / "reports" / "results.html"
    json_path = tmp_path / "results" / "reports" / "results.json"
    html_path.parent.mkdir(parents=True)
    data = write_results_page(models, metrics=metrics, papers=papers, figures=figures,
                              manifests=manifests, html_path=html_path, json_path=json_path)
    return {"dir": tmp_path, "data": data, "page": html_path.read_text(), "metrics": metrics,
            "papers": papers, "json": json.loads(json_path.read_text())}


# -- numbers for a reader ----------------------------------------------------------------
def test_numbers_have_sensible_digits_and_a_true_minus():
    assert format_number(5.591155783931857) == "5.59"
    assert format_number(3252) == "3,252"
    assert format_number(1.8e11, 2) == "1.8·10¹¹"
    assert format_number(float("nan")) == format_number(None) == "–"
    assert format_interval(0.584898968, 0.5142977, 0.6412169) == ("0.585", "[0.514, 0.641]")
    assert format_interval(0.0229, -0.0428, 0.0769) == ("0.023", "[−0.043, 0.077]")
    assert format_interval(0.10352, 0.0957, 0.1110, scale=100) == ("10.4", "[9.6, 11.1]")
    assert format_interval(2.54e11, 2.41e11, 2.66e11, unit="cm⁻²") == (
        "2.54·10¹¹ cm⁻²", "[2.41, 2.66]·10¹¹")
    assert format_interval(0.5, float("nan"), 0.6) == ("0.500", "")
    assert pretty_unit("cm-2") == "cm⁻²" and pretty_unit("t-1") == "t⁻¹"


def test_detailed_table_has_units_intervals_and_no_nan_or_command(tmp_path):
    table = _parameter_metrics()
    page = metrics_table_html(table)
    text = _text(page)
    assert "σ/value (%)" in text and "R²" in text
    assert "N_d (10¹² cm⁻²)" in text and "s (nm)" in text  # a large unit scaled per row
    assert "[9.0, 11.0]" in text  # 0.10 ± 0.01 in percent
    assert not re.search(r"\bnan\b", text, re.I) and "–" in text  # NaN MAE: a dash
    assert "command" not in page and COMMAND not in page
    assert "my new baseline" in text and "a baseline this module never heard of" in text
    # the written page: the commands only in the collapsible provenance section
    write_table(table, tmp_path / "t.csv", tmp_path / "t.html", paper=_parameter_paper(),
                title="P1 parameters")
    page = (tmp_path / "t.html").read_text()
    details = page[page.index("<details>"):]
    assert COMMAND in details and COMMAND not in page[:page.index("<details>")]
    assert "Against the paper" in page and "σ_s = 2.3 nm" in page
    assert pd.read_csv(tmp_path / "t.csv")["command"].iloc[0] == COMMAND  # CSV keeps all


def test_potential_table_states_its_unit_once():
    text = _text(metrics_table_html(_potential_metrics()))
    assert "RMSE (meV)" in text and "r_P median" in text
    assert "n: 425" in text  # one value for the whole table: stated above it


# -- the results page --------------------------------------------------------------------
def test_results_page_has_one_headline_table_per_family(run):
    page = run["page"]
    assert page.count("<th>the model</th>") + len(
        re.findall(r'<th title="[^"]*">the model</th>', page)) == 3
    text = _text(page)
    for family in FAMILIES:
        assert family.title in text
    assert "P1 (paper)" in text and "P2 (paper)" in text
    assert not re.search(r"\bnan\b", text, re.I)
    assert not re.search(r"<th[^>]*>command</th>", page)
    assert page.count('src="data:image/png;base64,') == 6  # key figure + example per model


def test_a_new_predictor_is_a_column_and_the_ceiling_is_marked(run):
    page = run["page"]
    table = page[page.index("<table"):page.index("</table>")]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert header[:4] == ["model", "target", "split (n)", "the model"]
    assert header[4:] == ["training mean", "my new baseline", "Bayes ceiling (true potential)",
                          "P1 (paper)"]
    # the new baseline beats the model (8 % < 10 %): marked; the ceiling is not a baseline
    assert table.count('class="beaten"') == 2 and table.count('class="ceiling"') == 2
    assert "4.6 %" in table and "18.0 %" in table  # the paper's σ/typical value


def test_paper_numbers_are_shown_not_downloaded(run):
    text = _text(run["page"])
    assert "r_P > 0.99 for all test samples" in text and "88,000 samples" in text
    assert "> 95 %" in text  # P2's statement, strict criterion only
    assert "Against the paper, in full" in text


def test_results_json_holds_headline_numbers_with_intervals_and_split_sizes(run):
    data = run["json"]
    assert data == run["data"]
    assert data["format"] == RESULTS_FORMAT
    assert data["datasets"]["p1_varying"] == {"test": 361, "train": 3252, "val": 387}
    model = data["models"]["p1_s_nd"]
    assert model["family"] == "p1_parameters" and model["headline"] == "relative_error_std"
    row = next(r for r in model["rows"]
               if r["target"] == "dopant_distance" and r["predictor"] == "model")
    assert row["metrics"]["r2"] == {"value": 0.585, "ci_low": 0.535, "ci_high": 0.635}
    baseline = next(r for r in model["rows"]
                    if r["target"] == "dopant_distance" and r["predictor"] == "training_mean")
    assert "mae" in row["metrics"] and "mae" not in baseline["metrics"]  # NaN: left out
    assert model["paper_comparison"][0]["paper_relative_percent"] == 4.6
    assert "command" not in json.dumps(data)
    strict = [r for r in data["models"]["p2_ldos"]["rows"] if r["criterion"] == "strict"]
    assert [r["predictor"] for r in strict] == ["model", "nearest_training_trace",
                                                "unconditional"]


def test_every_evaluated_kind_has_a_family():
    for kind in ("p1_parameter_cnn", "p1_fourier_cnn", "p1_encoder_decoder", "p2_diffusion"):
        assert family_of(kind).paper in ("P1", "P2")
    with pytest.raises(ValueError, match="FAMILIES"):
        family_of("p3_unknown")


def test_summary_concatenates_metric_files(run):
    table = models_summary(run["metrics"].values())
    assert set(table["model"]) == {"p1_s_nd", "p1_potential", "p2_ldos"}
    assert models_summary([]).empty


# -- the landing page: workflow.rst as Snakemake renders it ------------------------------
def _render_workflow_rst(files):
    """workflow/report/workflow.rst through Jinja and docutils, as snakemake.report does."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    class Record:
        def __init__(self, target):
            self.target = target

    source = (ROOT / "workflow" / "report" / "workflow.rst").read_text()
    links = "\n\n.. _All results: javascript:x\n.. _Models: javascript:x\n" \
            ".. _Datasets: javascript:x\n"
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(
        source + links).render(snakemake=None, categories={},
                               files=[Record(name) for name in files])
    return publish_parts(text, writer="html")["html_body"]


def test_workflow_description_includes_the_results_page(run, monkeypatch):
    monkeypatch.chdir(run["dir"])  # Snakemake runs in the working directory
    body = _render_workflow_rst(["results.json", "datasets.html"])
    assert 'id="mesoinv-results"' in body and "P1 (paper)" in body
    assert body.index("mesoinv-results") < body.index("Datasets as configured")
    assert "System Message" not in body


def test_workflow_description_without_results_is_the_datasets_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results page written: not included, no error
    body = _render_workflow_rst(["datasets.html"])
    assert "mesoinv-results" not in body and "Datasets as configured" in body


# -- the browser check's own checks --------------------------------------------------------
def _check_report():
    spec = importlib.util.spec_from_file_location("check_report",
                                                  ROOT / "scripts" / "check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browser_check_accepts_the_page_and_names_what_is_wrong(run):
    check = _check_report()
    page, data = run["page"], run["json"]
    dom = f"<html><body><div id='app'>{page}</div><script>var x = NaN;</script></body></html>"
    assert check.check_dom(dom, data) == []
    broken = dom.replace("2.3 nm", "nan nm")
    assert any("NaN" in p for p in check.check_dom(broken, data))
    assert check.check_dom("<html><body></body></html>", data)[0].startswith(
        "the landing page has no results page")


def _landing_image(path, *, cut_at_right_edge: bool):
    """A synthetic 1400 × 1000 landing view: a noisy band (many colours), the headline
    tables' model and paper cells, and optionally a table running past the right edge."""
    from PIL import Image, ImageDraw

    check = _check_report()
    rng = np.random.default_rng(0)
    pixels = np.full((1000, 1400, 3), 255, dtype=np.uint8)
    pixels[50:150, 100:900] = rng.integers(0, 256, (100, 800, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 300, 500, 400), fill=check.MODEL_CELL)
    draw.rectangle((900, 300, 1400 if cut_at_right_edge else 1300, 400), fill=check.PAPER_CELL)
    image.save(path)
    return check


def test_browser_check_finds_content_cut_at_the_right_edge(tmp_path):
    inside = tmp_path / "inside.png"
    check = _landing_image(inside, cut_at_right_edge=False)
    assert check.check_screenshot(inside, "1400x1000") == []
    cut = tmp_path / "cut.png"
    _landing_image(cut, cut_at_right_edge=True)
    problems = check.check_screenshot(cut, "1400x1000")
    assert len(problems) == 1 and "cut at the right edge" in problems[0]
    assert "10.1%" in problems[0]  # 101 of 1,000 rows of the strip are the paper cell
