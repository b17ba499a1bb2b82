"""Oracle tests of the 95 % intervals: coverage of known truths in simulation."""

import numpy as np
import pytest

from mesoinv.evaluation.intervals import (bootstrap_indices, bootstrap_interval,
                                          cluster_bootstrap_interval, interval_columns,
                                          wilson_interval)


@pytest.mark.parametrize("p, n", [(0.5, 40), (0.91, 127), (0.03, 328)])
def test_wilson_interval_covers_a_known_proportion(p, n):
    """Over 4000 simulated test sets the interval holds the true p in 95 % ± 2 % of them."""
    rng = np.random.default_rng(7)
    k = rng.binomial(n, p, size=4000)
    covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(ki, n) for ki in k)])
    assert covered == pytest.approx(0.95, abs=0.025)


def test_wilson_interval_values():
    # Hand-computed: k = 8 of n = 10, z = 1.96: centre 0.7210, half-width 0.2311.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=2e-4)
    assert high == pytest.approx(0.9433, abs=2e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert np.isnan(wilson_interval(0, 0)[0])


def test_bootstrap_interval_covers_a_known_mean():
    """Percentile bootstrap of a mean of N(μ, 1) samples: coverage near 95 % (it is slightly
    anti-conservative at n = 50: ≥ 90 % over 300 simulated sets)."""
    rng = np.random.default_rng(3)
    mu, hits, sets = 2.0, 0, 300
    indices = bootstrap_indices(50, resamples=500)
    for _ in range(sets):
        x = rng.normal(mu, 1.0, 50)
        low, high = bootstrap_interval(lambda v: v.mean(axis=1), x, indices=indices)
        hits += low <= mu <= high
    assert 0.90 <= hits / sets <= 0.99


def test_bootstrap_is_seeded_and_keeps_pairs():
    x = np.arange(30.0)
    y = 2 * x
    first = bootstrap_interval(lambda a, b: np.mean(b - 2 * a, axis=1), x, y)
    assert first == (0.0, 0.0)  # pairs stay paired: b − 2a is 0 in every resample
    median = lambda v: np.median(v, axis=1)  # noqa: E731
    assert bootstrap_interval(median, x) == bootstrap_interval(median, x)
    assert np.isnan(bootstrap_interval(lambda v: v.mean(axis=1), np.array([1.0]))[0])


def test_interval_columns_names():
    assert interval_columns("r2", (0.1, 0.2)) == {"r2_ci_low": 0.1, "r2_ci_high": 0.2}


def test_cluster_bootstrap_covers_a_proportion_that_the_per_sample_interval_misses():
    """Clusters of 4 samples that share one outcome (P2: four realisations of a placement,
    nearly the same trace): 60 clusters, p = 0.7. Over 300 simulated test sets the cluster
    interval holds p in ≈ 95 % of them; Wilson over the 240 samples, which takes them as
    independent, is half as wide and misses p about a third of the time."""
    rng = np.random.default_rng(11)
    p, clusters, size, sets = 0.7, 60, 4, 300
    labels = np.repeat(np.arange(clusters), size)
    hits_cluster = hits_wilson = 0
    for _ in range(sets):
        outcome = np.repeat(rng.random(clusters) < p, size).astype(float)
        low, high = cluster_bootstrap_interval(outcome, labels, resamples=500)
        hits_cluster += low <= p <= high
        low, high = wilson_interval(outcome.sum(), outcome.size)
        hits_wilson += low <= p <= high
    assert 0.90 <= hits_cluster / sets <= 0.99
    assert hits_wilson / sets < 0.80
    # one sample per cluster: the same resampling as the plain bootstrap of a mean
    x = rng.random(40)
    plain = bootstrap_interval(lambda v: v.mean(axis=1), x,
                               indices=np.random.default_rng(5).integers(0, 40, (800, 40)))
    assert cluster_bootstrap_interval(x, np.arange(40), resamples=800, seed=5) == \
        pytest.approx(plain)
    # paired differences stay paired; a single cluster has no interval; shapes are checked
    assert cluster_bootstrap_interval(np.zeros(8), labels[:8]) == (0.0, 0.0)
    assert np.isnan(cluster_bootstrap_interval(np.ones(4), np.zeros(4))[0])
    with pytest.raises(ValueError, match="one value per sample"):
        cluster_bootstrap_interval(np.ones(4), np.zeros(3))
