"""95 % intervals of the headline metrics: bootstrap over test samples, Wilson for proportions.

Every metric of a model is an estimate from a finite test split; its interval says how far
another draw of the same number of test samples could move it. Two constructions:

* **Percentile bootstrap** (Efron): resample the test samples with replacement
  ``BOOTSTRAP_RESAMPLES`` times with a fixed seed, recompute the metric on each resample, and
  take the 2.5th and 97.5th percentiles. Used for R², σ, relative σ, medians and percentiles
  of r_P, mean errors. Paired metrics (model and baseline on the same samples) use the same
  resampled indices, so their difference has an interval too.
* **Wilson score interval** for a proportion k/n (an accuracy): it stays inside [0, 1] and
  keeps its coverage near 95 % for small n and for p near 0 or 1, where the normal
  approximation p ± 1.96 √(p(1 − p)/n) fails.
* **Cluster bootstrap** (:func:`cluster_bootstrap_interval`): when the samples come in groups
  that are not independent — P2's potential realisations of one antidot placement, whose traces
  at weak disorder are nearly the same trace — whole groups are resampled, so the interval
  says how far another draw of the same number of *groups* could move the mean. Both
  constructions above assume independent samples and are too narrow then.

The seed and the count are fixed (documented in docs/models.md), so the intervals are a pure
function of the predictions.
"""

import numpy as np

__all__ = ["BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CONFIDENCE", "Z_95", "bootstrap_indices",
           "bootstrap_interval", "cluster_bootstrap_interval", "percentile_interval",
           "wilson_interval", "interval_columns", "INTERVAL_DESCRIPTION"]

INTERVAL_DESCRIPTION = ("95 % intervals: percentile bootstrap over the evaluated samples "
                        "(2000 resamples, seed 20211) for R², σ, RMSE, medians and percentiles; "
                        "Wilson score intervals for accuracies")

#: Resamples of the percentile bootstrap (the Monte-Carlo error of a 95 % bound at 2000
#: resamples is ≈ 0.5 % of the interval's width).
BOOTSTRAP_RESAMPLES = 2000
#: Seed of the resampled indices.
BOOTSTRAP_SEED = 20211
CONFIDENCE = 0.95
#: Two-sided 97.5 % normal quantile.
Z_95 = 1.959963984540054


def bootstrap_indices(n: int, *, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Row indices of the bootstrap resamples, shape (resamples, n), seeded."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one sample")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_interval(statistic, *arrays, indices: np.ndarray | None = None,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of a statistic over the samples (axis 0).

    Parameters
    ----------
    statistic : callable
        Takes the resampled arrays, each of shape (resamples, n, ...), and returns one value
        per resample (reduce along axis 1; NaN where undefined), e.g.
        ``lambda e: np.std(e, axis=1)``: all resamples in one vectorised call.
    *arrays : array-like
        Per-sample values, resampled together (pairs stay paired).
    indices : numpy.ndarray, optional
        Resampled row indices (:func:`bootstrap_indices`); by default the module's seeded
        ones, so metrics of the same samples are resampled alike (paired differences).

    Returns
    -------
    (low, high) : floats, NaN when fewer than two samples or no finite resample.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap arrays must have the same number of samples")
    if n < 2:
        return float("nan"), float("nan")
    if indices is None:
        indices = bootstrap_indices(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = statistic(*(a[indices] for a in arrays))
    return percentile_interval(values, confidence)


def cluster_bootstrap_interval(values, clusters, *, resamples: int = BOOTSTRAP_RESAMPLES,
                               seed: int = BOOTSTRAP_SEED,
                               confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-sample values, resampling whole
    clusters (module docstring).

    Parameters
    ----------
    values : array-like (n,)
        One value per sample (e.g. 1/0 for correct/wrong, or a fraction over draws, or a
        paired difference of two predictors on the same sample).
    clusters : array-like (n,)
        The cluster of each sample (any hashable labels; e.g. P2's ``configuration_id``).

    Each resample draws as many clusters as there are, with replacement, and takes the mean
    over all samples of the drawn clusters (a cluster drawn twice counts twice). Returns
    (low, high); NaN with fewer than two clusters.
    """
    values = np.asarray(values, dtype=np.float64)
    clusters = np.asarray(clusters)
    if values.ndim != 1 or clusters.shape != values.shape:
        raise ValueError(f"values {values.shape} and clusters {clusters.shape} must be two "
                         "arrays of one value per sample")
    labels, inverse = np.unique(clusters, return_inverse=True)
    if len(labels) < 2:
        return float("nan"), float("nan")
    sums = np.bincount(inverse, weights=values, minlength=len(labels))
    sizes = np.bincount(inverse, minlength=len(labels)).astype(np.float64)
    picks = np.random.default_rng(seed).integers(0, len(labels),
                                                 size=(resamples, len(labels)))
    return percentile_interval(sums[picks].sum(axis=1) / sizes[picks].sum(axis=1), confidence)


def percentile_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Central ``confidence`` interval of bootstrap replicates (NaN ones dropped)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def wilson_interval(successes: float, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95 % by default).

    ``successes`` may be fractional (a mean over several draws per trace counts as that many
    successes of ``n`` traces): the interval is then the one of a proportion with that mean.
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denominator = 1.0 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def interval_columns(name: str, interval: tuple[float, float]) -> dict:
    """``{name_ci_low: …, name_ci_high: …}``, the column names every metrics file uses."""
    return {f"{name}_ci_low": interval[0], f"{name}_ci_high": interval[1]}
