"""Evaluation of potential-reconstruction models (P1 Sec. IV, Figs. 4-8, Eq. 6) on synthetic
predictions files in the format `mesoinv-potential-predictions-1`: r_P, the error map and the
coefficient errors against hand-computed numbers, the least-squares projection on the
simulator's Eq. 1, the baselines, r_P by distance from the QPC, every output written, and the
PLDOS recomputed from the potentials of a tiny real P1 dataset."""

import json
import math
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.evaluation.p1_potential.consistency import pldos_consistency
from mesoinv.evaluation.p1_potential.evaluate import OUTPUT_FILES, evaluate_potential_model
from mesoinv.evaluation.p1_potential.metrics import (
    BASELINE_DESCRIPTIONS, INTERVAL_METRICS, coefficient_errors, coefficient_mse, local_rms_error_map, pearson_r,
    per_sample_r_p, r_p_by_distance, reconstruction_by_distance, reconstruction_metrics)
from mesoinv.evaluation.p1_potential.paper import PAPER_RECONSTRUCTION, paper_comparison
from mesoinv.evaluation.p1_potential.projection import (eq1_basis, potential_from_coefficients,
                                                        project_coefficients)
from mesoinv.inference.p1_formats import read_potential_predictions
from mesoinv.physics.disorder import RemoteDopantDisorder, draw_fourier_coefficients, \
    fourier_modes
from mesoinv.physics.materials import GAAS

ROOT = Path(__file__).resolve().parents[1]

# A tiny box: 16 × 12 sites of 5 nm, s = 15 nm (so that the cutoff 3.5/s holds a few modes).
A_NM, NX, NY = 5.0, 16, 12
X_NM, Y_NM = np.arange(NX) * A_NM, np.arange(NY) * A_NM
S_NM, ND_CM2 = 15.0, 1e12
DISORDER = RemoteDopantDisorder(S_NM, ND_CM2, GAAS)
MODES = fourier_modes(NX * A_NM, NY * A_NM, DISORDER.cutoff_per_nm)
SIGMA = DISORDER.coefficient_sigma(NX * A_NM, NY * A_NM)
METADATA = {"lattice_constant_nm": A_NM, "nx_sites": NX, "ny_sites": NY,
            "length_nm": NX * A_NM, "width_nm": NY * A_NM, "qpc_first_y_site": 2,
            "qpc_width_sites": 8, "energy_meV": 5.6, "hopping_meV": 24.19,
            "effective_mass_kg": GAAS.effective_mass_kg,
            "relative_permittivity": GAAS.relative_permittivity,
            "thomas_fermi_wavevector_per_nm": GAAS.thomas_fermi_wavevector_per_nm,
            "cutoff_factor": 3.5, "dopant_distance_range_nm": [S_NM, S_NM],
            "dopant_density_range_cm2": [ND_CM2, ND_CM2], "dataset_name": "tiny"}


def _write_predictions(path, *, potential, potential_true, training_mean, coefficients_true,
                       coefficients_predicted=None, kind="p1_encoder_decoder", sample_id=None,
                       x_nm=X_NM, y_nm=Y_NM, modes=MODES, metadata=METADATA, s_nm=S_NM,
                       sigma=SIGMA, with_truth=True, model_name="synthetic"):
    """A predictions file in format mesoinv-potential-predictions-1, from arrays."""
    n = len(potential)
    sample_id = np.arange(n) + 100 if sample_id is None else np.asarray(sample_id)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        for name, size in (("sample", n), ("x", len(x_nm)), ("y", len(y_nm)),
                           ("mode", len(modes))):
            ds.createDimension(name, size)

        def variable(name, dtype, dims, data, units):
            var = ds.createVariable(name, dtype, dims)
            var.units = units
            var[...] = data

        variable("sample_id", "i8", ("sample",), sample_id, "1")
        variable("x", "f8", ("x",), x_nm, "nm")
        variable("y", "f8", ("y",), y_nm, "nm")
        variable("potential", "f8", ("sample", "x", "y"), potential, "meV")
        variable("training_mean_potential", "f8", ("x", "y"), training_mean, "meV")
        variable("qx", "f8", ("mode",), modes.qx_per_nm, "nm-1")
        variable("qy", "f8", ("mode",), modes.qy_per_nm, "nm-1")
        variable("mode_m", "i4", ("mode",), modes.m, "1")
        variable("mode_n", "i4", ("mode",), modes.n, "1")
        if with_truth:
            variable("potential_true", "f8", ("sample", "x", "y"), potential_true, "meV")
            variable("fourier_coefficient_real_true", "f8", ("sample", "mode"),
                     np.real(coefficients_true), "1")
            variable("fourier_coefficient_imag_true", "f8", ("sample", "mode"),
                     np.imag(coefficients_true), "1")
        if coefficients_predicted is not None:
            variable("fourier_coefficient_real", "f8", ("sample", "mode"),
                     np.real(coefficients_predicted), "1")
            variable("fourier_coefficient_imag", "f8", ("sample", "mode"),
                     np.imag(coefficients_predicted), "1")
        ds.setncatts({
            "format_version": "mesoinv-potential-predictions-1", "model_name": model_name,
            "model_kind": kind, "model_file": "model.pt", "split": "test",
            "input_file": "tiny-test.nc", "n_train": np.int64(500),
            "training_dataset": "tiny", "data_metadata": json.dumps(metadata),
            "dopant_distance_nm": float(s_nm), "coefficient_sigma": float(sigma),
            "command": "mesoinv predict model.pt tiny-test.nc -o predictions.nc",
            "code_version": "test"})
    return path


def _synthetic(n=12, seed=3, kind="p1_encoder_decoder"):
    """True coefficients and potentials, a noisy prediction, a training-mean map."""
    rng = np.random.default_rng(seed)
    true_c = np.stack([draw_fourier_coefficients(rng, len(MODES), SIGMA) for _ in range(n)])
    true_v = potential_from_coefficients(true_c, MODES, DISORDER, X_NM, Y_NM)
    train_c = np.stack([draw_fourier_coefficients(rng, len(MODES), SIGMA) for _ in range(20)])
    mean_v = potential_from_coefficients(train_c, MODES, DISORDER, X_NM, Y_NM).mean(axis=0)
    if kind == "p1_fourier_cnn":
        pred_c = true_c + 0.3 * SIGMA * (rng.normal(size=true_c.shape)
                                         + 1j * rng.normal(size=true_c.shape))
        pred_v = potential_from_coefficients(pred_c, MODES, DISORDER, X_NM, Y_NM)
    else:
        pred_c = None
        pred_v = true_v + 0.2 * true_v.std() * rng.normal(size=true_v.shape)
    return dict(potential=pred_v, potential_true=true_v, training_mean=mean_v,
                coefficients_true=true_c, coefficients_predicted=pred_c, kind=kind)


# -- r_P, error map, coefficient MSE ------------------------------------------------------
def test_pearson_r_hand_values_and_numpy():
    predicted = np.array([[1.0, 2.0], [3.0, 4.0]])
    true = np.array([[1.0, 2.0], [3.0, 5.0]])
    # deviations (-1.5, -0.5, 0.5, 1.5) and (-1.75, -0.75, 0.25, 2.25): Σxy = 6.5,
    # Σx² = 5, Σy² = 8.75
    assert pearson_r(predicted, true) == pytest.approx(6.5 / math.sqrt(5 * 8.75), rel=1e-14)
    assert pearson_r(predicted, -true) == pytest.approx(-6.5 / math.sqrt(5 * 8.75), rel=1e-14)
    assert pearson_r(3 * predicted + 7, true) == pytest.approx(pearson_r(predicted, true))
    assert pearson_r(true, true) == pytest.approx(1.0, abs=1e-15)
    # vectorised over samples, equal to numpy's corrcoef per image; one map broadcasts
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 3))
    expected = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(5)]
    np.testing.assert_allclose(pearson_r(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(pearson_r(a[0], b),
                               [np.corrcoef(a[0].ravel(), b[i].ravel())[0, 1] for i in range(5)],
                               rtol=1e-12)


def test_pearson_r_constant_image_is_nan():
    true = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert np.isnan(pearson_r(np.zeros((2, 2)), true))
    # a constant whose mean is not exact in floating point is still constant
    assert np.isnan(pearson_r(np.full((7, 3), 0.1), np.arange(21.0).reshape(7, 3)))
    r = pearson_r(np.stack([np.zeros((2, 2)), true]), np.stack([true, true]))
    assert np.isnan(r[0]) and r[1] == pytest.approx(1.0)


def test_local_rms_error_map_hand_example():
    true = np.array([[[1.0, -1.0], [2.0, 0.0]],
                     [[-1.0, 1.0], [0.0, -2.0]]])
    error = np.array([[[1.0, 0.0], [0.0, 0.0]],
                      [[1.0, 0.0], [0.0, 2.0]]])
    # √⟨e²⟩ per pixel = [[1, 0], [0, √2]]; rms(true) = √(12/8)
    expected = np.array([[1.0, 0.0], [0.0, math.sqrt(2)]]) / math.sqrt(1.5)
    np.testing.assert_allclose(local_rms_error_map(true + error, true), expected, rtol=1e-14)
    # the zero potential: √⟨V²⟩ per pixel / rms
    np.testing.assert_allclose(local_rms_error_map(np.zeros((2, 2)), true),
                               np.sqrt(np.mean(true**2, axis=0)) / math.sqrt(1.5), rtol=1e-14)
    with pytest.raises(ValueError, match="all zero"):
        local_rms_error_map(true, np.zeros_like(true))


def test_coefficient_mse_scaling():
    true = np.array([[1 + 2j, 0 + 0j], [3 - 1j, 2 + 2j]])
    predicted = true + np.array([[1 + 0j, 2j], [-3 + 1j, 0j]])
    real, imag = coefficient_mse(predicted, true, sigma=2.0)
    np.testing.assert_allclose(real, [(1 + 9) / 2 / 4, 0.0])
    np.testing.assert_allclose(imag, [(0 + 1) / 2 / 4, (4 + 0) / 2 / 4])
    real_4, _ = coefficient_mse(predicted, true, sigma=4.0)
    np.testing.assert_allclose(real_4, real / 4)
    # the zero predictor: ⟨(Re C)²⟩/σ² ≈ 1 for coefficients of standard deviation σ
    rng = np.random.default_rng(1)
    c = np.stack([draw_fourier_coefficients(rng, 3, 5.0) for _ in range(20000)])
    zero_real, zero_imag = coefficient_mse(np.zeros(3), c, 5.0)
    np.testing.assert_allclose(zero_real, 1.0, atol=0.05)
    np.testing.assert_allclose(zero_imag, 1.0, atol=0.05)
    with pytest.raises(ValueError):
        coefficient_mse(predicted, true, sigma=0.0)


# -- Eq. 1 basis and projection ----------------------------------------------------------
def test_projection_recovers_known_coefficients():
    assert len(MODES) >= 6
    rng = np.random.default_rng(2)
    c = np.stack([draw_fourier_coefficients(rng, len(MODES), SIGMA) for _ in range(4)])
    v = potential_from_coefficients(c, MODES, DISORDER, X_NM, Y_NM)
    # the basis is the simulator's Eq. 1, real-linear in (Re C, Im C)
    basis = eq1_basis(MODES, DISORDER, X_NM, Y_NM)
    np.testing.assert_allclose(np.tensordot(np.concatenate([c.real, c.imag], axis=1), basis, 1),
                               v, rtol=0, atol=1e-12 * np.abs(v).max())
    projected, residual = project_coefficients(v, MODES, DISORDER, X_NM, Y_NM,
                                               return_residual=True)
    assert np.max(np.abs(projected - c)) < 1e-10 * np.max(np.abs(c))
    assert np.all(residual < 1e-10 * np.abs(v).max())
    single = project_coefficients(v[0], MODES, DISORDER, X_NM, Y_NM)
    assert np.max(np.abs(single - c[0])) < 1e-10 * np.max(np.abs(c))
    # a field outside the span of Eq. 1 leaves a residual, the in-span part is still found
    noise = np.random.default_rng(3).normal(size=v.shape)
    _, residual = project_coefficients(v + noise, MODES, DISORDER, X_NM, Y_NM,
                                       return_residual=True)
    assert np.all(residual > 0.5)


def test_modes_beyond_the_cutoff_project_to_zero():
    wide = fourier_modes(NX * A_NM, NY * A_NM, 1.5 * DISORDER.cutoff_per_nm)
    outside = wide.q_per_nm >= DISORDER.cutoff_per_nm
    assert outside.any()
    rng = np.random.default_rng(4)
    c = draw_fourier_coefficients(rng, len(wide), SIGMA)
    c[outside] = 0
    v = DISORDER.potential_meV(wide, c, X_NM, Y_NM)
    projected = project_coefficients(v, wide, DISORDER, X_NM, Y_NM)
    assert np.all(projected[outside] == 0)
    assert np.max(np.abs(projected - c)) < 1e-10 * np.max(np.abs(c))


def test_training_mean_potential_is_eq1_of_the_mean_coefficients():
    rng = np.random.default_rng(5)
    c = np.stack([draw_fourier_coefficients(rng, len(MODES), SIGMA) for _ in range(30)])
    v = potential_from_coefficients(c, MODES, DISORDER, X_NM, Y_NM)
    mean_map = v.mean(axis=0)
    np.testing.assert_allclose(
        mean_map, potential_from_coefficients(c.mean(axis=0), MODES, DISORDER, X_NM, Y_NM),
        rtol=0, atol=1e-12 * np.abs(v).max())
    projected = project_coefficients(mean_map, MODES, DISORDER, X_NM, Y_NM)
    assert np.max(np.abs(projected - c.mean(axis=0))) < 1e-10 * np.max(np.abs(c))


# -- r_P by distance from the QPC ----------------------------------------------------------
def test_r_p_by_distance_on_a_constructed_example():
    rng = np.random.default_rng(6)
    true = rng.normal(size=(5, NX, NY))
    centre = (2 + (8 - 1) / 2) * A_NM
    distance = np.hypot(X_NM[:, None], Y_NM[None, :] - centre)
    edges = np.linspace(0, distance.max(), 9)
    # right inside the first four rings, sign-flipped beyond
    predicted = np.where(distance < edges[4], true, -true)
    table = r_p_by_distance(predicted, true, X_NM, Y_NM, centre, n_bins=8)
    assert list(table["bin"]) == list(range(8))
    np.testing.assert_allclose(table["distance_max_nm"].iloc[-1], distance.max())
    assert table["n_pixels"].sum() == NX * NY
    np.testing.assert_allclose(table["r_p_median"][:4], 1.0)
    np.testing.assert_allclose(table["r_p_median"][4:], -1.0)
    np.testing.assert_allclose(table["r_p_min"][:4], 1.0)
    np.testing.assert_allclose(table["relative_rmse"][:4], 0.0, atol=1e-15)
    # beyond: error = -2 V; √⟨4 V²⟩_ring / rms(V)_all
    rms = np.sqrt(np.mean(true**2))
    for b in range(4, 8):
        ring = (distance >= edges[b]) & ((distance < edges[b + 1]) | (b == 7))
        assert table["n_pixels"][b] == ring.sum()
        assert table["relative_rmse"][b] == pytest.approx(
            2 * np.sqrt(np.mean(true[:, ring] ** 2)) / rms, rel=1e-12)
    # one map for all samples (a baseline), and the zero map (r_P undefined)
    mean_table = r_p_by_distance(true[0], true, X_NM, Y_NM, centre, n_bins=8)
    assert mean_table["n_samples"].iloc[0] == 5
    zero = r_p_by_distance(np.zeros((NX, NY)), true, X_NM, Y_NM, centre, n_bins=8)
    assert zero["r_p_median"].isna().all() and (zero["n_r_p_defined"] == 0).all()


# -- metrics, baselines, files -------------------------------------------------------------
@pytest.fixture(params=["p1_encoder_decoder", "p1_fourier_cnn"])
def predictions_file(request, tmp_path):
    data = _synthetic(kind=request.param)
    path = _write_predictions(tmp_path / f"{request.param}.nc", **data)
    return path, data


def test_metrics_and_baselines(predictions_file):
    path, data = predictions_file
    metrics = reconstruction_metrics(path).set_index("predictor")
    assert list(metrics.index) == ["model", "training_mean_potential", "zero_potential"]
    assert {"model", "split", "target", "units", "n", "r_p_mean", "r_p_median", "r_p_q05",
            "r_p_min", "r_p_max", "fraction_r_p_above_0_9", "fraction_r_p_above_0_99",
            "rmse", "relative_rmse", "n_train", "baseline", "command"} <= set(metrics.columns)
    true, pred = data["potential_true"], data["potential"]
    r = [np.corrcoef(pred[i].ravel(), true[i].ravel())[0, 1] for i in range(len(true))]
    model = metrics.loc["model"]
    assert model["target"] == "potential" and model["units"] == "meV"
    assert model["n"] == len(true) and model["n_train"] == 500 and model["baseline"] == ""
    assert model["r_p_median"] == pytest.approx(np.median(r), rel=1e-12)
    assert model["r_p_min"] == pytest.approx(np.min(r), rel=1e-12)
    assert model["r_p_q05"] == pytest.approx(np.percentile(r, 5), rel=1e-12)
    assert model["fraction_r_p_above_0_9"] == np.mean(np.array(r) > 0.9)
    rms = np.sqrt(np.mean(true**2))
    assert model["rms_true"] == pytest.approx(rms, rel=1e-12)
    assert model["rmse"] == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)), rel=1e-12)
    zero = metrics.loc["zero_potential"]
    assert zero["relative_rmse"] == pytest.approx(1.0, rel=1e-14)
    assert np.isnan(zero["r_p_median"]) and zero["n_r_p_undefined"] == len(true)
    assert zero["baseline"] == BASELINE_DESCRIPTIONS["zero_potential"]
    mean = metrics.loc["training_mean_potential"]
    r_mean = [np.corrcoef(data["training_mean"].ravel(), t.ravel())[0, 1] for t in true]
    assert mean["r_p_mean"] == pytest.approx(np.mean(r_mean), rel=1e-12)
    assert model["r_p_median"] > mean["r_p_median"]
    # every predictor of this synthetic set lies in the span of Eq. 1 except the
    # encoder-decoder's pixel noise
    assert mean["outside_eq1_relative_rms"] < 1e-10
    if data["kind"] == "p1_fourier_cnn":
        assert model["outside_eq1_relative_rms"] < 1e-10
    else:
        assert model["outside_eq1_relative_rms"] > 0.05

    # 95 % intervals: each contains its metric; the median's is the order-statistic width.
    for name in INTERVAL_METRICS:
        low, high = model[f"{name}_ci_low"], model[f"{name}_ci_high"]
        assert low <= model[name] + 1e-12 and model[name] <= high + 1e-12, name
    ranked = np.sort(r)
    n = len(r)
    k = int(np.floor(n / 2 - 1.96 * np.sqrt(n) / 2))  # distribution-free order statistics
    assert model["r_p_median_ci_low"] >= ranked[max(k - 3, 0)] - 1e-12
    assert model["r_p_median_ci_high"] <= ranked[min(n - k + 2, n - 1)] + 1e-12
    assert np.isnan(zero["r_p_median_ci_low"])  # no defined r_P, no interval

    per_sample = per_sample_r_p(path)
    np.testing.assert_allclose(per_sample["r_p_model"], r, rtol=1e-12)
    assert list(per_sample["sample_id"]) == list(range(100, 100 + len(true)))
    assert per_sample["r_p_zero_potential"].isna().all()
    examples = per_sample.set_index("example")
    assert examples.loc["a", "r_p_model"] == pytest.approx(max(r))
    assert examples.loc["c", "r_p_model"] == pytest.approx(min(r))

    comparison = paper_comparison(reconstruction_metrics(path))
    assert len(comparison) == 1
    row = comparison.iloc[0]
    paper = PAPER_RECONSTRUCTION[data["kind"]]
    assert row["paper_statement"] == paper.statement
    assert row["paper_n_samples"] == 88000 and row["paper_sites"] == "256 × 192"
    assert row["sites"] == f"{NX} × {NY}" and row["r_p_median"] == model["r_p_median"]


def test_coefficient_errors_of_both_kinds(predictions_file):
    path, data = predictions_file
    table = coefficient_errors(path)
    assert len(table) == len(MODES)
    true = data["coefficients_true"]
    if data["kind"] == "p1_fourier_cnn":
        predicted = data["coefficients_predicted"]
        assert table["coefficient_source"].iloc[0] == "predicted by the model"
    else:  # the encoder-decoder's coefficients: projection of its potential
        predicted = project_coefficients(data["potential"], MODES, DISORDER, X_NM, Y_NM)
        assert "projection" in table["coefficient_source"].iloc[0]
    np.testing.assert_allclose(table["mse_real_over_sigma2"],
                               np.mean((predicted.real - true.real) ** 2, axis=0) / SIGMA**2,
                               rtol=1e-10)
    np.testing.assert_allclose(table["mse_imag_over_sigma2"],
                               np.mean((predicted.imag - true.imag) ** 2, axis=0) / SIGMA**2,
                               rtol=1e-10)
    np.testing.assert_allclose(table["zero_mse_real_over_sigma2"],
                               np.mean(true.real**2, axis=0) / SIGMA**2, rtol=1e-12)
    assert np.all(table["mse_real_over_sigma2"] < table["zero_mse_real_over_sigma2"])


def test_evaluation_writes_every_promised_file(predictions_file, tmp_path):
    path, data = predictions_file
    out = tmp_path / "evaluation"
    paths = evaluate_potential_model(path, out)
    assert set(paths) == set(OUTPUT_FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())
    for key, file in paths.items():
        assert file.stat().st_size > 0, key
        if file.suffix == ".png":
            assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = pd.read_csv(paths["metrics"])
    assert list(metrics.columns[:6]) == ["model", "split", "target", "units", "predictor", "n"]
    assert list(metrics.columns[-3:]) == ["n_train", "baseline", "command"]
    assert set(metrics["predictor"]) == {"model", "training_mean_potential", "zero_potential"}
    assert len(pd.read_csv(paths["r_p"])) == len(data["potential"])
    assert len(pd.read_csv(paths["r_p_by_distance"])) == 3 * 8
    assert len(pd.read_csv(paths["coefficient_errors"])) == len(MODES)
    consistency = pd.read_csv(paths["pldos_consistency"])
    assert len(consistency) == 0 and "potential_source" in consistency.columns
    assert len(pd.read_csv(paths["paper_comparison"])) == 1


def test_a_file_without_truth_is_refused_and_nothing_written(tmp_path):
    data = _synthetic(n=3)
    path = _write_predictions(tmp_path / "blind.nc", with_truth=False, **data)
    out = tmp_path / "evaluation"
    with pytest.raises(ValueError, match="blind.nc.*potential_true"):
        evaluate_potential_model(path, out)
    assert not out.exists()
    with pytest.raises(ValueError, match="potential_true"):
        reconstruction_metrics(path)
    p = read_potential_predictions(path, require_truth=False)
    assert p.potential_true_meV is None and p.n == 3


def test_wrong_format_is_refused(tmp_path):
    data = _synthetic(n=2)
    path = _write_predictions(tmp_path / "other.nc", **data)
    with netCDF4.Dataset(path, "a") as ds:
        ds.format_version = "mesoinv-predictions-1"
    with pytest.raises(ValueError, match="mesoinv-potential-predictions-1"):
        read_potential_predictions(path)


# -- PLDOS physics consistency on a tiny real P1 dataset -----------------------------------
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Four samples of config/test.yaml's p1_fixed (40 × 30 sites, s = 50 nm, float32)."""
    spec = dataset_spec(load_config(ROOT / "config" / "test.yaml"), "p1_fixed")
    path = tmp_path_factory.mktemp("tiny") / "p1_fixed-test.nc"
    simulate_shard(spec, range(4), path, progress=False)
    return path


def _predictions_from_dataset(dataset, path, *, ids=None):
    with netCDF4.Dataset(dataset) as ds:
        ds.set_auto_mask(False)
        a = float(ds.lattice_constant_nm)
        nx, ny = int(ds.nx_sites), int(ds.ny_sites)
        true = np.asarray(ds["potential"][:], dtype=np.float64)
        coefficients = (np.asarray(ds["fourier_coefficient_real"][:], float)
                        + 1j * np.asarray(ds["fourier_coefficient_imag"][:], float))
        modes = type(MODES)(m=np.asarray(ds["mode_m"][:]), n=np.asarray(ds["mode_n"][:]),
                            qx_per_nm=np.asarray(ds["qx"][:]), qy_per_nm=np.asarray(ds["qy"][:]),
                            length_nm=float(ds.length_nm), width_nm=float(ds.width_nm))
        sample_id = np.asarray(ds["sample_id"][:]) if ids is None else np.asarray(ids)
        metadata = {key: (ds.getncattr(key).tolist() if hasattr(ds.getncattr(key), "tolist")
                          else ds.getncattr(key))
                    for key in ("lattice_constant_nm", "nx_sites", "ny_sites", "length_nm",
                                "width_nm", "qpc_first_y_site", "qpc_width_sites",
                                "energy_meV", "hopping_meV", "effective_mass_kg",
                                "relative_permittivity", "thomas_fermi_wavevector_per_nm",
                                "cutoff_factor", "dopant_distance_range_nm",
                                "dopant_density_range_cm2", "dataset_name")}
        x, y = np.asarray(ds["x"][:]), np.asarray(ds["y"][:])
    disorder = RemoteDopantDisorder(50.0, 1e12, GAAS)
    rng = np.random.default_rng(8)
    predicted = 0.8 * true + 0.3 * true.std() * rng.normal(size=true.shape)
    _write_predictions(path, potential=predicted, potential_true=true,
                       training_mean=0.1 * true.mean(axis=0), coefficients_true=coefficients,
                       sample_id=sample_id, x_nm=x, y_nm=y, modes=modes, metadata=metadata,
                       s_nm=50.0, sigma=disorder.coefficient_sigma(nx * a, ny * a))
    return path


def test_pldos_recomputed_from_the_true_potential_equals_the_input(tiny_dataset, tmp_path):
    predictions = _predictions_from_dataset(tiny_dataset, tmp_path / "pred.nc")
    table = pldos_consistency(predictions, tiny_dataset, max_samples=3)
    samples = table[table["row"] == "sample"]
    summary = table[table["row"] == "summary"].set_index("potential_source")
    assert set(summary.index) == {"model", "true_potential", "training_mean_potential",
                                  "zero_potential"}
    assert list(samples[samples.potential_source == "model"]["sample_id"]) == [0, 1, 2]
    true_rows = samples[samples.potential_source == "true_potential"]
    assert (true_rows["r_p"] > 0.999).all()
    assert (true_rows["relative_rmse"] < 1e-3).all()  # float32 storage of V and the PLDOS
    assert summary.loc["true_potential", "r_p_min"] > 0.999
    assert summary.loc["model", "n"] == 3
    # the truth reproduces the measured flow better than a potential that knows nothing
    assert summary.loc["zero_potential", "r_p"] < summary.loc["true_potential", "r_p"]

    out = tmp_path / "evaluation"
    paths = evaluate_potential_model(predictions, out, dataset_path=tiny_dataset,
                                     physics_samples=2)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())
    written = pd.read_csv(paths["pldos_consistency"])
    assert set(written.loc[written.row == "sample", "sample_id"]) == {0, 1}


def test_a_dataset_without_the_samples_is_refused_before_writing(tiny_dataset, tmp_path):
    predictions = _predictions_from_dataset(tiny_dataset, tmp_path / "pred.nc",
                                            ids=[0, 1, 2, 99])
    out = tmp_path / "evaluation"
    with pytest.raises(ValueError, match="lacks sample"):
        evaluate_potential_model(predictions, out, dataset_path=tiny_dataset,
                                 physics_samples=1)
    assert not out.exists()


def test_distance_table_has_all_predictors(predictions_file):
    path, _ = predictions_file
    table = reconstruction_by_distance(path, n_bins=5)
    assert len(table) == 15
    assert set(table["predictor"]) == {"model", "training_mean_potential", "zero_potential"}
    model = table[table.predictor == "model"]
    assert model["n_pixels"].sum() == NX * NY


def test_encoder_decoder_without_a_fixed_dopant_distance(tmp_path):
    # A dataset with varying s has no single Eq. 1 basis: coefficient errors are NaN (and
    # say why), everything else is evaluated and every file is still written.
    data = _synthetic(n=4)
    metadata = dict(METADATA, dopant_distance_range_nm=[10.0, 20.0])
    path = _write_predictions(tmp_path / "varying.nc", metadata=metadata, s_nm=math.nan, **data)
    table = coefficient_errors(path)
    assert table["mse_real_over_sigma2"].isna().all()
    assert "no fixed dopant distance" in table["coefficient_source"].iloc[0]
    assert np.isfinite(table["zero_mse_real_over_sigma2"]).all()
    paths = evaluate_potential_model(path, tmp_path / "evaluation")
    assert all(p.exists() for p in paths.values())
    metrics = pd.read_csv(paths["metrics"])
    assert metrics["outside_eq1_relative_rms"].isna().all()
