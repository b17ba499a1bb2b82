"""The P1 parameter models' baselines without a network: ridge regression on the maps' radial
power spectra and the nearest training map (mesoinv.evaluation.p1_parameters.baselines),
checked against analytic answers, and their rows in the evaluation's metrics."""

import json

import netCDF4
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, draw_disorder, write_p1_netcdf
from mesoinv.datasets.p1 import P1Sample
from mesoinv.evaluation.p1_parameters import baselines as b
from mesoinv.evaluation.p1_parameters.evaluate import evaluate_parameter_model

SHAPE = (64, 48)  # the demo's maps
BIN_WIDTH = 0.5 / b.RADIAL_BINS  # cycles per site


def plane_wave(mx, my, shape=SHAPE, phase=0.3):
    """cos(2π(mx x/nx + my y/ny) + phase) on the lattice: one wave vector, |k| in cycles per
    site = √((mx/nx)² + (my/ny)²), variance 1/2."""
    x = np.arange(shape[0])[:, None]
    y = np.arange(shape[1])[None, :]
    return np.cos(2 * np.pi * (mx * x / shape[0] + my * y / shape[1]) + phase)


# -- radial power spectrum ----------------------------------------------------------------
@pytest.mark.parametrize("mx, my", [(8, 6), (3, 0), (0, 5), (11, 9), (20, 1)])
def test_a_plane_wave_puts_all_its_power_in_the_bin_of_its_wavenumber(mx, my):
    k = np.hypot(mx / SHAPE[0], my / SHAPE[1])
    expected_bin = int(k // BIN_WIDTH)
    bins, weights, _ = b.radial_bins(SHAPE)
    spectrum = b.radial_power_spectrum(plane_wave(mx, my))
    counts = np.bincount(bins[bins >= 0], weights=weights[bins >= 0], minlength=b.RADIAL_BINS)
    assert np.argmax(spectrum) == expected_bin
    others = np.delete(spectrum, expected_bin)
    assert np.all(others < 1e-20 * spectrum[expected_bin])
    # Parseval: the bin's mean power times its (full-plane) mode count is nx ny var = nx ny/2.
    assert spectrum[expected_bin] * counts[expected_bin] == pytest.approx(SHAPE[0] * SHAPE[1] / 2)


def test_waves_along_x_and_y_of_equal_wavenumber_have_equal_radial_power():
    # k = 1/8 along x (8 of 64) and along y (6 of 48): the half-plane weights must count the
    # y wave's unstored mirror mode.
    along_x = b.radial_power_spectrum(plane_wave(8, 0))
    along_y = b.radial_power_spectrum(plane_wave(0, 6))
    np.testing.assert_allclose(along_x, along_y, rtol=1e-12, atol=1e-25)


@pytest.mark.parametrize("ell", [1.5, 2.0, 3.0])
def test_gaussian_correlated_fields_match_the_analytic_spectrum(ell):
    """White noise filtered by exp(−π²ℓ²k²) has C(r) ∝ exp(−r²/(2ℓ²)) (ℓ in sites) and mean
    periodogram exp(−2π²ℓ²k²) per mode; its radial average, summed by brute force over the
    full plane, is what the function must return on average over realisations."""
    rng = np.random.default_rng(3)
    shape, n = (32, 24), 400
    kx = np.fft.fftfreq(shape[0])[:, None]
    ky = np.fft.fftfreq(shape[1])[None, :]
    k2 = kx ** 2 + ky ** 2
    noise = rng.normal(size=(n, *shape))
    fields = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-np.pi ** 2 * ell ** 2 * k2)))
    measured = b.radial_power_spectrum(fields).mean(axis=0)
    expected = np.full(b.RADIAL_BINS, np.nan)
    k = np.sqrt(k2)
    for bin_ in range(b.RADIAL_BINS):
        inside = (k >= bin_ * BIN_WIDTH) & (k < (bin_ + 1) * BIN_WIDTH) & (k > 0)
        if inside.any():
            expected[bin_] = np.mean(np.exp(-2 * np.pi ** 2 * ell ** 2 * k2[inside]))
    strong = expected > 1e-3  # where 400 realisations average the χ² noise to a few %
    assert strong.sum() >= 3
    np.testing.assert_allclose(measured[strong], expected[strong], rtol=0.1)
    assert np.isnan(measured[0]) and np.isnan(expected[0])  # |k| < 1/32: no mode of 32 × 24
    assert np.nanargmax(measured) == np.nanargmax(expected)


def test_empty_bins_are_nan_and_a_constant_map_has_no_power():
    spectrum = b.radial_power_spectrum(np.full((8, 6), 3.0), n_bins=40)
    bins, _, _ = b.radial_bins((8, 6), 40)
    filled = np.bincount(bins[bins >= 0], minlength=40) > 0
    assert np.isnan(spectrum[~filled]).all() and (~filled).any()
    assert np.all(spectrum[filled] == 0)


def test_moments_equal_scipy():
    rng = np.random.default_rng(1)
    maps = rng.gamma(2.0, size=(3, 20, 15))
    moments = b.map_moments(maps)
    flat = maps.reshape(3, -1)
    np.testing.assert_allclose(moments[:, 0], flat.mean(axis=1))
    np.testing.assert_allclose(moments[:, 1], flat.std(axis=1))
    np.testing.assert_allclose(moments[:, 2], stats.skew(flat, axis=1))
    np.testing.assert_allclose(moments[:, 3], stats.kurtosis(flat, axis=1))
    assert np.array_equal(b.map_moments(np.ones((4, 3)))[2:], [0.0, 0.0])


def test_block_average():
    maps = np.arange(2 * 64 * 48, dtype=float).reshape(2, 64, 48)
    small = b.block_average(maps)
    assert small.shape == (2, 32, 24)
    assert small[1, 3, 5] == pytest.approx(maps[1, 6:8, 10:12].mean())
    # 70 × 50 → blocks of 3 × 3, the last pixels dropped.
    odd = b.block_average(np.ones((70, 50)))
    assert odd.shape == (23, 16)


def test_log_offset_is_the_models():
    from mesoinv.training.normalization import ImageNormalization

    rng = np.random.default_rng(0)
    images = [rng.gamma(2.0, 1e-3, size=(1, 8, 6)) for _ in range(3)]
    assert b.log_offset(images[0]) == ImageNormalization.fit("log_standardize", images).offset


# -- ridge ----------------------------------------------------------------------------------
def linear_data(n=400, d=6, noise=0.0, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d)
    beta = rng.normal(size=d)
    return X, X @ beta + 2.5 + noise * rng.normal(size=n), beta


def test_ridge_at_zero_penalty_is_least_squares():
    X, y, _ = linear_data(noise=0.3)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    lstsq = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    np.testing.assert_allclose(b.ridge_coefficients(Xc, yc, [0.0])[0], lstsq, rtol=1e-10)
    np.testing.assert_allclose(b.ridge_coefficients(Xc, yc, [1e-12])[0], lstsq, rtol=1e-8)


def test_ridge_solves_its_normal_equations():
    X, y, _ = linear_data(noise=0.3)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    alpha = 0.7
    direct = np.linalg.solve(Xc.T @ Xc + len(X) * alpha * np.eye(X.shape[1]), Xc.T @ yc)
    np.testing.assert_allclose(b.ridge_coefficients(Xc, yc, [alpha])[0], direct, rtol=1e-10)


def test_ridge_recovers_known_coefficients_and_cross_validation_picks_a_small_penalty():
    X, y, beta = linear_data(noise=1e-3)
    model = b.RidgeRegression().fit(X, y)
    assert model.alpha <= 1e-4
    # Coefficients are per standardised feature: β_j σ_j in the raw features' terms.
    np.testing.assert_allclose(model.coefficients / model.feature_scale, beta, atol=1e-3)
    X_new = np.random.default_rng(6).normal(size=(50, X.shape[1])) * 2.0
    np.testing.assert_allclose(model.predict(X_new), X_new @ beta + 2.5, atol=5e-3)


def test_cross_validation_shrinks_noise_to_the_mean():
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(300, 10)), rng.normal(size=300) + 4.0
    model = b.RidgeRegression().fit(X, y)
    least_squares = b.RidgeRegression().fit(X, y, alpha=0.0)
    assert model.alpha >= 1.0
    assert model.predict(X).mean() == pytest.approx(y.mean())
    assert np.std(model.predict(X)) < 0.5 * np.std(least_squares.predict(X))
    # Fewer samples than 2 × folds (the test configuration's splits): leave-one-out.
    alpha, mse = b.choose_ridge_alpha(X[:6, :2], y[:6])
    assert np.isfinite(mse).all() and alpha in b.RIDGE_ALPHAS
    with pytest.raises(ValueError, match="at least 2"):
        b.choose_ridge_alpha(X[:1], y[:1])


# -- nearest training map -------------------------------------------------------------------
def test_nearest_finds_a_duplicated_map_and_breaks_ties_by_lowest_row():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(1000, 40)).astype(np.float32)
    train[700] = train[3]        # the same map twice, in different chunks
    train[10] = train[12] = train[11]  # three copies within a chunk
    queries = np.stack([train[3], train[11], train[500] + 1e-4, train[999]])
    rows = b.nearest_rows(train, queries, chunk=256)
    assert rows.tolist() == [3, 10, 500, 999]
    # The same answer whatever the chunk size.
    assert b.nearest_rows(train, queries, chunk=7).tolist() == [3, 10, 500, 999]
    # Against brute force on random queries.
    other = rng.normal(size=(30, 40))
    brute = np.argmin(((other[:, None, :] - train[None].astype(float)) ** 2).sum(-1), axis=1)
    assert np.array_equal(b.nearest_rows(train, other, chunk=64), brute)


# -- the evaluation writes both rows ----------------------------------------------------------
def write_split(path, spec, ids):
    """P1 samples of the test config's region with a synthetic PLDOS: exp(−V/8 meV) at each
    field (no Kwant), so the maps carry the disorder's scale and correlation."""
    g = spec.geometry
    samples = []
    for sample_id in ids:
        s, n_d, coefficients = draw_disorder(spec, int(sample_id), spec.modes)
        disorder = spec.disorder(s, n_d)
        potential = disorder.potential_meV(spec.modes, coefficients, g.x_nm, g.y_nm)
        pldos = np.stack([np.exp(-potential / 8.0)] * len(spec.magnetic_fields_T))
        samples.append(P1Sample(int(sample_id), s, n_d, disorder.rms_meV,
                                disorder.correlation_length_nm, coefficients, potential, pldos))
    write_p1_netcdf(path, spec, samples, open_modes=[3] * len(spec.magnetic_fields_T))
    with netCDF4.Dataset(path) as ds:
        return {t: np.asarray(ds[t][:], float) for t in ("dopant_distance", "dopant_density",
                                                          "rms", "correlation_length")}


def test_evaluation_writes_both_baseline_rows_with_intervals(tmp_path):
    spec = dataset_spec(load_config("config/test.yaml"), "p1_varying")
    train_truth = write_split(tmp_path / "train.nc", spec, range(0, 120))
    test_truth = write_split(tmp_path / "test.nc", spec, range(1000, 1030))
    targets = ["rms", "correlation_length"]
    predictions = tmp_path / "predictions.nc"
    rng = np.random.default_rng(4)
    with netCDF4.Dataset(predictions, "w", format="NETCDF4") as ds:
        ds.createDimension("sample", 30)
        var = ds.createVariable("sample_id", "i8", ("sample",))
        var[:] = np.arange(1029, 999, -1)  # another order than the dataset's
        units = {"rms": "meV", "correlation_length": "nm"}
        for t in targets:
            truth = test_truth[t][::-1]
            ds.createVariable(t, "f8", ("sample",))[:] = truth * (1 + 0.05 * rng.normal(size=30))
            ds.createVariable(f"{t}_true", "f8", ("sample",))[:] = truth
            ds[t].units = ds[f"{t}_true"].units = units[t]
        ds.setncatts({
            "format_version": "mesoinv-predictions-1", "model_name": "tiny",
            "model_kind": "p1_parameter_cnn", "split": "test", "input_file": "test.nc",
            "targets": json.dumps(targets), "target_units": json.dumps(units),
            "training_mean": json.dumps({t: float(train_truth[t].mean()) for t in targets}),
            "n_train": np.int64(120), "data_metadata": json.dumps({}), "command": "test"})
    with pytest.raises(ValueError, match="--dataset"):
        evaluate_parameter_model(predictions, tmp_path / "none", train_path=tmp_path / "train.nc")
    assert not (tmp_path / "none").exists()
    paths = evaluate_parameter_model(predictions, tmp_path / "out",
                                     dataset_path=tmp_path / "test.nc",
                                     train_path=tmp_path / "train.nc")
    metrics = pd.read_csv(paths["metrics"])
    for target in targets:
        rows = metrics[metrics["target"] == target].set_index("predictor")
        assert {"model", "training_mean", "potential_posterior", "ridge_power_spectrum",
                "nearest_training_map"} <= set(rows.index)
        for name, description in (("ridge_power_spectrum", b.RIDGE_DESCRIPTION),
                                  ("nearest_training_map", b.NEAREST_DESCRIPTION)):
            row = rows.loc[name]
            assert row["baseline"] == description and row["n"] == 30
            for metric in ("r2", "error_std", "rmse", "relative_error_std"):
                assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"]
        # The 1-NN answers are training targets; the ridge learns something from the maps.
        assert np.isin(np.round(_baseline_values(tmp_path, predictions, target), 9),
                       np.round(train_truth[target], 9)).all()
        assert rows.loc["ridge_power_spectrum", "r2"] > 0.0


def _baseline_values(tmp_path, predictions, target):
    with netCDF4.Dataset(predictions) as ds:
        ids = np.asarray(ds["sample_id"][:])
    references = b.baseline_predictions(tmp_path / "train.nc", tmp_path / "test.nc", ids,
                                        [target])
    return references["nearest_training_map"][1][target]


def test_missing_field_is_a_clear_error(tmp_path):
    spec = dataset_spec(load_config("config/test.yaml"), "p1_varying")
    write_split(tmp_path / "train.nc", spec, range(12))
    with pytest.raises(ValueError, match="B = 2.0 T"):
        b.map_features(tmp_path / "train.nc", fields_T=(2.0,))


def test_tiny_splits_as_in_the_test_configuration(tmp_path):
    """8 training maps of 40 × 30 (the workflow test's split) and one or no evaluated sample."""
    spec = dataset_spec(load_config("config/test.yaml"), "p1_varying")
    train = write_split(tmp_path / "train.nc", spec, range(8))
    write_split(tmp_path / "test.nc", spec, [50])
    answers = b.baseline_predictions(tmp_path / "train.nc", tmp_path / "test.nc", [50],
                                     ["dopant_distance", "rms"])
    ridge = answers["ridge_power_spectrum"][1]
    assert np.isfinite(ridge["rms"]).all() and ridge["rms"].shape == (1,)
    assert answers["nearest_training_map"][1]["dopant_distance"][0] in train["dopant_distance"]
    none = b.baseline_predictions(tmp_path / "train.nc", tmp_path / "test.nc", [], ["rms"])
    assert none["nearest_training_map"][1]["rms"].shape == (0,)
