"""Evaluation of models that predict scalar disorder parameters from a P1 PLDOS map.

Everything here reads one predictions file (format ``mesoinv-predictions-1``, written by
``mesoinv predict``, see :mod:`mesoinv.evaluation.predict`) and evaluates it the way P1
(Percebois & Weinmann, PRB 104, 075422, Sec. III and Fig. 3) does:

- the standard deviation σ of the prediction error (prediction − truth) per target, in the
  target's units, and relative to the truth, beside the same numbers for the trivial baseline
  that predicts the training-split mean of the target (:func:`regression_metrics`);
- those σ against the paper's quoted values (:func:`paper_comparison`);
- predicted against true values (:func:`plot_predicted_vs_true`), the histograms of relative
  errors normalised by the number of test samples (:func:`plot_error_histograms`), and P1
  Fig. 3: ΔN_d/N_d against Δs/s coloured by the relative error of the rms that the predicted
  (s, N_d) give through P1 Eq. 5, with the line on which that error vanishes to first order
  (:func:`plot_error_correlation`);
- all of it into one directory for the workflow (:func:`evaluate_parameter_model`).

Targets and units of P1 datasets: ``dopant_distance`` (s, nm), ``dopant_density``
(N_d, cm⁻²), ``rms`` (√C(0), meV), ``correlation_length`` (ξ, nm). A model may predict any
subset; only targets whose truth is stored (``<target>_true``) are evaluated.

No training code and no torch: numpy, pandas, matplotlib and netCDF4.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors  # noqa: E402

from ..datasets.netcdf import atomic_path  # noqa: E402
from ..physics.disorder import RemoteDopantDisorder  # noqa: E402
from ..physics.materials import Material  # noqa: E402
from .figures import _save  # noqa: E402

__all__ = [
    "PREDICTIONS_FORMAT_VERSION",
    "BASELINE_DESCRIPTION",
    "PAPER_ERRORS",
    "read_predictions",
    "regression_metrics",
    "paper_comparison",
    "rms_relative_error",
    "rms_compensation_slope",
    "plot_error_correlation",
    "plot_predicted_vs_true",
    "plot_error_histograms",
    "evaluate_parameter_model",
]

#: Format written by :func:`mesoinv.evaluation.predict.write_predictions` (the same string;
#: not imported from there, so that this module needs no torch).
PREDICTIONS_FORMAT_VERSION = "mesoinv-predictions-1"

#: ``baseline`` column of the baseline rows of :func:`regression_metrics`.
BASELINE_DESCRIPTION = "training-split mean of the target"

#: Reference density for the shape f(s) of rms(s, N_d) = √(N_d / N_ref) · f(s), in cm⁻².
_REFERENCE_DENSITY_CM2 = 1e12

_SYMBOLS = {"dopant_distance": "s", "dopant_density": "N_d", "rms": "rms",
            "correlation_length": "ξ"}
_UNIT_LABELS = {"cm-2": "cm⁻²", "nm-1": "nm⁻¹", "per_nm": "nm⁻¹", "1": "1"}


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


# -- reading ------------------------------------------------------------------------------
@dataclass
class Predictions:
    """Content of a predictions file (see :func:`read_predictions`).

    Attributes
    ----------
    path : Path
    model_name, model_kind, split, command, input_file : str
    sample_id : ndarray of int64, shape (n,)
    targets : list of str
        Predicted targets, in the file's order.
    units : dict of str to str
        Units of each target.
    long_names : dict of str to str
    predicted : dict of str to ndarray of float64
        Predicted values in physical units.
    true : dict of str to ndarray of float64
        True values, only for targets whose truth is stored.
    training_mean : dict of str to float
        Mean of each target over the training split, physical units (the baseline).
    n_train : int or None
    metadata : dict
        Physics of the training data (``data_metadata``).
    """

    path: Path
    model_name: str
    model_kind: str
    split: str
    command: str
    input_file: str
    sample_id: np.ndarray
    targets: list
    units: dict
    long_names: dict
    predicted: dict
    true: dict
    training_mean: dict
    n_train: int | None
    metadata: dict

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.sample_id)

    @property
    def evaluated(self) -> list:
        """Targets with a stored truth, in the file's order."""
        return [t for t in self.targets if t in self.true]


def _attribute(ds, name, default=None):
    return ds.getncattr(name) if name in ds.ncattrs() else default


def _json_attribute(ds, name, default):
    value = _attribute(ds, name)
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def read_predictions(predictions_path) -> Predictions:
    """Read a predictions netCDF file (format ``mesoinv-predictions-1``).

    Parameters
    ----------
    predictions_path : path-like
        File written by ``mesoinv predict``.

    Returns
    -------
    Predictions

    Raises
    ------
    ValueError
        The file is not of that format, or a target listed in ``targets`` is missing.
    """
    path = Path(predictions_path)
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        version = _attribute(ds, "format_version")
        if version != PREDICTIONS_FORMAT_VERSION:
            raise ValueError(f"{path} is not a predictions file of format "
                             f"{PREDICTIONS_FORMAT_VERSION!r} (format_version = {version!r})")
        targets = list(_json_attribute(ds, "targets", []))
        missing = [t for t in targets if t not in ds.variables]
        if missing:
            raise ValueError(f"{path}: target variable(s) {', '.join(missing)} listed in "
                             "'targets' are missing")
        file_units = _json_attribute(ds, "target_units", {})
        units, long_names, predicted, true = {}, {}, {}, {}
        for t in targets:
            var = ds[t]
            units[t] = str(getattr(var, "units", file_units.get(t, "1")))
            long_names[t] = str(getattr(var, "long_name", t)).removeprefix("predicted ")
            predicted[t] = np.asarray(var[:], dtype=np.float64)
            if f"{t}_true" in ds.variables:
                true[t] = np.asarray(ds[f"{t}_true"][:], dtype=np.float64)
        training_mean = {k: float(v) for k, v in _json_attribute(ds, "training_mean", {}).items()}
        n_train = _attribute(ds, "n_train")
        return Predictions(
            path=path,
            model_name=str(_attribute(ds, "model_name", path.stem)),
            model_kind=str(_attribute(ds, "model_kind", "")),
            split=str(_attribute(ds, "split", "unknown")),
            command=str(_attribute(ds, "command", "")),
            input_file=str(_attribute(ds, "input_file", "")),
            sample_id=np.asarray(ds["sample_id"][:], dtype=np.int64),
            targets=targets, units=units, long_names=long_names, predicted=predicted,
            true=true, training_mean=training_mean,
            n_train=None if n_train is None else int(n_train),
            metadata=dict(_json_attribute(ds, "data_metadata", {})))


def _require_truth(predictions: Predictions):
    if not predictions.evaluated:
        raise ValueError(f"{predictions.path} has no '<target>_true' variables (targets "
                         f"{predictions.targets}): nothing to evaluate the predictions against")


# -- metrics ------------------------------------------------------------------------------
def _relative_errors(predicted, true) -> np.ndarray:
    """(pred − true)/true (dimensionless); NaN where true is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = (predicted - true) / true
    return np.where(true == 0, np.nan, relative)


def _error_statistics(predicted, true) -> dict:
    """σ, bias, RMSE, MAE, relative σ and R² of one predictor on one target.

    σ and the relative σ use ddof = 0. R² = 1 − SS_res/SS_tot over these samples; NaN for
    fewer than 2 samples or when the truth is constant (SS_tot = 0).
    """
    n = len(true)
    if n == 0:
        return dict(n=0, error_std=np.nan, error_mean=np.nan, rmse=np.nan, mae=np.nan,
                    relative_error_std=np.nan, r2=np.nan)
    error = predicted - true
    ss_res = np.sum(error**2)
    ss_tot = np.sum((true - true.mean()) ** 2)
    r2 = float(1.0 - ss_res / ss_tot) if n >= 2 and ss_tot > 0 else np.nan
    return dict(n=n,
                error_std=float(np.std(error)),
                error_mean=float(np.mean(error)),
                rmse=float(np.sqrt(np.mean(error**2))),
                mae=float(np.mean(np.abs(error))),
                relative_error_std=float(np.std(_relative_errors(predicted, true))),
                r2=r2)


def regression_metrics(predictions_path, *, references=None) -> pd.DataFrame:
    """Error statistics of the model and of the training-mean baseline, per target.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-predictions-1``) with at least one ``<target>_true``.
    references : dict, optional
        Further predictors, ``{name: (description, {target: values aligned with the file's
        samples})}``, e.g. the Bayes ceiling of :mod:`mesoinv.evaluation.information`; each
        adds one row per target it has.

    Returns
    -------
    pandas.DataFrame
        One row per (target, predictor), predictor ``"model"`` or ``"training_mean"`` (the
        baseline predicting the mean of the target over the training split for every sample).
        Columns:

        ``model``, ``split``, ``target``, ``units`` (of every absolute column),
        ``predictor``, ``n`` (samples), ``error_std`` (σ of prediction − truth, ddof = 0:
        P1's σ_s, σ_Nd, ...; target units), ``error_mean`` (bias; target units), ``rmse``,
        ``mae`` (target units), ``relative_error_std`` (σ of (pred − true)/true,
        dimensionless fraction, not %), ``r2`` (1 − SS_res/SS_tot over this split,
        dimensionless; NaN if n < 2 or the truth is constant; the baseline's is ≤ 0 up to
        the difference between training and evaluated means), ``true_mean`` (mean truth of
        this split; target units), ``training_mean`` (target units), ``n_train``,
        ``baseline`` (description of the predictor; empty for the model), ``command``.

    Raises
    ------
    ValueError
        The file has no ``<target>_true`` variable, or lacks the training mean of a target.
    """
    p = read_predictions(predictions_path)
    _require_truth(p)
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
                     **_error_statistics(p.predicted[target], true), **tail,
                     "baseline": "", "command": p.command})
        baseline = np.full_like(true, mean)
        rows.append({**common, "predictor": "training_mean",
                     **_error_statistics(baseline, true), **tail,
                     "baseline": BASELINE_DESCRIPTION, "command": p.command})
        for name, (description, values) in (references or {}).items():
            if target in values:
                rows.append({**common, "predictor": name,
                             **_error_statistics(np.asarray(values[target], float), true),
                             **tail, "baseline": description, "command": p.command})
    return pd.DataFrame(rows)


def posterior_references(predictions_path, dataset_path) -> dict:
    """The Bayes ceiling (:func:`mesoinv.evaluation.information.potential_posterior_means`)
    for the samples and targets of a predictions file, from the dataset file they came from."""
    from .information import POSTERIOR_DESCRIPTION, POSTERIOR_TARGETS, \
        potential_posterior_means

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
            "symbol": _SYMBOLS.get(row["target"], row["target"]), "n": row["n"],
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


# -- figures ------------------------------------------------------------------------------
def _unit_label(units: str) -> str:
    return _UNIT_LABELS.get(units, units)


def _symbol(target: str) -> str:
    return _SYMBOLS.get(target, target)


def _n_bins(n: int) -> int:
    return int(np.clip(round(2 * math.sqrt(max(n, 1))), 3, 60))


def _finite(*arrays):
    keep = np.ones(len(arrays[0]), bool)
    for a in arrays:
        keep &= np.isfinite(a)
    return [a[keep] for a in arrays]


def _title(p: Predictions, what: str) -> str:
    return f"{what}: model '{p.model_name}', {p.split} split"


def _fig3_layout(figsize=(7.6, 7.0)):
    """Main scatter axes with marginal axes on top and right, a corner axes and a colour bar."""
    fig = plt.figure(figsize=figsize, constrained_layout=True)
    grid = fig.add_gridspec(2, 3, width_ratios=(4, 1.3, 0.15), height_ratios=(1.3, 4))
    main = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=main)
    right = fig.add_subplot(grid[1, 1], sharey=main)
    corner = fig.add_subplot(grid[0, 1])
    colour_axes = fig.add_subplot(grid[1, 2])
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    return fig, main, top, right, corner, colour_axes


def _marginal(ax, values, n_total, orientation, label):
    """Histogram of values (%) normalised by the number of samples, P1 Fig. 3 style."""
    values = values[np.isfinite(values)]
    if len(values):
        ax.hist(values, bins=_n_bins(len(values)), weights=np.full(len(values), 1 / n_total),
                orientation=orientation, color="C1", alpha=0.85)
    if orientation == "vertical":
        ax.set_ylabel(f"counts / N ({label})", fontsize=8)
    else:
        ax.set_xlabel(f"counts / N ({label})", fontsize=8)


def _relative_percent(p: Predictions, target: str) -> np.ndarray:
    return 100.0 * _relative_errors(p.predicted[target], p.true[target])


def plot_error_correlation(predictions_path, output) -> Path:
    """P1 Fig. 3 for a model that predicts both ``dopant_distance`` and ``dopant_density``.

    Scatter of ΔN_d/N_d (y, %) against Δs/s (x, %) for every sample, coloured by the
    relative error (%) of the rms (P1 Eq. 5) that the predicted (s, N_d) give against the rms
    of the true (s, N_d) (:func:`rms_relative_error`; diverging colour map centred on 0);
    the dashed line on which the predicted rms equals the true one to first order,
    linearised at the mean true s (:func:`rms_compensation_slope`); marginal histograms of
    both relative errors normalised by the number of samples (top and right); in the
    corner, the histogram of the rms relative error (P1's inset shows it for an rms model).

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with ``dopant_distance``, ``dopant_density`` and their truths.
    output : path-like
        PNG to write (atomically).

    Raises
    ------
    ValueError
        No truth in the file, or s and N_d are not both predicted with their truth (use
        :func:`evaluate_parameter_model`, which falls back to the other targets' view).
    """
    p = read_predictions(predictions_path)
    _require_truth(p)
    if not {"dopant_distance", "dopant_density"} <= set(p.evaluated):
        raise ValueError(f"{p.path}: P1 Fig. 3 needs predicted and true dopant_distance and "
                         f"dopant_density (evaluated targets: {p.evaluated})")
    s_true, nd_true = p.true["dopant_distance"], p.true["dopant_density"]
    s_pred, nd_pred = p.predicted["dopant_distance"], p.predicted["dopant_density"]
    ds = 100.0 * _relative_errors(s_pred, s_true)
    dn = 100.0 * _relative_errors(nd_pred, nd_true)
    drms = 100.0 * rms_relative_error(s_true, nd_true, s_pred, nd_pred, p.metadata)
    n = p.n

    fig, main, top, right, corner, colour_axes = _fig3_layout()
    x, y, c = _finite(ds, dn, drms)
    halfrange = float(np.max(np.abs(c))) if len(c) and np.max(np.abs(c)) > 0 else 1.0
    norm = colors.CenteredNorm(vcenter=0.0, halfrange=halfrange)
    points = main.scatter(x, y, c=c, cmap="RdBu_r", norm=norm, s=9, edgecolors="none")
    fig.colorbar(points, cax=colour_axes).set_label(
        "Δrms/rms (%), Eq. 5 at predicted (s, N_d)", fontsize=8)

    text = [f"N = {n} samples ({p.split} split)"]
    s_valid = s_true[np.isfinite(s_true) & (s_true > 0)]
    if len(s_valid):
        s_mean = float(np.mean(s_valid))
        slope = rms_compensation_slope(s_mean, p.metadata)
        xs = np.array(main.get_xlim()) if len(x) else np.array([-1.0, 1.0])
        main.plot(xs, slope * xs, "k--", lw=1.0,
                  label=f"predicted rms = true rms\n(linearised at s̄ = {s_mean:.1f} nm, "
                        f"slope {slope:.2f})")
        main.set_xlim(*xs)
        main.legend(loc="lower right", fontsize=7)
    if len(x) >= 2 and np.std(x) > 0 and np.std(y) > 0:
        text.append(f"corr(Δs/s, ΔN_d/N_d) = {np.corrcoef(x, y)[0, 1]:.2f}")
    main.axhline(0, color="0.7", lw=0.5, zorder=0)
    main.axvline(0, color="0.7", lw=0.5, zorder=0)
    main.set_xlabel("Δs/s (%), s = dopant distance (nm)")
    main.set_ylabel("ΔN_d/N_d (%), N_d = dopant density (cm⁻²)")
    main.text(0.02, 0.98, "\n".join(text), transform=main.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))

    _marginal(top, ds, n, "vertical", "Δs/s")
    _marginal(right, dn, n, "horizontal", "ΔN_d/N_d")
    _marginal(corner, drms, n, "vertical", "Δrms/rms")
    corner.set_xlabel("Δrms/rms (%)", fontsize=8)
    corner.tick_params(labelsize=7)
    top.set_title(_title(p, "P1 Fig. 3, relative errors"), fontsize=9)
    return _save(fig, output)


def _plot_pair_correlation(p: Predictions, output) -> Path:
    """Fig. 3-style view for targets other than (s, N_d): relative errors of two targets
    against each other with marginal histograms (no colour, no compensation line), or for a
    single target its relative error against its true value."""
    evaluated = p.evaluated
    preferred = [t for t in ("rms", "correlation_length") if t in evaluated]
    pair = preferred if len(preferred) == 2 else evaluated[:2]
    fig, main, top, right, corner, colour_axes = _fig3_layout()
    colour_axes.axis("off")
    text = [f"N = {p.n} samples ({p.split} split)"]
    if len(pair) == 2:
        tx, ty = pair
        ex, ey = _relative_percent(p, tx), _relative_percent(p, ty)
        x, y = _finite(ex, ey)
        main.scatter(x, y, s=9, color="C0", edgecolors="none")
        main.set_xlabel(f"Δ{_symbol(tx)}/{_symbol(tx)} (%), {tx} ({_unit_label(p.units[tx])})")
        main.set_ylabel(f"Δ{_symbol(ty)}/{_symbol(ty)} (%), {ty} ({_unit_label(p.units[ty])})")
        _marginal(top, ex, p.n, "vertical", f"Δ{_symbol(tx)}/{_symbol(tx)}")
        _marginal(right, ey, p.n, "horizontal", f"Δ{_symbol(ty)}/{_symbol(ty)}")
        if len(x) >= 2 and np.std(x) > 0 and np.std(y) > 0:
            text.append(f"correlation = {np.corrcoef(x, y)[0, 1]:.2f}")
        main.axhline(0, color="0.7", lw=0.5, zorder=0)
        main.axvline(0, color="0.7", lw=0.5, zorder=0)
        name = f"{tx} and {ty}"
    else:
        (t,) = pair
        error = _relative_percent(p, t)
        x, y = _finite(p.true[t], error)
        main.scatter(x, y, s=9, color="C0", edgecolors="none")
        main.set_xlabel(f"true {_symbol(t)} ({_unit_label(p.units[t])})")
        main.set_ylabel(f"Δ{_symbol(t)}/{_symbol(t)} (%)")
        _marginal(top, p.true[t], p.n, "vertical", f"true {_symbol(t)}")
        _marginal(right, error, p.n, "horizontal", f"Δ{_symbol(t)}/{_symbol(t)}")
        main.axhline(0, color="0.7", lw=0.5, zorder=0)
        name = t
    corner.axis("off")
    corner.text(0.0, 0.5, "P1 Fig. 3 needs s and N_d;\nthis model predicts\n"
                + ", ".join(p.targets), fontsize=7, va="center")
    main.text(0.02, 0.98, "\n".join(text), transform=main.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
    top.set_title(_title(p, f"relative errors of {name}"), fontsize=9)
    return _save(fig, output)


def plot_predicted_vs_true(predictions_path, output) -> Path:
    """Predicted against true value, one panel per target with a stored truth.

    Each panel: the samples, the line y = x, the training-split mean as a horizontal
    dashed line (the baseline's prediction), and R² and σ of the error (target units).

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with at least one ``<target>_true``.
    output : path-like
        PNG to write (atomically).
    """
    p = read_predictions(predictions_path)
    _require_truth(p)
    targets = p.evaluated
    fig, axes = plt.subplots(1, len(targets), figsize=(4.3 * len(targets), 4.2),
                             constrained_layout=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        true, pred = p.true[target], p.predicted[target]
        units = _unit_label(p.units[target])
        stats = _error_statistics(pred, true)
        x, y = _finite(true, pred)
        ax.scatter(x, y, s=7, alpha=0.6, edgecolors="none", label="samples")
        values = np.concatenate([x, y])
        if len(values):
            low, high = float(values.min()), float(values.max())
            pad = 0.03 * (high - low) if high > low else max(abs(low) * 0.05, 1e-12)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "k-", lw=0.8,
                    label="y = x")
        if target in p.training_mean:
            ax.axhline(p.training_mean[target], color="C3", ls="--", lw=1.0,
                       label=f"training mean {p.training_mean[target]:.4g} {units}")
        ax.set_xlabel(f"true {_symbol(target)} ({units})")
        ax.set_ylabel(f"predicted {_symbol(target)} ({units})")
        ax.set_title(f"{p.long_names.get(target, target)}", fontsize=9)
        ax.text(0.03, 0.97, f"R² = {stats['r2']:.4f}\nσ = {stats['error_std']:.3g} {units}\n"
                f"σ_rel = {100 * stats['relative_error_std']:.2f} %\nN = {stats['n']}",
                transform=ax.transAxes, va="top", fontsize=8,
                bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(_title(p, "predicted vs true"), fontsize=10)
    return _save(fig, output)


def _shared_edges(model, baseline) -> np.ndarray:
    """Bin edges with the model's resolution, wide enough for the baseline (≤ 200 bins)."""
    model, baseline = model[np.isfinite(model)], baseline[np.isfinite(baseline)]
    edges = np.histogram_bin_edges(model if len(model) else baseline,
                                   bins=_n_bins(max(len(model), 1)))
    width = edges[1] - edges[0]
    if len(baseline):
        low = min(edges[0], float(baseline.min()))
        high = max(edges[-1], float(baseline.max()))
        count = int(math.ceil((high - low) / width))
        if count > 200:
            count, width = 200, (high - low) / 200
        edges = low + width * np.arange(max(count, 1) + 1)
    return edges


def plot_error_histograms(predictions_path, output) -> Path:
    """Histograms of relative errors (pred − true)/true in %, one panel per target.

    Normalised like P1 Fig. 3: counts divided by the number of samples. The baseline's
    (training-split mean) relative errors are drawn as a step outline on the same bins; σ of
    the relative errors of both is in the legend.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file with at least one ``<target>_true``.
    output : path-like
        PNG to write (atomically).
    """
    p = read_predictions(predictions_path)
    _require_truth(p)
    targets = p.evaluated
    fig, axes = plt.subplots(1, len(targets), figsize=(4.3 * len(targets), 3.8),
                             constrained_layout=True, squeeze=False)
    n = max(p.n, 1)
    for ax, target in zip(axes[0], targets):
        model = _relative_percent(p, target)
        mean = p.training_mean.get(target, np.nan)
        baseline = 100.0 * _relative_errors(np.full_like(p.true[target], mean), p.true[target])
        edges = _shared_edges(model, baseline)
        symbol = _symbol(target)
        for values, style in (
                (model, dict(color="C1", alpha=0.85, histtype="stepfilled", label="model")),
                (baseline, dict(color="k", histtype="step", lw=1.0,
                                label="baseline (training mean)"))):
            finite = values[np.isfinite(values)]
            sigma = float(np.std(finite)) if len(finite) else np.nan
            style["label"] += f", σ = {sigma:.2f} %"
            if len(finite):
                ax.hist(finite, bins=edges, weights=np.full(len(finite), 1 / n), **style)
            else:
                ax.plot([], [], **{k: v for k, v in style.items()
                                   if k in ("color", "label")})
        ax.set_xlabel(f"Δ{symbol}/{symbol} (%), {target} in {_unit_label(p.units[target])}")
        ax.set_ylabel("counts / N_test (1)")
        ax.legend(fontsize=7)
    fig.suptitle(_title(p, f"relative errors, N = {p.n}"), fontsize=10)
    return _save(fig, output)


# -- everything ---------------------------------------------------------------------------
def evaluate_parameter_model(predictions_path, output_dir, *, dataset_path=None) -> dict:
    """Metrics, the paper comparison and the figures of one predictions file.

    Writes, atomically, into ``output_dir`` (created if needed):

    - ``metrics.csv``: :func:`regression_metrics`;
    - ``paper_comparison.csv``: :func:`paper_comparison`;
    - ``predicted_vs_true.png``: :func:`plot_predicted_vs_true`;
    - ``error_histograms.png``: :func:`plot_error_histograms`;
    - ``error_correlation.png``: P1 Fig. 3 (:func:`plot_error_correlation`) when the model
      predicts both ``dopant_distance`` and ``dopant_density``. Because a workflow rule needs
      fixed outputs, any other model gets under the same name the same view for the targets
      it has: the relative errors of two targets against each other (``rms`` and
      ``correlation_length`` when both are there, else the first two) with marginal
      histograms, without colour or compensation line (those need s and N_d); for a single
      target, its relative error against its true value.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-predictions-1``) with at least one ``<target>_true``.
    output_dir : path-like
        Directory for the five files.
    dataset_path : path-like, optional
        The dataset file the predictions were made on: adds the rows of the Bayes ceiling
        (predictor ``potential_posterior``) to ``metrics.csv``.

    Returns
    -------
    dict of str to Path
        Keys ``metrics``, ``paper_comparison``, ``predicted_vs_true``, ``error_histograms``,
        ``error_correlation``.

    Raises
    ------
    ValueError
        The file has no ``<target>_true`` variable (before anything is written).
    """
    output_dir = Path(output_dir)
    references = ({} if dataset_path is None
                  else posterior_references(predictions_path, dataset_path))
    metrics = regression_metrics(predictions_path, references=references)
    comparison = paper_comparison(metrics)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": output_dir / "metrics.csv",
             "paper_comparison": output_dir / "paper_comparison.csv"}
    with atomic_path(paths["metrics"]) as tmp:
        metrics.to_csv(tmp, index=False)
    with atomic_path(paths["paper_comparison"]) as tmp:
        comparison.to_csv(tmp, index=False)
    paths["predicted_vs_true"] = plot_predicted_vs_true(
        predictions_path, output_dir / "predicted_vs_true.png")
    paths["error_histograms"] = plot_error_histograms(
        predictions_path, output_dir / "error_histograms.png")
    correlation = output_dir / "error_correlation.png"
    predictions = read_predictions(predictions_path)
    if {"dopant_distance", "dopant_density"} <= set(predictions.evaluated):
        paths["error_correlation"] = plot_error_correlation(predictions_path, correlation)
    else:
        paths["error_correlation"] = _plot_pair_correlation(predictions, correlation)
    return paths
