"""Sweeps and learning curves: the config expansion, nested training subsets, the power law,
the selection tables, a dry run that plans the expected jobs, and one small real run."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import yaml

from mesoinv.config import ConfigError, sweep_points, sweep_selection, validate_config
from mesoinv.evaluation.p1_parameters.metrics import PAPER_ERRORS
from mesoinv.evaluation.sweep_figures import plot_learning_curve, plot_sweep
from mesoinv.evaluation.sweeps import (chosen_point, chosen_test_metrics, fit_power_law,
                                       learning_curve_fits, learning_curve_table, sweep_table,
                                       validation_metrics)
from mesoinv.training.normalization import ImageNormalization
from mesoinv.training.p1_data import (ImageDataModule, iter_images, read_targets,
                                      train_subset_positions)
from mesoinv.training.targets import PotentialTargets, training_mean_potential

from snakemake_runs import job_counts
from test_evaluation_reconstruction import _synthetic, _write_predictions
from test_evaluation_regression import synthetic, write_predictions_file

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def base_config():
    # JSON round trip: YAML anchors make entries share sub-dicts.
    return json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))


GRID = {"base": "p1_s_nd",
        "grid": {"optimizer.learning_rate": [1e-3, 3e-3],
                 "architecture.conv_channels": [[4, 4, 8], [8, 8, 8]]}}
RANDOM = {"base": "p1_fourier",
          "random": {"n_points": 3, "seed": 11,
                     "space": {"optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]},
                               "batch_size": {"choices": [2, 4]},
                               "early_stopping.patience": {"integers": [2, 5]}}}}
CURVE = {"base": "p1_rms_xi", "learning_curve": {"n_samples": [6, 2, 4, 3], "seed": 3},
         "overrides": {"max_epochs": 2}}


def with_sweeps(**sweeps):
    config = base_config()
    config["sweeps"] = copy.deepcopy(sweeps)
    return config


# -- expansion ----------------------------------------------------------------------------
def test_grid_expands_into_ordinary_models_with_deterministic_names():
    config = validate_config(with_sweeps(lr=GRID))
    assert sweep_points(config) == {"lr": ["lr_00", "lr_01", "lr_02", "lr_03"]}
    base = config["models"]["p1_s_nd"]
    assert "sweep" not in base  # the base stays an ordinary model
    # the last key varies fastest; nested keys overridden, everything else from the base
    expected = [(1e-3, [4, 4, 8]), (1e-3, [8, 8, 8]), (3e-3, [4, 4, 8]), (3e-3, [8, 8, 8])]
    for index, (rate, channels) in enumerate(expected):
        point = config["models"][f"lr_{index:02d}"]
        assert point["optimizer"] == {**base["optimizer"], "learning_rate": rate}
        assert point["architecture"] == {**base["architecture"], "conv_channels": channels}
        assert point["sweep"] == {"name": "lr", "point": index, "overrides": {
            "optimizer.learning_rate": rate, "architecture.conv_channels": channels}}
        rest = {k: v for k, v in point.items() if k not in ("optimizer", "architecture", "sweep")}
        assert rest == {k: v for k, v in base.items() if k not in ("optimizer", "architecture")}
    assert sweep_selection(config, "lr") == {"metric": "relative_error_std", "target": "mean",
                                             "higher_is_better": False}
    # validating a validated config changes nothing (SLURM jobs re-read the Snakefile)
    assert validate_config(config) == config


def test_random_sample_is_seeded_and_inside_its_space():
    first = validate_config(with_sweeps(rnd=RANDOM))
    again = validate_config(with_sweeps(rnd=RANDOM))
    names = sweep_points(first)["rnd"]
    assert names == ["rnd_00", "rnd_01", "rnd_02"]
    points = [first["models"][n]["sweep"]["overrides"] for n in names]
    assert points == [again["models"][n]["sweep"]["overrides"] for n in names]
    for point, name in zip(points, names):
        assert 1e-4 <= point["optimizer.learning_rate"] <= 1e-2
        assert point["batch_size"] in (2, 4) and 2 <= point["early_stopping.patience"] <= 5
        entry = first["models"][name]
        # a null early_stopping of the base becomes a mapping, its defaults filled in
        assert entry["early_stopping"] == {"patience": point["early_stopping.patience"],
                                           "min_delta": 0.0}
        assert entry["kind"] == "p1_fourier_cnn"
    reordered = copy.deepcopy(RANDOM)  # the YAML's key order does not change the sample
    reordered["random"]["space"] = dict(reversed(RANDOM["random"]["space"].items()))
    shuffled = validate_config(with_sweeps(rnd=reordered))
    assert [shuffled["models"][n]["sweep"]["overrides"] for n in names] == points
    other = copy.deepcopy(RANDOM)
    other["random"]["seed"] = 12
    changed = validate_config(with_sweeps(rnd=other))
    assert [changed["models"][n]["sweep"]["overrides"] for n in names] != points
    assert sweep_selection(first, "rnd")["metric"] == "r_p_median"


def test_learning_curve_points_are_nested_subsets_sorted_by_size():
    config = validate_config(with_sweeps(curve=CURVE))
    assert sweep_points(config) == {"curve": ["curve_n2", "curve_n3", "curve_n4", "curve_n6"]}
    for n in (2, 3, 4, 6):
        point = config["models"][f"curve_n{n}"]
        assert point["train_subset"] == {"n_samples": n, "seed": 3}
        assert point["max_epochs"] == 2  # the sweep's fixed overrides
    assert config["sweeps"]["curve"]["learning_curve"]["extrapolate_to"] == 57600
    assert "train_subset" not in config["models"]["p1_rms_xi"]


REGIONS = {"base": "p1_rms_xi",
           "learning_curve": {"n_samples": [4], "datasets": ["p1_varying", "p1_fixed"]}}


def test_region_curve_makes_one_point_per_dataset_and_size():
    config = validate_config(with_sweeps(regions=REGIONS))
    assert sweep_points(config) == {"regions": ["regions_p1_varying_n4", "regions_p1_fixed_n4"]}
    for dataset in ("p1_varying", "p1_fixed"):
        point = config["models"][f"regions_{dataset}_n4"]
        assert point["dataset"] == dataset and point["train_subset"] == {"n_samples": 4,
                                                                         "seed": 0}
        assert point["sweep"]["overrides"]["dataset"] == dataset
    sizes = copy.deepcopy(REGIONS)
    sizes["learning_curve"]["n_samples"] = [2, 4]
    assert len(sweep_points(validate_config(with_sweeps(regions=sizes)))["regions"]) == 4


def test_configs_without_sweeps_are_unchanged():
    config = validate_config(base_config())
    assert "sweeps" not in config
    assert all("sweep" not in m and "train_subset" not in m for m in config["models"].values())


def test_the_medium_sweep_overlay_is_a_valid_config():
    # config/medium.yaml names its overlay; merged as Snakemake merges --configfile, it gives
    # the grid (4 points) and the learning curve (5 sizes) measured in docs/models.md.
    from snakemake.utils import update_config

    assert "config/medium-p1-sweeps.yaml" in (ROOT / "config" / "medium.yaml").read_text()
    config = yaml.safe_load((ROOT / "config" / "medium.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config" / "medium-p1-sweeps.yaml").read_text()))
    points = sweep_points(validate_config(config))
    assert {name: len(p) for name, p in points.items()} == {
        "medium_rms_xi_recipe": 4, "medium_rms_xi_samples": 5}


def _modified(change):
    config = with_sweeps(lr=GRID, curve=CURVE)
    change(config)
    return config


@pytest.mark.parametrize("change, key, message", [
    (lambda c: c["sweeps"]["lr"].update(grd={}), "sweeps.lr.grd", "unknown key"),
    (lambda c: c["sweeps"]["lr"]["grid"].update({"optimizer.learning_rat": [1e-3]}),
     "sweeps.lr.grid.optimizer.learning_rat", "unknown key"),
    (lambda c: c["sweeps"]["lr"]["grid"].update({"optimizer.learning_rate": [1e-3, -1.0]}),
     "sweeps.lr.grid.optimizer.learning_rate", "point 'lr_02'"),
    (lambda c: c["sweeps"]["lr"]["grid"].update({"architecture.conv_channels": [[4, 4]]}),
     "sweeps.lr.grid.architecture.conv_channels", "too short"),
    (lambda c: c["sweeps"]["lr"]["grid"].update({"batch_size.value": [2]}),
     "sweeps.lr.grid.batch_size.value", "not a mapping"),
    (lambda c: c["sweeps"]["lr"]["grid"].update({"kind": ["p1_fourier_cnn"]}),
     "sweeps.lr.grid.kind", "cannot change"),
    (lambda c: c["sweeps"]["lr"].update(base="p1_sd"), "sweeps.lr.base", "no model 'p1_sd'"),
    (lambda c: c["sweeps"]["lr"].update(base="p2_ldos"), "sweeps.lr.base", "p2_diffusion"),
    (lambda c: c["sweeps"]["lr"].update(random=RANDOM["random"]), "sweeps.lr",
     "exactly one of"),
    (lambda c: c["sweeps"]["lr"].pop("grid"), "sweeps.lr", "exactly one of"),
    (lambda c: c["sweeps"]["lr"].update(selection={"metric": "rmse"}),
     "sweeps.lr.selection.target", "different units"),
    (lambda c: c["sweeps"]["lr"].update(selection={"metric": "r_p_median"}),
     "sweeps.lr.selection.metric", "not a metric of p1_parameter_cnn"),
    (lambda c: c["sweeps"]["lr"].update(selection={"target": "rms"}),
     "sweeps.lr.selection.target", "not a target"),
    (lambda c: c["sweeps"]["curve"]["learning_curve"].update(n_samples=[2, 400]),
     "sweeps.curve.learning_curve.n_samples", "point 'curve_n400'"),
    (lambda c: c["models"].update(lr_01=c["models"]["p1_s_nd"]), "sweeps.lr",
     "name of another model"),
    (lambda c: c["sweeps"]["curve"]["learning_curve"].update(n_samples=[4]),
     "sweeps.curve.learning_curve.n_samples", "at least two points"),
    (lambda c: c["sweeps"]["curve"]["learning_curve"].update(
        n_samples=[4], datasets=["p1_varying", "p1_varyin"]),
     "sweeps.curve.learning_curve.datasets.1", "no dataset 'p1_varyin'"),
    (lambda c: c["sweeps"]["curve"]["learning_curve"].update(
        n_samples=[4], datasets=["p1_varying", "p2_wire"]),
     "sweeps.curve.learning_curve.datasets.1", "trains on a p1_pldos dataset"),
    (lambda c: c["sweeps"]["curve"]["learning_curve"].update(n_samples=[4], datasets=[]),
     "sweeps.curve.learning_curve.datasets", "non-empty"),
    (lambda c: c["sweeps"].update({"bad-name": GRID}), "sweeps", "'bad-name' does not match"),
    (lambda c: c["models"]["p1_s_nd"].update(sweep={"name": "x", "point": 0, "overrides": {}}),
     "models.p1_s_nd.sweep", "not by hand"),
])
def test_bad_sweeps_are_refused_naming_the_key(change, key, message):
    with pytest.raises(ConfigError) as error:
        validate_config(_modified(change))
    assert error.value.key == key, str(error.value)
    assert message in str(error.value)


# -- nested training subsets --------------------------------------------------------------
def test_training_subsets_are_nested_seeded_and_sorted():
    sizes = (1, 5, 17, 40, 100)
    subsets = [train_subset_positions(100, n, seed=4) for n in sizes]
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) < set(large)
    for n, subset in zip(sizes, subsets):
        assert len(subset) == len(set(subset)) == n and (np.diff(subset) > 0).all()
    assert np.array_equal(train_subset_positions(100, 17, seed=4), subsets[2])
    assert not np.array_equal(train_subset_positions(100, 17, seed=5), subsets[2])
    assert np.array_equal(subsets[-1], np.arange(100))
    with pytest.raises(ValueError, match="has 100 samples"):
        train_subset_positions(100, 101)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workflow directory with the sweep config's dataset simulated (seconds)."""
    directory = tmp_path_factory.mktemp("sweeps")
    config = directory / "sweeps.yaml"
    config.write_text(yaml.safe_dump(real_run_config()))
    base = "results/datasets/p1_varying/p1_varying"
    snakemake(directory, config, f"{base}-train.nc", f"{base}-val.nc", f"{base}-test.nc")
    return directory


def test_statistics_come_from_the_subset_actually_used(workdir):
    train = workdir / "results/datasets/p1_varying/p1_varying-train.nc"
    val = workdir / "results/datasets/p1_varying/p1_varying-val.nc"
    n_train = len(read_targets(train, ["rms"]))
    subset = {"n_samples": 4, "seed": 2}
    positions = train_subset_positions(n_train, 4, seed=2)
    datamodule = ImageDataModule(train, val, targets=["rms", "correlation_length"],
                                 train_subset=subset, data_mode="ram", batch_size=2)
    normalization, targets = datamodule.fit_statistics()
    expected = ImageNormalization.fit("standardize", iter_images(train, [0, 1], "pldos",
                                                                 positions))
    assert np.allclose(normalization.shift, expected.shift, rtol=1e-12)
    assert np.allclose(normalization.scale, expected.scale, rtol=1e-12)
    values = read_targets(train, ["rms", "correlation_length"])
    assert np.allclose(targets.standardization.mean, values[positions].mean(axis=0))
    assert not np.allclose(targets.standardization.mean, values.mean(axis=0))
    assert datamodule.n_train == 4 and datamodule.describe()["n_train"] == 4
    # ram and stream modes serve the same subset rows
    batches = {}
    for mode in ("ram", "stream"):
        module = ImageDataModule(train, val, targets=["rms"], train_subset=subset,
                                 data_mode=mode, batch_size=4, num_workers=0)
        module.setup("fit")
        assert len(module._datasets["train"]) == 4
        batches[mode] = next(iter(module._loader("train", shuffle=False)))
    for a, b in zip(batches["ram"], batches["stream"]):
        assert np.array_equal(a.numpy(), b.numpy())
    assert np.allclose(batches["ram"][1].numpy()[:, 0],
                       (values[positions, 0] - targets.standardization.mean[0])
                       / targets.standardization.std[0], rtol=1e-6)
    # potential targets: min-max and the training-mean baseline of the subset
    potential = PotentialTargets().fit(train, None, positions=positions)
    with netCDF4.Dataset(train) as ds:
        stored = np.asarray(ds["potential"][:], float)
    assert potential.minimum_meV == stored[positions].min()
    assert np.allclose(training_mean_potential(train, positions), stored[positions].mean(axis=0))


# -- numbers: power law, validation metrics, selection ------------------------------------
@pytest.mark.parametrize("a, b, c", [(3.0, 0.5, 0.02), (0.8, 0.35, 0.0), (50.0, 1.0, 0.1)])
def test_power_law_fit_recovers_known_parameters(a, b, c):
    n = np.array([250, 500, 1000, 2000, 4000])
    fit = fit_power_law(n, a * n ** -b + c)
    assert fit.form == "saturating"
    assert (fit.a, fit.b, fit.c) == pytest.approx((a, b, c), rel=1e-6, abs=1e-8)
    assert fit(57600) == pytest.approx(a * 57600 ** -b + c, rel=1e-6)
    # 1 % multiplicative noise: the exponent within a few per cent
    noisy = (a * n ** -b + c) * (1 + 0.01 * np.random.default_rng(0).normal(size=len(n)))
    if c == 0:
        assert fit_power_law(n, noisy).b == pytest.approx(b, rel=0.1)
    line = fit_power_law(n[:3], a * n[:3] ** -b)  # < 4 sizes: the log-log line
    assert line.form == "loglog" and (line.a, line.b, line.c) == pytest.approx((a, b, 0.0))
    with pytest.raises(ValueError, match="at least 4"):
        fit_power_law(n[:3], a * n[:3] ** -b, form="saturating")


def test_validation_metrics_of_both_families(tmp_path):
    truth, predicted, mean = synthetic(n=60)
    path = write_predictions_file(tmp_path / "val.nc", truth, predicted, training_mean=mean,
                                  split="val")
    metrics = validation_metrics(path)
    assert set(metrics["split"]) == {"val"}
    model = metrics[metrics["predictor"] == "model"].set_index("target")
    assert model.loc["mean", "relative_error_std"] == pytest.approx(
        model.loc[["dopant_distance", "dopant_density"], "relative_error_std"].mean())
    low, high = model.loc["mean", ["relative_error_std_ci_low", "relative_error_std_ci_high"]]
    assert low < model.loc["mean", "relative_error_std"] < high
    potential = _write_predictions(tmp_path / "potential.nc", **_synthetic())
    rows = validation_metrics(potential)
    assert set(rows["predictor"]) == {"model", "training_mean_potential", "zero_potential"}
    assert "r_p_median_ci_low" in rows


def _points(scores, metric="relative_error_std"):
    points = []
    for index, score in enumerate(scores):
        metrics = pd.DataFrame([{"model": f"s_{index:02d}", "split": "val", "target": "mean",
                                 "predictor": "model", "n": 30, metric: score,
                                 f"{metric}_ci_low": score - 0.01,
                                 f"{metric}_ci_high": score + 0.01}])
        points.append({"name": f"s_{index:02d}", "overrides": {"batch_size": 2 ** index},
                       "metrics": metrics,
                       "record": {"n_train": 100, "training_seconds": 1.5 * index,
                                  "n_parameters": 1000 + index, "epochs": 3}})
    return points


def test_selection_picks_the_best_validation_score_and_only_it_goes_to_test(tmp_path):
    table = sweep_table(_points([0.30, 0.12, 0.12, 0.5]), sweep="s",
                        metric="relative_error_std", target="mean")
    assert list(table["rank"]) == [3, 1, 2, 4]  # a tie goes to the lower index
    assert chosen_point(table) == "s_01" and table["chosen"].sum() == 1
    assert list(table["batch_size"]) == [1, 2, 4, 8]
    assert {"score_ci_low", "training_seconds", "n_parameters"} <= set(table)
    higher = sweep_table(_points([0.9, 0.95, 0.5], "r2"), sweep="s", metric="r2",
                         target="mean")
    assert chosen_point(higher) == "s_01"
    test = pd.DataFrame([{"model": "s_01", "split": "test", "target": "rms",
                          "predictor": "model", "relative_error_std": 0.2}])
    scored = chosen_test_metrics(table, test)
    assert scored["chosen_point"].tolist() == ["s_01"] and scored["validation_score"][0] == 0.12
    with pytest.raises(ValueError, match="not of the chosen point"):
        chosen_test_metrics(table, test.assign(model="s_00"))
    assert plot_sweep(table, tmp_path / "sweep.png",
                      override_keys=["batch_size"]).read_bytes()[:4] == b"\x89PNG"


def test_learning_curve_table_fit_and_figure(tmp_path):
    a, b, c = 2.0, 0.5, 0.03
    points = []
    for n in (50, 100, 200, 400):
        rows = []
        for split in ("val", "test"):
            error = a * n ** -b + c
            row = {"model": f"c_n{n}", "split": split, "target": "dopant_distance",
                   "predictor": "model", "relative_error_std": error,
                   "relative_error_std_ci_low": 0.9 * error,
                   "relative_error_std_ci_high": 1.1 * error}
            ceiling = {**row, "predictor": "potential_posterior", "relative_error_std": 0.02}
            rows.append(pd.DataFrame([row] + ([ceiling] if split == "test" else [])))
        points.append({"name": f"c_n{n}", "val": rows[0], "test": rows[1],
                       "record": {"n_train": n, "training_seconds": 1.0, "n_parameters": 10,
                                  "epochs": 2}})
    table = learning_curve_table(points, sweep="c", metric="relative_error_std",
                                 target="dopant_distance", higher_is_better=False)
    assert len(table) == 8 and set(table["split"]) == {"val", "test"}
    fits = learning_curve_fits(table, kind="p1_parameter_cnn", extrapolate_to=57600)
    fit = fits.iloc[0]
    assert (fit["a"], fit["b"], fit["c"]) == pytest.approx((a, b, c), rel=1e-6)
    assert fit["extrapolated_error"] == pytest.approx(a * 57600 ** -b + c, rel=1e-6)
    assert fit["paper_error"] == pytest.approx(2.3 / 50) and fit["ceiling_error"] == 0.02
    assert fit["fitted_on"] == "val" and fit["fit_problem"] == ""
    assert plot_learning_curve(table, fits, tmp_path / "curve.png").read_bytes()[:4] == \
        b"\x89PNG"


def test_region_curve_fits_the_error_against_the_area(tmp_path):
    """Three regions at one N, error = a A^-b exactly on val: the area fit recovers a and b
    and evaluates at P1's 1.2288 µm²; each dataset's curve against N has one size, no fit."""
    a, b = 0.05, 0.25
    areas = {"small": 0.0768, "medium": 0.3072, "large": 1.2288}
    points = []
    for dataset, area in areas.items():
        frames = []
        for split in ("val", "test"):
            error = a * area ** -b * (1.0 if split == "val" else 1.1)
            row = {"split": split, "target": "rms", "predictor": "model",
                   "relative_error_std": error, "relative_error_std_ci_low": 0.95 * error,
                   "relative_error_std_ci_high": 1.05 * error}
            ceiling = {**row, "predictor": "potential_posterior", "relative_error_std": 0.3 * error}
            frames.append(pd.DataFrame([row] + ([ceiling] if split == "test" else [])))
        points.append({"name": f"r_{dataset}_n400", "val": frames[0], "test": frames[1],
                       "record": {"n_train": 400, "dataset": dataset, "region_area_um2": area}})
    table = learning_curve_table(points, sweep="r", metric="relative_error_std",
                                 target="rms", higher_is_better=False)
    assert sorted(set(table["dataset"])) == ["large", "medium", "small"]
    fits = learning_curve_fits(table, kind="p1_parameter_cnn", extrapolate_to=57600)
    per_dataset = fits[fits["axis"] == "n_train"]
    assert len(per_dataset) == 3 and (per_dataset["n_points"] == 1).all()
    assert per_dataset["fit_problem"].str.contains("at least 2").all()
    region = fits[fits["axis"] == "region_area_um2"].iloc[0]
    assert (region["a"], region["b"]) == pytest.approx((a, b), rel=1e-9)
    assert region["extrapolate_to_area_um2"] == pytest.approx(1.28 * 0.96)
    assert region["extrapolated_error"] == pytest.approx(a * 1.2288 ** -b, rel=1e-9)
    # the largest region's test point and its ceiling; P1's number beside it
    assert region["test_error_at_n_max"] == pytest.approx(1.1 * a * 1.2288 ** -b)
    assert region["ceiling_error"] == pytest.approx(0.33 * a * 1.2288 ** -b)
    assert region["paper_error"] == pytest.approx(PAPER_ERRORS["rms"].relative_percent / 100)
    assert plot_learning_curve(table, fits, tmp_path / "regions.png").read_bytes()[:4] == \
        b"\x89PNG"


# -- the workflow -------------------------------------------------------------------------
def snakemake(workdir, config, *args, check=True):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}"
                             f"\n{result.stderr[-6000:]}")
    return result.stdout + result.stderr


def planned(workdir, config, *args):
    """{rule: count} of a dry run (empty when there is nothing to do)."""
    return job_counts(snakemake(workdir, config, "--dry-run", *args))


def real_run_config(**sweeps):
    """p1_varying of the test config, 30 samples (10 train, 14 val, 6 test), the same on a
    smaller region (p1_smaller), one tiny parameter CNN as the base, and the given sweeps
    (default: a random sample of 2 points over 2 hyperparameters, a learning curve over 4
    training-set sizes, and one over the two regions at 5 samples)."""
    config = base_config()
    dataset = dict(config["datasets"]["p1_varying"], n_samples=30, shard_size=15,
                   splits={"train": 0.5, "val": 0.25, "test": 0.25})
    # the same physics on a smaller region (28 × 22 sites against 40 × 30)
    smaller = dict(dataset, seed=dataset["seed"] + 1,
                   geometry=dict(dataset["geometry"], length_nm=140.0, width_nm=110.0))
    config["datasets"] = {"p1_varying": dataset, "p1_smaller": smaller}
    config["models"] = {"cnn": dict(config["models"]["p1_s_nd"], max_epochs=2)}
    config["figures"] = {"sample_ids": [0]}
    config["sweeps"] = sweeps or {
        "tune": {"base": "cnn", "random": {"n_points": 2, "seed": 2, "space": {
            "optimizer.learning_rate": {"log_uniform": [3e-4, 3e-3]},
            "architecture.conv_channels": {"choices": [[4, 4, 8], [8, 8, 8]]}}}},
        "curve": {"base": "cnn", "learning_curve": {"n_samples": [3, 5, 7, 10]}},
        "regions": {"base": "cnn", "learning_curve": {
            "n_samples": [5], "datasets": ["p1_smaller", "p1_varying"]}}}
    return config


def test_dry_run_plans_one_job_per_point(tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(real_run_config(
        grid={"base": "cnn", "grid": GRID["grid"]},
        curve={"base": "cnn", "learning_curve": {"n_samples": [3, 5, 7, 10]}})))
    data = {"dataset_definition": 1, "simulate_p1_shard": 2, "validate_dataset": 1,
            "split_dataset": 1}
    # the sweeps alone: 4 + 4 points trained and scored on val, the learning curve's also
    # on test; the grid's chosen point joins the test jobs once the checkpoint has chosen it
    assert planned(tmp_path, config, "sweeps") == {
        **data, "model_definition": 8, "train_model": 8, "predict_val_split": 8,
        "validation_metrics": 8, "predict_test_split": 4, "evaluate_model": 4,
        "sweep_validation": 1, "sweep_test": 1, "learning_curve": 1, "sweeps": 1}
    # everything: the base model as before, its summaries, the sweeps
    everything = planned(tmp_path, config)
    assert everything["train_model"] == 9 and everything["evaluate_model"] == 5
    assert everything["models_summary"] == everything["results_page"] == 1
    assert everything["sweep_validation"] == everything["learning_curve"] == 1


@pytest.fixture(scope="module")
def sweep_run(workdir):
    config = workdir / "sweeps.yaml"
    snakemake(workdir, config, "sweeps")
    return workdir, config


@pytest.mark.slow
def test_small_real_sweep_and_learning_curve(sweep_run):
    workdir, config = sweep_run
    sweeps = workdir / "results/sweeps"
    table = pd.read_csv(sweeps / "tune/validation.csv")
    assert list(table["point"]) == ["tune_00", "tune_01"] and table["chosen"].sum() == 1
    assert set(table["split"]) == {"val"} and (table["n_val"] > 0).all()
    assert {"optimizer.learning_rate", "architecture.conv_channels", "score_ci_low",
            "dopant_distance:r2_ci_high", "training_seconds", "n_parameters"} <= set(table)
    assert table["n_parameters"].nunique() == 2  # the widths differ
    chosen = chosen_point(table)
    test = pd.read_csv(sweeps / "tune/chosen_test.csv")
    assert set(test["model"]) == {chosen} and set(test["split"]) == {"test"}
    assert "potential_posterior" in set(test["predictor"])
    # only the chosen point was scored on test
    for point in table["point"]:
        assert (workdir / f"results/evaluation/{point}/metrics-val.csv").exists()
        assert (workdir / f"results/evaluation/{point}/metrics.csv").exists() == \
            (point == chosen)
    curve = pd.read_csv(sweeps / "curve/learning_curve.csv")
    assert sorted(set(curve["n_train"])) == [3, 5, 7, 10]
    assert set(curve["split"]) == {"val", "test"}
    fits = pd.read_csv(sweeps / "curve/learning_curve_fit.csv")
    assert set(fits["target"]) == {"dopant_distance", "dopant_density", "mean"}
    assert (fits["fitted_on"] == "val").all() and (fits["extrapolate_to"] == 57600).all()
    assert fits["ceiling_error"].notna().sum() == 2  # the test split's Bayes ceiling
    regions = pd.read_csv(sweeps / "regions/learning_curve.csv")
    assert sorted(set(regions["point"])) == ["regions_p1_smaller_n5", "regions_p1_varying_n5"]
    assert sorted(set(regions["region_area_um2"].round(6))) == [0.0154, 0.03]
    region_fits = pd.read_csv(sweeps / "regions/learning_curve_fit.csv")
    by_area = region_fits[region_fits["axis"] == "region_area_um2"]
    assert set(by_area["target"]) == {"dopant_distance", "dopant_density", "mean"}
    assert (by_area["extrapolate_to_area_um2"] == 1.28 * 0.96).all()
    assert by_area["b"].notna().all()  # two areas: a log-log line through them
    for figure in ("tune/validation.png", "curve/learning_curve.png",
                   "regions/learning_curve.png"):
        assert (sweeps / figure).read_bytes()[:4] == b"\x89PNG"
    for rule in ("sweeps/tune/validation", "sweeps/curve/learning_curve",
                 "validation_metrics/tune_00", "predict_val/curve_n3"):
        assert (workdir / f"logs/benchmarks/{rule}.tsv").exists()
    # cached: nothing to redo; one point reruns alone
    assert planned(workdir, config, "sweeps") == {}
    assert planned(workdir, config, "results/models/tune_01/model.pt", "--forcerun",
                   "train_model") == {"train_model": 1}
