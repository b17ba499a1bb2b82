"""Metrics of models that reconstruct the disorder potential V(x, y) from a P1 PLDOS map.

P1 (Percebois & Weinmann, PRB 104, 075422, Sec. IV, Figs. 4-8) reconstructs the potential
of a sample in two ways: a CNN predicts the Fourier coefficients C_j of Eq. 1 and the potential
is rebuilt with Eq. 1 (model kind ``p1_fourier_cnn``), or a convolutional encoder-decoder
predicts V directly (``p1_encoder_decoder``). The metrics here read one predictions file
(format ``mesoinv-potential-predictions-1``, described in
:func:`mesoinv.inference.p1_formats.read_potential_predictions`) and evaluate it the way the
paper does, beside two baselines:

- the Pearson correlation r_P of each predicted image with the true one (P1 Eq. 6,
  :func:`pearson_r`), per sample (:func:`per_sample_r_p`) and summarised
  (:func:`reconstruction_metrics`);
- the local RMS error over the test set relative to the rms of the potential (P1 Fig. 6,
  :func:`local_rms_error_map`);
- the mean squared error of the Fourier coefficients per mode, scaled by σ² (P1 Fig. 4,
  :func:`coefficient_mse`, :func:`coefficient_errors`); for the encoder-decoder, whose
  output has no coefficients, those of its potential are obtained by least-squares projection
  onto the Eq. 1 basis of the same modes (:mod:`mesoinv.evaluation.p1_potential.projection`);
- r_P within rings of distance from the QPC mouth (:func:`r_p_by_distance`,
  :func:`reconstruction_by_distance`): where the information carried by the electron flow
  runs out;
- two baselines that know nothing about the sample: the zero potential (the ensemble mean of
  the disorder; r_P undefined, relative RMSE = 1 by construction) and the training split's
  pixelwise mean potential (:data:`BASELINE_DESCRIPTIONS`).

Units: lengths in nm, wave vectors in nm⁻¹, potentials in meV, PLDOS in meV⁻¹ per site,
Fourier coefficients dimensionless (their σ² = N_d L W/2, see
:mod:`mesoinv.physics.disorder`). Arrays of potentials are indexed (sample, x, y), x along
transport from the QPC (x = 0) to the drain (x = (nx - 1) a).

No training code and no torch: numpy and pandas.
"""

import math

import numpy as np
import pandas as pd

from ...inference.p1_formats import PotentialPredictions, read_potential_predictions
from ..intervals import bootstrap_interval, interval_columns, wilson_interval
from .projection import project_coefficients

__all__ = [
    "INTERVAL_METRICS",
    "PREDICTORS",
    "BASELINE_DESCRIPTIONS",
    "load_evaluated",
    "pearson_r",
    "root_mean_square",
    "local_rms_error_map",
    "coefficient_mse",
    "r_p_by_distance",
    "predictor_maps",
    "per_sample_scores",
    "example_indices",
    "per_sample_r_p",
    "reconstruction_metrics",
    "reconstruction_by_distance",
    "coefficient_errors",
]

#: Predictors of every table, in this order: the model and two baselines.
PREDICTORS = ("model", "training_mean_potential", "zero_potential")

#: ``baseline`` column of the tables: what each predictor predicts (empty for the model).
BASELINE_DESCRIPTIONS = {
    "model": "",
    "training_mean_potential": "pixelwise mean of the training split's potentials (= Eq. 1 "
                               "of the training-mean coefficients), the same map for every "
                               "sample",
    "zero_potential": "V = 0 everywhere (the ensemble mean of the disorder): r_P undefined, "
                      "RMSE = rms of the true potentials",
}


def load_evaluated(predictions) -> PotentialPredictions:
    """Predictions with their truth: a :class:`PotentialPredictions` as given (checked for
    ``potential_true``), or read from a path (:func:`read_potential_predictions`, which
    raises without the truth).

    Raises
    ------
    ValueError
        No ``potential_true``.
    """
    if isinstance(predictions, PotentialPredictions):
        if predictions.potential_true_meV is None:
            raise ValueError(f"{predictions.path} has no 'potential_true': nothing to "
                             "evaluate the predictions against")
        return predictions
    return read_potential_predictions(predictions)


# -- metrics on arrays --------------------------------------------------------------------
def pearson_r(predicted, true, axis=(-2, -1)):
    """Pearson correlation r_P of predicted and true images over their pixels (P1 Eq. 6).

    r_P = Σ_i (p_i − p̄)(t_i − t̄) / (√Σ_i (p_i − p̄)² √Σ_i (t_i − t̄)²), the sums running over
    the pixels along ``axis``; vectorised over the other axes (samples). The two arrays are
    broadcast against each other, so one image (a baseline) can be compared with a stack.

    Parameters
    ----------
    predicted, true : array_like
        Images, e.g. shape (n, nx, ny), any units (r_P is dimensionless and invariant under
        p → α p + β with α > 0).
    axis : int or tuple of int
        Pixel axes; default the last two.

    Returns
    -------
    ndarray or float
        r_P in [−1, 1] per image. NaN where either image is constant over its pixels
        (max = min, e.g. the zero potential): the correlation is then undefined (0/0).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    dp = predicted - np.mean(predicted, axis=axis, keepdims=True)
    dt = true - np.mean(true, axis=axis, keepdims=True)
    numerator = np.sum(dp * dt, axis=axis)
    denominator = np.sqrt(np.sum(dp**2, axis=axis) * np.sum(dt**2, axis=axis))
    # max = min, not a zero denominator: a constant float image can leave round-off residues
    # after subtracting its mean.
    constant = ((np.max(predicted, axis=axis) == np.min(predicted, axis=axis))
                | (np.max(true, axis=axis) == np.min(true, axis=axis)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = numerator / denominator
    r = np.where(np.broadcast_to(constant, np.shape(r)), np.nan, r)
    return np.clip(r, -1.0, 1.0)


def root_mean_square(values) -> float:
    """√⟨values²⟩ over every element, in the values' units."""
    return float(np.sqrt(np.mean(np.square(values))))


def local_rms_error_map(predicted, true) -> np.ndarray:
    """Local RMS error over samples relative to the rms of the true potentials (P1 Fig. 6).

    map(x, y) = √(⟨(V_pred − V_true)²⟩_samples (x, y)) / rms(V_true), with
    rms(V_true) = √(⟨V_true²⟩) over all samples and all pixels, nothing subtracted (the
    disorder has zero ensemble mean). The zero-potential predictor thus has a map of
    rms_local/rms ≈ 1 and a global relative RMSE of exactly 1.

    Parameters
    ----------
    predicted : array_like, shape (n, nx, ny) or (nx, ny)
        Predicted potentials (a single map is used for every sample), meV.
    true : array_like, shape (n, nx, ny)
        True potentials, meV.

    Returns
    -------
    ndarray, shape (nx, ny)
        Dimensionless.

    Raises
    ------
    ValueError
        The true potentials are all zero (no scale).
    """
    true = np.asarray(true, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - true
    scale = root_mean_square(true)
    if not scale > 0:
        raise ValueError("the true potentials are all zero: the relative error is undefined")
    return np.sqrt(np.mean(error**2, axis=0)) / scale


def coefficient_mse(predicted, true, sigma: float):
    """Mean squared error of Re C and Im C per mode over samples, divided by σ² (P1 Fig. 4).

    Parameters
    ----------
    predicted, true : complex array_like, shape (n, M)
        Fourier coefficients (dimensionless). ``predicted`` may be one vector (M,) for all
        samples (a baseline).
    sigma : float
        σ of Re C and of Im C (σ² = N_d L W/2).

    Returns
    -------
    (ndarray, ndarray), each shape (M,)
        ⟨(Re C_pred − Re C_true)²⟩/σ² and ⟨(Im C_pred − Im C_true)²⟩/σ², dimensionless: 0 for a
        perfect prediction, ≈ 1 for the zero predictor (⟨(Re C)²⟩ = σ²), ≈ 2 for an
        uncorrelated draw of the same statistics.
    """
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    error = np.asarray(predicted, dtype=complex) - np.asarray(true, dtype=complex)
    variance = float(sigma) ** 2
    return (np.mean(error.real**2, axis=0) / variance,
            np.mean(error.imag**2, axis=0) / variance)


def _distance_bins(x_nm, y_nm, qpc_center_y_nm, n_bins, max_distance_nm=None):
    x = np.asarray(x_nm, dtype=float)
    y = np.asarray(y_nm, dtype=float)
    distance = np.hypot(x[:, None], y[None, :] - qpc_center_y_nm)
    top = float(distance.max()) if max_distance_nm is None else float(max_distance_nm)
    edges = np.linspace(0.0, top, int(n_bins) + 1)
    # Bin b holds edges[b] <= d < edges[b + 1]; the last bin includes its upper edge.
    index = np.clip(np.searchsorted(edges, distance, side="right") - 1, 0, n_bins - 1)
    index = np.where(distance > top, -1, index)
    return distance, edges, index


def r_p_by_distance(predicted, true, x_nm, y_nm, qpc_center_y_nm: float, *, n_bins: int = 8,
                    max_distance_nm: float | None = None) -> pd.DataFrame:
    """r_P and the relative RMS error within rings of distance from the QPC mouth.

    The distance of site (x, y) is √(x² + (y − y_qpc)²) from the point (0, y_qpc), the centre
    of the QPC's mouth. The range [0, max distance] is cut into ``n_bins`` equal rings; per
    ring and per sample r_P (Eq. 6) is computed over the ring's pixels only (so a ring's r_P
    measures whether the local pattern is right, not the overall level), then summarised over
    samples.

    Parameters
    ----------
    predicted : array_like, shape (n, nx, ny) or (nx, ny)
        Predicted potentials, meV (one map: the same for every sample).
    true : array_like, shape (n, nx, ny)
        True potentials, meV.
    x_nm, y_nm : 1D array_like
        Site coordinates, nm (the QPC at x = 0).
    qpc_center_y_nm : float
        y of the QPC mouth's centre, nm.
    n_bins : int
    max_distance_nm : float, optional
        Outer edge; default the farthest site. Sites beyond are left out.

    Returns
    -------
    pandas.DataFrame
        One row per ring: ``bin``, ``distance_min_nm``, ``distance_max_nm``,
        ``distance_center_nm``, ``n_pixels``, ``n_samples``, ``n_r_p_defined`` (samples whose
        r_P is defined in that ring), ``r_p_mean``, ``r_p_median``, ``r_p_q25``, ``r_p_q75``,
        ``r_p_min``, ``r_p_max`` (over samples, NaN ignored; NaN if none is defined),
        ``relative_rmse`` (√⟨(V_pred − V_true)²⟩ over the ring's pixels and all samples,
        divided by the rms of the true potentials over *all* pixels and samples, the
        normalisation of :func:`local_rms_error_map`).
    """
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    _, edges, index = _distance_bins(x_nm, y_nm, qpc_center_y_nm, n_bins, max_distance_nm)
    scale = root_mean_square(true)
    rows = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        row = dict(bin=b, distance_min_nm=edges[b], distance_max_nm=edges[b + 1],
                   distance_center_nm=0.5 * (edges[b] + edges[b + 1]), n_pixels=count,
                   n_samples=len(true))
        if count:
            r = np.atleast_1d(pearson_r(predicted[..., mask], true[..., mask], axis=-1))
            r = np.broadcast_to(r, (len(true),))
            finite = r[np.isfinite(r)]
            error = np.broadcast_to(predicted[..., mask], true[..., mask].shape) - true[..., mask]
            row.update(n_r_p_defined=len(finite), **_spread(finite),
                       relative_rmse=root_mean_square(error) / scale if scale > 0 else math.nan)
        else:
            row.update(n_r_p_defined=0, **_spread(np.array([])), relative_rmse=math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _spread(values) -> dict:
    if len(values) == 0:
        return dict(r_p_mean=math.nan, r_p_median=math.nan, r_p_q25=math.nan,
                    r_p_q75=math.nan, r_p_min=math.nan, r_p_max=math.nan)
    return dict(r_p_mean=float(np.mean(values)), r_p_median=float(np.median(values)),
                r_p_q25=float(np.percentile(values, 25)),
                r_p_q75=float(np.percentile(values, 75)),
                r_p_min=float(np.min(values)), r_p_max=float(np.max(values)))


# -- metrics of a predictions file --------------------------------------------------------
def predictor_maps(p: PotentialPredictions) -> dict:
    """Per predictor of :data:`PREDICTORS`: its predicted potentials (a stack, or one map for
    all samples), meV."""
    return {"model": p.potential_meV,
            "training_mean_potential": p.training_mean_potential_meV,
            "zero_potential": np.zeros(p.shape)}


def per_sample_scores(p: PotentialPredictions) -> dict:
    """Per predictor of :data:`PREDICTORS`: (r_P per sample, RMSE per sample in meV)."""
    out = {}
    for name, predicted in predictor_maps(p).items():
        error = predicted - p.potential_true_meV
        out[name] = (np.broadcast_to(pearson_r(predicted, p.potential_true_meV), (p.n,)),
                     np.sqrt(np.mean(error**2, axis=(1, 2))))
    return out


def example_indices(r_p) -> dict:
    """The samples shown in the figures, letter → sample position: a best, b median, c worst
    r_P (finite values only)."""
    r_p = np.asarray(r_p, dtype=float)
    finite = np.flatnonzero(np.isfinite(r_p))
    if len(finite) == 0:
        n = len(r_p)
        return {"a": 0, "b": n // 2, "c": n - 1}
    order = finite[np.argsort(r_p[finite], kind="stable")]
    return {"a": int(order[-1]), "b": int(order[(len(order) - 1) // 2]), "c": int(order[0])}


def per_sample_r_p(predictions) -> pd.DataFrame:
    """r_P and RMSE of each sample, for the model and both baselines.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions

    Returns
    -------
    pandas.DataFrame
        One row per sample, in the file's order: ``model``, ``split``, ``sample_id``,
        ``r_p_model``, ``r_p_training_mean_potential``, ``r_p_zero_potential`` (always NaN,
        documented in :func:`pearson_r`), ``rmse_model_meV``,
        ``rmse_training_mean_potential_meV``, ``rmse_zero_potential_meV`` (the sample's own
        rms), ``example`` ("a" best, "b" median, "c" worst model r_P, as in the figures;
        empty otherwise).
    """
    p = load_evaluated(predictions)
    values = per_sample_scores(p)
    table = pd.DataFrame({"model": p.model_name, "split": p.split, "sample_id": p.sample_id})
    for name in PREDICTORS:
        table[f"r_p_{name}"] = values[name][0]
    for name in PREDICTORS:
        table[f"rmse_{name}_meV"] = values[name][1]
    example = np.full(p.n, "", dtype=object)
    for letter, index in example_indices(values["model"][0]).items():
        example[index] = letter if not example[index] else example[index] + letter
    table["example"] = example
    return table


def _outside_eq1_span(p: PotentialPredictions) -> dict:
    """predictor → rms (meV) over all samples and pixels of its part outside Eq. 1's span."""
    disorder = p.disorder()
    if disorder is None or len(p.modes) == 0:
        return {name: math.nan for name in PREDICTORS}
    _, residual = project_coefficients(p.potential_meV, p.modes, disorder, p.x_nm, p.y_nm,
                                       return_residual=True)
    _, mean_residual = project_coefficients(p.training_mean_potential_meV, p.modes, disorder,
                                            p.x_nm, p.y_nm, return_residual=True)
    return {"model": float(np.sqrt(np.mean(residual**2))),
            "training_mean_potential": float(mean_residual), "zero_potential": 0.0}


def reconstruction_metrics(predictions) -> pd.DataFrame:
    """Metrics of the model and of both baselines (P1 Sec. IV C numbers).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
        With ``potential_true``.

    Returns
    -------
    pandas.DataFrame
        One row per predictor (:data:`PREDICTORS`). Columns: ``model``, ``split``,
        ``target`` ("potential"), ``units`` ("meV", of ``rmse`` and ``rms_true``),
        ``predictor``, ``n`` (samples), ``n_r_p_undefined`` (samples whose r_P is NaN, a
        constant image), ``r_p_mean``, ``r_p_median``, ``r_p_q05`` (5th percentile, linear
        interpolation), ``r_p_min``, ``r_p_max`` (over the defined r_P; NaN if none),
        ``fraction_r_p_above_0_9``, ``fraction_r_p_above_0_99`` (fractions of the samples
        with a defined r_P; NaN if none), ``rmse`` (√⟨(V_pred − V_true)²⟩ over all samples and
        pixels, meV), ``relative_rmse`` (rmse / rms_true, dimensionless; exactly 1 for the
        zero potential), ``rms_true`` (√⟨V_true²⟩ over all samples and pixels, meV),
        ``outside_eq1_relative_rms`` (rms of the predicted potentials' part outside the span
        of Eq. 1 on the file's modes, / rms_true: ≈ 0 for the Fourier CNN and the baselines,
        what the encoder-decoder predicts that no potential of Eq. 1 has; NaN without a fixed
        s), ``<m>_ci_low`` / ``<m>_ci_high`` for m in :data:`INTERVAL_METRICS` (95 %),
        ``model_kind``, ``nx_sites``, ``ny_sites``, ``dopant_distance_nm``, ``n_train``,
        ``baseline`` (:data:`BASELINE_DESCRIPTIONS`, empty for the model), ``command``.
    """
    p = load_evaluated(predictions)
    values = per_sample_scores(p)
    rms_true = root_mean_square(p.potential_true_meV)
    outside = _outside_eq1_span(p)
    true_mean_square = np.mean(np.asarray(p.potential_true_meV, float) ** 2, axis=(1, 2))
    rows = []
    for name in PREDICTORS:
        r_p, rmse_per_sample = values[name]
        finite = r_p[np.isfinite(r_p)]
        rmse = float(np.sqrt(np.mean(rmse_per_sample**2)))
        intervals = _intervals(finite, rmse_per_sample, true_mean_square)
        rows.append({
            "model": p.model_name, "split": p.split, "target": "potential", "units": "meV",
            "predictor": name, "n": p.n,
            "n_r_p_undefined": int(p.n - len(finite)),
            "r_p_mean": float(np.mean(finite)) if len(finite) else math.nan,
            "r_p_median": float(np.median(finite)) if len(finite) else math.nan,
            "r_p_q05": float(np.percentile(finite, 5)) if len(finite) else math.nan,
            "r_p_min": float(np.min(finite)) if len(finite) else math.nan,
            "r_p_max": float(np.max(finite)) if len(finite) else math.nan,
            "fraction_r_p_above_0_9": float(np.mean(finite > 0.9)) if len(finite) else math.nan,
            "fraction_r_p_above_0_99": (float(np.mean(finite > 0.99)) if len(finite)
                                        else math.nan),
            "rmse": rmse, "relative_rmse": rmse / rms_true if rms_true > 0 else math.nan,
            "rms_true": rms_true,
            "outside_eq1_relative_rms": (outside[name] / rms_true if rms_true > 0
                                         else math.nan),
            **intervals,
            "model_kind": p.model_kind, "nx_sites": p.shape[0], "ny_sites": p.shape[1],
            "dopant_distance_nm": p.dopant_distance_nm, "n_train": p.n_train,
            "baseline": BASELINE_DESCRIPTIONS[name], "command": p.command,
        })
    return pd.DataFrame(rows)


#: Metrics of :func:`reconstruction_metrics` that carry ``<name>_ci_low/_ci_high`` (95 %).
INTERVAL_METRICS = ("r_p_mean", "r_p_median", "r_p_q05", "fraction_r_p_above_0_9",
                    "fraction_r_p_above_0_99", "relative_rmse")


def _intervals(r_p_defined, rmse_per_sample, true_mean_square) -> dict:
    """95 % intervals: percentile bootstrap over samples (r_P mean, median, 5th percentile;
    relative RMSE, resampling each sample's squared error and squared truth together) and
    Wilson intervals for the fractions above 0.9 and 0.99 (:mod:`..intervals`)."""
    out = {f"{name}_ci_{side}": math.nan for name in INTERVAL_METRICS
           for side in ("low", "high")}
    m = len(r_p_defined)
    out.update(interval_columns("r_p_mean", bootstrap_interval(
        lambda r: r.mean(axis=1), r_p_defined)))
    out.update(interval_columns("r_p_median", bootstrap_interval(
        lambda r: np.median(r, axis=1), r_p_defined)))
    out.update(interval_columns("r_p_q05", bootstrap_interval(
        lambda r: np.percentile(r, 5, axis=1), r_p_defined)))
    if m >= 1:
        for threshold, name in ((0.9, "fraction_r_p_above_0_9"),
                                (0.99, "fraction_r_p_above_0_99")):
            out.update(interval_columns(name, wilson_interval(
                int(np.sum(r_p_defined > threshold)), m)))
    out.update(interval_columns("relative_rmse", bootstrap_interval(
        lambda mse, ms: np.sqrt(np.mean(mse, axis=1) / np.mean(ms, axis=1)),
        rmse_per_sample ** 2, true_mean_square)))
    return out


def reconstruction_by_distance(predictions, *, n_bins: int = 8) -> pd.DataFrame:
    """:func:`r_p_by_distance` for the model and both baselines, with identifying columns.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``split``, ``predictor``, then the columns of :func:`r_p_by_distance`,
        ``qpc_center_y_nm``.
    """
    p = load_evaluated(predictions)
    tables = []
    for name, predicted in predictor_maps(p).items():
        table = r_p_by_distance(predicted, p.potential_true_meV, p.x_nm, p.y_nm,
                                p.qpc_center_y_nm, n_bins=n_bins)
        table.insert(0, "predictor", name)
        table.insert(0, "split", p.split)
        table.insert(0, "model", p.model_name)
        table["qpc_center_y_nm"] = p.qpc_center_y_nm
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _coefficients(p: PotentialPredictions):
    """(model's coefficients, how they were obtained, training-mean coefficients)."""
    disorder = p.disorder()
    mean = (project_coefficients(p.training_mean_potential_meV, p.modes, disorder, p.x_nm,
                                 p.y_nm) if disorder is not None and len(p.modes) else None)
    if p.coefficients_predicted is not None:
        return p.coefficients_predicted, "predicted by the model", mean
    if disorder is None or len(p.modes) == 0:
        return None, "not available: no fixed dopant distance s for Eq. 1", mean
    return (project_coefficients(p.potential_meV, p.modes, disorder, p.x_nm, p.y_nm),
            "least-squares projection of the predicted potential on Eq. 1", mean)


def coefficient_errors(predictions) -> pd.DataFrame:
    """Mean squared coefficient errors per mode over σ² (P1 Fig. 4), model and baselines.

    The model's coefficients are its predicted ones (``p1_fourier_cnn``) or those of its
    predicted potential by least squares on Eq. 1 (``p1_encoder_decoder``,
    :func:`project_coefficients`); the training-mean baseline's are the projection of the
    training-mean potential (= the training-mean coefficients, by linearity); the zero
    baseline's are 0.

    Returns
    -------
    pandas.DataFrame
        One row per mode: ``model``, ``split``, ``mode``, ``mode_m``, ``mode_n``,
        ``qx_per_nm``, ``qy_per_nm``, ``q_per_nm``, ``n``, ``mse_real_over_sigma2``,
        ``mse_imag_over_sigma2`` (the model's), ``training_mean_mse_real_over_sigma2``,
        ``training_mean_mse_imag_over_sigma2``, ``zero_mse_real_over_sigma2``,
        ``zero_mse_imag_over_sigma2`` (all dimensionless; NaN where unavailable),
        ``coefficient_sigma``, ``coefficient_source``, ``command``.
    """
    p = load_evaluated(predictions)
    m = len(p.modes)
    model, source, mean = _coefficients(p)
    sigma = p.coefficient_sigma
    nan = np.full(m, np.nan)
    usable = np.isfinite(sigma) and sigma > 0 and p.coefficients_true is not None

    def mse(predicted):
        if predicted is None or not usable:
            return nan, nan
        return coefficient_mse(predicted, p.coefficients_true, sigma)

    model_re, model_im = mse(model)
    mean_re, mean_im = mse(mean)
    zero_re, zero_im = mse(np.zeros(m, dtype=complex))
    if not usable:
        source += " (no coefficient_sigma or true coefficients: MSE not computed)"
    return pd.DataFrame({
        "model": p.model_name, "split": p.split, "mode": np.arange(m),
        "mode_m": p.modes.m, "mode_n": p.modes.n, "qx_per_nm": p.modes.qx_per_nm,
        "qy_per_nm": p.modes.qy_per_nm, "q_per_nm": p.modes.q_per_nm, "n": p.n,
        "mse_real_over_sigma2": model_re, "mse_imag_over_sigma2": model_im,
        "training_mean_mse_real_over_sigma2": mean_re,
        "training_mean_mse_imag_over_sigma2": mean_im,
        "zero_mse_real_over_sigma2": zero_re, "zero_mse_imag_over_sigma2": zero_im,
        "coefficient_sigma": sigma, "coefficient_source": source, "command": p.command})
