"""The README's promises: its library example runs, its commands are what CI and set-up use."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_library_example_runs(capsys):
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    exec(compile(code, "README.md", "exec"), {})
    assert "3 QPC modes" in capsys.readouterr().out


def test_two_commands_are_first_and_ci_runs_the_second():
    commands = re.findall(r"^(\./scripts/[\w-]+)", README, re.M)
    assert commands[:2] == ["./scripts/run-demo", "./scripts/run-tests"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./scripts/run-tests" in ci
    for command in commands[:2]:
        assert (ROOT / command).stat().st_mode & 0o111, f"{command} is not executable"


# -- the README's demo numbers are the last demo run's (docs/demo-results.json) ----------------
# ./scripts/update-demo-results copies results/reports/results.json of the last
# ./scripts/run-demo to docs/demo-results.json; these tests fail on any README demo number
# (split sizes, values with their 95 % intervals in the demo tables) that it does not hold.
DEMO = json.loads((ROOT / "docs" / "demo-results.json").read_text())
NUMBER = r"[−-]?\d[\d,]*(?:\.\d+)?"
# "0.585 [0.514, 0.641]", "**45.3 %** [36.9, 53.9]", "100 % [97.1, 100]"
TRIPLE = re.compile(rf"({NUMBER})\s*(%?)\**\s*\[({NUMBER}),\s*({NUMBER})\]")


def _value(text):
    return float(text.replace("−", "-").replace(",", ""))


def _decimals(text):
    return len(text.split(".")[1]) if "." in text else 0


def _demo_sections():
    """The README's demo-results sections (### Demo results ...), up to their **Medium** part."""
    sections = re.split(r"^### ", README, flags=re.M)
    return [section.split("\n**Medium**")[0] for section in sections
            if section.startswith("Demo results")]


def _intervals(model=None):
    """(value, ci_low, ci_high) of every metric with an interval, of one model or all."""
    models = DEMO["models"] if model is None else {model: DEMO["models"][model]}
    return [(m["value"], m["ci_low"], m["ci_high"]) for entry in models.values()
            for row in entry["rows"] for m in row["metrics"].values() if "ci_low" in m]


def _matches(printed, numbers):
    """A printed (value, low, high) equals numbers at the printed precision (or in percent)."""
    for scale in (1.0, 100.0):
        if all(abs(_value(p) - scale * n) <= 0.5 * 10.0 ** -_decimals(p) + 1e-9
               for p, n in zip(printed, numbers)):
            return True
    return False


def test_demo_results_file_is_the_demo_configuration():
    import yaml

    from mesoinv.evaluation.results_page import RESULTS_FORMAT

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert DEMO["format"] == RESULTS_FORMAT
    assert set(DEMO["datasets"]) == set(config["datasets"])
    assert list(DEMO["models"]) == list(config["models"])
    for name, entry in DEMO["models"].items():
        assert entry["dataset"] == config["models"][name]["dataset"]
        assert entry["rows"] and all(row["metrics"] for row in entry["rows"])


def test_readme_split_sizes_are_the_demo_results():
    text = " ".join("\n".join(_demo_sections()).split())
    stated = re.findall(r"(\d[\d,]*) training, (\d[\d,]*) validation, (\d[\d,]*) test samples",
                        text)
    assert len(stated) >= 2, "the demo sections no longer state their split sizes"
    sizes = {name: (s["train"], s["val"], s["test"]) for name, s in DEMO["datasets"].items()}
    for train, val, test in stated:
        numbers = tuple(int(v.replace(",", "")) for v in (train, val, test))
        assert numbers in sizes.values(), (
            f"README: {train} training, {val} validation, {test} test samples is no split of "
            f"the last demo run ({sizes}); ./scripts/update-demo-results, then fix the README")
    for dataset in ("p1_varying", "p1_fixed"):
        assert "{:,} training, {:,} validation, {:,} test".format(*sizes[dataset]) in text


def test_readme_demo_tables_are_the_demo_results():
    """Every value with an interval in a demo table row is one of the demo run's metrics (of
    the model the row names, else of any model), at the precision the README prints it."""
    checked = 0
    for section in _demo_sections():
        for line in section.splitlines():
            if not line.startswith("|"):
                continue
            named = [m for m in DEMO["models"] if f"`{m}`" in line or f"| {m} |" in line]
            candidates = _intervals(named[0] if named else None)
            for match in TRIPLE.finditer(line):
                printed = (match.group(1), match.group(3), match.group(4))
                assert any(_matches(printed, numbers) for numbers in candidates), (
                    f"README: {match.group(0)!r} in\n{line}\nis not in docs/demo-results.json "
                    f"({named[0] if named else 'any model'}); after a new demo run: "
                    "./scripts/update-demo-results, then fix the README")
                checked += 1
    assert checked >= 30, f"only {checked} values with intervals found in the demo tables"


# -- the seed spread the README reports (docs/demo-seed-spread.csv) ------------------------------
# `snakemake seed_spread --configfile config/config.yaml config/seeds.yaml` on the demo run, then
# ./scripts/update-demo-results copies results/reports/seed_spread.csv here; the README's table
# is `python -m mesoinv.evaluation.seed_spread docs/demo-seed-spread.csv`.
SPREAD = ROOT / "docs" / "demo-seed-spread.csv"


def test_readme_seed_spread_table_is_the_measured_one():
    import pandas as pd

    from mesoinv.evaluation.seed_spread import seed_spread_markdown

    table = pd.read_csv(SPREAD)
    assert set(table["model"]) == set(DEMO["models"]), "every demo model has its seed spread"
    assert (table["n_seeds"] >= 3).all()
    assert seed_spread_markdown(table) in README, (
        "the README's seed-spread table is not docs/demo-seed-spread.csv's; paste the output "
        "of: .venv/bin/python -m mesoinv.evaluation.seed_spread docs/demo-seed-spread.csv")


def test_seed_spread_was_measured_on_the_run_the_readme_states():
    """The base seed of every spread row is the demo run's model (the same value), so the
    README's numbers are one of the seeds whose range it reports."""
    import pandas as pd

    table = pd.read_csv(SPREAD)
    for _, row in table.iterrows():
        rows = [r for r in DEMO["models"][row["model"]]["rows"] if r["predictor"] == "model"
                and (r.get("criterion") or r.get("target") or "") == (
                    row["question"] if isinstance(row["question"], str) else "")]
        assert rows, f"{row['model']} / {row['question']}: not in docs/demo-results.json"
        value = rows[0]["metrics"][row["metric"]]["value"]
        assert abs(value - row["base_value"]) <= 1e-5 * max(1.0, abs(value)), (
            row["model"], row["question"], row["metric"], value, row["base_value"])
        assert row["min"] <= row["base_value"] <= row["max"]
