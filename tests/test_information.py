"""The Bayes ceiling: posterior means of (s, N_d, rms, ξ) from each sample's true potential."""

import numpy as np
import pytest

from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, draw_disorder, write_p1_netcdf
from mesoinv.datasets.p1 import P1Sample
from mesoinv.evaluation.p1_parameters.posterior import potential_posterior, potential_posterior_means

TARGETS = ["dopant_distance", "dopant_density", "rms", "correlation_length"]
N_DRAWS = 600


@pytest.fixture(scope="module")
def prior_draws(tmp_path_factory):
    """600 disorder draws from the prior of the demo's p1_varying (no PLDOS: zeros), in the P1
    format: enough for a 90 % coverage to be measured to ± 1.2 % (one standard error)."""
    spec = dataset_spec(load_config("config/config.yaml"), "p1_varying")
    modes, g = spec.modes, spec.geometry
    cache = {}
    samples = []
    for sample_id in range(N_DRAWS):
        s, n_d, coefficients = draw_disorder(spec, sample_id, modes)
        disorder = spec.disorder(s, n_d)
        key = round(s, 6)
        if key not in cache:
            base = spec.disorder(s, 1e12)
            cache[key] = (base.rms_meV, base.correlation_length_nm)
        samples.append(P1Sample(sample_id, s, n_d, cache[key][0] * np.sqrt(n_d / 1e12),
                                cache[key][1], coefficients,
                                disorder.potential_meV(modes, coefficients, g.x_nm, g.y_nm),
                                np.zeros((1, g.nx, g.ny))))
    path = tmp_path_factory.mktemp("prior") / "draws.nc"
    write_p1_netcdf(path, spec, samples, open_modes=[3])
    truth = np.array([[x.dopant_distance_nm, x.dopant_density_cm2, x.rms_meV,
                       x.correlation_length_nm] for x in samples])
    return path, truth


def test_posterior_beats_the_prior_mean_on_every_target(prior_draws):
    path, truth = prior_draws
    ids, means = potential_posterior_means(path, TARGETS)
    assert list(ids) == list(range(N_DRAWS))
    for k, target in enumerate(TARGETS):
        posterior_mse = np.mean((means[:, k] - truth[:, k]) ** 2)
        prior_mse = np.var(truth[:, k])
        assert posterior_mse < 0.8 * prior_mse, target
    # The hard cutoff q < 3.5/s brackets s: nearly exact; N_d only from the amplitudes.
    r2 = 1 - np.mean((means - truth) ** 2, axis=0) / np.var(truth, axis=0)
    assert r2[0] > 0.9 and r2[3] > 0.9 and 0.05 < r2[1] < 0.6


def test_posterior_stays_in_the_prior_support(prior_draws):
    path, _ = prior_draws
    _, means = potential_posterior_means(path, ["dopant_distance", "dopant_density"])
    assert np.all((means[:, 0] >= 40) & (means[:, 0] <= 70))
    assert np.all((means[:, 1] >= 0.6e12) & (means[:, 1] <= 1.5e12))


def test_unknown_target_is_refused(prior_draws):
    with pytest.raises(ValueError, match="no posterior"):
        potential_posterior_means(prior_draws[0], ["potential"])


def test_posterior_is_calibrated_on_draws_from_its_prior(prior_draws):
    """A Bayes posterior's central 90 % interval covers the truth in 90 % of prior draws (the
    squared likelihood of the former code covered far less: its posterior was too narrow)."""
    path, truth = prior_draws
    posterior = potential_posterior(path, ["dopant_density", "rms"])
    for k in range(2):
        low, high = posterior.quantiles[:, k, 0], posterior.quantiles[:, k, 1]
        coverage = np.mean((low <= truth[:, 1 + k]) & (truth[:, 1 + k] <= high))
        assert coverage == pytest.approx(0.90, abs=0.03), posterior.targets[k]
    squared = potential_posterior(path, ["dopant_density"], likelihood_exponent=2.0)
    low, high = squared.quantiles[:, 0, 0], squared.quantiles[:, 0, 1]
    assert np.mean((low <= truth[:, 1]) & (truth[:, 1] <= high)) < 0.85


def test_posterior_mean_beats_the_squared_likelihood_and_the_prior_mean(prior_draws):
    """The posterior mean minimises the expected squared error over prior draws: lower MSE
    for N_d and rms than the tempered (squared-likelihood) estimate and than the prior mean."""
    path, truth = prior_draws
    bayes = potential_posterior(path, ["dopant_density", "rms"]).means
    squared = potential_posterior(path, ["dopant_density", "rms"], likelihood_exponent=2.0).means
    for k, column in enumerate((1, 2)):
        mse = np.mean((bayes[:, k] - truth[:, column]) ** 2)
        assert mse < np.mean((squared[:, k] - truth[:, column]) ** 2)
        assert mse < np.var(truth[:, column])
