"""Evaluation of parameter models (P1 Sec. III, Fig. 3) on synthetic predictions files in the
exact format of `mesoinv predict`: metrics against hand-computed numpy, the training-mean
baseline, the rms error of Eq. 5 and the linearised line of Fig. 3, every output written."""

import json
import math

import netCDF4
import numpy as np
import pandas as pd
import pytest

from mesoinv.evaluation.p1_parameters.evaluate import evaluate_parameter_model
from mesoinv.evaluation.p1_parameters.figures import (plot_error_correlation,
                                                      plot_error_histograms,
                                                      plot_predicted_vs_true)
from mesoinv.evaluation.p1_parameters.metrics import (
    INTERVAL_METRICS,
    BASELINE_DESCRIPTION, PAPER_ERRORS, paper_comparison, regression_metrics,
    rms_compensation_slope, rms_relative_error)
from mesoinv.physics.disorder import RemoteDopantDisorder
from mesoinv.physics.materials import GAAS, Material

UNITS = {"dopant_distance": "nm", "dopant_density": "cm-2", "rms": "meV",
         "correlation_length": "nm"}

METADATA = {"relative_permittivity": 12.9, "effective_mass_kg": 5.74e-32,
            "cutoff_factor": 3.5,
            # what the datasets store: the material's 2/a_B* (a_B* = 10.83 nm for GaAs)
            "thomas_fermi_wavevector_per_nm": GAAS.thomas_fermi_wavevector_per_nm,
            "lattice_constant_nm": 5.0, "length_nm": 320.0, "width_nm": 240.0,
            "energy_meV": 5.6, "hopping_meV": 24.19}


def write_predictions_file(path, truth, predicted, *, training_mean, with_truth=True,
                           split="test", model_name="synthetic"):
    """A predictions file in format mesoinv-predictions-1 (as `mesoinv predict` writes it)."""
    names = list(predicted)
    n = len(next(iter(predicted.values())))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("sample", n)
        var = ds.createVariable("sample_id", "i8", ("sample",))
        var.units, var[:] = "1", np.arange(n, dtype=np.int64) + 100
        for name in names:
            var = ds.createVariable(name, "f8", ("sample",))
            var.units, var.long_name = UNITS[name], f"predicted {name}"
            var[:] = predicted[name]
            if with_truth:
                var = ds.createVariable(f"{name}_true", "f8", ("sample",))
                var.units, var.long_name = UNITS[name], f"true {name}"
                var[:] = truth[name]
        ds.setncatts({
            "format_version": "mesoinv-predictions-1", "model_name": model_name,
            "model_kind": "p1_parameter_cnn", "split": split, "input_file": "synthetic.nc",
            "targets": json.dumps(names),
            "target_units": json.dumps({k: UNITS[k] for k in names}),
            "training_mean": json.dumps({k: training_mean[k] for k in names}),
            "n_train": np.int64(1000), "data_metadata": json.dumps(METADATA, sort_keys=True),
            "command": "mesoinv predict model.pt test.nc --output predictions.nc"})
    return path


def synthetic(n=200, seed=7, noise=(0.03, 0.1)):
    """P1 (s, N_d) truth and predictions = truth × (1 + noise), seeded."""
    rng = np.random.default_rng(seed)
    truth = {"dopant_distance": rng.uniform(40, 70, n),
             "dopant_density": rng.uniform(0.6e12, 1.5e12, n)}
    predicted = {"dopant_distance": truth["dopant_distance"] * (1 + noise[0] * rng.normal(size=n)),
                 "dopant_density": truth["dopant_density"] * (1 + noise[1] * rng.normal(size=n))}
    mean = {"dopant_distance": 55.3, "dopant_density": 1.04e12}
    return truth, predicted, mean


@pytest.fixture
def sd_file(tmp_path):
    truth, predicted, mean = synthetic()
    path = write_predictions_file(tmp_path / "pred.nc", truth, predicted, training_mean=mean)
    return path, truth, predicted, mean


def test_metrics_equal_numpy(sd_file):
    path, truth, predicted, mean = sd_file
    metrics = regression_metrics(path)
    assert len(metrics) == 4
    assert set(metrics["predictor"]) == {"model", "training_mean"}
    assert {"model", "split", "target", "units", "predictor", "n", "error_std", "error_mean",
            "rmse", "mae", "relative_error_std", "r2", "baseline", "command"} <= set(metrics)
    for target in truth:
        true, pred = truth[target], predicted[target]
        row = metrics[(metrics.target == target) & (metrics.predictor == "model")].iloc[0]
        error = pred - true
        assert row["n"] == len(true)
        assert row["units"] == UNITS[target]
        assert row["split"] == "test" and row["model"] == "synthetic"
        assert row["error_std"] == np.std(error)
        assert row["error_mean"] == np.mean(error)
        assert row["rmse"] == np.sqrt(np.mean(error**2))
        assert row["mae"] == np.mean(np.abs(error))
        assert row["relative_error_std"] == np.std(error / true)
        assert row["r2"] == 1 - np.sum(error**2) / np.sum((true - true.mean())**2)
        assert 0.5 < row["r2"] < 1

        base = metrics[(metrics.target == target) & (metrics.predictor == "training_mean")]
        base = base.iloc[0]
        base_error = mean[target] - true
        assert base["baseline"] == BASELINE_DESCRIPTION
        assert base["error_std"] == np.std(base_error)
        assert base["error_mean"] == np.mean(base_error)
        assert base["r2"] == 1 - np.sum(base_error**2) / np.sum((true - true.mean())**2)
        assert base["r2"] <= 0
        assert base["training_mean"] == mean[target]
    # the synthetic noise: σ(Δs/s) ≈ 3 %, σ(ΔN_d/N_d) ≈ 10 %
    model = metrics[metrics.predictor == "model"].set_index("target")
    assert model.loc["dopant_distance", "relative_error_std"] == pytest.approx(0.03, rel=0.2)
    assert model.loc["dopant_density", "relative_error_std"] == pytest.approx(0.1, rel=0.2)


def test_metrics_carry_bootstrap_intervals(sd_file):
    """Every headline metric has a 95 % interval that contains it; the interval of σ matches
    the textbook width for Gaussian errors (σ/√(2n) per standard error), and the model's R²
    interval lies above the baseline's (paired resamples)."""
    path, truth, predicted, mean = sd_file
    metrics = regression_metrics(path)
    for name in INTERVAL_METRICS:
        low, high = metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"]
        assert ((low <= metrics[name] + 1e-12) & (metrics[name] <= high + 1e-12)).all(), name
    model = metrics[metrics.predictor == "model"].set_index("target")
    baseline = metrics[metrics.predictor == "training_mean"].set_index("target")
    for target in truth:
        n = len(truth[target])
        sigma = model.loc[target, "error_std"]
        width = model.loc[target, "error_std_ci_high"] - model.loc[target, "error_std_ci_low"]
        assert width == pytest.approx(2 * 1.96 * sigma / np.sqrt(2 * n), rel=0.35)
        assert model.loc[target, "r2_ci_low"] > baseline.loc[target, "r2_ci_high"]
    # Seeded: the same file gives the same intervals.
    again = regression_metrics(path)
    assert again["r2_ci_low"].equals(metrics["r2_ci_low"])


def test_perfect_prediction_and_tiny_files(tmp_path):
    truth, _, mean = synthetic(n=50)
    path = write_predictions_file(tmp_path / "perfect.nc", truth, truth, training_mean=mean)
    model = regression_metrics(path).query("predictor == 'model'")
    assert (model["r2"] == 1).all() and (model["error_std"] == 0).all()
    assert (rms_relative_error(truth["dopant_distance"], truth["dopant_density"],
                               truth["dopant_distance"], truth["dopant_density"],
                               METADATA) == 0).all()

    # two samples: everything is written; constant truth gives R² = NaN, not a crash
    truth, predicted, mean = synthetic(n=2)
    path = write_predictions_file(tmp_path / "two.nc", truth, predicted, training_mean=mean)
    paths = evaluate_parameter_model(path, tmp_path / "two")
    assert all(p.stat().st_size > 0 for p in paths.values())
    constant = {k: np.full(2, v[0]) for k, v in truth.items()}
    path = write_predictions_file(tmp_path / "constant.nc", constant, predicted,
                                  training_mean=mean)
    assert regression_metrics(path)["r2"].isna().all()
    assert plot_predicted_vs_true(path, tmp_path / "constant.png").stat().st_size > 0


def test_rms_relative_error_sign_and_value():
    s, nd = np.array([45.0, 60.0]), np.array([0.8e12, 1.2e12])
    assert np.array_equal(rms_relative_error(s, nd, s, nd, METADATA), [0.0, 0.0])
    # N_d overestimated at the true s: a stronger potential, rms ∝ √N_d
    over = rms_relative_error(s, nd, s, nd * 1.21, METADATA)
    assert np.all(over > 0)
    np.testing.assert_allclose(over, 0.1, rtol=1e-12)
    # s overestimated at the true N_d: a weaker potential
    assert np.all(rms_relative_error(s, nd, s * 1.05, nd, METADATA) < 0)
    # against the physics module directly, both parameters wrong
    material = Material(12.9, 5.74e-32)
    q_tf = METADATA["thomas_fermi_wavevector_per_nm"]
    direct = (RemoteDopantDisorder(52.0, 1.3e12, material, 3.5, q_tf).rms_meV
              / RemoteDopantDisorder(50.0, 1.0e12, material, 3.5, q_tf).rms_meV - 1)
    value = rms_relative_error(50.0, 1.0e12, 52.0, 1.3e12, METADATA)
    assert value == pytest.approx(direct, rel=1e-10)
    # q_TF absent from the metadata: the material's 2/a_B*, the same numbers
    no_qtf = {k: v for k, v in METADATA.items() if k != "thomas_fermi_wavevector_per_nm"}
    assert rms_relative_error(50.0, 1.0e12, 52.0, 1.3e12, no_qtf) == pytest.approx(direct,
                                                                                   rel=1e-12)
    # unphysical predictions give NaN, not an exception
    assert np.isnan(rms_relative_error(50.0, 1e12, -3.0, 1e12, METADATA))


def test_compensation_slope():
    s = 55.0
    slope = rms_compensation_slope(s, METADATA)
    assert slope > 0
    # independent finite difference of the rms itself (another step, log derivative)
    q_tf = METADATA["thomas_fermi_wavevector_per_nm"]

    def rms(distance, density=1e12):
        return RemoteDopantDisorder(distance, density, GAAS, 3.5, q_tf).rms_meV

    h = 1e-3 * s
    dlnf_dlns = (math.log(rms(s + h)) - math.log(rms(s - h))) / (2 * h) * s
    assert slope == pytest.approx(-2 * dlnf_dlns, rel=1e-5)
    # along the line the rms error vanishes to first order: O(ε²), against O(ε) off it
    eps = 1e-3
    on_line = rms_relative_error(s, 1e12, s * (1 + eps), 1e12 * (1 + slope * eps), METADATA)
    off_line = rms_relative_error(s, 1e12, s * (1 + eps), 1e12 * (1 - slope * eps), METADATA)
    assert abs(on_line) < 1e-2 * eps
    assert abs(off_line) > 0.5 * eps


def test_paper_comparison(sd_file):
    path = sd_file[0]
    metrics = regression_metrics(path)
    table = paper_comparison(metrics)
    assert list(table["target"]) == ["dopant_distance", "dopant_density"]
    row = table.set_index("target").loc["dopant_distance"]
    model = metrics.query("predictor == 'model' and target == 'dopant_distance'").iloc[0]
    base = metrics.query("predictor == 'training_mean' and target == 'dopant_distance'").iloc[0]
    assert row["error_std"] == model["error_std"] and row["units"] == "nm"
    assert row["relative_error_std_percent"] == 100 * model["relative_error_std"]
    assert row["paper_error_std"] == 2.3 and row["paper_units"] == "nm"
    assert row["paper_relative_percent"] == pytest.approx(4.6)
    assert row["baseline_relative_error_std_percent"] == 100 * base["relative_error_std"]
    density = table.set_index("target").loc["dopant_density"]
    assert density["paper_relative_percent"] == pytest.approx(18.0)
    assert PAPER_ERRORS["rms"].relative_percent == pytest.approx(2.92)
    assert PAPER_ERRORS["correlation_length"].relative_percent == pytest.approx(3.6)


def test_every_output_written(sd_file, tmp_path):
    path = sd_file[0]
    out = tmp_path / "eval"
    # evaluate_parameter_model calls plot_error_correlation, plot_predicted_vs_true and
    # plot_error_histograms: one call checks every writer
    paths = evaluate_parameter_model(path, out)
    assert set(paths) == {"metrics", "paper_comparison", "predicted_vs_true",
                          "error_histograms", "error_correlation"}
    assert {p.name for p in paths.values()} == {
        "metrics.csv", "paper_comparison.csv", "predicted_vs_true.png",
        "error_histograms.png", "error_correlation.png"}
    pd.testing.assert_frame_equal(pd.read_csv(paths["metrics"]).drop(columns="baseline"),
                                  regression_metrics(path).drop(columns="baseline"))
    assert len(pd.read_csv(paths["paper_comparison"])) == 2
    for key in ("predicted_vs_true", "error_histograms", "error_correlation"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))


def test_other_targets_fall_back(tmp_path):
    rng = np.random.default_rng(3)
    truth = {"rms": rng.uniform(1, 2, 30), "correlation_length": rng.uniform(60, 110, 30)}
    predicted = {k: v * (1 + 0.02 * rng.normal(size=30)) for k, v in truth.items()}
    mean = {"rms": 1.5, "correlation_length": 85.0}
    path = write_predictions_file(tmp_path / "rx.nc", truth, predicted, training_mean=mean)
    paths = evaluate_parameter_model(path, tmp_path / "rx")
    assert paths["error_correlation"].stat().st_size > 0
    table = pd.read_csv(paths["paper_comparison"]).set_index("target")
    assert table.loc["rms", "paper_units"] == "t"
    with pytest.raises(ValueError, match="Fig. 3"):
        plot_error_correlation(path, tmp_path / "nope.png")
    # a single target
    single = write_predictions_file(tmp_path / "one.nc", {"rms": truth["rms"]},
                                    {"rms": predicted["rms"]}, training_mean=mean)
    assert evaluate_parameter_model(single, tmp_path / "one")["error_correlation"].exists()


def test_no_truth_is_a_clear_error(tmp_path):
    truth, predicted, mean = synthetic(n=5)
    path = write_predictions_file(tmp_path / "blind.nc", truth, predicted, training_mean=mean,
                                  with_truth=False)
    for call in (lambda: regression_metrics(path),
                 lambda: plot_predicted_vs_true(path, tmp_path / "a.png"),
                 lambda: plot_error_histograms(path, tmp_path / "b.png"),
                 lambda: plot_error_correlation(path, tmp_path / "c.png"),
                 lambda: evaluate_parameter_model(path, tmp_path / "d")):
        with pytest.raises(ValueError, match="_true"):
            call()
    assert not (tmp_path / "d").exists()
