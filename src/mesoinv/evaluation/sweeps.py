"""Sweeps and learning curves of P1 models: numbers only (figures: :mod:`.sweep_figures`).

A sweep (config ``sweeps:``, expanded into ordinary models by
:func:`mesoinv.config.expand_sweeps`) trains one model per point. This module turns the
points' prediction files into:

- validation metrics of one point (:func:`validation_metrics`): the same rows as the test
  evaluation's ``metrics.csv`` (:func:`.p1_parameters.metrics.regression_metrics`,
  :func:`.p1_potential.metrics.reconstruction_metrics`, 95 % intervals included), on the
  validation split, without figures, baselines fitted on train or the Bayes ceiling; for
  parameter models one more row, target ``mean``, of the relative σ and R² averaged over the
  targets, with its own bootstrap interval (the same resampled samples for every target);
- the sweep table (:func:`sweep_table`): one row per point, its overrides, the validation
  metrics with intervals, training time, epochs, parameters, and the chosen point (best
  selection metric on validation; ties go to the lower index);
- the chosen point's test metrics (:func:`chosen_test_metrics`): the one test score of the
  sweep;
- a learning curve (:func:`learning_curve_table`, :func:`fit_power_law`,
  :func:`learning_curve_fits`): the error against the number of training samples on val and
  test, a power law fitted to the validation points and its value at the paper's training
  size, beside the paper's number (:func:`paper_error`) and the Bayes ceiling of the test
  split (the ``potential_posterior`` rows of the test ``metrics.csv``); with several
  datasets (regions), one curve per dataset and, at each training-set size, a power law in
  the region's area, evaluated at P1's area (:data:`PAPER_REGION_AREA_UM2`).

"Error" of a learning curve: the selection metric where lower is better (relative σ, σ,
RMSE, relative RMSE), 1 − the metric where higher is better (1 − R², 1 − r_P).
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

from ..config import SELECTION_METRICS
from ..datasets.netcdf import atomic_path
from ..inference.p1_formats import POTENTIAL_PREDICTIONS_FORMAT_VERSION, read_predictions
from ..training.model_file import load_model_file
from ..training.optimizers import count_parameters
from .intervals import bootstrap_interval, interval_columns
from .p1_parameters.metrics import PAPER_ERRORS, regression_metrics, relative_errors
from .p1_potential.metrics import reconstruction_metrics
from .p1_potential.paper import PAPER_RECONSTRUCTION

__all__ = ["validation_metrics", "write_csv", "point_record", "sweep_table", "chosen_point",
           "chosen_test_metrics", "PowerLawFit", "fit_power_law", "to_error",
           "learning_curve_table", "learning_curve_fits", "paper_error", "POWER_LAW_FORMS",
           "TABLE_METRICS", "PAPER_REGION_AREA_UM2"]

#: Metrics of the sweep table (each with its 95 % interval), per model family.
TABLE_METRICS = {"parameters": ("relative_error_std", "r2", "error_std", "rmse"),
                 "potential": ("r_p_median", "r_p_q05", "r_p_mean", "relative_rmse",
                               "fraction_r_p_above_0_9", "fraction_r_p_above_0_99")}

#: Upper bound of the fitted exponent b (learning curves of networks have b ≲ 1).
MAX_EXPONENT = 20.0

#: P1's scattering region, 1280 × 960 nm, in µm²: where a fit against the area is evaluated.
PAPER_REGION_AREA_UM2 = 1.28 * 0.96

#: The two forms :func:`fit_power_law` fits.
POWER_LAW_FORMS = {"saturating": "error = a N^-b + c (least squares in log(error))",
                   "loglog": "error = a N^-b (straight line in log-log)"}


def _family(metrics: pd.DataFrame) -> str:
    return "potential" if (metrics["target"] == "potential").all() else "parameters"


def write_csv(table: pd.DataFrame, path) -> Path:
    """A table as CSV, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


# -- one point --------------------------------------------------------------------------
def _target_mean_row(predictions_path, rows: pd.DataFrame) -> dict:
    """The ``mean`` row of a parameter model: relative σ and R² averaged over its targets,
    with a bootstrap interval over the samples (every target resampled alike)."""
    p = read_predictions(predictions_path)
    targets = p.evaluated
    predicted = np.stack([p.predicted[t] for t in targets], axis=-1)  # (n, T)
    true = np.stack([p.true[t] for t in targets], axis=-1)
    relative = relative_errors(predicted, true)
    error = predicted - true
    model = rows[rows["predictor"] == "model"]
    row = {"model": p.model_name, "split": p.split, "target": "mean", "units": "1",
           "predictor": "model", "n": p.n,
           "relative_error_std": float(model["relative_error_std"].mean()),
           "r2": float(model["r2"].mean()), "n_train": p.n_train,
           "baseline": "", "command": p.command}
    row.update(interval_columns("relative_error_std", bootstrap_interval(
        lambda r: np.mean(np.std(r, axis=1), axis=-1), relative)))
    row.update(interval_columns("r2", bootstrap_interval(
        lambda e, t: np.mean(1.0 - np.sum(e ** 2, axis=1)
                             / np.sum((t - t.mean(axis=1, keepdims=True)) ** 2, axis=1),
                             axis=-1), error, true)))
    return row


def validation_metrics(predictions_path) -> pd.DataFrame:
    """Metrics of one predictions file (a sweep point on its validation split).

    Parameters
    ----------
    predictions_path : path-like
        Written by ``mesoinv predict`` (parameter or potential predictions, with the truth).

    Returns
    -------
    pandas.DataFrame
        The rows and columns of the test evaluation's ``metrics.csv`` of that family (model
        and training-mean baselines; no ceiling or train-fitted baselines), plus for
        parameter models the row ``target = mean`` (see the module docstring; with one
        target it repeats that target's numbers).
    """
    with netCDF4.Dataset(predictions_path) as ds:
        version = getattr(ds, "format_version", None)
    if version == POTENTIAL_PREDICTIONS_FORMAT_VERSION:
        return reconstruction_metrics(predictions_path)
    rows = regression_metrics(predictions_path)
    if len(rows):
        rows = pd.concat([rows, pd.DataFrame([_target_mean_row(predictions_path, rows)])],
                         ignore_index=True)
    return rows


def point_record(model_path) -> dict:
    """Training facts of a point from its model file: samples, the dataset and its region's
    area (µm²), epochs, steps, the weights kept, the time of the last run (s; a resumed
    training counts only its last run), the model kind and the number of trainable
    parameters."""
    model = load_model_file(model_path)
    training = model.training
    metadata = model.data_metadata
    area = (float(metadata["length_nm"]) * float(metadata["width_nm"]) * 1e-6
            if "length_nm" in metadata and "width_nm" in metadata else math.nan)
    return {"n_train": training.get("n_train"), "n_val": training.get("n_val"),
            "dataset": model.hyperparameters.get("dataset"), "region_area_um2": area,
            "epochs": training.get("epochs"), "global_step": training.get("global_step"),
            "weights": training.get("weights"),
            "training_seconds": training.get("seconds_this_run"),
            "accelerator": training.get("accelerator"), "model_kind": model.model_kind,
            "n_parameters": count_parameters(model.build_network())}


# -- the sweep table ----------------------------------------------------------------------
def _score(metrics: pd.DataFrame, metric: str, target: str):
    rows = metrics[(metrics["predictor"] == "model") & (metrics["target"] == target)]
    if rows.empty:
        raise ValueError(f"no '{metric}' of target {target!r} among the model rows")
    row = rows.iloc[0]
    low, high = (row.get(f"{metric}_ci_low", math.nan), row.get(f"{metric}_ci_high", math.nan))
    return float(row[metric]), float(low), float(high)


def _cell(value):
    """An override value as a table cell (lists and mappings as JSON)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def sweep_table(points, *, sweep: str, metric: str, target: str,
                higher_is_better: bool | None = None) -> pd.DataFrame:
    """One row per point of a sweep, the chosen one marked.

    Parameters
    ----------
    points : sequence of dict
        Per point, in point order: ``name`` (model), ``overrides`` ({dotted key: value}),
        ``metrics`` (:func:`validation_metrics` frame or CSV path) and ``record``
        (:func:`point_record` dict or the model file's path).
    sweep : str
    metric, target : str
        The selection (config ``sweeps.<name>.selection``).
    higher_is_better : bool, optional
        Default from :data:`mesoinv.config.SELECTION_METRICS`.

    Returns
    -------
    pandas.DataFrame
        Columns: ``sweep``, ``point`` (model name), ``index``, one column per override key
        (lists as JSON), ``split`` ("val"), ``n_val``, ``selection_metric``,
        ``selection_target``, ``score`` with ``score_ci_low`` / ``score_ci_high`` (95 %),
        ``rank`` (1 = best), ``chosen`` (True for one row), ``<target>:<metric>`` with
        ``_ci_low`` / ``_ci_high`` for every target and :data:`TABLE_METRICS` of the family,
        the training facts of :func:`point_record` (``training_seconds``: the last run's
        wall time in seconds; ``model_kind``).
    """
    points = list(points)
    if not points:
        raise ValueError(f"sweep {sweep!r} has no points")
    rows = []
    for index, point in enumerate(points):
        metrics = point["metrics"]
        if not isinstance(metrics, pd.DataFrame):
            metrics = pd.read_csv(metrics)
        record = point["record"]
        if not isinstance(record, dict):
            record = point_record(record)
        family = _family(metrics)
        if higher_is_better is None:
            higher_is_better = SELECTION_METRICS[family][metric]
        score, low, high = _score(metrics, metric, target)
        row = {"sweep": sweep, "point": point["name"], "index": index,
               **{key: _cell(value) for key, value in point["overrides"].items()},
               "split": str(metrics["split"].iloc[0]), "n_val": int(metrics["n"].iloc[0]),
               "selection_metric": metric, "selection_target": target,
               "score": score, "score_ci_low": low, "score_ci_high": high}
        model = metrics[metrics["predictor"] == "model"]
        for _, target_row in model.iterrows():
            for name in TABLE_METRICS[family]:
                if name in target_row and pd.notna(target_row.get(name)):
                    label = f"{target_row['target']}:{name}"
                    row[label] = float(target_row[name])
                    for side in ("low", "high"):
                        row[f"{label}_ci_{side}"] = float(target_row.get(f"{name}_ci_{side}",
                                                                         math.nan))
        row.update(record)
        rows.append(row)
    table = pd.DataFrame(rows)
    order = table["score"].rank(ascending=not higher_is_better, method="first",
                                na_option="bottom")
    table["rank"] = order.astype(int)
    table["chosen"] = table["rank"] == 1
    if table["score"].isna().all():
        raise ValueError(f"sweep {sweep!r}: no point has a finite {metric} of {target!r} "
                         "on the validation split (too few validation samples?)")
    return table


def chosen_point(table) -> str:
    """The model name of a sweep table's chosen point (table or CSV path)."""
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table)
    chosen = table[table["chosen"].astype(bool)]
    if len(chosen) != 1:
        raise ValueError(f"a sweep table marks {len(chosen)} chosen points, not one")
    return str(chosen["point"].iloc[0])


def chosen_test_metrics(table, test_metrics) -> pd.DataFrame:
    """The chosen point's test ``metrics.csv`` (every predictor), with the sweep, the
    selection and the point's validation score (and interval) in front."""
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table)
    if not isinstance(test_metrics, pd.DataFrame):
        test_metrics = pd.read_csv(test_metrics)
    row = table[table["chosen"].astype(bool)].iloc[0]
    if set(test_metrics["model"]) != {row["point"]}:
        raise ValueError(f"test metrics of {sorted(set(test_metrics['model']))}, not of the "
                         f"chosen point {row['point']!r}")
    front = {"sweep": row["sweep"], "chosen_point": row["point"],
             "selection_metric": row["selection_metric"],
             "selection_target": row["selection_target"], "validation_score": row["score"],
             "validation_score_ci_low": row["score_ci_low"],
             "validation_score_ci_high": row["score_ci_high"],
             "points_in_sweep": len(table)}
    out = test_metrics.copy()
    for position, (name, value) in enumerate(front.items()):
        out.insert(position, name, value)
    return out


# -- learning curves ----------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """error(N) = a N^-b + c, fitted to (N, error) points (N training samples).

    Attributes
    ----------
    a, b, c : float
        c = 0 for the ``loglog`` form.
    form : str
        ``saturating`` or ``loglog`` (:data:`POWER_LAW_FORMS`).
    n_points : int
    rms_log_residual : float
        √⟨(log fit − log error)²⟩ over the points.
    """

    a: float
    b: float
    c: float
    form: str
    n_points: int
    rms_log_residual: float

    def __call__(self, n):
        return self.a * np.asarray(n, float) ** (-self.b) + self.c


def _loglog(n, error) -> PowerLawFit:
    slope, intercept = np.polyfit(np.log(n), np.log(error), 1)
    fit = PowerLawFit(float(math.exp(intercept)), float(-slope), 0.0, "loglog", len(n), 0.0)
    residual = np.log(fit(n)) - np.log(error)
    return PowerLawFit(fit.a, fit.b, 0.0, "loglog", len(n),
                       float(np.sqrt(np.mean(residual ** 2))))


def fit_power_law(n_samples, errors, *, form: str = "auto") -> PowerLawFit:
    """Fit error = a N^-b + c to a learning curve.

    Parameters
    ----------
    n_samples, errors : array-like
        Training-set sizes and positive errors (validation points).
    form : {"auto", "saturating", "loglog"}
        ``saturating``: a N^-b + c with a > 0, b > 0, c ≥ 0, least squares in log(error)
        (each point weighs by its relative misfit; scipy's trust-region fit from the log-log
        line); needs ≥ 4 points (3 parameters). ``loglog``: the straight line log error =
        log a − b log N (c = 0). ``auto``: saturating with ≥ 4 points, else loglog.

    Returns
    -------
    PowerLawFit

    Raises
    ------
    ValueError
        Fewer than 2 points, a non-positive error or N, or ``saturating`` with < 4 points.
    """
    from scipy.optimize import least_squares

    n = np.asarray(n_samples, float)
    error = np.asarray(errors, float)
    keep = np.isfinite(n) & np.isfinite(error)
    n, error = n[keep], error[keep]
    if len(n) < 2 or len(np.unique(n)) < 2:
        raise ValueError(f"a power law needs at least 2 distinct training-set sizes "
                         f"(finite errors at {sorted(set(n.tolist()))})")
    if (error <= 0).any() or (n <= 0).any():
        raise ValueError("training-set sizes and errors of a power law must be positive")
    if form == "auto":
        form = "saturating" if len(np.unique(n)) >= 4 else "loglog"
    line = _loglog(n, error)
    if form == "loglog":
        return line
    if form != "saturating":
        raise ValueError(f"unknown form {form!r} (known: auto, {', '.join(POWER_LAW_FORMS)})")
    if len(np.unique(n)) < 4:
        raise ValueError("the saturating form a N^-b + c needs at least 4 training-set sizes")
    scale = float(np.exp(np.mean(np.log(n))))  # N / scale ~ 1: a well-conditioned a

    def residual(theta):
        log_a, b, c = theta
        return np.log(np.exp(log_a) * (n / scale) ** (-b) + c) - np.log(error)

    a0 = max(line.a * scale ** (-line.b), 1e-300)
    best = None
    for c0 in (0.0, 0.5 * error.min(), 0.9 * error.min()):
        start = [math.log(max(a0 - c0, 1e-12 * a0)), max(line.b, 1e-3), c0]
        result = least_squares(residual, start, bounds=([-np.inf, 0.0, 0.0],
                                                        [np.inf, MAX_EXPONENT, np.inf]),
                               x_scale=[1.0, 0.1, max(error.min(), 1e-12)],
                               xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=20000)
        if best is None or result.cost < best.cost:
            best = result
    log_a, b, c = best.x
    a = float(math.exp(log_a) * scale ** b)
    rms = float(np.sqrt(np.mean(best.fun ** 2)))
    return PowerLawFit(a, float(b), float(c), "saturating", len(n), rms)


def _fit_warning(fit: PowerLawFit) -> str:
    """Why a fit that converged still says little (empty when nothing is wrong)."""
    if fit.b >= MAX_EXPONENT * (1 - 1e-6):
        return (f"b reached its bound {MAX_EXPONENT:g}: the error does not fall with N over "
                "these points (a step, or noise); the extrapolation is the plateau c")
    if fit.b < 1e-6:
        return "b = 0: no decrease with N over these points"
    return ""


def to_error(value, metric: str, higher_is_better: bool):
    """The learning curve's error of a metric value (1 − value where higher is better)."""
    value = np.asarray(value, float)
    return 1.0 - value if higher_is_better else value


def learning_curve_table(points, *, sweep: str, metric: str, target: str,
                         higher_is_better: bool) -> pd.DataFrame:
    """The learning curve's points: error against training samples, on val and on test.

    Parameters
    ----------
    points : sequence of dict
        Per point: ``name``, ``val`` and ``test`` (metrics frames or CSV paths: the point's
        :func:`validation_metrics` and its test ``metrics.csv``), ``record``
        (:func:`point_record` dict or model file path).
    sweep, metric, target, higher_is_better
        The sweep's selection: the metric drawn, of every target when ``target`` is
        ``mean`` (and of the mean on val), else of that target.

    Returns
    -------
    pandas.DataFrame
        One row per (point, split, target): ``sweep``, ``point``, ``n_train`` (samples the
        point trained on), ``dataset`` and ``region_area_um2`` (its region's area; empty and
        NaN where the record has none), ``split``, ``target``, ``metric``, ``value``, ``ci_low``,
        ``ci_high`` (95 %), ``error``, ``error_ci_low``, ``error_ci_high`` (see the module
        docstring), ``ceiling_value`` (the test split's Bayes ceiling of that target, NaN
        where there is none), ``training_seconds``, ``n_parameters``, ``epochs``.
    """
    rows = []
    for point in points:
        record = point["record"] if isinstance(point["record"], dict) \
            else point_record(point["record"])
        for split in ("val", "test"):
            metrics = point[split]
            if not isinstance(metrics, pd.DataFrame):
                metrics = pd.read_csv(metrics)
            targets = (sorted(set(metrics["target"]) - {"mean"}) if target == "mean"
                       else [target])
            if target == "mean" and split == "val" and (metrics["target"] == "mean").any():
                targets = [*targets, "mean"]
            for name in targets:
                model = metrics[(metrics["predictor"] == "model") & (metrics["target"] == name)]
                if model.empty:
                    continue
                row = model.iloc[0]
                value = float(row[metric])
                low = float(row.get(f"{metric}_ci_low", math.nan))
                high = float(row.get(f"{metric}_ci_high", math.nan))
                ceiling = metrics[(metrics["predictor"] == "potential_posterior")
                                  & (metrics["target"] == name)]
                bounds = sorted(to_error([low, high], metric, higher_is_better).tolist())
                rows.append({
                    "sweep": sweep, "point": point["name"], "n_train": int(record["n_train"]),
                    "dataset": record.get("dataset") or "",
                    "region_area_um2": float(record.get("region_area_um2", math.nan)),
                    "split": split, "target": name, "metric": metric, "value": value,
                    "ci_low": low, "ci_high": high,
                    "error": float(to_error(value, metric, higher_is_better)),
                    "error_ci_low": bounds[0], "error_ci_high": bounds[1],
                    "ceiling_value": (float(ceiling[metric].iloc[0]) if len(ceiling)
                                      else math.nan),
                    "training_seconds": record.get("training_seconds"),
                    "n_parameters": record.get("n_parameters"), "epochs": record.get("epochs")})
    return pd.DataFrame(rows)


def paper_error(kind: str, metric: str, target: str):
    """P1's number for a learning curve's error, or None: ``(error, label, is_bound)``.

    Parameter models, relative σ: :data:`.p1_parameters.metrics.PAPER_ERRORS` (σ / the
    paper's typical value). Potential models, r_P median or mean: 1 − the typical r_P
    (Fourier CNN, 0.95), or the bound 1 − 0.99 (encoder-decoder: "r_P > 0.99 in all cases",
    an upper bound on the error).
    """
    if kind == "p1_parameter_cnn":
        if metric == "relative_error_std" and target in PAPER_ERRORS:
            paper = PAPER_ERRORS[target]
            return paper.relative_percent / 100.0, paper.quote, False
        return None
    paper = PAPER_RECONSTRUCTION.get(kind)
    if paper is None or metric not in ("r_p_median", "r_p_mean"):
        return None
    if math.isfinite(paper.r_p_typical):
        return 1.0 - paper.r_p_typical, f"P1: {paper.statement}", False
    return 1.0 - paper.r_p_bound, f"P1: {paper.statement}", True


def learning_curve_fits(table: pd.DataFrame, *, kind: str, extrapolate_to: int,
                        form: str = "auto") -> pd.DataFrame:
    """The power laws of the validation points, and where they lead.

    Against the number of training samples (``axis`` = ``n_train``): one row per target and
    dataset, the fit over that dataset's sizes, extrapolated to ``extrapolate_to``. Against
    the region (``axis`` = ``region_area_um2``; only where the table holds two or more
    datasets with an area): one row per target and training-set size, the log-log fit of the
    error against the area A (µm²), error = a A^-b, evaluated at P1's area
    (:data:`PAPER_REGION_AREA_UM2`; an extrapolation where that is beyond the largest area).

    Returns
    -------
    pandas.DataFrame
        Per row: ``sweep``, ``axis``, ``target``, ``dataset`` (n_train rows), ``metric``,
        ``form`` (:data:`POWER_LAW_FORMS` key), ``formula``, ``a``, ``b``, ``c``,
        ``rms_log_residual``, ``fitted_on`` ("val"), ``n_points``, ``n_min``, ``n_max``
        (training-set sizes fitted; the one size of a region row), ``extrapolate_to``,
        ``area_min_um2``, ``area_max_um2`` (the areas fitted), ``extrapolate_to_area_um2``
        (region rows), ``extrapolated_error`` (the fit at extrapolate_to, or at P1's area),
        ``val_error_at_n_max``, ``test_error_at_n_max`` (at the largest size, or the
        largest area), ``paper_error`` (NaN if the paper has none; P1's number is at its
        57,600 maps and 1280 × 960 nm), ``paper_is_bound``, ``paper_source``,
        ``ceiling_error`` (test split's Bayes ceiling at the largest size or area, NaN if
        none), ``fit_problem`` (empty, or why no fit was possible or why the fit says
        little).
    """
    table = table.copy()
    if "dataset" not in table:
        table["dataset"] = ""
    if "region_area_um2" not in table:
        table["region_area_um2"] = math.nan
    table["dataset"] = table["dataset"].fillna("")
    rows = []
    val = table[table["split"] == "val"]
    family = "parameters" if kind == "p1_parameter_cnn" else "potential"

    def common(target, metric, test_at_end):
        higher = SELECTION_METRICS[family][metric]
        paper = paper_error(kind, metric, target)
        ceiling = test_at_end["ceiling_value"].dropna()
        return {"target": target, "metric": metric, "fitted_on": "val",
                "paper_error": paper[0] if paper else math.nan,
                "paper_is_bound": bool(paper[2]) if paper else False,
                "paper_source": paper[1] if paper else "",
                "ceiling_error": (float(to_error(ceiling.iloc[0], metric, higher))
                                  if len(ceiling) else math.nan),
                "test_error_at_n_max": (float(test_at_end["error"].iloc[0])
                                        if len(test_at_end) else math.nan)}

    def fitted(row, x, errors, far, how):
        try:
            fit = fit_power_law(x, errors, form=how)
        except ValueError as error:
            row.update(form="", formula="", a=math.nan, b=math.nan, c=math.nan,
                       rms_log_residual=math.nan, extrapolated_error=math.nan,
                       fit_problem=str(error))
        else:
            values = asdict(fit)
            values.pop("n_points")
            row.update(values, formula=POWER_LAW_FORMS[fit.form],
                       extrapolated_error=float(fit(far)), fit_problem=_fit_warning(fit))
        return row

    for (target, dataset), points in val.groupby(["target", "dataset"], sort=False):
        points = points.sort_values("n_train")
        metric = str(points["metric"].iloc[0])
        test = table[(table["split"] == "test") & (table["target"] == target)
                     & (table["dataset"] == dataset)]
        n_max = int(points["n_train"].max())
        area = float(points["region_area_um2"].iloc[0])
        row = {"sweep": points["sweep"].iloc[0], "axis": "n_train", "dataset": dataset,
               **common(target, metric, test[test["n_train"] == n_max]),
               "n_points": len(points), "n_min": int(points["n_train"].min()), "n_max": n_max,
               "extrapolate_to": int(extrapolate_to), "area_min_um2": area,
               "area_max_um2": area, "extrapolate_to_area_um2": math.nan,
               "val_error_at_n_max": float(points["error"].iloc[-1])}
        rows.append(fitted(row, points["n_train"], points["error"], extrapolate_to, form))

    regional = val[np.isfinite(val["region_area_um2"].astype(float))]
    if regional["dataset"].nunique() >= 2:
        for (target, n), points in regional.groupby(["target", "n_train"], sort=False):
            if points["dataset"].nunique() < 2:
                continue
            points = points.sort_values("region_area_um2")
            metric = str(points["metric"].iloc[0])
            largest = float(points["region_area_um2"].iloc[-1])
            test = table[(table["split"] == "test") & (table["target"] == target)
                         & (table["n_train"] == n) & (table["region_area_um2"] == largest)]
            row = {"sweep": points["sweep"].iloc[0], "axis": "region_area_um2",
                   "dataset": "", **common(target, metric, test), "n_points": len(points),
                   "n_min": int(n), "n_max": int(n), "extrapolate_to": int(n),
                   "area_min_um2": float(points["region_area_um2"].iloc[0]),
                   "area_max_um2": largest,
                   "extrapolate_to_area_um2": PAPER_REGION_AREA_UM2,
                   "val_error_at_n_max": float(points["error"].iloc[-1])}
            # Few areas: the straight log-log line (the saturating form needs four).
            rows.append(fitted(row, points["region_area_um2"], points["error"],
                               PAPER_REGION_AREA_UM2, "loglog"))
    return pd.DataFrame(rows)
