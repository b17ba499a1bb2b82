"""Seed replicates: the config expansion (names, only the seed differs, errors name the key,
every model kind), the spread table from synthetic metric files (numbers by hand), the spread
line on the results page, and a dry run of `seed_spread` with the overlay config/seeds.yaml."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from snakemake_runs import job_counts
from mesoinv.config import ConfigError, replicate_groups, validate_config
from mesoinv.evaluation.results_page import FAMILIES, family_of, headline_table_html
from mesoinv.evaluation.seed_spread import (seed_spread_html, seed_spread_markdown,
                                            seed_spread_table, spread_line,
                                            spread_metrics, write_seed_spread)

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"
SEEDS_CONFIG = ROOT / "config" / "seeds.yaml"


def base_config():
    # JSON round trip: YAML anchors make entries share sub-dicts.
    return json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))


def with_replicates(replicates):
    config = base_config()
    config["seed_replicates"] = copy.deepcopy(replicates)
    return config


# -- expansion ----------------------------------------------------------------------------
def test_replicates_are_the_model_but_for_the_seed_for_every_kind():
    config = validate_config(with_replicates({"seeds": [11, 12]}))
    plain = validate_config(base_config())
    bases = list(plain["models"])
    assert {plain["models"][b]["kind"] for b in bases} >= {"p1_parameter_cnn", "p1_fourier_cnn",
                                                            "p1_encoder_decoder", "p2_diffusion"}
    assert list(config["models"]) == bases + [f"{b}_seed{k}" for b in bases for k in (11, 12)]
    for base in bases:
        for seed in (11, 12):
            entry = config["models"][f"{base}_seed{seed}"]
            assert entry["seed"] == seed
            assert entry["replicate"] == {"base": base, "seed": seed}
            rest = {k: v for k, v in entry.items() if k not in ("seed", "replicate")}
            assert rest == {k: v for k, v in plain["models"][base].items() if k != "seed"}
        assert config["models"][base] == plain["models"][base]
    assert replicate_groups(config)["p2_ldos"] == [(5, "p2_ldos"), (11, "p2_ldos_seed11"),
                                                   (12, "p2_ldos_seed12")]
    # validating a validated config changes nothing; no replicates: nothing added
    assert validate_config(config) == config
    assert replicate_groups(plain) == {}


def test_the_listed_models_only_and_the_overlay_file_is_valid():
    config = validate_config(with_replicates({"seeds": [7], "models": ["p2_ldos", "p1_s_nd"]}))
    assert [n for n, e in config["models"].items() if "replicate" in e] == \
        ["p2_ldos_seed7", "p1_s_nd_seed7"]
    overlay = yaml.safe_load(SEEDS_CONFIG.read_text())
    for name in ("config.yaml", "medium.yaml", "test.yaml"):
        merged = {**yaml.safe_load((ROOT / "config" / name).read_text()), **overlay}
        groups = replicate_groups(validate_config(merged))
        assert set(groups) == set(overlay["seed_replicates"]["models"])
        assert all(len(group) == 3 for group in groups.values()), name


def test_sweep_points_are_not_replicated_by_default():
    config = with_replicates({"seeds": [11]})
    config["sweeps"] = {"lr": {"base": "p1_s_nd",
                               "grid": {"optimizer.learning_rate": [1e-3, 3e-3]}}}
    names = [n for n, e in validate_config(config)["models"].items() if "replicate" in e]
    assert "p1_s_nd_seed11" in names and not any(n.startswith("lr_") for n in names)


def _modified(change):
    config = with_replicates({"seeds": [11, 12]})
    change(config)
    return config


@pytest.mark.parametrize("change, key, message", [
    (lambda c: c["seed_replicates"].update(seed=[3]), "seed_replicates.seed", "unknown key"),
    (lambda c: c["seed_replicates"].update(seeds=[11, 1.5]), "seed_replicates.seeds.1",
     "not an integer"),
    (lambda c: c["seed_replicates"].update(seeds=[]), "seed_replicates.seeds", "non-empty"),
    (lambda c: c["seed_replicates"].update(seeds=[11, 11]), "seed_replicates.seeds",
     "non-unique"),
    (lambda c: c["seed_replicates"].pop("seeds"), "seed_replicates", "'seeds' is a required"),
    (lambda c: c["seed_replicates"].update(seeds=[11, 5]), "seed_replicates.seeds.1",
     "seed of 'p2_ldos' itself"),
    (lambda c: c["seed_replicates"].update(models=["p1_s_nd", "nope"]),
     "seed_replicates.models.1", "no model 'nope'"),
    (lambda c: c["models"].update(p1_s_nd_seed12=c["models"]["p1_rms_xi"]),
     "seed_replicates.seeds.1", "name of another model"),
    (lambda c: c["models"]["p1_s_nd"].update(replicate={"base": "x", "seed": 1}) or
     c.pop("seed_replicates"), "models.p1_s_nd.replicate", "not by hand"),
])
def test_bad_replicates_are_refused_naming_the_key(change, key, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(_modified(change))
    assert error.value.key == key


def test_sweep_points_cannot_be_listed():
    config = with_replicates({"seeds": [11], "models": ["lr_00"]})
    config["sweeps"] = {"lr": {"base": "p1_s_nd",
                               "grid": {"optimizer.learning_rate": [1e-3, 3e-3]}}}
    with pytest.raises(ConfigError, match="point of sweep 'lr'") as error:
        validate_config(config)
    assert error.value.key == "seed_replicates.models.0"


# -- the table ----------------------------------------------------------------------------
def _parameter_metrics(path, model, sigma, r2, ci=(0.09, 0.13)):
    rows = []
    for target, offset in (("dopant_distance", 0.0), ("rms", 0.5)):
        rows.append({"model": model, "split": "test", "target": target, "units": "nm",
                     "predictor": "model", "n": 361, "relative_error_std": sigma + offset,
                     "relative_error_std_ci_low": ci[0] + offset,
                     "relative_error_std_ci_high": ci[1] + offset, "r2": r2,
                     "r2_ci_low": r2 - 0.05, "r2_ci_high": r2 + 0.05})
        rows.append({**rows[-1], "predictor": "training_mean", "relative_error_std": 0.9,
                     "r2": 0.0})
    pd.DataFrame(rows).to_csv(path, index=False)


def _diffusion_metrics(path, model, strict, mirrors):
    rows = [{"model": model, "split": "test", "predictor": predictor, "criterion": criterion,
             "n_traces": 10, "accuracy": value, "accuracy_ci_low": value - 0.2,
             "accuracy_ci_high": value + 0.2}
            for criterion, value in (("strict", strict), ("mirrors", mirrors))
            for predictor, value in (("model", value), ("lookup", 0.99))]
    pd.DataFrame(rows).to_csv(path, index=False)


def _potential_metrics(path, model, median):
    pd.DataFrame([{"model": model, "split": "test", "target": "potential", "units": "meV",
                   "predictor": "model", "n": 50, "r_p_median": median,
                   "r_p_median_ci_low": 0.9, "r_p_median_ci_high": 0.95}]).to_csv(path,
                                                                                  index=False)


@pytest.fixture()
def spread_inputs(tmp_path):
    metrics = {}
    for name, sigma, r2 in (("cnn", 0.10, 0.6), ("cnn_seed11", 0.12, 0.5),
                            ("cnn_seed12", 0.14, 0.7)):
        metrics[name] = tmp_path / f"{name}.csv"
        _parameter_metrics(metrics[name], name, sigma, r2)
    for name, strict, mirrors in (("gen", 0.5, 0.75), ("gen_seed11", 0.25, 0.5)):
        metrics[name] = tmp_path / f"{name}.csv"
        _diffusion_metrics(metrics[name], name, strict, mirrors)
    for name, median in (("pot", 0.93), ("pot_seed11", 0.96)):
        metrics[name] = tmp_path / f"{name}.csv"
        _potential_metrics(metrics[name], name, median)
    models = [
        {"model": "cnn", "kind": "p1_parameter_cnn", "split": "test",
         "seeds": [{"seed": 1, "name": "cnn"}, {"seed": 11, "name": "cnn_seed11"},
                   {"seed": 12, "name": "cnn_seed12"}]},
        {"model": "gen", "kind": "p2_diffusion", "split": "test",
         "seeds": [{"seed": 5, "name": "gen"}, {"seed": 11, "name": "gen_seed11"}]},
        {"model": "pot", "kind": "p1_encoder_decoder", "split": "test",
         "seeds": [{"seed": 4, "name": "pot"}, {"seed": 11, "name": "pot_seed11"}]},
    ]
    return models, metrics


def test_spread_table_by_hand(spread_inputs, tmp_path):
    models, metrics = spread_inputs
    table = seed_spread_table(models, metrics).set_index(["model", "question", "metric"])
    assert len(table) == 2 * 2 + 2 + 1  # (σ, R²) × 2 targets; 2 criteria; r_P median
    s = table.loc[("cnn", "dopant_distance", "relative_error_std")]
    assert (s["n_seeds"], s["seeds"], s["base_seed"]) == (3, "1;11;12", 1)
    assert [float(v) for v in s["values"].split(";")] == [0.10, 0.12, 0.14]
    assert s["mean"] == pytest.approx(0.12) and s["std"] == pytest.approx(0.02)  # ddof 1
    assert (s["min"], s["max"], s["base_value"]) == (0.10, 0.14, 0.10)
    assert (s["base_ci_low"], s["base_ci_high"]) == (0.09, 0.13)
    assert s["n_inside_base_ci"] == 2  # 0.10 and 0.12 inside [0.09, 0.13], 0.14 not
    rms = table.loc[("cnn", "rms", "relative_error_std")]
    assert rms["mean"] == pytest.approx(0.62) and rms["std"] == pytest.approx(0.02)
    r2 = table.loc[("cnn", "dopant_distance", "r2")]
    assert r2["mean"] == pytest.approx(0.6) and r2["std"] == pytest.approx(0.1)
    strict = table.loc[("gen", "strict", "accuracy")]
    # two seeds: mean 0.375, std |0.5 - 0.25| / √2
    assert strict["mean"] == pytest.approx(0.375)
    assert strict["std"] == pytest.approx(0.25 / 2 ** 0.5)
    assert (strict["min"], strict["max"], strict["n_inside_base_ci"]) == (0.25, 0.5, 1)  # [0.3, 0.7]
    potential = table.loc[("pot", "potential", "r_p_median")]
    assert potential["mean"] == pytest.approx(0.945) and potential["n_inside_base_ci"] == 1
    # the baselines' rows are not the model's
    assert set(table.index.get_level_values("metric")) == {"relative_error_std", "r2",
                                                           "accuracy", "r_p_median"}
    # written and read back; the HTML names every model
    written = write_seed_spread(models, metrics, csv_path=tmp_path / "s.csv",
                                html_path=tmp_path / "s.html")
    back = pd.read_csv(tmp_path / "s.csv")
    assert len(back) == len(written) == 7
    page = (tmp_path / "s.html").read_text()
    assert "10.0–14.0 %" in page and "12.0 % ± 2.0 %" in page and "2 of 3" in page
    assert seed_spread_html(written).count("<tr") == 8


def test_readme_markdown_of_the_spread(spread_inputs, tmp_path):
    """The README's table (seed_spread_markdown), from the CSV as written and read back."""
    models, metrics = spread_inputs
    write_seed_spread(models, metrics, csv_path=tmp_path / "s.csv",
                      html_path=tmp_path / "s.html")
    lines = seed_spread_markdown(pd.read_csv(tmp_path / "s.csv")).splitlines()
    assert len(lines) == 2 + 7 and lines[1].startswith("|---")
    assert ("| `cnn` | s | σ/value | 10.0 % (seed 1) [9.0, 13.0] | 10.0 / 12.0 / 14.0 % | "
            "10.0–14.0 % | 2 of 3 |") in lines
    assert ("| `gen` | strict (P2's criterion) | accuracy | 50.0 % (seed 5) [30.0, 70.0] | 50.0 / 25.0 % | "
            "25.0–50.0 % | 1 of 2 |") in lines
    assert any(line.startswith("| `cnn` | s | R² | 0.600 (seed 1) [0.550, 0.650] |")
               for line in lines), lines
    potential = next(line for line in lines if line.startswith("| `pot`"))
    assert "0.930 / 0.960" in potential and "nan" not in potential.lower()


def test_spread_metrics_start_with_the_results_page_headline():
    for family in FAMILIES:
        for kind in family.kinds:
            assert spread_metrics(kind)[0] == family.headline.column
    assert spread_metrics("p1_parameter_cnn") == ("relative_error_std", "r2")


def test_missing_question_in_a_replicate_is_an_error(spread_inputs):
    models, metrics = spread_inputs
    pd.read_csv(metrics["gen_seed11"]).query("criterion != 'mirrors'").to_csv(
        metrics["gen_seed11"], index=False)
    with pytest.raises(ValueError, match="no accuracy of mirrors"):
        seed_spread_table(models, metrics)


def test_results_page_shows_the_spread_beneath_the_model(spread_inputs):
    models, metrics = spread_inputs
    table = seed_spread_table(models, metrics)
    row = table[(table["model"] == "gen") & (table["question"] == "strict")].iloc[0]
    line = spread_line(row)
    assert "seed spread (2 seeds): 25.0–50.0 %" in line
    metric_rows = pd.read_csv(metrics["gen"])
    page = headline_table_html(family_of("p2_diffusion"), metric_rows,
                               spread={("gen", "strict"): line})
    assert page.count("seed spread") == 1


# -- the workflow -------------------------------------------------------------------------
def planned(workdir, *args):
    """{rule: count} of a dry run with the test config and the seeds overlay."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--dry-run", *args,
               "--configfile", str(TEST_CONFIG), str(SEEDS_CONFIG)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return job_counts(result.stdout + result.stderr)


def test_dry_run_plans_every_replicate_with_the_ordinary_rules(tmp_path):
    jobs = planned(tmp_path, "seed_spread")
    # 5 models × 3 seeds trained; P1 predicted on test, P2 generated on its split; each
    # scored by its kind's evaluation; one table, the results page, the target
    assert jobs["model_definition"] == jobs["train_model"] == 15
    assert jobs["predict_test_split"] == 12 and jobs["generate_evaluation_split"] == 3
    assert jobs["evaluate_model"] == 6 and jobs["evaluate_potential_model"] == 6
    assert jobs["evaluate_diffusion_model"] == 3
    assert jobs["seed_spread_table"] == jobs["results_page"] == jobs["seed_spread"] == 1
    assert "validation_metrics" not in jobs and "sweep_validation" not in jobs
    # the summaries and the results page list the models, not their replicates
    everything = planned(tmp_path)
    assert everything["train_model"] == 15 and everything["seed_spread_table"] == 1
    assert everything["models_summary"] == everything["results_page"] == 1
