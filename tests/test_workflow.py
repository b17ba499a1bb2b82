"""The Snakemake workflow end to end on the local executor, and targeted reruns."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from snakemake_runs import job_counts

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"

pytestmark = pytest.mark.slow


def snakemake(workdir, *args, config=TEST_CONFIG, check=True, timeout=600):
    """Run the project's Snakefile in ``workdir`` (default profile, local executor)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir, *args, config=TEST_CONFIG):
    """{rule: count} of the jobs a dry run would execute."""
    result = snakemake(workdir, "--dry-run", *args, config=config)
    return job_counts(result.stdout + result.stderr)


def dataset_bytes(workdir):
    """Every variable of every dataset file under results/datasets, as raw bytes."""
    out = {}
    for path in sorted((Path(workdir) / "results" / "datasets").rglob("*.nc")):
        with netCDF4.Dataset(path) as ds:
            for name in ds.variables:
                out[(str(path.relative_to(workdir)), name)] = np.asarray(ds[name][:]).tobytes()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The test config run once, end to end, with the default profile (local executor)."""
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir)
    return workdir


def test_end_to_end_outputs(finished_run):
    results = finished_run / "results"
    for name, shards in (("p1_varying", 3), ("p1_fixed", 3), ("p2_wire", 3)):
        assert len(list((results / "datasets" / name / "shards").glob("*.nc"))) == shards
        for split in ("train", "val", "test"):
            assert (results / "datasets" / name / f"{name}-{split}.nc").exists()
        manifest = json.loads((results / "datasets" / name / "manifest.json").read_text())
        total = sum(s["samples"] for s in manifest["splits"].values())
        assert total == {"p1_varying": 10, "p1_fixed": 10, "p2_wire": 12}[name]
        validation = json.loads((results / "datasets" / name / "validation.json").read_text())
        assert validation["samples"] == total
        assert (results / "figures" / name / "sample-0.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(results / "reports" / "datasets.csv")
    assert len(table) == 9 and set(table["kind"]) == {"p1_pldos", "p2_magnetoconductance"}
    # P2 splits by configuration: the realisations of a class never straddle two splits
    configurations = {}
    for split in ("train", "val", "test"):
        with netCDF4.Dataset(results / "datasets/p2_wire" / f"p2_wire-{split}.nc") as ds:
            for c in ds["configuration_id"][:].tolist():
                configurations.setdefault(c, set()).add(split)
    assert configurations and all(len(s) == 1 for s in configurations.values())
    # logs and benchmarks for every job
    assert len(list((finished_run / "logs" / "simulate").rglob("*.log"))) == 9
    assert len(list((finished_run / "logs" / "benchmarks").rglob("*.tsv"))) == 46  # every job
    # models: trained, evaluated on the test split against the training-mean baseline
    for model in ("p1_s_nd", "p1_rms_xi"):
        assert (results / "models" / model / "model.pt").stat().st_size > 0
        assert (results / "models" / model / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
        metrics = pd.read_csv(results / "evaluation" / model / "metrics.csv")
        assert set(metrics["predictor"]) == {"model", "training_mean", "potential_posterior",
                                             "ridge_power_spectrum", "nearest_training_map"}
        assert set(metrics["split"]) == {"test"}
        for figure in ("predicted_vs_true", "error_histograms", "error_correlation"):
            assert (results / "evaluation" / model / f"{figure}.png").read_bytes()[:4] == \
                b"\x89PNG"
    summary = pd.read_csv(results / "reports" / "models.csv")
    assert set(summary["model"]) == {"p1_s_nd", "p1_rms_xi"}
    # potential models (P1 Sec. IV): V(x, y) in meV, r_P against two baselines, P1 Figs. 4-8
    for model in ("p1_fourier", "p1_potential"):
        evaluation = results / "evaluation" / model
        with netCDF4.Dataset(evaluation / "predictions-test.nc") as ds:
            assert ds["potential"].units == "meV" and ds["potential"].dimensions == (
                "sample", "x", "y")
        metrics = pd.read_csv(evaluation / "metrics.csv")
        assert set(metrics["predictor"]) == {"model", "training_mean_potential",
                                             "zero_potential"}
        assert set(metrics["split"]) == {"test"}
        for figure in ("r_p_histogram", "examples", "error_map", "coefficient_errors",
                       "r_p_by_distance", "pldos_consistency", "prediction-example"):
            assert (evaluation / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_csv(results / "reports" / "potential_models.csv")
    assert set(summary["model"]) == {"p1_fourier", "p1_potential"}
    # the P2 diffusion model: LDOS generated from the validation traces, accuracy (strict and
    # modulo the symmetries) against the trace-blind baselines, P2 Figs. 3-5
    evaluation = results / "evaluation" / "p2_ldos"
    with netCDF4.Dataset(evaluation / "generated.nc") as ds:
        assert ds.format_version == "mesoinv-generated-ldos-1"
        assert ds["generated_ldos"].units == "t-1" and ds.split == "val"
    metrics = pd.read_csv(evaluation / "metrics.csv")
    assert set(metrics["predictor"]) == {"model", "nearest_training_trace", "direct_placement_model",
                                         "direct_placement_mlp", "unconditional",
                                         "most_frequent_placement"}
    assert set(metrics["criterion"]) == {"strict", "mirrors", "classes"}
    for figure in ("accuracy", "snapshots", "attention", "score_field", "prediction-example"):
        assert (evaluation / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    assert set(pd.read_csv(results / "reports" / "diffusion_models.csv")["model"]) == {"p2_ldos"}
    # nothing partial left behind
    assert not list(results.rglob(".*partial*")) and not list(results.rglob("*.tmp-*"))
    assert planned_jobs(finished_run) == {}


def test_report_collects_figures_and_table(finished_run, tmp_path):
    report = tmp_path / "report.html"
    snakemake(finished_run, "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000
    assert "sample-0.png" in html and "datasets.html" in html
    # the landing view (the workflow description) holds the results page
    description = html.split("var workflow_desc = ", 1)[1].split("</script>", 1)[0]
    assert "mesoinv-results" in description and description.count("<table") >= 6
    for name in ("prediction-example.png", "metrics.csv", "results.json"):
        assert name in html


def test_report_opens_on_the_results_in_a_browser(finished_run, tmp_path):
    """The report in headless Chromium (installed with apt-get when missing): the landing view
    shows the results tables (DOM and screenshot; scripts/check_report.py)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_report.py"), "--directory",
         str(finished_run), "--configfile", str(TEST_CONFIG), "--output", str(tmp_path),
         "--install-browser"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "landing.png").stat().st_size > 10_000


def test_lint_and_format():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--configfile",
                             str(TEST_CONFIG)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr
    files = [str(ROOT / "Snakefile"), *map(str, (ROOT / "workflow" / "rules").glob("*.smk"))]
    snakefmt = Path(sys.executable).with_name("snakefmt")
    result = subprocess.run([str(snakefmt), "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_rerun_single_targets(finished_run):
    shard = finished_run / "results/datasets/p1_varying/shards/p1_varying-00001.nc"
    old_bytes = dataset_bytes(finished_run)
    before = {p: p.stat().st_mtime_ns for p in (finished_run / "results/datasets").rglob("*.nc")}
    # `snakemake <one shard file> --forcerun <rule>` rebuilds that shard alone ...
    assert planned_jobs(finished_run, str(shard.relative_to(finished_run)), "--forcerun",
                        "simulate_p1_shard") == {"simulate_p1_shard": 1}
    snakemake(finished_run, str(shard.relative_to(finished_run)), "--forcerun", "simulate_p1_shard")
    changed = [p for p, t in before.items() if p.stat().st_mtime_ns != t]
    assert changed == [shard]
    # ... with the same bytes, so Snakemake (which checksums small inputs) reruns nothing
    # downstream even though the file is newer.
    assert dataset_bytes(finished_run) == old_bytes
    assert planned_jobs(finished_run) == {}
    # `snakemake <one split file>` rebuilds just that dataset's splits
    split = finished_run / "results/datasets/p1_varying/p1_varying-test.nc"
    split.unlink()
    assert planned_jobs(finished_run, str(split.relative_to(finished_run))) == {"split_dataset": 1}
    snakemake(finished_run, str(split.relative_to(finished_run)))
    assert dataset_bytes(finished_run) == old_bytes
    # The split job rewrote the dataset's manifest (same content, newer file), an input of the
    # results page: bring the run up to date again, as the later tests expect a finished run.
    snakemake(finished_run)
    assert planned_jobs(finished_run) == {}
    # --forcerun <rule> reruns that rule and what depends on it, no simulation
    # (the models of p1_varying train on its splits: they follow, no simulation does)
    assert planned_jobs(finished_run, "--forcerun", "split_dataset") == {
        "split_dataset": 3, "dataset_summary": 1, "train_model": 5, "predict_test_split": 4,
        "generate_evaluation_split": 1, "evaluate_model": 2, "evaluate_potential_model": 2,
        "evaluate_diffusion_model": 1, "models_summary": 1, "potential_models_summary": 1,
        "diffusion_models_summary": 1, "results_page": 1, "all": 1}


def test_config_changes_rerun_only_what_they_affect(finished_run, tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config = json.loads(json.dumps(config))  # unshare YAML anchors
    # New split fractions: re-merge, no simulation.
    changed = json.loads(json.dumps(config))
    changed["datasets"]["p1_varying"]["splits"] = {"train": 0.5, "val": 0.25, "test": 0.25}
    path = tmp_path / "splits.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert planned_jobs(finished_run, config=path) == {
        "validate_dataset": 1, "split_dataset": 1, "dataset_summary": 1, "train_model": 2,
        "predict_test_split": 2, "evaluate_model": 2, "models_summary": 1, "results_page": 1,
        "all": 1}
    # Growing the dataset from 10 to 12 samples: only the last, partial shard (ids 8…) reruns.
    grown = json.loads(json.dumps(config))
    grown["datasets"]["p1_varying"]["n_samples"] = 12
    path = tmp_path / "grown.yaml"
    path.write_text(yaml.safe_dump(grown))
    jobs = planned_jobs(finished_run, config=path)
    assert jobs["simulate_p1_shard"] == 1 and "dataset_definition" not in jobs
    # Changing the physics (the seed) reruns the definition and every shard of that dataset.
    reseeded = json.loads(json.dumps(config))
    reseeded["datasets"]["p1_fixed"]["seed"] = 19
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(reseeded))
    jobs = planned_jobs(finished_run, config=path)
    assert jobs["dataset_definition"] == 1 and jobs["simulate_p1_shard"] == 3


def test_model_hyperparameter_change_reruns_only_its_training_and_evaluation(finished_run,
                                                                             tmp_path):
    config = json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))
    config["models"]["p1_s_nd"]["optimizer"] = {"learning_rate": 3e-3}
    path = tmp_path / "lr.yaml"
    # sort_keys=False: the results page lists models in the config's order (a parameter)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(finished_run, config=path) == {
        "model_definition": 1, "train_model": 1, "predict_test_split": 1, "evaluate_model": 1,
        "models_summary": 1, "results_page": 1, "all": 1}
    # Writing a default explicitly changes nothing (definitions hold the defaults filled in).
    config["models"]["p1_s_nd"]["optimizer"] = {"learning_rate": 1e-3, "name": "adam"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(finished_run, config=path) == {}


def test_paper_config_dry_run_has_one_job_per_shard(tmp_path):
    jobs = planned_jobs(tmp_path, config=ROOT / "config" / "paper.yaml")
    assert jobs["simulate_p1_shard"] == 72000 // 500 + 88000 // 500 == 320
    assert jobs["simulate_p2_shard"] == -(-80850 // 500) == 162
    assert jobs["validate_dataset"] == jobs["split_dataset"] == jobs["dataset_definition"] == 3


def test_killed_shard_job_resumes_and_equals_uninterrupted_run(finished_run, tmp_path):
    # A shard of 40 samples, its job killed with SIGKILL after a few samples
    # are saved; the rerun with --rerun-incomplete computes only the missing samples.
    config = json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))
    config["datasets"] = {"p1_fixed": dict(config["datasets"]["p1_fixed"], n_samples=40,
                                           shard_size=40)}
    config["models"] = {}  # they train on p1_varying, left out here
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "killed"
    target = "results/datasets/p1_fixed/shards/p1_fixed-00000.nc"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(path), "--cores", "1", target]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    shard_dir = workdir / "results/datasets/p1_fixed/shards"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        partial = list(shard_dir.glob(".*partial*/sample-*.npz")) if shard_dir.exists() else []
        if len(partial) >= 5:
            break
        time.sleep(0.05)
    # SIGKILL the job itself (what a node failure or the OOM killer does), not Snakemake.
    jobs = [child for child in psutil.Process(process.pid).children(recursive=True)
            if "simulate" in " ".join(child.cmdline())]
    assert jobs, "no running shard job found"
    for job in jobs:
        job.send_signal(signal.SIGKILL)
    assert process.wait(timeout=120) != 0  # Snakemake reports the failed job
    saved = len(list(shard_dir.glob(".*partial*/sample-*.npz")))
    assert 5 <= saved < 40, "the job should have been killed mid-shard"
    assert not (workdir / target).exists()
    result = subprocess.run(command + ["--rerun-incomplete"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (workdir / "logs/simulate/p1_fixed/p1_fixed-00000.log").read_text()
    match = re.search(r"\((\d+) computed on 1 ranks, (\d+) reused", log)
    assert match, log[-2000:]
    computed, reused = int(match.group(1)), int(match.group(2))
    assert reused >= saved and computed + reused == 40  # only missing samples recomputed
    # Same bytes as an uninterrupted run of the same 40 samples.
    reference = tmp_path / "reference"
    subprocess.run(command[:6] + [str(reference)] + command[7:], cwd=ROOT, check=True,
                   capture_output=True)
    with netCDF4.Dataset(workdir / target) as a, netCDF4.Dataset(reference / target) as b:
        for name in b.variables:
            assert np.asarray(a[name][:]).tobytes() == np.asarray(b[name][:]).tobytes(), name
    assert not list(shard_dir.glob(".*partial*"))


@pytest.mark.parametrize("mode", ["fail", "skip"])
def test_injected_solver_failure(mode, tmp_path):
    # Sample 5 fails at every attempt (MESOINV_INJECT_SAMPLE_FAILURES, as a singular solve would).
    config = json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))
    config["datasets"] = {"p1_varying": dict(config["datasets"]["p1_varying"],
                                             on_sample_failure=mode)}
    config["figures"] = {"sample_ids": [0]}
    config["models"] = {}  # the data side alone
    path = tmp_path / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(path), "--cores", "2",
               "--keep-going"]
    env = dict(os.environ, MESOINV_INJECT_SAMPLE_FAILURES="5")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=600)
    shard = workdir / "results/datasets/p1_varying/shards/p1_varying-00001.nc"  # ids 4…7
    log = (workdir / "logs/simulate/p1_varying/p1_varying-00001.log").read_text()
    assert "sample 5 failed (FloatingPointError: injected failure" in log  # first attempt
    if mode == "fail":
        assert result.returncode != 0
        assert "sample 5 failed twice: FloatingPointError" in log
        assert not shard.exists()
        assert not (workdir / "results/datasets/p1_varying/p1_varying-train.nc").exists()
        # the other shards are complete and kept; nothing else looks complete
        assert (workdir / "results/datasets/p1_varying/shards/p1_varying-00000.nc").exists()
    else:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "WARNING: sample 5 failed and is left out" in log
        validation = json.loads(
            (workdir / "results/datasets/p1_varying/validation.json").read_text())
        assert [f["sample_id"] for f in validation["failed_samples"]] == [5]
        assert validation["samples"] == 9
        ids = []
        for split in ("train", "val", "test"):
            with netCDF4.Dataset(workdir / f"results/datasets/p1_varying/p1_varying-{split}.nc") as ds:
                ids += ds["sample_id"][:].tolist()
                failed = json.loads(ds.failed_samples)
                assert all(f["sample_id"] == 5 for f in failed)
        assert sorted(ids) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
        table = pd.read_csv(workdir / "results/reports/datasets.csv")
        assert table["failed, left out"].sum() == 1


def test_shard_size_and_ranks_do_not_change_the_datasets(finished_run, tmp_path):
    # Shards of 8 instead of 4, each on 2 MPI ranks (the venv's mpiexec), against the default
    # run (shards of 4, 1 process): the split files hold the same samples, byte for byte.
    config = json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))
    for entry in config["datasets"].values():
        entry["shard_size"] = 8
    path = tmp_path / "shards8.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    snakemake(workdir, "--set-resources", "simulate_p1_shard:tasks=2", "simulate_p2_shard:tasks=2",
              config=path)
    logs = list((workdir / "logs/simulate").rglob("*.log"))
    assert len(logs) == 6 and all("computed on 2 ranks" in p.read_text() for p in logs)

    def split_samples(root):
        out = {}
        for path in sorted((root / "results/datasets").glob("*/*-*.nc")):
            with netCDF4.Dataset(path) as ds:
                for name, variable in ds.variables.items():
                    if "sample" in variable.dimensions:
                        out[(path.name, name)] = np.asarray(variable[:]).tobytes()
        return out

    assert split_samples(workdir) == split_samples(finished_run)
