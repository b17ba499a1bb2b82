"""Metrics of models that predict scalar disorder parameters from a P1 PLDOS map.

They read one predictions file (format ``mesoinv-predictions-1``, written by ``mesoinv
predict``, see :mod:`mesoinv.inference.p1_formats`) and evaluate it the way P1
(Percebois & Weinmann, PRB 104, 075422, Sec. III and Fig. 3) does:

- the standard deviation σ of the prediction error (prediction − truth) per target, in the
  target's units, and relative to the truth, beside the same numbers for the trivial baseline
  that predicts the training-split mean of the target (:func:`regression_metrics`), and the
  Bayes ceiling from the true potential (:func:`posterior_references`,
  :mod:`mesoinv.evaluation.p1_parameters.posterior`) and two baselines fitted on the training
  split without a network, ridge regression on the maps' power spectra and the nearest
  training map (:func:`training_baseline_references`,
  :mod:`mesoinv.evaluation.p1_parameters.baselines`);
- those σ against the paper's quoted values (:func:`paper_comparison`);
- the physics of P1 Fig. 3: the relative error of the rms that predicted (s, N_d) give through
  P1 Eq. 5 (:func:`rms_relative_error`) and the line on which it vanishes to first order
  (:func:`rms_compensation_slope`).

Targets and units of P1 datasets: ``dopant_distance`` (s, nm), ``dopant_density``
(N_d, cm⁻²), ``rms`` (√C(0), meV), ``correlation_length`` (ξ, nm). A model may predict any
subset; only targets whose truth is stored (``<target>_true``) are evaluated.

No training code and no torch: numpy, pandas and netCDF4.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...inference.p1_formats import Predictions, read_predictions
from ...physics.disorder import RemoteDopantDisorder
from ...physics.materials import Material
from ..intervals import bootstrap_interval, interval_columns
from .baselines import baseline_predictions
from .posterior import POSTERIOR_DESCRIPTION, POSTERIOR_TARGETS, potential_posterior_means

__all__ = [
    "INTERVAL_METRICS",
    "BASELINE_DESCRIPTION",
    "PAPER_ERRORS",
    "PaperError",
    "target_symbol",
    "require_truth",
    "relative_errors",
    "error_statistics",
    "regression_metrics",
    "posterior_references",
    "training_baseline_references",
    "paper_comparison",
    "rms_relative_error",
    "rms_compensation_slope",
]

#: ``baseline`` column of the baseline rows of :func:`regression_metrics`.
#: Metrics that carry ``<name>_ci_low`` / ``<name>_ci_high`` columns (95 %, bootstrap).
INTERVAL_METRICS = ("error_std", "relative_error_std", "rmse", "r2")

BASELINE_DESCRIPTION = "training-split mean of the target"

#: Reference density for the shape f(s) of rms(s, N_d) = √(N_d / N_ref) · f(s), in cm⁻².
_REFERENCE_DENSITY_CM2 = 1e12

_SYMBOLS = {"dopant_distance": "s", "dopant_density": "N_d", "rms": "rms",
            "correlation_length": "ξ"}


# -- the paper's numbers ------------------------------------------------------------------
@dataclass(frozen=True)
class PaperError:
    """One σ of P1 Sec. III with the typical value the paper divides it by.

    Attributes
    ----------
    error_std : float
        σ of the prediction error, in ``units``.
    typical_value : float
        The paper's "typical value" of the target, in ``units``.
    units : str
        Units of both (``"t"`` is P1's hopping energy ħ²/(2m*a²), 24.19 meV at a = 5 nm).
    quote : str
        Where the numbers come from.
    """

    error_std: float
    typical_value: float
    units: str
    quote: str

    @property
    def relative_percent(self) -> float:
        """σ / typical value, in %."""
        return 100.0 * self.error_std / self.typical_value


#: P1's quoted errors (constants copied from the paper, never fitted or tuned).
PAPER_ERRORS = {
    # P1 Sec. III: "We find a standard deviation of the prediction error for the distance
    # σ_s = 2.3 nm and σ_Nd = 1.8 × 10^11 cm^-2 for the density (typical value of s: 50 nm,
    # typical value of N_d: 10^12 cm^-2)."
    "dopant_distance": PaperError(
        2.3, 50.0, "nm",
        "P1 Sec. III: σ_s = 2.3 nm (typical value of s: 50 nm)"),
    "dopant_density": PaperError(
        1.8e11, 1e12, "cm-2",
        "P1 Sec. III: σ_Nd = 1.8e11 cm^-2 (typical value of N_d: 1e12 cm^-2)"),
    # P1 Sec. III: "The standard deviation of the prediction error for the potential root
    # mean square is σ_PRMS = 7.3 × 10^-3 t and the standard deviation of the prediction
    # error for the correlation length is σ_ξ = 0.36 nm (typical value of the potential root
    # mean square: 0.25 t, typical value of ξ: 10 nm)."
    # The project's rms and ξ differ from these typical values (the paper's do not follow
    # from its own Eqs. 4-5, see docs/physics.md): compare the relative errors.
    "rms": PaperError(
        7.3e-3, 0.25, "t",
        "P1 Sec. III: σ_PRMS = 7.3e-3 t (typical value of the rms: 0.25 t)"),
    "correlation_length": PaperError(
        0.36, 10.0, "nm",
        "P1 Sec. III: σ_ξ = 0.36 nm (typical value of ξ: 10 nm)"),
}


def target_symbol(target: str) -> str:
    """The paper's symbol of a target (s, N_d, rms, ξ), else the target's name."""
    return _SYMBOLS.get(target, target)


def require_truth(predictions: Predictions):
    """Raise a ValueError unless the file stores the truth of at least one target."""
    if not predictions.evaluated:
        raise ValueError(f"{predictions.path} has no '<target>_true' variables (targets "
                         f"{predictions.targets}): nothing to evaluate the predictions against")


# -- metrics ------------------------------------------------------------------------------
def relative_errors(predicted, true) -> np.ndarray:
    """(pred − true)/true (dimensionless); NaN where true is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = (predicted - true) / true
    return np.where(true == 0, np.nan, relative)


def error_statistics(predicted, true) -> dict:
    """σ, bias, RMSE, MAE, relative σ and R² of one predictor on one target, with 95 %
    bootstrap intervals of σ, relative σ, RMSE and R² (:mod:`mesoinv.evaluation.intervals`).

    σ and the relative σ use ddof = 0. R² = 1 − SS_res/SS_tot over these samples; NaN for
    fewer than 2 samples or when the truth is constant (SS_tot = 0). The bootstrap resamples
    the samples with the module's fixed seed, so every predictor of a target is resampled
    with the same indices (differences between predictors are paired).
    """
    n = len(true)
    intervals = {f"{name}_ci_{side}": np.nan for name in INTERVAL_METRICS
                 for side in ("low", "high")}
    if n == 0:
        return dict(n=0, error_std=np.nan, error_mean=np.nan, rmse=np.nan, mae=np.nan,
                    relative_error_std=np.nan, r2=np.nan, **intervals)
    error = predicted - true
    ss_res = np.sum(error**2)
    ss_tot = np.sum((true - true.mean()) ** 2)
    r2 = float(1.0 - ss_res / ss_tot) if n >= 2 and ss_tot > 0 else np.nan
    relative = relative_errors(predicted, true)
    if n >= 2:
        statistics = {
            "error_std": (lambda e: np.std(e, axis=1), error),
            "relative_error_std": (lambda r: np.std(r, axis=1), relative),
            "rmse": (lambda e: np.sqrt(np.mean(e ** 2, axis=1)), error),
            "r2": (lambda e, t: 1.0 - np.sum(e ** 2, axis=1) / np.sum(
                (t - t.mean(axis=1, keepdims=True)) ** 2, axis=1), error, true)}
        for name in INTERVAL_METRICS:
            statistic, *arrays = statistics[name]
            intervals.update(interval_columns(name, bootstrap_interval(statistic, *arrays)))
    return dict(n=n,
                error_std=float(np.std(error)),
                error_mean=float(np.mean(error)),
                rmse=float(np.sqrt(np.mean(error**2))),
                mae=float(np.mean(np.abs(error))),
                relative_error_std=float(np.std(relative)),
                r2=r2, **intervals)


def regression_metrics(predictions_path, *, references=None) -> pd.DataFrame:
    """Error statistics of the model and of the training-mean baseline, per target.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-predictions-1``) with at least one ``<target>_true``.
    references : dict, optional
        Further predictors, ``{name: (description, {target: values aligned with the file's
        samples})}``, e.g. the Bayes ceiling of
        :mod:`mesoinv.evaluation.p1_parameters.posterior` or the baselines of
        :func:`training_baseline_references`; each adds one row per target it has.

    Returns
    -------
    pandas.DataFrame
        One row per (target, predictor), predictor ``"model"``, ``"training_mean"`` (the
        baseline predicting the mean of the target over the training split for every sample)
        or a name of ``references`` (``potential_posterior``, ``ridge_power_spectrum``,
        ``nearest_training_map``).
        Columns:

        ``model``, ``split``, ``target``, ``units`` (of every absolute column),
        ``predictor``, ``n`` (samples), ``error_std`` (σ of prediction − truth, ddof = 0:
        P1's σ_s, σ_Nd, ...; target units), ``error_mean`` (bias; target units), ``rmse``,
        ``mae`` (target units), ``relative_error_std`` (σ of (pred − true)/true,
        dimensionless fraction, not %), ``r2`` (1 − SS_res/SS_tot over this split,
        dimensionless; NaN if n < 2 or the truth is constant; the baseline's is ≤ 0 up to
        the difference between training and evaluated means), ``<m>_ci_low`` and
        ``<m>_ci_high`` for m in :data:`INTERVAL_METRICS` (95 % percentile bootstrap over the
        split's samples, same resamples for every predictor), ``true_mean`` (mean truth of
        this split; target units), ``training_mean`` (target units), ``n_train``,
        ``baseline`` (description of the predictor; empty for the model), ``command``.

    Raises
    ------
    ValueError
        The file has no ``<target>_true`` variable, or lacks the training mean of a target.
    """
    p = read_predictions(predictions_path)
    require_truth(p)
    rows = []
    for target in p.evaluated:
        if target not in p.training_mean:
            raise ValueError(f"{p.path}: no training mean of {target!r} in the attribute "
                             "'training_mean' (the baseline)")
        true = p.true[target]
        mean = p.training_mean[target]
        common = dict(model=p.model_name, split=p.split, target=target, units=p.units[target])
        tail = dict(true_mean=float(np.mean(true)) if len(true) else np.nan,
                    training_mean=mean, n_train=p.n_train)
        rows.append({**common, "predictor": "model",
                     **error_statistics(p.predicted[target], true), **tail,
                     "baseline": "", "command": p.command})
        baseline = np.full_like(true, mean)
        rows.append({**common, "predictor": "training_mean",
                     **error_statistics(baseline, true), **tail,
                     "baseline": BASELINE_DESCRIPTION, "command": p.command})
        for name, (description, values) in (references or {}).items():
            if target in values:
                rows.append({**common, "predictor": name,
                             **error_statistics(np.asarray(values[target], float), true),
                             **tail, "baseline": description, "command": p.command})
    return pd.DataFrame(rows)


def posterior_references(predictions_path, dataset_path) -> dict:
    """The Bayes ceiling (:func:`.posterior.potential_posterior_means`) for the samples and
    targets of a predictions file, from the dataset file they came from."""
    p = read_predictions(predictions_path)
    targets = [t for t in p.evaluated if t in POSTERIOR_TARGETS]
    if not targets:
        return {}
    ids, means = potential_posterior_means(dataset_path, targets)
    where = {int(i): k for k, i in enumerate(ids)}
    missing = [int(i) for i in p.sample_id if int(i) not in where]
    if missing:
        raise ValueError(f"{dataset_path} lacks sample(s) {missing[:10]} of {predictions_path}")
    rows = [where[int(i)] for i in p.sample_id]
    return {"potential_posterior": (POSTERIOR_DESCRIPTION,
                                    {t: means[rows, k] for k, t in enumerate(targets)})}


def training_baseline_references(predictions_path, dataset_path, train_path) -> dict:
    """The two baselines fitted on the training split without a network
    (:func:`.baselines.baseline_predictions`: ``ridge_power_spectrum`` and
    ``nearest_training_map``), for the samples and targets of a predictions file.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-predictions-1``).
    dataset_path : path-like
        The file the predictions were made on: the baselines' input maps.
    train_path : path-like
        The model's training split: the only data the baselines are fitted on.
    """
    p = read_predictions(predictions_path)
    require_truth(p)
    return baseline_predictions(train_path, dataset_path, p.sample_id, p.evaluated)


def paper_comparison(metrics: pd.DataFrame) -> pd.DataFrame:
    """The model's σ per target beside P1's and beside the training-mean baseline.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Output of :func:`regression_metrics` (possibly several models concatenated).

    Returns
    -------
    pandas.DataFrame
        One row per (model, target) of the model rows. Columns: ``model``, ``split``,
        ``target``, ``symbol``, ``n``; ours: ``error_std`` (σ, in ``units``), ``units``,
        ``relative_error_std_percent`` (σ of (pred − true)/true, %),
        ``error_std_over_mean_percent`` (σ / mean truth, %, the paper's way: σ / typical
        value); the paper's (:data:`PAPER_ERRORS`, NaN for a target the paper does not quote):
        ``paper_error_std`` (in ``paper_units``), ``paper_units``, ``paper_typical_value``
        (``paper_units``), ``paper_relative_percent`` (σ / typical, %); the baseline's
        ``baseline_relative_error_std_percent`` (%) and ``baseline_error_std`` (``units``);
        ``paper_source``.

    Notes
    -----
    Compare relative errors: the project's rms and ξ differ from the paper's quoted typical
    values (which do not follow from P1's own Eqs. 4–5), and the paper's rms is in units of
    the hopping t.
    """
    model_rows = metrics[metrics["predictor"] == "model"]
    rows = []
    for _, row in model_rows.iterrows():
        base = metrics[(metrics["predictor"] == "training_mean")
                       & (metrics["model"] == row["model"])
                       & (metrics["split"] == row["split"])
                       & (metrics["target"] == row["target"])]
        paper = PAPER_ERRORS.get(row["target"])
        true_mean = row.get("true_mean", np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            over_mean = 100.0 * row["error_std"] / abs(true_mean) if true_mean else np.nan
        rows.append({
            "model": row["model"], "split": row["split"], "target": row["target"],
            "symbol": target_symbol(row["target"]), "n": row["n"],
            "error_std": row["error_std"], "units": row["units"],
            "relative_error_std_percent": 100.0 * row["relative_error_std"],
            "error_std_over_mean_percent": over_mean,
            "paper_error_std": paper.error_std if paper else np.nan,
            "paper_units": paper.units if paper else "",
            "paper_typical_value": paper.typical_value if paper else np.nan,
            "paper_relative_percent": paper.relative_percent if paper else np.nan,
            "baseline_relative_error_std_percent":
                100.0 * float(base["relative_error_std"].iloc[0]) if len(base) else np.nan,
            "baseline_error_std": float(base["error_std"].iloc[0]) if len(base) else np.nan,
            "paper_source": paper.quote if paper else "not quoted by P1",
        })
    return pd.DataFrame(rows)


# -- physics of P1 Fig. 3 -----------------------------------------------------------------
def _material_and_screening(metadata: dict):
    try:
        material = Material(relative_permittivity=float(metadata["relative_permittivity"]),
                            effective_mass_kg=float(metadata["effective_mass_kg"]))
    except KeyError as missing:
        raise ValueError(f"data_metadata lacks {missing}, needed for the rms of Eq. 5") from None
    q_tf = metadata.get("thomas_fermi_wavevector_per_nm")
    cutoff = float(metadata.get("cutoff_factor", 3.5))
    return material, cutoff, (None if q_tf is None else float(q_tf))


def _rms_shape(s_nm, metadata: dict) -> np.ndarray:
    """f(s) = rms at N_d = 1e12 cm⁻², in meV, for each s (nm); NaN where s is not > 0.

    rms(s, N_d) = √(N_d / 1e12 cm⁻²) · f(s) exactly (C(0) is linear in N_d, Eq. 5), so one
    integral per distinct s suffices.
    """
    material, cutoff, q_tf = _material_and_screening(metadata)
    s_nm = np.asarray(s_nm, dtype=float)
    out = np.full(s_nm.shape, np.nan)
    valid = np.isfinite(s_nm) & (s_nm > 0)
    unique, inverse = np.unique(s_nm[valid], return_inverse=True)
    values = np.array([RemoteDopantDisorder(float(s), _REFERENCE_DENSITY_CM2, material,
                                            cutoff, q_tf).rms_meV for s in unique])
    out[valid] = values[inverse] if len(unique) else []
    return out


def rms_relative_error(s_true, nd_true, s_pred, nd_pred, metadata: dict) -> np.ndarray:
    """Relative error of the rms that predicted (s, N_d) give, against the true (s, N_d)'s.

    rms is √C(0) of P1 Eq. 5 (with its square root), computed by
    :class:`mesoinv.physics.disorder.RemoteDopantDisorder` with the training data's material
    and screening.

    Parameters
    ----------
    s_true, s_pred : array_like
        Dopant distances s in nm.
    nd_true, nd_pred : array_like
        Dopant densities N_d in cm⁻².
    metadata : dict
        ``data_metadata`` of a predictions file: ``relative_permittivity``,
        ``effective_mass_kg`` (kg), ``cutoff_factor``, ``thomas_fermi_wavevector_per_nm``
        (nm⁻¹; None or absent for the material's 2/a_B*).

    Returns
    -------
    ndarray of float
        rms(s_pred, N_d,pred)/rms(s_true, N_d,true) − 1 (dimensionless); 0 for an exact
        prediction, positive when the predicted parameters give a stronger potential; NaN
        where a distance or density is not positive.
    """
    s_true, nd_true, s_pred, nd_pred = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (s_true, nd_true, s_pred, nd_pred)))
    f = _rms_shape(np.concatenate([s_true.ravel(), s_pred.ravel()]), metadata)
    f_true, f_pred = f[:s_true.size].reshape(s_true.shape), f[s_true.size:].reshape(s_true.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        density_ratio = np.where((nd_true > 0) & (nd_pred > 0), nd_pred / nd_true, np.nan)
        return np.sqrt(density_ratio) * (f_pred / f_true) - 1.0


def rms_compensation_slope(s_nm: float, metadata: dict, *, relative_step: float = 1e-4) -> float:
    """Slope of P1 Fig. 3's dashed line: ΔN_d/N_d = slope · Δs/s keeps the rms unchanged.

    rms ∝ √N_d · f(s), so d ln rms = ½ dN_d/N_d + (d ln f/d ln s) ds/s = 0 gives
    slope = −2 d ln f/d ln s, evaluated at ``s_nm`` (P1: the mean s of the test set) by a
    central finite difference in ln s. f decreases with s, so the slope is positive.

    Parameters
    ----------
    s_nm : float
        Distance s in nm where the line is linearised.
    metadata : dict
        As for :func:`rms_relative_error`.
    relative_step : float
        Step h of ln s: f is evaluated at s·e^{±h}.

    Returns
    -------
    float
        Dimensionless slope.
    """
    h = float(relative_step)
    f_minus, f_plus = _rms_shape([s_nm * math.exp(-h), s_nm * math.exp(h)], metadata)
    return float(-2.0 * (math.log(f_plus) - math.log(f_minus)) / (2.0 * h))
