"""Baselines a skeptic tries before believing a P1 parameter CNN, fitted on the training split.

Both read the PLDOS maps of the training split and of the evaluated split, and predict every
target of the model (s, N_d, rms, ξ) for every evaluated sample; their rows in ``metrics.csv``
go through the same metric code and the same paired bootstrap as the model's
(:func:`mesoinv.evaluation.p1_parameters.metrics.regression_metrics`).

``ridge_power_spectrum`` (:class:`RidgeRegression` on :func:`map_features`)
    What a physicist computes without a network. Per map f = log(PLDOS + ε) (the model's
    ``log_standardize`` convention: ε = 10⁻³ × the mean PLDOS of the first training map,
    :func:`log_offset`), features are the logarithm of its radially averaged 2-D power
    spectrum (:func:`radial_power_spectrum`, :data:`RADIAL_BINS` bins of |k| up to the
    Nyquist wavenumber 1/(2a)) and four moments of f over the pixels (mean, standard
    deviation, skewness, excess kurtosis; :func:`map_moments`). The features are standardised
    with the training split's mean and standard deviation; one ridge regression per target,
    its penalty chosen by :data:`CV_FOLDS`-fold cross-validation on the training split alone
    (:func:`choose_ridge_alpha`).
``nearest_training_map`` (:func:`nearest_rows`)
    1-nearest-neighbour in input space: the targets of the training map nearest to the
    evaluated map. The distance is Euclidean between the maps f = log(PLDOS + ε),
    block-averaged to at most :data:`NEAREST_SHAPE` pixels (:func:`block_average`) and
    standardised per channel with the training split's mean and standard deviation over all
    its pixels (the model's ``log_standardize`` input): d² = Σ_c Σ_p (f_cp − g_cp)²/σ_c², in
    units of σ_c. (Per-pixel σ_p instead gave a slightly worse R² on the demo's validation
    split, every target.) Ties (distances equal to within 10⁻⁹ relative, e.g. a duplicated
    training map) go to the training map that comes first in the file.

The maps are those at B = 0 (:data:`DEFAULT_FIELDS_T`, the field of every P1 parameter model
of the configurations; the predictions file does not record a model's input fields). The
training split is streamed in chunks of :data:`CHUNK` maps: only the features (a few tens of
numbers per map) and the block-averaged maps (≤ 768 numbers per map, float32: 177 MB for
P1's 57,600 training maps) are held.

numpy and netCDF4 only (no torch, no scikit-learn): the ridge is closed-form through one SVD.
"""

from dataclasses import dataclass

import netCDF4
import numpy as np

__all__ = ["RIDGE_DESCRIPTION", "NEAREST_DESCRIPTION", "DEFAULT_FIELDS_T", "RADIAL_BINS",
           "NEAREST_SHAPE", "RIDGE_ALPHAS", "CV_FOLDS", "log_offset", "radial_bins",
           "radial_power_spectrum", "map_moments", "block_average", "MapFeatures",
           "map_features", "ridge_coefficients", "choose_ridge_alpha", "RidgeRegression",
           "nearest_rows", "baseline_predictions"]

#: Fraction of the first training map's mean PLDOS added inside the logarithm: ε of
#: log(PLDOS + ε), as :class:`mesoinv.training.normalization.ImageNormalization` fits it.
LOG_OFFSET_FRACTION = 1e-3
#: Magnetic fields (tesla) whose maps the baselines read.
DEFAULT_FIELDS_T = (0.0,)
#: Radial bins of |k| between 0 and the Nyquist wavenumber 1/(2a).
RADIAL_BINS = 16
#: Largest block-averaged map the 1-NN compares (pixels along x, y).
NEAREST_SHAPE = (32, 24)
#: Penalties α tried by the cross-validation, per sample: minimise
#: (1/n) Σ (y − Xβ)² + α |β|² on standardised features and target.
RIDGE_ALPHAS = np.logspace(-6, 3, 37)
CV_FOLDS = 5
CV_SEED = 20211
#: Maps read from a file at a time.
CHUNK = 256

RIDGE_DESCRIPTION = (f"ridge regression on the radially averaged power spectrum ({RADIAL_BINS} "
                     "bins) and 4 moments of log(PLDOS + eps), fitted on the training split; "
                     f"penalty by {CV_FOLDS}-fold cross-validation on it")
NEAREST_DESCRIPTION = ("targets of the nearest training map (1-NN, Euclidean distance between "
                       "block-averaged log(PLDOS + eps) maps, standardised as the model's input)")


# -- features of one map ------------------------------------------------------------------
def log_offset(first_map) -> float:
    """ε of log(PLDOS + ε): :data:`LOG_OFFSET_FRACTION` × the mean of the first training map
    (all its channels), the offset the model's ``log_standardize`` transform uses."""
    offset = LOG_OFFSET_FRACTION * float(np.mean(first_map))
    if not offset > 0:
        raise ValueError("log(PLDOS + eps) needs a first training map with a positive mean")
    return offset


def radial_bins(shape, n_bins: int = RADIAL_BINS) -> tuple:
    """Bin of every mode of ``numpy.fft.rfft2`` on an (nx, ny) map, and the modes' weights.

    |k| = √(k_x² + k_y²) in cycles per lattice site, with k_x = ``fftfreq(nx)``, k_y =
    ``rfftfreq(ny)``; bin b holds b/(2 n_bins) ≤ |k| < (b + 1)/(2 n_bins) (the k = 0 mode
    and the corners beyond 1/2 belong to no bin: −1). The weight counts a mode of the half
    plane twice when its mirror −k is not stored (0 < k_y < 1/2), so weighted means over the
    half plane equal means over the full plane.

    Returns
    -------
    bins : ndarray of int, (nx, ny // 2 + 1)
    weights : ndarray of float, same shape
    centres : ndarray (n_bins,), the bins' central |k| in cycles per site
    """
    nx, ny = shape
    kx = np.fft.fftfreq(nx)[:, None]
    ky = np.fft.rfftfreq(ny)[None, :]
    k = np.hypot(kx, ky)
    width = 0.5 / n_bins
    bins = np.floor(k / width).astype(np.int64)
    bins[(k == 0) | (bins >= n_bins)] = -1
    weights = np.where((ky > 0) & (ky < 0.5), 2.0, 1.0) * np.ones_like(k)
    centres = (np.arange(n_bins) + 0.5) * width
    return bins, weights, centres


def radial_power_spectrum(maps, n_bins: int = RADIAL_BINS) -> np.ndarray:
    """Radially averaged power spectrum of real maps (..., nx, ny).

    P(k) = |Σ_r (f(r) − f̄) e^{−2πi k·r}|² / (nx ny), averaged over the modes of each radial
    bin (:func:`radial_bins`). By Parseval, Σ over all modes of P = nx ny var(f).

    Returns
    -------
    ndarray (..., n_bins), in the squared units of the maps; NaN for a bin without modes.
    """
    maps = np.asarray(maps, np.float64)
    shape = maps.shape[-2:]
    bins, weights, _ = radial_bins(shape, n_bins)
    centred = maps - maps.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.rfft2(centred)) ** 2 / (shape[0] * shape[1])
    inside = bins >= 0
    flat_bins = bins[inside]
    flat_weights = weights[inside]
    counts = np.bincount(flat_bins, weights=flat_weights, minlength=n_bins)
    # One weighted sum per bin as a matrix product: (..., modes) @ (modes, n_bins).
    membership = np.zeros((flat_bins.size, n_bins))
    membership[np.arange(flat_bins.size), flat_bins] = flat_weights
    totals = power[..., inside] @ membership
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / np.where(counts > 0, counts, np.nan)


def map_moments(maps) -> np.ndarray:
    """Mean, standard deviation, skewness and excess kurtosis over the pixels of (..., nx, ny)
    maps, shape (..., 4); skewness and kurtosis 0 for a constant map."""
    maps = np.asarray(maps, np.float64)
    mean = maps.mean(axis=(-2, -1))
    centred = maps - mean[..., None, None]
    variance = np.mean(centred ** 2, axis=(-2, -1))
    std = np.sqrt(variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        skewness = np.where(variance > 0, np.mean(centred ** 3, axis=(-2, -1)) / std ** 3, 0.0)
        kurtosis = np.where(variance > 0,
                            np.mean(centred ** 4, axis=(-2, -1)) / variance ** 2 - 3.0, 0.0)
    return np.stack([mean, std, skewness, kurtosis], axis=-1)


def block_average(maps, largest=NEAREST_SHAPE) -> np.ndarray:
    """Maps (..., nx, ny) averaged over blocks of ⌈nx/X⌉ × ⌈ny/Y⌉ pixels, (X, Y) = ``largest``;
    the last pixels that do not fill a block are dropped."""
    maps = np.asarray(maps, np.float64)
    nx, ny = maps.shape[-2:]
    bx, by = -(-nx // largest[0]), -(-ny // largest[1])
    mx, my = nx // bx, ny // by
    trimmed = maps[..., :mx * bx, :my * by]
    return trimmed.reshape(*maps.shape[:-2], mx, bx, my, by).mean(axis=(-3, -1))


@dataclass
class MapFeatures:
    """What the baselines keep of a split's maps.

    Attributes
    ----------
    sample_ids : ndarray of int64 (n,)
    spectral : ndarray (n, features)
        log of the non-empty radial power bins, then the 4 moments, per channel.
    thumbnails : ndarray of float32 (n, channels, pixels)
        Block-averaged log maps (:func:`block_average`), flattened per channel.
    offset : float
        ε of log(PLDOS + ε), in the units of the stored PLDOS (meV⁻¹ per site).
    """

    sample_ids: np.ndarray
    spectral: np.ndarray
    thumbnails: np.ndarray
    offset: float


def _field_indices(ds, fields_T, path) -> list:
    stored = [float(f) for f in np.asarray(ds["field"][:])]
    indices = []
    for field in fields_T:
        matches = [i for i, f in enumerate(stored) if abs(f - float(field)) <= 1e-9]
        if not matches:
            raise ValueError(f"{path}: no PLDOS at B = {field} T for the baselines (fields: "
                             f"{stored} T)")
        indices.append(matches[0])
    return indices


def map_features(path, *, offset: float | None = None, fields_T=DEFAULT_FIELDS_T,
                 n_bins: int = RADIAL_BINS, chunk: int = CHUNK) -> MapFeatures:
    """Features of every map of a P1 file, read ``chunk`` maps at a time.

    Parameters
    ----------
    path : path-like
        P1 dataset file (``pldos`` (sample, field, x, y), meV⁻¹ per site).
    offset : float, optional
        ε of log(PLDOS + ε), meV⁻¹ per site; by default :func:`log_offset` of this file's
        first map (pass the training split's for any other split).
    fields_T : sequence of float
        Fields (tesla) whose maps are the channels.
    n_bins, chunk : int
        Radial bins of the power spectrum; maps read at a time.

    Returns
    -------
    MapFeatures
        Rows in the file's order. A bin that no mode of the map's grid falls in is left out
        (the same for every file of one grid).

    Raises
    ------
    ValueError
        No ``pldos`` variable, no map at a requested field, or no sample to take ε from.
    """
    with netCDF4.Dataset(path) as ds:
        if "pldos" not in ds.variables:
            raise ValueError(f"{path}: no variable 'pldos' (is it a P1 PLDOS file?)")
        channels = _field_indices(ds, fields_T, path)
        var = ds["pldos"]
        var.set_auto_maskandscale(False)
        n, shape = var.shape[0], var.shape[-2:]
        ids = np.asarray(ds["sample_id"][:], np.int64)
        bins, _, _ = radial_bins(shape, n_bins)
        filled = np.bincount(bins[bins >= 0], minlength=n_bins) > 0
        if n == 0 and offset is None:
            raise ValueError(f"{path} has no samples to fit the baselines on")
        thumbnail = block_average(np.zeros(shape)).size
        spectral = [np.empty((0, len(channels) * (int(filled.sum()) + 4)))]
        thumbnails = [np.empty((0, len(channels), thumbnail), np.float32)]
        for start in range(0, n, chunk):
            maps = np.asarray(var[start:start + chunk], np.float64)[:, channels]
            if offset is None:
                offset = log_offset(maps[0])
            logs = np.log(maps + offset)
            power = radial_power_spectrum(logs, n_bins)[..., filled]
            power = np.log(np.maximum(power, np.finfo(np.float64).tiny))  # a flat map: 0
            spectral.append(np.concatenate(
                [power, map_moments(logs)], axis=-1).reshape(len(maps), -1))
            thumbnails.append(block_average(logs).reshape(*logs.shape[:2], -1)
                              .astype(np.float32))
    return MapFeatures(ids, np.concatenate(spectral), np.concatenate(thumbnails), float(offset))


# -- ridge regression ---------------------------------------------------------------------
def _standardise(train, *others):
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(x - mean) / std for x in (train, *others)]


def ridge_coefficients(X, y, alphas) -> np.ndarray:
    """Ridge solutions β(α) = argmin (1/n)|y − Xβ|² + α|β|² for every α, via one SVD.

    X = U S Vᵀ gives β = V diag(s / (s² + nα)) Uᵀ y; at α = 0 the minimum-norm least-squares
    solution. X and y should be centred (no intercept is fitted here).

    Returns
    -------
    ndarray (len(alphas), features)
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    uty = u.T @ y
    lam = len(X) * np.asarray(alphas, np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(s[None, :] > s.max(initial=0.0) * 1e-12 * max(X.shape),
                          s[None, :] / (s[None, :] ** 2 + lam), 0.0)
    return (shrink * uty[None, :]) @ vt


def choose_ridge_alpha(X, y, alphas=RIDGE_ALPHAS, *, folds: int = CV_FOLDS,
                       seed: int = CV_SEED) -> tuple[float, np.ndarray]:
    """The penalty with the least k-fold cross-validated squared error on (X, y).

    The samples are split into ``folds`` parts by a seeded permutation (leave-one-out when
    there are fewer than 2 × ``folds`` samples, as in the test configuration's tiny splits);
    on each, the features and the target are standardised with the other parts' statistics,
    the ridge fitted there for every α and scored on the held-out part. Exact ties go to the
    smallest α.

    Returns
    -------
    alpha : float
    mse : ndarray (len(alphas),), the mean held-out squared error in the target's units².
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    if len(X) < 2:
        raise ValueError(f"cross-validating the ridge needs at least 2 training samples, got "
                         f"{len(X)}")
    folds = folds if len(X) >= 2 * folds else len(X)
    order = np.random.default_rng(seed).permutation(len(X))
    squared = np.zeros(len(alphas))
    for held in np.array_split(order, folds):
        kept = np.setdiff1d(order, held)
        x_fit, x_held = _standardise(X[kept], X[held])
        centre, scale = y[kept].mean(), y[kept].std() or 1.0
        beta = ridge_coefficients(x_fit, (y[kept] - centre) / scale, alphas)
        predicted = centre + scale * (x_held @ beta.T)                      # (held, alphas)
        squared += np.sum((predicted - y[held, None]) ** 2, axis=0)
    mse = squared / len(X)
    return float(np.asarray(alphas)[int(np.argmin(mse))]), mse


class RidgeRegression:
    """Standardised features → one target, penalty by cross-validation (:func:`choose_ridge_alpha`).

    After :meth:`fit`: ``alpha``, ``cv_mse`` (per α of ``alphas``), ``coefficients`` (per
    standardised feature, in target units) and ``intercept`` (the training mean of y).
    """

    def __init__(self, alphas=RIDGE_ALPHAS, *, folds: int = CV_FOLDS, seed: int = CV_SEED):
        self.alphas = np.asarray(alphas, np.float64)
        self.folds, self.seed = folds, seed

    def fit(self, X, y, *, alpha: float | None = None) -> "RidgeRegression":
        """Fit on (X, y); ``alpha`` fixes the penalty instead of cross-validating it."""
        X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
        if alpha is None:
            self.alpha, self.cv_mse = choose_ridge_alpha(X, y, self.alphas, folds=self.folds,
                                                         seed=self.seed)
        else:
            self.alpha, self.cv_mse = float(alpha), None
        self.feature_mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.feature_scale = np.where(std > 0, std, 1.0)
        self.intercept = float(y.mean())
        scale = y.std() or 1.0
        beta = ridge_coefficients((X - self.feature_mean) / self.feature_scale,
                                  (y - self.intercept) / scale, [self.alpha])[0]
        self.coefficients = scale * beta
        return self

    def predict(self, X) -> np.ndarray:
        z = (np.asarray(X, np.float64) - self.feature_mean) / self.feature_scale
        return self.intercept + z @ self.coefficients


# -- nearest training map -----------------------------------------------------------------
def nearest_rows(train, queries, *, chunk: int = 1024, tolerance: float = 1e-9) -> np.ndarray:
    """Row of the nearest training vector (Euclidean) for every query.

    Distances |q − t|² = |q|² − 2 q·t + |t|² are computed against ``chunk`` training rows at a
    time. Distances within ``tolerance`` × (|q|² + |t|²) of the best are ties, and go to the
    lowest row, so a duplicated training vector gives the same answer wherever it lies.

    Returns
    -------
    ndarray of int64 (queries,)
    """
    queries = np.asarray(queries, np.float64)
    q_norm = np.einsum("ij,ij->i", queries, queries)
    best = np.full(len(queries), np.inf)
    rows = np.zeros(len(queries), np.int64)
    for start in range(0, len(train), chunk):
        block = np.asarray(train[start:start + chunk], np.float64)
        t_norm = np.einsum("ij,ij->i", block, block)
        squared = q_norm[:, None] - 2.0 * queries @ block.T + t_norm[None, :]
        minimum = squared.min(axis=1)
        slack = tolerance * (q_norm + t_norm.max())
        first = np.argmax(squared <= (minimum + slack)[:, None], axis=1)
        better = minimum < best - slack
        best = np.where(better, minimum, best)
        rows = np.where(better, start + first, rows)
    return rows


# -- both baselines for one predictions file ----------------------------------------------
def _read_targets(path, targets) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        missing = [t for t in targets if t not in ds.variables]
        if missing:
            raise ValueError(f"{path}: no target variable(s) {missing} to fit the baselines on")
        return np.stack([np.asarray(ds[t][:], np.float64) for t in targets], axis=-1)


def baseline_predictions(train_path, dataset_path, sample_ids, targets, *,
                         fields_T=DEFAULT_FIELDS_T) -> dict:
    """Both baselines' predictions of ``targets`` for the samples ``sample_ids`` of a file.

    Parameters
    ----------
    train_path : path-like
        The training split (P1 format): the only data the baselines are fitted on.
    dataset_path : path-like
        The file the predictions were made on (its maps are the baselines' inputs).
    sample_ids : array of int
        The evaluated samples, in the order of the predictions file.
    targets : sequence of str
        Per-sample variables of the training split (units as stored: s nm, N_d cm⁻², rms
        meV, ξ nm).

    Returns
    -------
    dict
        ``{"ridge_power_spectrum": (description, {target: ndarray}),
        "nearest_training_map": (description, {target: ndarray})}``, the form
        :func:`.metrics.regression_metrics` takes as ``references``; each array is aligned
        with ``sample_ids``.
    """
    targets = list(targets)
    train = map_features(train_path, fields_T=fields_T)
    evaluated = map_features(dataset_path, offset=train.offset, fields_T=fields_T)
    if train.spectral.shape[1] != evaluated.spectral.shape[1]:
        raise ValueError(f"maps of {dataset_path} and {train_path} differ in shape")
    where = {int(i): k for k, i in enumerate(evaluated.sample_ids)}
    missing = [int(i) for i in sample_ids if int(i) not in where]
    if missing:
        raise ValueError(f"{dataset_path} lacks sample(s) {missing[:10]} of the predictions")
    rows = np.array([where[int(i)] for i in sample_ids], np.int64)
    y = _read_targets(train_path, targets)
    ridge, nearest = {}, {}
    for k, target in enumerate(targets):
        model = RidgeRegression().fit(train.spectral, y[:, k])
        ridge[target] = model.predict(evaluated.spectral[rows])
    # Standardised per channel, in float32 and in place: no float64 copy of the training maps.
    total = np.zeros(train.thumbnails.shape[1])
    squares = np.zeros_like(total)
    for start in range(0, len(train.thumbnails), CHUNK):
        block = train.thumbnails[start:start + CHUNK].astype(np.float64)
        total += block.sum(axis=(0, 2))
        squares += np.square(block).sum(axis=(0, 2))
    count = len(train.thumbnails) * train.thumbnails.shape[2]
    mean = (total / count)[:, None]
    std = np.sqrt(np.maximum(squares / count - mean[:, 0] ** 2, 0.0))[:, None]
    std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    train_z = train.thumbnails
    train_z -= mean.astype(np.float32)
    train_z /= std.astype(np.float32)
    queries = (evaluated.thumbnails[rows] - mean) / std
    neighbours = nearest_rows(train_z.reshape(len(train_z), -1),
                              queries.reshape(len(rows), train_z[0].size))
    for k, target in enumerate(targets):
        nearest[target] = y[neighbours, k]
    return {"ridge_power_spectrum": (RIDGE_DESCRIPTION, ridge),
            "nearest_training_map": (NEAREST_DESCRIPTION, nearest)}
