"""Evaluation of models that reconstruct the full disorder potential V(x, y) from a P1 PLDOS map.

P1 (Percebois & Weinmann, PRB 104, 075422, Sec. IV, Figs. 4-8) reconstructs the potential
of a sample in two ways: a CNN predicts the Fourier coefficients C_j of Eq. 1 and the potential
is rebuilt with Eq. 1 (model kind ``p1_fourier_cnn``), or a convolutional encoder-decoder
predicts V directly (``p1_encoder_decoder``). Everything here reads one predictions file
(format ``mesoinv-potential-predictions-1``, described in :func:`read_potential_predictions`)
and evaluates it the way the paper does, beside two baselines and a physics check:

- the Pearson correlation r_P of each predicted image with the true one (P1 Eq. 6,
  :func:`pearson_r`), its distribution (P1 Fig. 8, :func:`plot_r_p_histogram`), and the
  best, median and worst samples (P1 Figs. 5, 7, :func:`plot_examples`);
- the local RMS error over the test set relative to the rms of the potential (P1 Fig. 6,
  :func:`local_rms_error_map`, :func:`plot_error_map`);
- the mean squared error of the Fourier coefficients per mode, scaled by σ² (P1 Fig. 4,
  :func:`coefficient_mse`, :func:`plot_coefficient_errors`); for the encoder-decoder, whose
  output has no coefficients, those of its potential are obtained by least-squares projection
  onto the Eq. 1 basis of the same modes, built by the simulator's own Eq. 1
  (:func:`eq1_basis`, :func:`project_coefficients`);
- r_P within rings of distance from the QPC mouth (:func:`r_p_by_distance`): where the
  information carried by the electron flow runs out;
- two baselines that know nothing about the sample: the zero potential (the ensemble mean of
  the disorder; r_P undefined, relative RMSE = 1 by construction) and the training split's
  pixelwise mean potential (:data:`BASELINE_DESCRIPTIONS`);
- a physics-consistency check (:func:`pldos_consistency`): the PLDOS recomputed with the
  dataset's own simulator from the predicted, the true and the baseline potentials, against the
  stored input PLDOS. The true potential must give back the input (r_P ≈ 1); a predicted
  potential that reproduces the measured map is, for the inverse problem, as good as the
  PLDOS can tell;
- the paper's statements beside ours (:func:`paper_comparison`);
- all of it into one directory, a fixed set of files (:func:`evaluate_potential_model`).

Units: lengths in nm, wave vectors in nm⁻¹, potentials in meV, PLDOS in meV⁻¹ per site,
Fourier coefficients dimensionless (their σ² = N_d L W/2, see
:mod:`mesoinv.physics.disorder`). Arrays of potentials are indexed (sample, x, y), x along
transport from the QPC (x = 0) to the drain (x = (nx - 1) a).

No training code and no torch: numpy, pandas, matplotlib, netCDF4, and for the PLDOS check
Kwant through :class:`mesoinv.datasets.p1.P1Simulator`.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors  # noqa: E402

from ..datasets.netcdf import atomic_path  # noqa: E402
from ..physics.disorder import FourierModes, RemoteDopantDisorder  # noqa: E402
from ..physics.materials import Material  # noqa: E402
from .figures import _save  # noqa: E402

__all__ = [
    "POTENTIAL_PREDICTIONS_FORMAT_VERSION",
    "MODEL_KINDS",
    "PREDICTORS",
    "BASELINE_DESCRIPTIONS",
    "PAPER_RECONSTRUCTION",
    "OUTPUT_FILES",
    "PotentialPredictions",
    "read_potential_predictions",
    "pearson_r",
    "local_rms_error_map",
    "eq1_basis",
    "potential_from_coefficients",
    "project_coefficients",
    "coefficient_mse",
    "r_p_by_distance",
    "per_sample_r_p",
    "reconstruction_metrics",
    "reconstruction_by_distance",
    "coefficient_errors",
    "PLDOSConsistency",
    "compute_pldos_consistency",
    "pldos_consistency",
    "paper_comparison",
    "plot_r_p_histogram",
    "plot_examples",
    "plot_error_map",
    "plot_coefficient_errors",
    "plot_r_p_by_distance",
    "plot_pldos_consistency",
    "evaluate_potential_model",
]

#: Format of the predictions files of potential-reconstruction models.
POTENTIAL_PREDICTIONS_FORMAT_VERSION = "mesoinv-potential-predictions-1"

#: Model kinds this module evaluates: P1 Sec. IV A and IV B.
MODEL_KINDS = ("p1_fourier_cnn", "p1_encoder_decoder")

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

#: Files written by :func:`evaluate_potential_model`, key → file name (fixed: a workflow rule
#: declares them as outputs).
OUTPUT_FILES = {
    "metrics": "metrics.csv",
    "paper_comparison": "paper_comparison.csv",
    "r_p": "r_p.csv",
    "r_p_by_distance": "r_p_by_distance.csv",
    "pldos_consistency": "pldos_consistency.csv",
    "coefficient_errors": "coefficient_errors.csv",
    "r_p_histogram": "r_p_histogram.png",
    "examples": "examples.png",
    "error_map": "error_map.png",
    "coefficient_errors_figure": "coefficient_errors.png",
    "r_p_by_distance_figure": "r_p_by_distance.png",
    "pldos_consistency_figure": "pldos_consistency.png",
}

_POTENTIAL_SOURCES = ("model", "true_potential", "training_mean_potential", "zero_potential")
_LETTERS = ("a", "b", "c")
_EXAMPLE_NAMES = {"a": "best", "b": "median", "c": "worst"}


# -- the paper's numbers ------------------------------------------------------------------
@dataclass(frozen=True)
class PaperReconstruction:
    """What P1 Sec. IV states about one reconstruction method (constants from the paper).

    Attributes
    ----------
    method : str
    statement : str
        The paper's words about r_P.
    r_p_typical : float
        Typical r_P the paper quotes (NaN if none).
    r_p_bound : float
        The bound the paper states: rare cases below it (Fourier) or all samples above it
        (encoder-decoder).
    bound_meaning : str
    n_samples, n_test : int
        Dataset size (train + test) and test samples of Figs. 4, 6, 8.
    sites : str
        Lattice of the PLDOS and potential images (nx × ny).
    dopant_distance_nm, dopant_density_cm2 : float
        The fixed s and N_d of the dataset.
    source : str
    """

    method: str
    statement: str
    r_p_typical: float
    r_p_bound: float
    bound_meaning: str
    n_samples: int = 88000
    n_test: int = 3000
    sites: str = "256 × 192"
    dopant_distance_nm: float = 50.0
    dopant_density_cm2: float = 1e12
    source: str = ""


#: P1's results per model kind. Sec. IV A: "88.000 samples ... fixed distance s = 50 nm and a
#: fixed density at N_d = 10^12 cm^-2"; L × W = 1.28 µm × 0.96 µm at a = 5 nm (256 × 192
#: sites); Figs. 4 and 6: "3000 test samples"; Sec. IV C: "the direct results of the
#: convolutional encoder-decoder network (right panel) are considerably more accurate (with
#: r_P > 0.99 and thus almost perfect correlation in all cases) than the potential
#: reconstructed from the Fourier coefficients (left panel; typically r_P ≈ 0.95, and rare
#: cases with r_P < 0.9)".
PAPER_RECONSTRUCTION = {
    "p1_fourier_cnn": PaperReconstruction(
        method="Fourier coefficients by a CNN, V from Eq. 1 (P1 Sec. IV A)",
        statement="typically r_P ≈ 0.95, rare cases with r_P < 0.9",
        r_p_typical=0.95, r_p_bound=0.9, bound_meaning="rarely below",
        source="P1 Sec. IV A, IV C, Figs. 4, 5, 6 (left), 8 (left)"),
    "p1_encoder_decoder": PaperReconstruction(
        method="V directly by a convolutional encoder-decoder (P1 Sec. IV B)",
        statement="r_P > 0.99 for all test samples (almost perfect correlation)",
        r_p_typical=math.nan, r_p_bound=0.99, bound_meaning="all samples above",
        source="P1 Sec. IV B, IV C, Figs. 6 (right), 7, 8 (right)"),
}


# -- reading ------------------------------------------------------------------------------
@dataclass
class PotentialPredictions:
    """Content of a potential-predictions file (see :func:`read_potential_predictions`).

    Attributes
    ----------
    path : Path
    model_name, model_kind, model_file, split, input_file, training_dataset, command,
    code_version : str
    sample_id : ndarray of int64, shape (n,)
    x_nm, y_nm : ndarray of float, shapes (nx,), (ny,)
        Site positions i a, k a in nm.
    potential_meV : ndarray, shape (n, nx, ny)
        Predicted V in meV.
    potential_true_meV : ndarray, shape (n, nx, ny), or None
        True V in meV (None only when read with ``require_truth=False``).
    training_mean_potential_meV : ndarray, shape (nx, ny)
        Pixelwise mean of the training split's potentials, meV.
    modes : FourierModes
        The modes of the file (m, n, q) in a box L × W from ``data_metadata``.
    coefficients_true : complex ndarray, shape (n, mode), or None
    coefficients_predicted : complex ndarray, shape (n, mode), or None
        Only for ``p1_fourier_cnn``.
    n_train : int or None
    metadata : dict
        ``data_metadata``.
    dopant_distance_nm : float
        The dataset's fixed s (NaN if unknown).
    coefficient_sigma : float
        σ of Re C and Im C (dimensionless), σ² = N_d L W/2.
    """

    path: Path
    model_name: str
    model_kind: str
    model_file: str
    split: str
    input_file: str
    training_dataset: str
    command: str
    code_version: str
    sample_id: np.ndarray
    x_nm: np.ndarray
    y_nm: np.ndarray
    potential_meV: np.ndarray
    potential_true_meV: np.ndarray | None
    training_mean_potential_meV: np.ndarray
    modes: FourierModes
    coefficients_true: np.ndarray | None
    coefficients_predicted: np.ndarray | None
    n_train: int | None
    metadata: dict
    dopant_distance_nm: float
    coefficient_sigma: float

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.sample_id)

    @property
    def shape(self) -> tuple:
        """(nx, ny) sites."""
        return (len(self.x_nm), len(self.y_nm))

    @property
    def lattice_constant_nm(self) -> float:
        """a in nm (from ``data_metadata``, else the spacing of x)."""
        a = self.metadata.get("lattice_constant_nm")
        if a is not None:
            return float(a)
        return float(self.x_nm[1] - self.x_nm[0]) if len(self.x_nm) > 1 else 1.0

    @property
    def qpc_sites(self) -> tuple:
        """(first y site, width in sites) of the QPC; the whole edge if not in the metadata."""
        first = int(self.metadata.get("qpc_first_y_site", 0))
        width = int(self.metadata.get("qpc_width_sites", len(self.y_nm)))
        return first, width

    @property
    def qpc_center_y_nm(self) -> float:
        """y of the QPC mouth's centre, (qpc_first_y_site + (qpc_width_sites − 1)/2) a, nm."""
        first, width = self.qpc_sites
        return (first + (width - 1) / 2) * self.lattice_constant_nm

    def disorder(self) -> RemoteDopantDisorder | None:
        """The Eq. 1 model of the dataset (material, q_TF, cutoff, fixed s), or None if s is
        unknown (then Eq. 1 has no fixed basis). N_d does not enter V(C) and is a placeholder
        when the metadata has none."""
        s = self.dopant_distance_nm
        if not (np.isfinite(s) and s > 0):
            return None
        md = self.metadata
        try:
            material = Material(relative_permittivity=float(md["relative_permittivity"]),
                                effective_mass_kg=float(md["effective_mass_kg"]))
        except KeyError as missing:
            raise ValueError(f"{self.path}: data_metadata lacks {missing}, needed for Eq. 1"
                             ) from None
        densities = md.get("dopant_density_range_cm2") or [1e12]
        q_tf = md.get("thomas_fermi_wavevector_per_nm")
        return RemoteDopantDisorder(
            dopant_distance_nm=float(s), dopant_density_cm2=float(densities[0]),
            material=material, cutoff_factor=float(md.get("cutoff_factor", 3.5)),
            thomas_fermi_wavevector_per_nm=None if q_tf is None else float(q_tf))


def _attribute(ds, name, default=None):
    return ds.getncattr(name) if name in ds.ncattrs() else default


def _fixed_distance(value, metadata) -> float:
    """The dataset's fixed s: the attribute, else a degenerate range in the metadata, else NaN."""
    if value is not None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if np.isfinite(value):
            return value
    low_high = metadata.get("dopant_distance_range_nm")
    if low_high is not None and len(low_high) == 2 and low_high[0] == low_high[1]:
        return float(low_high[0])
    return math.nan


def read_potential_predictions(predictions_path, *, require_truth: bool = True
                               ) -> PotentialPredictions:
    """Read a predictions file of a potential-reconstruction model.

    The format ``mesoinv-potential-predictions-1`` (netCDF-4): dims ``sample``, ``x``, ``y``,
    ``mode``; variables ``sample_id(sample)`` i8, ``x(x)``, ``y(y)`` (nm), ``potential(sample,
    x, y)`` (predicted, meV), ``potential_true(sample, x, y)`` (meV, when the truth is known),
    ``training_mean_potential(x, y)`` (meV), ``qx(mode)``, ``qy(mode)`` (nm⁻¹), ``mode_m``,
    ``mode_n`` (i4), ``fourier_coefficient_real_true``, ``fourier_coefficient_imag_true``
    ((sample, mode), with the truth) and, for ``p1_fourier_cnn``,
    ``fourier_coefficient_real``, ``fourier_coefficient_imag`` (predicted); global attributes
    ``format_version``, ``model_name``, ``model_kind``, ``model_file``, ``split``,
    ``input_file``, ``n_train``, ``training_dataset``, ``data_metadata`` (JSON),
    ``dopant_distance_nm``, ``coefficient_sigma``, ``command``, ``code_version``.

    Parameters
    ----------
    predictions_path : path-like
    require_truth : bool
        Raise if ``potential_true`` is missing (every evaluation needs it).

    Returns
    -------
    PotentialPredictions

    Raises
    ------
    ValueError
        Wrong format or model kind, a required variable missing (``potential_true`` when
        ``require_truth``), or inconsistent shapes.
    """
    path = Path(predictions_path)
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        version = _attribute(ds, "format_version")
        if version != POTENTIAL_PREDICTIONS_FORMAT_VERSION:
            raise ValueError(f"{path} is not a potential-predictions file of format "
                             f"{POTENTIAL_PREDICTIONS_FORMAT_VERSION!r} "
                             f"(format_version = {version!r})")
        kind = str(_attribute(ds, "model_kind", ""))
        if kind not in MODEL_KINDS:
            raise ValueError(f"{path}: model_kind {kind!r} is not one of {MODEL_KINDS}")
        has_truth = "potential_true" in ds.variables
        if require_truth and not has_truth:
            raise ValueError(f"{path} has no 'potential_true': the true potentials are needed "
                             "to evaluate the predictions (predictions on data without truth "
                             "cannot be evaluated)")
        required = ["sample_id", "x", "y", "potential", "training_mean_potential", "qx", "qy",
                    "mode_m", "mode_n"]
        if has_truth:
            required += ["fourier_coefficient_real_true", "fourier_coefficient_imag_true"]
        if kind == "p1_fourier_cnn":
            required += ["fourier_coefficient_real", "fourier_coefficient_imag"]
        missing = [name for name in required if name not in ds.variables]
        if missing:
            raise ValueError(f"{path}: variable(s) {', '.join(missing)} missing (model kind "
                             f"{kind})")

        def array(name):
            return np.asarray(ds[name][:], dtype=np.float64)

        def complex_array(prefix, suffix=""):
            return (array(f"{prefix}real{suffix}") + 1j * array(f"{prefix}imag{suffix}"))

        metadata_text = _attribute(ds, "data_metadata", "{}")
        metadata = dict(json.loads(metadata_text) if isinstance(metadata_text, str)
                        else metadata_text)
        x, y = array("x"), array("y")
        a = float(metadata.get("lattice_constant_nm", (x[1] - x[0]) if len(x) > 1 else 1.0))
        m = np.asarray(ds["mode_m"][:], dtype=np.int64)
        n = np.asarray(ds["mode_n"][:], dtype=np.int64)
        modes = FourierModes(m=m, n=n, qx_per_nm=array("qx"), qy_per_nm=array("qy"),
                             length_nm=float(metadata.get("length_nm", len(x) * a)),
                             width_nm=float(metadata.get("width_nm", len(y) * a)))
        n_train = _attribute(ds, "n_train")
        sigma = _attribute(ds, "coefficient_sigma")
        p = PotentialPredictions(
            path=path,
            model_name=str(_attribute(ds, "model_name", path.stem)),
            model_kind=kind,
            model_file=str(_attribute(ds, "model_file", "")),
            split=str(_attribute(ds, "split", "unknown")),
            input_file=str(_attribute(ds, "input_file", "")),
            training_dataset=str(_attribute(ds, "training_dataset", "")),
            command=str(_attribute(ds, "command", "")),
            code_version=str(_attribute(ds, "code_version", "")),
            sample_id=np.asarray(ds["sample_id"][:], dtype=np.int64),
            x_nm=x, y_nm=y,
            potential_meV=array("potential"),
            potential_true_meV=array("potential_true") if has_truth else None,
            training_mean_potential_meV=array("training_mean_potential"),
            modes=modes,
            coefficients_true=(complex_array("fourier_coefficient_", "_true")
                               if has_truth else None),
            coefficients_predicted=(complex_array("fourier_coefficient_")
                                    if kind == "p1_fourier_cnn" else None),
            n_train=None if n_train is None else int(n_train),
            metadata=metadata,
            dopant_distance_nm=_fixed_distance(_attribute(ds, "dopant_distance_nm"), metadata),
            coefficient_sigma=math.nan if sigma is None else float(sigma))
    shape = (p.n, *p.shape)
    for name, value in (("potential", p.potential_meV), ("potential_true", p.potential_true_meV)):
        if value is not None and value.shape != shape:
            raise ValueError(f"{path}: {name} has shape {value.shape}, expected {shape} "
                             "(sample, x, y)")
    if p.training_mean_potential_meV.shape != p.shape:
        raise ValueError(f"{path}: training_mean_potential has shape "
                         f"{p.training_mean_potential_meV.shape}, expected {p.shape} (x, y)")
    if require_truth and p.n == 0:
        raise ValueError(f"{path} has no samples: nothing to evaluate")
    return p


def _load(predictions) -> PotentialPredictions:
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


def _rms(values) -> float:
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
    scale = _rms(true)
    if not scale > 0:
        raise ValueError("the true potentials are all zero: the relative error is undefined")
    return np.sqrt(np.mean(error**2, axis=0)) / scale


def eq1_basis(modes: FourierModes, disorder: RemoteDopantDisorder, x_nm, y_nm) -> np.ndarray:
    """The real-linear basis of Eq. 1: V(C) = Σ_j Re C_j B_j + Im C_j B_{M+j}.

    Built by calling the simulator's own Eq. 1
    (:meth:`mesoinv.physics.disorder.RemoteDopantDisorder.potential_meV`) with C = e_j and
    C = i e_j, so the basis has exactly the simulator's conventions (prefactor, sign,
    e^{−i q·r}, the factor 2 of the conjugate half plane, the cutoff).

    Parameters
    ----------
    modes : FourierModes
    disorder : RemoteDopantDisorder
        Fixes s, q_TF, the material and the cutoff (N_d does not enter).
    x_nm, y_nm : 1D array_like
        Site coordinates, nm.

    Returns
    -------
    ndarray, shape (2 M, nx, ny)
        meV per unit of Re C_j (first M) and Im C_j (last M); zero images for modes at or
        beyond the disorder's cutoff.
    """
    count = len(modes)
    basis = np.empty((2 * count, len(x_nm), len(y_nm)))
    unit = np.zeros(count, dtype=complex)
    for j in range(count):
        for part, value in ((0, 1.0), (1, 1j)):
            unit[j] = value
            basis[part * count + j] = disorder.potential_meV(modes, unit, x_nm, y_nm)
        unit[j] = 0
    return basis


def potential_from_coefficients(coefficients, modes: FourierModes,
                                disorder: RemoteDopantDisorder, x_nm, y_nm) -> np.ndarray:
    """Eq. 1 for a stack of coefficient vectors, by the simulator's ``potential_meV``.

    Parameters
    ----------
    coefficients : complex array_like, shape (n, M) or (M,)
    modes, disorder, x_nm, y_nm : as for :func:`eq1_basis`

    Returns
    -------
    ndarray, shape (n, nx, ny) or (nx, ny)
        V in meV.
    """
    coefficients = np.asarray(coefficients, dtype=complex)
    if coefficients.ndim == 1:
        return disorder.potential_meV(modes, coefficients, x_nm, y_nm)
    return np.stack([disorder.potential_meV(modes, c, x_nm, y_nm) for c in coefficients])


def _projector(modes, disorder, x_nm, y_nm):
    """(active columns, Q, R) of the QR factorisation of the Eq. 1 basis matrix."""
    basis = eq1_basis(modes, disorder, x_nm, y_nm).reshape(2 * len(modes), -1)
    active = np.any(basis != 0, axis=1)
    q, r = np.linalg.qr(basis[active].T)
    return active, q, r


def project_coefficients(potential_meV, modes: FourierModes, disorder: RemoteDopantDisorder,
                         x_nm, y_nm, *, chunk: int = 512, return_residual: bool = False):
    """Fourier coefficients of potentials by least squares on the Eq. 1 basis of ``modes``.

    Solves min_C ‖V − V(C)‖² over the pixels for each potential, with V(C) the simulator's
    Eq. 1 (:func:`eq1_basis`). On the periodic site grid the basis images are orthogonal, so
    the projection is exact for a potential of the form Eq. 1 on the same modes and otherwise
    returns the coefficients of its component in the span of Eq. 1. Modes at or beyond the
    disorder's cutoff (zero basis images) get C = 0, as the datasets store them.

    Parameters
    ----------
    potential_meV : array_like, shape (n, nx, ny) or (nx, ny)
    modes, disorder, x_nm, y_nm : as for :func:`eq1_basis`
    chunk : int
        Samples per matrix product (memory).
    return_residual : bool
        Also return the rms (meV) over pixels of V − V(C), per sample: the part of V outside
        the span of Eq. 1.

    Returns
    -------
    complex ndarray, shape (n, M) or (M,)
        C_j, dimensionless; with ``return_residual`` a tuple (C, residual rms in meV).
    """
    potential = np.asarray(potential_meV, dtype=np.float64)
    single = potential.ndim == 2
    stack = potential[None] if single else potential
    count = len(modes)
    active, q, r = _projector(modes, disorder, x_nm, y_nm)
    flat = stack.reshape(len(stack), -1)
    real_imag = np.zeros((len(stack), 2 * count))
    residual = np.zeros(len(stack))
    for start in range(0, len(stack), chunk):
        block = flat[start:start + chunk].T  # (pixels, samples)
        projected = q.T @ block
        real_imag[start:start + chunk, active] = np.linalg.solve(r, projected).T
        residual[start:start + chunk] = np.sqrt(np.mean((block - q @ projected) ** 2, axis=0))
    coefficients = real_imag[:, :count] + 1j * real_imag[:, count:]
    if single:
        coefficients, residual = coefficients[0], residual[0]
    return (coefficients, residual) if return_residual else coefficients


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
    scale = _rms(true)
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
                       relative_rmse=_rms(error) / scale if scale > 0 else math.nan)
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
def _predictor_maps(p: PotentialPredictions) -> dict:
    """predictor → predicted potentials (a stack, or one map for all samples), meV."""
    return {"model": p.potential_meV,
            "training_mean_potential": p.training_mean_potential_meV,
            "zero_potential": np.zeros(p.shape)}


def _per_sample(p: PotentialPredictions) -> dict:
    """predictor → (r_P per sample, RMSE per sample in meV)."""
    out = {}
    for name, predicted in _predictor_maps(p).items():
        error = predicted - p.potential_true_meV
        out[name] = (np.broadcast_to(pearson_r(predicted, p.potential_true_meV), (p.n,)),
                     np.sqrt(np.mean(error**2, axis=(1, 2))))
    return out


def _example_indices(r_p) -> dict:
    """letter → sample position: a best, b median, c worst r_P (finite values only)."""
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
    p = _load(predictions)
    values = _per_sample(p)
    table = pd.DataFrame({"model": p.model_name, "split": p.split, "sample_id": p.sample_id})
    for name in PREDICTORS:
        table[f"r_p_{name}"] = values[name][0]
    for name in PREDICTORS:
        table[f"rmse_{name}_meV"] = values[name][1]
    example = np.full(p.n, "", dtype=object)
    for letter, index in _example_indices(values["model"][0]).items():
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
        s), ``model_kind``, ``nx_sites``, ``ny_sites``, ``dopant_distance_nm``, ``n_train``,
        ``baseline`` (:data:`BASELINE_DESCRIPTIONS`, empty for the model), ``command``.
    """
    p = _load(predictions)
    values = _per_sample(p)
    rms_true = _rms(p.potential_true_meV)
    outside = _outside_eq1_span(p)
    rows = []
    for name in PREDICTORS:
        r_p, rmse_per_sample = values[name]
        finite = r_p[np.isfinite(r_p)]
        rmse = float(np.sqrt(np.mean(rmse_per_sample**2)))
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
            "model_kind": p.model_kind, "nx_sites": p.shape[0], "ny_sites": p.shape[1],
            "dopant_distance_nm": p.dopant_distance_nm, "n_train": p.n_train,
            "baseline": BASELINE_DESCRIPTIONS[name], "command": p.command,
        })
    return pd.DataFrame(rows)


def reconstruction_by_distance(predictions, *, n_bins: int = 8) -> pd.DataFrame:
    """:func:`r_p_by_distance` for the model and both baselines, with identifying columns.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``split``, ``predictor``, then the columns of :func:`r_p_by_distance`,
        ``qpc_center_y_nm``.
    """
    p = _load(predictions)
    tables = []
    for name, predicted in _predictor_maps(p).items():
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
    p = _load(predictions)
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


# -- PLDOS physics consistency ------------------------------------------------------------
_CONSISTENCY_COLUMNS = ["model", "split", "dataset", "potential_source", "field_T", "row",
                        "sample_id", "n", "r_p", "r_p_median", "r_p_q05", "r_p_min",
                        "r_p_max", "relative_rmse", "command"]


@dataclass
class PLDOSConsistency:
    """Result of :func:`compute_pldos_consistency`.

    Attributes
    ----------
    model_name, split, dataset, command : str
    fields_T : ndarray, shape (field,)
    sample_id : ndarray of int64, shape (k,)
        The samples recomputed (the first k of the predictions file).
    r_p : dict of str to ndarray, shape (k, field)
        Per potential source (``model``, ``true_potential``, ``training_mean_potential``,
        ``zero_potential``): r_P of the recomputed PLDOS against the stored input PLDOS.
    mse : dict of str to ndarray, shape (k, field)
        Mean squared difference of those maps, (meV⁻¹)².
    mean_square_stored : ndarray, shape (k, field)
        ⟨ρ_stored²⟩ over pixels, (meV⁻¹)².
    example : dict
        One sample's maps at the first field (meV⁻¹): ``sample_id``, ``stored`` and one per
        source; the sample is the one whose model r_P is the median.
    frame : dict
        What the figures need: ``x_nm``, ``y_nm``, ``a``, ``qpc_first_y_site``,
        ``qpc_width_sites``.
    """

    model_name: str
    split: str
    dataset: str
    command: str
    fields_T: np.ndarray
    sample_id: np.ndarray
    r_p: dict
    mse: dict
    mean_square_stored: np.ndarray
    example: dict = field(default_factory=dict)
    frame: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Per-sample rows and summary rows (see :func:`pldos_consistency`)."""
        rows = []
        common = dict(model=self.model_name, split=self.split, dataset=self.dataset)
        for source in _POTENTIAL_SOURCES:
            for f, field_T in enumerate(self.fields_T):
                r = self.r_p[source][:, f]
                mse = self.mse[source][:, f]
                stored = self.mean_square_stored[:, f]
                for k, sample_id in enumerate(self.sample_id):
                    rows.append({**common, "potential_source": source, "field_T": field_T,
                                 "row": "sample", "sample_id": int(sample_id), "n": 1,
                                 "r_p": r[k], "r_p_median": math.nan, "r_p_q05": math.nan,
                                 "r_p_min": math.nan, "r_p_max": math.nan,
                                 "relative_rmse": _ratio(mse[k], stored[k]),
                                 "command": self.command})
                finite = r[np.isfinite(r)]
                rows.append({**common, "potential_source": source, "field_T": field_T,
                             "row": "summary", "sample_id": pd.NA, "n": len(r),
                             "r_p": float(np.mean(finite)) if len(finite) else math.nan,
                             "r_p_median": float(np.median(finite)) if len(finite) else math.nan,
                             "r_p_q05": (float(np.percentile(finite, 5)) if len(finite)
                                         else math.nan),
                             "r_p_min": float(np.min(finite)) if len(finite) else math.nan,
                             "r_p_max": float(np.max(finite)) if len(finite) else math.nan,
                             "relative_rmse": _ratio(np.mean(mse), np.mean(stored))
                             if len(mse) else math.nan,
                             "command": self.command})
        table = pd.DataFrame(rows, columns=_CONSISTENCY_COLUMNS)
        table["sample_id"] = table["sample_id"].astype("Int64")
        return table


def _ratio(mse, mean_square) -> float:
    return float(np.sqrt(mse / mean_square)) if mean_square > 0 else math.nan


def _open_dataset_rows(ds, sample_ids, path):
    ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
    where = {int(i): k for k, i in enumerate(ids)}
    missing = [int(i) for i in sample_ids if int(i) not in where]
    if missing:
        raise ValueError(f"{path} lacks sample(s) {missing[:10]} of the predictions")
    return [where[int(i)] for i in sample_ids]


def _check_dataset_grid(ds, p: PotentialPredictions, path):
    shape = (ds.dimensions["x"].size, ds.dimensions["y"].size)
    if shape != p.shape:
        raise ValueError(f"{path} has {shape[0]} × {shape[1]} sites, the predictions "
                         f"{p.shape[0]} × {p.shape[1]}")


def _simulator_from_dataset(ds, path):
    """The dataset's simulator, rebuilt from the file's own attributes."""
    from ..datasets.p1 import P1DatasetSpec, P1Simulator

    try:
        name = ds.getncattr("dataset_name")
        entry = json.loads(ds.getncattr("dataset_config_json"))
    except AttributeError:
        raise ValueError(f"{path} has no dataset_name / dataset_config_json: not a P1 "
                         "dataset file") from None
    spec = P1DatasetSpec.from_config(name, entry)
    g = spec.geometry
    stored = (int(ds.getncattr("nx_sites")), int(ds.getncattr("ny_sites")),
              int(ds.getncattr("qpc_first_y_site")), int(ds.getncattr("qpc_width_sites")))
    if (g.nx, g.ny, g.qpc_first_y, g.qpc_width) != stored:
        raise ValueError(f"{path}: the geometry rebuilt from dataset_config_json "
                         f"{(g.nx, g.ny, g.qpc_first_y, g.qpc_width)} differs from the file's "
                         f"(nx, ny, qpc_first_y_site, qpc_width_sites) = {stored}")
    return P1Simulator(spec)


def compute_pldos_consistency(predictions, dataset_path, *, max_samples: int = 100
                              ) -> PLDOSConsistency:
    """Recompute the PLDOS from predicted, true and baseline potentials (see
    :func:`pldos_consistency`); returns the arrays and one sample's maps for the figure."""
    p = _load(predictions)
    dataset_path = Path(dataset_path)
    count = min(int(max_samples), p.n)
    if count < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    with netCDF4.Dataset(dataset_path) as ds:
        ds.set_auto_mask(False)
        _check_dataset_grid(ds, p, dataset_path)
        rows = _open_dataset_rows(ds, p.sample_id[:count], dataset_path)
        simulator = _simulator_from_dataset(ds, dataset_path)
        fields = np.asarray(ds["field"][:], dtype=float)
        stored = np.stack([np.asarray(ds["pldos"][row], dtype=np.float64) for row in rows])
        frame = dict(x_nm=np.asarray(ds["x"][:], float), y_nm=np.asarray(ds["y"][:], float),
                     a=float(ds.getncattr("lattice_constant_nm")),
                     qpc_first_y_site=int(ds.getncattr("qpc_first_y_site")),
                     qpc_width_sites=int(ds.getncattr("qpc_width_sites")))
    if stored.shape[1] != len(fields):
        raise ValueError(f"{dataset_path}: pldos has {stored.shape[1]} field channels, "
                         f"field has {len(fields)}")
    solver = simulator.solver
    fixed = {"training_mean_potential": solver(p.training_mean_potential_meV),
             "zero_potential": solver(np.zeros(p.shape))}
    recomputed = {source: [] for source in _POTENTIAL_SOURCES}
    r_p = {source: np.empty((count, len(fields))) for source in _POTENTIAL_SOURCES}
    mse = {source: np.empty((count, len(fields))) for source in _POTENTIAL_SOURCES}
    for k in range(count):
        maps = {"model": solver(p.potential_meV[k]),
                "true_potential": solver(p.potential_true_meV[k]), **fixed}
        for source, rho in maps.items():
            r_p[source][k] = pearson_r(rho, stored[k])
            mse[source][k] = np.mean((rho - stored[k]) ** 2, axis=(1, 2))
            if source in ("model", "true_potential"):
                recomputed[source].append(rho[0])
    pick = _example_indices(r_p["model"][:, 0])["b"]
    example = {"sample_id": int(p.sample_id[pick]), "stored": stored[pick, 0],
               "model": recomputed["model"][pick],
               "true_potential": recomputed["true_potential"][pick],
               "training_mean_potential": fixed["training_mean_potential"][0],
               "zero_potential": fixed["zero_potential"][0], "field_T": float(fields[0])}
    return PLDOSConsistency(
        model_name=p.model_name, split=p.split, dataset=str(dataset_path), command=p.command,
        fields_T=fields, sample_id=p.sample_id[:count].copy(), r_p=r_p, mse=mse,
        mean_square_stored=np.mean(stored**2, axis=(2, 3)), example=example, frame=frame)


def pldos_consistency(predictions_path, dataset_path, *, max_samples: int = 100
                      ) -> pd.DataFrame:
    """Does the predicted potential reproduce the measured PLDOS? (physics consistency)

    The dataset's simulator is rebuilt from the dataset file's own attributes
    (``dataset_name``, ``dataset_config_json``: :class:`mesoinv.datasets.p1.P1DatasetSpec`,
    :class:`mesoinv.datasets.p1.P1Simulator`), and the PLDOS (all field channels) is
    recomputed from four potentials of each of the first ``max_samples`` samples of the
    predictions file (deterministic): the predicted one (``model``), the true one
    (``true_potential``: a sanity check of the pairing and the rebuild, r_P ≈ 1 up to the
    storage precision of the dataset), the training-mean map (``training_mean_potential``)
    and V = 0 (``zero_potential``: the clean QPC's flow, the same for every sample). Each is
    compared with the stored input PLDOS of the sample. Cost: two solves per sample
    (≈ 20 ms each at 64 × 48 sites) plus two in all.

    Parameters
    ----------
    predictions_path : path-like or PotentialPredictions
    dataset_path : path-like
        The P1 dataset file the predictions were made on (its samples must include the
        predictions' sample ids; matched by id).
    max_samples : int

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``split``, ``dataset``, ``potential_source``, ``field_T``,
        ``row`` ("sample" or "summary"), ``sample_id`` (empty in summary rows), ``n``
        (samples in the row), ``r_p`` (r_P of recomputed against stored PLDOS; the mean over
        samples in a summary row), ``r_p_median``, ``r_p_q05``, ``r_p_min``, ``r_p_max``
        (summary rows only), ``relative_rmse`` (√⟨(ρ_recomputed − ρ_stored)²⟩ / √⟨ρ_stored²⟩
        over pixels, pooled over samples in a summary row; dimensionless), ``command``.

    Raises
    ------
    ValueError
        The dataset lacks a sample of the predictions, has another grid, or is no P1 file.
    """
    return compute_pldos_consistency(predictions_path, dataset_path,
                                     max_samples=max_samples).table()


# -- the paper's statements beside ours ---------------------------------------------------
def paper_comparison(metrics: pd.DataFrame) -> pd.DataFrame:
    """Our r_P statistics beside P1's statements, one row per model (predictor ``model``).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Output of :func:`reconstruction_metrics` (possibly several models concatenated).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``model_kind``, ``method``, ``split``; ours: ``n`` (evaluated
        samples), ``n_train``, ``sites`` ("nx × ny"), ``dopant_distance_nm``, ``r_p_median``,
        ``r_p_q05``, ``r_p_min``, ``fraction_r_p_above_0_9``, ``fraction_r_p_above_0_99``,
        ``relative_rmse``, ``training_mean_r_p_median`` (the baseline's); the paper's:
        ``paper_statement``, ``paper_r_p_typical``, ``paper_r_p_bound``,
        ``paper_bound_meaning``, ``paper_n_samples`` (train + test), ``paper_n_test``,
        ``paper_sites``, ``paper_dopant_distance_nm``, ``paper_dopant_density_cm2``,
        ``paper_source``.

    Notes
    -----
    The paper trains on 88,000 samples of 256 × 192 sites; a demo trains on far fewer and
    smaller maps, so the comparison says how far the demo is from the paper's regime, not
    whether the method works.
    """
    rows = []
    for _, row in metrics[metrics["predictor"] == "model"].iterrows():
        paper = PAPER_RECONSTRUCTION.get(row.get("model_kind"))
        base = metrics[(metrics["predictor"] == "training_mean_potential")
                       & (metrics["model"] == row["model"]) & (metrics["split"] == row["split"])]
        rows.append({
            "model": row["model"], "model_kind": row.get("model_kind", ""),
            "method": paper.method if paper else "", "split": row["split"],
            "n": row["n"], "n_train": row.get("n_train"),
            "sites": f"{row['nx_sites']} × {row['ny_sites']}",
            "dopant_distance_nm": row.get("dopant_distance_nm", math.nan),
            "r_p_median": row["r_p_median"], "r_p_q05": row["r_p_q05"],
            "r_p_min": row["r_p_min"],
            "fraction_r_p_above_0_9": row["fraction_r_p_above_0_9"],
            "fraction_r_p_above_0_99": row["fraction_r_p_above_0_99"],
            "relative_rmse": row["relative_rmse"],
            "training_mean_r_p_median": (float(base["r_p_median"].iloc[0]) if len(base)
                                         else math.nan),
            "paper_statement": paper.statement if paper else "not in P1",
            "paper_r_p_typical": paper.r_p_typical if paper else math.nan,
            "paper_r_p_bound": paper.r_p_bound if paper else math.nan,
            "paper_bound_meaning": paper.bound_meaning if paper else "",
            "paper_n_samples": paper.n_samples if paper else pd.NA,
            "paper_n_test": paper.n_test if paper else pd.NA,
            "paper_sites": paper.sites if paper else "",
            "paper_dopant_distance_nm": paper.dopant_distance_nm if paper else math.nan,
            "paper_dopant_density_cm2": paper.dopant_density_cm2 if paper else math.nan,
            "paper_source": paper.source if paper else "",
        })
    return pd.DataFrame(rows)


# -- figures ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    """Real-space frame of the maps: site coordinates and the leads."""

    x_nm: np.ndarray
    y_nm: np.ndarray
    a: float
    qpc_first: int
    qpc_width: int

    @classmethod
    def of(cls, p: PotentialPredictions) -> "_Frame":
        first, width = p.qpc_sites
        return cls(p.x_nm, p.y_nm, p.lattice_constant_nm, first, width)

    @property
    def extent(self):
        a = self.a
        return (self.x_nm[0] - a / 2, self.x_nm[-1] + a / 2,
                self.y_nm[0] - a / 2, self.y_nm[-1] + a / 2)

    def draw(self, fig, ax, image, *, cmap, vmin, vmax, label, title=None, leads=True):
        shown = ax.imshow(np.asarray(image).T, origin="lower", extent=self.extent, cmap=cmap,
                          vmin=vmin, vmax=vmax, interpolation="nearest")
        fig.colorbar(shown, ax=ax, label=label, shrink=0.9)
        if leads:
            self.mark_leads(ax)
        ax.set_xlabel("x (nm), QPC → drain")
        ax.set_ylabel("y (nm)")
        if title:
            ax.set_title(title, fontsize=9)
        return shown

    def mark_leads(self, ax):
        """QPC: its y span on the left edge; drain: the whole right edge."""
        left, right, bottom, top = self.extent
        last = min(self.qpc_first + self.qpc_width - 1, len(self.y_nm) - 1)
        ax.plot([left, left], [self.y_nm[self.qpc_first] - self.a / 2,
                               self.y_nm[last] + self.a / 2],
                color="lime", lw=4, solid_capstyle="butt", label="QPC", clip_on=False)
        ax.plot([right, right], [bottom, top], color="0.35", lw=4, solid_capstyle="butt",
                label="drain", clip_on=False)


def _title(p: PotentialPredictions, what: str) -> str:
    return f"{what}: model '{p.model_name}' ({p.model_kind}), {p.split} split, N = {p.n}"


def _symmetric_limit(*arrays) -> float:
    values = [float(np.max(np.abs(a))) for a in arrays if np.size(a)]
    top = max(values) if values else 1.0
    return top if top > 0 else 1.0


def _pldos_limit(image) -> float:
    top = float(np.percentile(image, 99.5)) if np.size(image) else 1.0
    return top if top > 0 else (float(np.max(image)) or 1.0)


def plot_r_p_histogram(predictions, output) -> Path:
    """Distribution of r_P over the samples (P1 Fig. 8), best/median/worst marked a, b, c.

    Left: the model's r_P, counts divided by the number of samples (the paper's
    normalisation), with the samples of :func:`plot_examples` marked by their letters.
    Right: the model beside the training-mean baseline on a common axis (the zero potential
    has no r_P).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
        PNG (written atomically).
    """
    p = _load(predictions)
    values = _per_sample(p)
    model = values["model"][0]
    baseline = values["training_mean_potential"][0]
    n = max(p.n, 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.9), constrained_layout=True)
    finite = model[np.isfinite(model)]
    bins = int(np.clip(round(2 * math.sqrt(max(len(finite), 1))), 5, 60))
    if len(finite):
        left.hist(finite, bins=bins, weights=np.full(len(finite), 1 / n), color="C1",
                  alpha=0.85, label="model")
        for letter, index in _example_indices(model).items():
            if np.isfinite(model[index]):
                left.axvline(model[index], color="k", lw=0.8, ls=":")
                left.annotate(f"{letter}", (model[index], 1.0),
                              xycoords=("data", "axes fraction"), ha="center", va="bottom",
                              fontsize=10, fontweight="bold")
    else:
        left.text(0.5, 0.5, "r_P undefined for every sample\n(constant predictions)",
                  ha="center", va="center", transform=left.transAxes)
    for bound in (0.9, 0.99):
        left.axvline(bound, color="C3", lw=0.8, ls="--")
    stats = (f"median {np.median(finite):.4f}\n5th pct {np.percentile(finite, 5):.4f}\n"
             f"min {np.min(finite):.4f}\n> 0.9: {np.mean(finite > 0.9):.1%}\n"
             f"> 0.99: {np.mean(finite > 0.99):.1%}") if len(finite) else ""
    left.text(0.03, 0.95, stats, transform=left.transAxes, va="top", fontsize=8,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
    left.set_xlabel("r_P of predicted vs true V (Eq. 6), dimensionless")
    left.set_ylabel("counts / N (1)")
    left.set_title("model (a best, b median, c worst; dashed: 0.9, 0.99)", fontsize=9)

    both = np.concatenate([finite, baseline[np.isfinite(baseline)]])
    if len(both):
        edges = np.histogram_bin_edges(both, bins=min(80, max(10, 2 * bins)))
        for values_, style in ((finite, dict(color="C1", alpha=0.85, histtype="stepfilled",
                                             label="model")),
                               (baseline[np.isfinite(baseline)],
                                dict(color="k", histtype="step", lw=1.0,
                                     label="training-mean potential"))):
            if len(values_):
                right.hist(values_, bins=edges, weights=np.full(len(values_), 1 / n), **style)
        right.legend(fontsize=7)
    right.set_xlabel("r_P (1)")
    right.set_ylabel("counts / N (1)")
    right.set_title("model vs training-mean baseline", fontsize=9)
    fig.suptitle(_title(p, "P1 Fig. 8, Pearson r_P"), fontsize=10)
    return _save(fig, output)


def _read_pldos(dataset_path, sample_ids, field_index=0):
    """(maps (k, nx, ny) in meV⁻¹, field in T) of the given sample ids from a dataset file."""
    with netCDF4.Dataset(dataset_path) as ds:
        ds.set_auto_mask(False)
        rows = _open_dataset_rows(ds, sample_ids, dataset_path)
        maps = np.stack([np.asarray(ds["pldos"][row, field_index], dtype=np.float64)
                         for row in rows])
        field_T = float(ds["field"][field_index])
    return maps, field_T


def plot_examples(predictions, output, *, dataset_path=None) -> Path:
    """Best, median and worst reconstructions (P1 Figs. 5, 7), rows a, b, c.

    Columns: the input PLDOS at the first field (only with ``dataset_path``), the expected
    (true) V, the predicted V on the same symmetric colour scale (per row), and the error
    V_pred − V_true on its own symmetric scale; r_P and the RMSE in the titles.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    dataset_path : path-like, optional
        The dataset file the predictions were made on (for the PLDOS column).
    """
    p = _load(predictions)
    values = _per_sample(p)
    picks = _example_indices(values["model"][0])
    frame = _Frame.of(p)
    pldos = field_T = None
    if dataset_path is not None:
        pldos, field_T = _read_pldos(dataset_path, [p.sample_id[i] for i in picks.values()])
    columns = 4 if pldos is not None else 3
    width = 3.7 * columns * max(1.0, min(1.6, p.shape[0] / max(p.shape[1], 1)))
    fig, axes = plt.subplots(3, columns, figsize=(width, 8.4), constrained_layout=True,
                             squeeze=False)
    for row, (letter, index) in enumerate(picks.items()):
        true = p.potential_true_meV[index]
        predicted = p.potential_meV[index]
        error = predicted - true
        r_p, rmse = values["model"][0][index], values["model"][1][index]
        limit = _symmetric_limit(true, predicted)
        ax = list(axes[row])
        if pldos is not None:
            frame.draw(fig, ax.pop(0), pldos[row], cmap="inferno", vmin=0,
                       vmax=_pldos_limit(pldos[row]), label="PLDOS (meV⁻¹ per site)",
                       title=f"({letter}) input PLDOS, B = {field_T:g} T")
        frame.draw(fig, ax[0], true, cmap="RdBu_r", vmin=-limit, vmax=limit, label="V (meV)",
                   title=f"({letter}) {_EXAMPLE_NAMES[letter]}: expected V, "
                         f"sample {p.sample_id[index]}")
        frame.draw(fig, ax[1], predicted, cmap="RdBu_r", vmin=-limit, vmax=limit,
                   label="V (meV)", title=f"predicted V, r_P = {r_p:.4f}")
        error_limit = _symmetric_limit(error)
        frame.draw(fig, ax[2], error, cmap="PuOr_r", vmin=-error_limit, vmax=error_limit,
                   label="V_pred − V_true (meV)", title=f"error, RMSE = {rmse:.3g} meV")
    axes[0][0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, "P1 Figs. 5/7, best (a), median (b), worst (c) r_P"), fontsize=10)
    return _save(fig, output)


def plot_error_map(predictions, output) -> Path:
    """Local RMS error over the samples / rms of the true potentials (P1 Fig. 6).

    Left: the model (:func:`local_rms_error_map`); right: the training-mean baseline on its
    own scale (the zero potential's map is the local rms, ≈ 1). Colour scales run from each
    map's minimum to its maximum (given in the title). QPC and drain marked.

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    """
    p = _load(predictions)
    frame = _Frame.of(p)
    rms_true = _rms(p.potential_true_meV)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (name, predicted) in zip(axes, (("model", p.potential_meV),
                                            ("training-mean potential",
                                             p.training_mean_potential_meV))):
        image = local_rms_error_map(predicted, p.potential_true_meV)
        frame.draw(fig, ax, image, cmap="viridis", vmin=float(np.min(image)),
                   vmax=float(np.max(image)) or 1.0,
                   label="√⟨(V_pred − V_true)²⟩ / rms(V_true) (1)",
                   title=f"{name}: min {np.min(image):.3f}, mean {np.mean(image):.3f}, "
                         f"max {np.max(image):.3f}")
    axes[0].legend(loc="upper right", fontsize=7, framealpha=0.7)
    fig.suptitle(_title(p, f"P1 Fig. 6, local RMS error (rms(V_true) = {rms_true:.3g} meV)"),
                 fontsize=10)
    return _save(fig, output)


def plot_coefficient_errors(predictions, output, *, table: pd.DataFrame | None = None
                            ) -> Path:
    """MSE of Re C and Im C per mode over σ², at each mode's (q_x, q_y) (P1 Fig. 4).

    Left: real parts, right: imaginary parts (P1 stacks them); one shared colour scale,
    logarithmic when the values span more than a decade. Only the stored half plane is drawn
    (the other half: C(−q) = C(q)*). The cutoff |q| = cutoff_factor/s is drawn when s is
    known. The zero predictor's value is ≈ 1 (⟨(Re C)²⟩ = σ²).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    table : pandas.DataFrame, optional
        :func:`coefficient_errors` of these predictions (recomputed if not given).
    """
    p = _load(predictions)
    table = coefficient_errors(p) if table is None else table
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 6.2), constrained_layout=True)
    values = np.concatenate([table["mse_imag_over_sigma2"], table["mse_real_over_sigma2"]])
    finite = values[np.isfinite(values)]
    norm = None
    if len(finite):
        low, high = float(finite.min()), float(finite.max())
        if low > 0 and high / low > 10:
            norm = colors.LogNorm(vmin=low, vmax=high)
        else:
            norm = colors.Normalize(vmin=min(low, 0.0), vmax=high if high > 0 else 1.0)
    size = float(np.clip(4000 / max(len(table), 1), 12, 160))
    disorder = p.disorder()
    for ax, part, column in ((axes[0], "Re", "mse_real_over_sigma2"),
                             (axes[1], "Im", "mse_imag_over_sigma2")):
        shown = ax.scatter(table["qx_per_nm"], table["qy_per_nm"], c=table[column], s=size,
                           cmap="viridis", norm=norm, edgecolors="k", linewidths=0.3)
        if disorder is not None:
            angle = np.linspace(-np.pi / 2, np.pi / 2, 200)
            cutoff = disorder.cutoff_per_nm
            ax.plot(cutoff * np.cos(angle), cutoff * np.sin(angle), "k--", lw=0.7,
                    label=f"|q| = {disorder.cutoff_factor:g}/s")
            ax.legend(fontsize=7, loc="upper right")
        reach = max([float(np.max(table["q_per_nm"].to_numpy(), initial=0.0))]
                    + ([disorder.cutoff_per_nm] if disorder is not None else [])) or 1.0
        pad = 0.08 * reach
        ax.set_xlim(-pad, reach + pad)
        ax.set_ylim(-reach - pad, reach + pad)
        ax.set_aspect("equal", adjustable="box")
        ax.axhline(0, color="0.8", lw=0.5, zorder=0)
        ax.set_xlabel("q_x (nm⁻¹)")
        ax.set_ylabel("q_y (nm⁻¹)")
        ax.set_title(f"{part} C(q): ⟨(Δ{part} C)²⟩/σ²", fontsize=9)
        if len(finite):
            fig.colorbar(shown, ax=ax, label=f"⟨(Δ{part} C)²⟩/σ² (1)")
    source = str(table["coefficient_source"].iloc[0]) if len(table) else "no modes"
    sigma = p.coefficient_sigma
    fig.suptitle(_title(p, "P1 Fig. 4, coefficient errors") + f"\ncoefficients: {source}; "
                 f"σ = {sigma:.3g}; zero predictor ≈ 1", fontsize=9)
    return _save(fig, output)


def plot_r_p_by_distance(predictions, output, *, table: pd.DataFrame | None = None) -> Path:
    """r_P and relative RMS error against the distance from the QPC mouth.

    Left: median r_P within each ring (:func:`r_p_by_distance`) with the interquartile band
    over samples, for the model and the training-mean baseline. Right: the relative RMS error
    per ring for all three predictors (normalised by the global rms of the true potentials).

    Parameters
    ----------
    predictions : path-like or PotentialPredictions
    output : path-like
    table : pandas.DataFrame, optional
        :func:`reconstruction_by_distance` of these predictions.
    """
    p = _load(predictions)
    table = reconstruction_by_distance(p) if table is None else table
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0), constrained_layout=True)
    styles = {"model": dict(color="C1", marker="o"),
              "training_mean_potential": dict(color="k", marker="s", ls="--"),
              "zero_potential": dict(color="0.5", marker="^", ls=":")}
    for name in PREDICTORS:
        rows = table[table["predictor"] == name]
        d = rows["distance_center_nm"].to_numpy()
        if name != "zero_potential":
            left.plot(d, rows["r_p_median"], label=name.replace("_", " "), **styles[name])
            left.fill_between(d, rows["r_p_q25"], rows["r_p_q75"],
                              color=styles[name]["color"], alpha=0.2, lw=0)
        right.plot(d, rows["relative_rmse"], label=name.replace("_", " "), **styles[name])
    left.set_xlabel("distance from the QPC mouth (nm)")
    left.set_ylabel("r_P within the ring (1): median, quartiles")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.set_xlabel("distance from the QPC mouth (nm)")
    right.set_ylabel("RMS error in the ring / rms(V_true) (1)")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    right.set_ylim(bottom=0)
    fig.suptitle(_title(p, f"reconstruction vs distance from the QPC "
                           f"(mouth at x = 0, y = {p.qpc_center_y_nm:g} nm)"), fontsize=10)
    return _save(fig, output)


def plot_pldos_consistency(consistency: PLDOSConsistency | None, output, *,
                           reason: str = "") -> Path:
    """Input PLDOS beside the PLDOS recomputed from the true, predicted and training-mean
    potentials for one sample (the model's median), and the r_P distributions of all sources.

    Parameters
    ----------
    consistency : PLDOSConsistency or None
        None: a placeholder figure saying why the check was not run (``reason``).
    output : path-like
    """
    if consistency is None or len(consistency.sample_id) == 0:
        fig, ax = plt.subplots(figsize=(6, 2.5), constrained_layout=True)
        ax.axis("off")
        ax.text(0.5, 0.5, "PLDOS consistency not computed\n" + reason, ha="center",
                va="center", fontsize=10)
        return _save(fig, output)
    c = consistency
    frame = _Frame(c.frame["x_nm"], c.frame["y_nm"], c.frame["a"], c.frame["qpc_first_y_site"],
                   c.frame["qpc_width_sites"])
    fig = plt.figure(figsize=(17, 7.6), constrained_layout=True)
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 0.9))
    example = c.example
    k = int(np.flatnonzero(c.sample_id == example["sample_id"])[0])
    limit = _pldos_limit(example["stored"])
    panels = (("stored", "input PLDOS (stored)", None),
              ("true_potential", "from the true V", "true_potential"),
              ("model", "from the predicted V", "model"),
              ("training_mean_potential", "from the training-mean V", "training_mean_potential"))
    for column, (key, title, source) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
        if source is not None:
            title += f", r_P = {c.r_p[source][k, 0]:.4f}"
        frame.draw(fig, ax, example[key], cmap="inferno", vmin=0, vmax=limit,
                   label="PLDOS (meV⁻¹ per site)", title=title)
    ax = fig.add_subplot(grid[1, :])
    data = [c.r_p[source][:, 0] for source in _POTENTIAL_SOURCES]
    labels = [f"{source.replace('_', ' ')}\nmedian {np.nanmedian(values):.4f}"
              if np.isfinite(values).any() else source for source, values in
              zip(_POTENTIAL_SOURCES, data)]
    positions = np.arange(len(data))
    ax.boxplot([values[np.isfinite(values)] for values in data], positions=positions,
               widths=0.5, orientation="horizontal", showfliers=False)
    jitter = np.random.default_rng(0)
    for y, values in zip(positions, data):
        ax.scatter(values, y + jitter.uniform(-0.15, 0.15, len(values)), s=8, alpha=0.6,
                   color="C1", edgecolors="none")
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel(f"r_P of recomputed vs stored PLDOS (1), B = {c.fields_T[0]:g} T")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"PLDOS physics consistency: model '{c.model_name}', {c.split} split, "
                 f"{len(c.sample_id)} samples; maps: sample {example['sample_id']} "
                 "(median model r_P)", fontsize=10)
    return _save(fig, output)


# -- everything ---------------------------------------------------------------------------
def evaluate_potential_model(predictions_path, output_dir, *, dataset_path=None,
                             physics_samples: int = 100) -> dict:
    """Metrics, paper comparison, tables and figures of one potential-predictions file.

    Writes, atomically, into ``output_dir`` (created if needed) the fixed set
    :data:`OUTPUT_FILES`, the same for both model kinds:

    - ``metrics.csv`` (:func:`reconstruction_metrics`), ``paper_comparison.csv``
      (:func:`paper_comparison`), ``r_p.csv`` (:func:`per_sample_r_p`),
      ``r_p_by_distance.csv`` (:func:`reconstruction_by_distance`),
      ``coefficient_errors.csv`` (:func:`coefficient_errors`), ``pldos_consistency.csv``
      (:func:`pldos_consistency`; header only when no dataset is given or
      ``physics_samples`` is 0);
    - ``r_p_histogram.png``, ``examples.png``, ``error_map.png``, ``coefficient_errors.png``,
      ``r_p_by_distance.png``, ``pldos_consistency.png`` (a placeholder saying why when the
      check was not run).

    Every table is computed before the first file is written, so a file that cannot be
    evaluated (no ``potential_true``, a dataset lacking its samples) leaves nothing behind.

    Parameters
    ----------
    predictions_path : path-like
        Predictions file (``mesoinv-potential-predictions-1``) with ``potential_true``.
    output_dir : path-like
    dataset_path : path-like, optional
        The P1 dataset file the predictions were made on (not guessed from the file's
        ``input_file``): adds the input PLDOS to ``examples.png`` and enables the PLDOS check.
    physics_samples : int
        Samples of the PLDOS check (the first ones of the file).

    Returns
    -------
    dict of str to Path
        Keys of :data:`OUTPUT_FILES`.

    Raises
    ------
    ValueError
        The file lacks ``potential_true`` (or is otherwise unreadable), or the dataset does
        not match it; nothing is written then.
    """
    p = read_potential_predictions(predictions_path)
    output_dir = Path(output_dir)
    metrics = reconstruction_metrics(p)
    tables = {"metrics": metrics, "paper_comparison": paper_comparison(metrics),
              "r_p": per_sample_r_p(p), "r_p_by_distance": reconstruction_by_distance(p),
              "coefficient_errors": coefficient_errors(p)}
    consistency, reason = None, ""
    if dataset_path is None:
        reason = "(no dataset file given)"
    elif int(physics_samples) <= 0:
        reason = "(physics_samples = 0)"
    else:
        consistency = compute_pldos_consistency(p, dataset_path, max_samples=physics_samples)
    tables["pldos_consistency"] = (consistency.table() if consistency is not None
                                   else pd.DataFrame(columns=_CONSISTENCY_COLUMNS))
    if dataset_path is not None:  # fail on a mismatched dataset before writing anything
        with netCDF4.Dataset(dataset_path) as ds:
            _check_dataset_grid(ds, p, dataset_path)
            _open_dataset_rows(ds, p.sample_id, dataset_path)

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: output_dir / name for key, name in OUTPUT_FILES.items()}
    for key, table in tables.items():
        with atomic_path(paths[key]) as tmp:
            table.to_csv(tmp, index=False)
    plot_r_p_histogram(p, paths["r_p_histogram"])
    plot_examples(p, paths["examples"], dataset_path=dataset_path)
    plot_error_map(p, paths["error_map"])
    plot_coefficient_errors(p, paths["coefficient_errors_figure"],
                            table=tables["coefficient_errors"])
    plot_r_p_by_distance(p, paths["r_p_by_distance_figure"], table=tables["r_p_by_distance"])
    plot_pldos_consistency(consistency, paths["pldos_consistency_figure"], reason=reason)
    return paths
