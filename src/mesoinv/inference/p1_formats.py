"""The P1 prediction file formats: their writers (inference) and readers (evaluation).

Two formats, by what the model predicts:

* parameter models (``p1_parameter_cnn``): :data:`PREDICTIONS_FORMAT_VERSION`, one variable
  per target and ``<target>_true`` where known (:func:`write_predictions`,
  :func:`read_predictions`);
* potential models (``p1_fourier_cnn``, ``p1_encoder_decoder``):
  :data:`POTENTIAL_PREDICTIONS_FORMAT_VERSION`, the predicted potential V(x, y) in meV on the
  input's grid (``x``, ``y`` in nm as in the dataset), the truth where known, the Fourier
  coefficients (predicted ones for the Fourier model; true ones where known) on the ``mode``
  axis, and the training-mean potential (the evaluation's baseline)
  (:func:`write_potential_predictions`; :func:`read_potential_predictions` lists every
  variable and attribute).

The readers need no torch: the evaluation stage imports this module without the training
stack, and the writers import what they need of the model file when they are called.
"""

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import netCDF4
import numpy as np

from ..datasets.netcdf import atomic_path, attribute_value, code_version, get_attribute
from ..physics.disorder import FourierModes, RemoteDopantDisorder
from ..physics.materials import Material
from .maps import read_true_potentials

if TYPE_CHECKING:
    from ..training.model_file import ModelFile

__all__ = ["PREDICTIONS_FORMAT_VERSION", "POTENTIAL_PREDICTIONS_FORMAT_VERSION",
           "POTENTIAL_MODEL_KINDS", "write_predictions", "write_potential_predictions",
           "Predictions", "read_predictions", "PotentialPredictions",
           "read_potential_predictions"]

#: Format of the predictions files of parameter models.
PREDICTIONS_FORMAT_VERSION = "mesoinv-predictions-1"

#: Format of the predictions files of potential-reconstruction models.
POTENTIAL_PREDICTIONS_FORMAT_VERSION = "mesoinv-potential-predictions-1"

#: Model kinds of the potential-predictions files: P1 Sec. IV A and IV B.
POTENTIAL_MODEL_KINDS = ("p1_fourier_cnn", "p1_encoder_decoder")


# -- writing ------------------------------------------------------------------------------
def write_predictions(output, model: "ModelFile", model_path, sample_ids, predictions, truth,
                      *, input_file, split, extra=None) -> Path:
    """Write predictions (and the truth where known) with units, atomically."""
    # Imported here: the model file module needs torch, the readers below do not.
    from ..training.model_file import file_sha256

    names, units = model.targets["names"], model.targets["units"]
    long_names = model.targets.get("long_names", names)
    with atomic_path(output) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("sample", len(sample_ids))
            var = ds.createVariable("sample_id", "i8", ("sample",))
            var.long_name = "sample id in the input (position for a .npy input)"
            var.units = "1"
            var[:] = np.asarray(sample_ids, np.int64)
            for k, (name, unit, long_name) in enumerate(zip(names, units, long_names)):
                var = ds.createVariable(name, "f8", ("sample",))
                var.units, var.long_name = unit, f"predicted {long_name}"
                var[:] = predictions[:, k]
                if truth is not None:
                    var = ds.createVariable(f"{name}_true", "f8", ("sample",))
                    var.units, var.long_name = unit, f"true {long_name}"
                    var[:] = truth[:, k]
            ds.setncatts({
                "title": f"mesoinv predictions of model '{model.model_name}'",
                "format_version": PREDICTIONS_FORMAT_VERSION,
                "model_name": model.model_name, "model_kind": model.model_kind,
                "model_file": str(model_path), "model_file_sha256": file_sha256(model_path),
                "split": split, "input_file": input_file,
                "targets": json.dumps(names), "target_units": json.dumps(dict(zip(names, units))),
                "training_mean": json.dumps(dict(zip(names, model.targets["mean"]))),
                "training_std": json.dumps(dict(zip(names, model.targets["std"]))),
                "n_train": np.int64(model.training["n_train"]),
                "training_dataset": str(model.training.get("dataset", "")),
                "data_metadata": json.dumps(model.data_metadata, sort_keys=True),
                "command": " ".join(sys.argv), "code_version": code_version(),
                "Conventions": "CF-1.10", **(extra or {})})
    return Path(output)


def write_potential_predictions(output, model: "ModelFile", model_path, sample_ids,
                                predictions, *, input_file, split, truth_file=None, positions=None,
                                lattice_constant_nm=None, extra=None) -> Path:
    """Write predicted potentials (format :data:`POTENTIAL_PREDICTIONS_FORMAT_VERSION`).

    Parameters
    ----------
    predictions : ndarray
        :func:`mesoinv.inference.p1_predict.predict_images` output: (n, 2 N) coefficients
        (Fourier model) or (n, nx, ny) potentials in meV (encoder-decoder).
    truth_file, positions : optional
        Dataset file and sample positions to take the true potential and coefficients from.
    lattice_constant_nm : float, optional
        Grid spacing when there is no truth file (``.npy`` input); else the file's ``x``, ``y``.
    """
    # Imported here: the model file module needs torch, the readers below do not.
    from ..training.model_file import IncompatibleDataError, file_sha256

    targets = model.target_set
    metadata = model.data_metadata
    coefficients = None
    if targets.kind == "fourier_coefficients":
        coefficients = predictions
        potentials = targets.potential_meV(predictions) if len(predictions) else \
            np.zeros((0, *model.inputs["image_shape"]))
    else:
        potentials = predictions
    nx, ny = model.inputs["image_shape"]
    true_potential = true_coefficients = modes = None
    if truth_file is not None:
        true_potential, true_coefficients, modes = read_true_potentials(truth_file, positions)
        with netCDF4.Dataset(truth_file) as ds:
            x_nm, y_nm = np.asarray(ds["x"][:], np.float64), np.asarray(ds["y"][:], np.float64)
            # s, N_d of the predicted data (the evaluation's Eq. 1 basis and σ), not the model's
            metadata = {**metadata, **{k: attribute_value(ds.getncattr(k)) for k in (
                "dopant_distance_range_nm", "dopant_density_range_cm2", "length_nm",
                "width_nm") if k in ds.ncattrs()}}
        if targets.kind == "fourier_coefficients" and modes is not None:
            same = (len(modes["mode_m"]) == targets.n_modes
                    and np.array_equal(modes["mode_m"], targets.modes.m)
                    and np.array_equal(modes["mode_n"], targets.modes.n))
            if not same:
                raise IncompatibleDataError(
                    f"{truth_file}: its {len(modes['mode_m'])} Fourier modes differ from the "
                    f"{targets.n_modes} modes model '{model.model_name}' predicts (another "
                    "box, s or cutoff)")
    else:
        a = float(lattice_constant_nm if lattice_constant_nm is not None
                  else metadata["lattice_constant_nm"])
        x_nm, y_nm = np.arange(nx) * a, np.arange(ny) * a
    if modes is None and targets.kind == "fourier_coefficients":
        m = targets.modes
        modes = {"qx": m.qx_per_nm, "qy": m.qy_per_nm, "mode_m": m.m, "mode_n": m.n}
    mean_potential = model.baselines.get("training_mean_potential_meV")
    low, high = (float(v) for v in metadata.get("dopant_distance_range_nm", [np.nan, np.nan]))
    s_nm = low if low == high else np.nan
    n_low, n_high = (float(v) for v in metadata.get("dopant_density_range_cm2", [np.nan, np.nan]))
    sigma = (np.sqrt(n_low * 1e-14 * metadata["length_nm"] * metadata["width_nm"] / 2)
             if n_low == n_high and "length_nm" in metadata else np.nan)

    def variable(ds, name, dims, data, units, long_name, dtype="f8"):
        var = ds.createVariable(name, dtype, dims, zlib=True, complevel=1)
        var.units, var.long_name = units, long_name
        var[:] = data
        return var

    with atomic_path(output) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("sample", len(sample_ids))
            ds.createDimension("x", len(x_nm))
            ds.createDimension("y", len(y_nm))
            variable(ds, "sample_id", ("sample",), np.asarray(sample_ids, np.int64), "1",
                     "sample id in the input (position for a .npy input)", "i8")
            variable(ds, "x", ("x",), x_nm, "nm", "x position of the site (transport direction)")
            variable(ds, "y", ("y",), y_nm, "nm", "y position of the site")
            variable(ds, "potential", ("sample", "x", "y"), potentials, "meV",
                     f"predicted disorder potential V(x, y) ({model.model_kind})")
            if true_potential is not None:
                variable(ds, "potential_true", ("sample", "x", "y"), true_potential, "meV",
                         "true disorder potential V(x, y)")
            if mean_potential is not None:
                variable(ds, "training_mean_potential", ("x", "y"), np.asarray(mean_potential),
                         "meV", "pixelwise mean potential of the training split (= Eq. 1 of "
                         "the training-mean coefficients)")
            if modes is not None:
                ds.createDimension("mode", len(modes["qx"]))
                variable(ds, "qx", ("mode",), modes["qx"], "nm-1", "wave vector q_x of the mode")
                variable(ds, "qy", ("mode",), modes["qy"], "nm-1", "wave vector q_y of the mode")
                variable(ds, "mode_m", ("mode",), modes["mode_m"], "1", "q_x = 2 pi m / L", "i4")
                variable(ds, "mode_n", ("mode",), modes["mode_n"], "1", "q_y = 2 pi n / W", "i4")
                n_modes = len(modes["qx"])
                for values, suffix, what in ((coefficients, "", "predicted"),
                                             (true_coefficients, "_true", "true")):
                    if values is None:
                        continue
                    for part, offset in (("real", 0), ("imag", n_modes)):
                        variable(ds, f"fourier_coefficient_{part}{suffix}", ("sample", "mode"),
                                 np.asarray(values)[:, offset:offset + n_modes], "1",
                                 f"{what} {part} part of the Fourier coefficient C_j (Eq. 1)")
            ds.setncatts({
                "title": f"mesoinv potential predictions of model '{model.model_name}'",
                "format_version": POTENTIAL_PREDICTIONS_FORMAT_VERSION,
                "model_name": model.model_name, "model_kind": model.model_kind,
                "model_file": str(model_path), "model_file_sha256": file_sha256(model_path),
                "split": split, "input_file": input_file,
                "n_train": np.int64(model.training["n_train"]),
                "training_dataset": str(model.training.get("dataset", "")),
                "data_metadata": json.dumps(model.data_metadata, sort_keys=True),
                "dopant_distance_nm": float(s_nm), "coefficient_sigma": float(sigma),
                "command": " ".join(sys.argv), "code_version": code_version(),
                "Conventions": "CF-1.10", **(extra or {})})
    return Path(output)


# -- reading parameter predictions --------------------------------------------------------
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


def _json_attribute(ds, name, default):
    value = get_attribute(ds, name)
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
        version = get_attribute(ds, "format_version")
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
        n_train = get_attribute(ds, "n_train")
        return Predictions(
            path=path,
            model_name=str(get_attribute(ds, "model_name", path.stem)),
            model_kind=str(get_attribute(ds, "model_kind", "")),
            split=str(get_attribute(ds, "split", "unknown")),
            command=str(get_attribute(ds, "command", "")),
            input_file=str(get_attribute(ds, "input_file", "")),
            sample_id=np.asarray(ds["sample_id"][:], dtype=np.int64),
            targets=targets, units=units, long_names=long_names, predicted=predicted,
            true=true, training_mean=training_mean,
            n_train=None if n_train is None else int(n_train),
            metadata=dict(_json_attribute(ds, "data_metadata", {})))


# -- reading potential predictions --------------------------------------------------------
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
        version = get_attribute(ds, "format_version")
        if version != POTENTIAL_PREDICTIONS_FORMAT_VERSION:
            raise ValueError(f"{path} is not a potential-predictions file of format "
                             f"{POTENTIAL_PREDICTIONS_FORMAT_VERSION!r} "
                             f"(format_version = {version!r})")
        kind = str(get_attribute(ds, "model_kind", ""))
        if kind not in POTENTIAL_MODEL_KINDS:
            raise ValueError(f"{path}: model_kind {kind!r} is not one of {POTENTIAL_MODEL_KINDS}")
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

        metadata_text = get_attribute(ds, "data_metadata", "{}")
        metadata = dict(json.loads(metadata_text) if isinstance(metadata_text, str)
                        else metadata_text)
        x, y = array("x"), array("y")
        a = float(metadata.get("lattice_constant_nm", (x[1] - x[0]) if len(x) > 1 else 1.0))
        m = np.asarray(ds["mode_m"][:], dtype=np.int64)
        n = np.asarray(ds["mode_n"][:], dtype=np.int64)
        modes = FourierModes(m=m, n=n, qx_per_nm=array("qx"), qy_per_nm=array("qy"),
                             length_nm=float(metadata.get("length_nm", len(x) * a)),
                             width_nm=float(metadata.get("width_nm", len(y) * a)))
        n_train = get_attribute(ds, "n_train")
        sigma = get_attribute(ds, "coefficient_sigma")
        p = PotentialPredictions(
            path=path,
            model_name=str(get_attribute(ds, "model_name", path.stem)),
            model_kind=kind,
            model_file=str(get_attribute(ds, "model_file", "")),
            split=str(get_attribute(ds, "split", "unknown")),
            input_file=str(get_attribute(ds, "input_file", "")),
            training_dataset=str(get_attribute(ds, "training_dataset", "")),
            command=str(get_attribute(ds, "command", "")),
            code_version=str(get_attribute(ds, "code_version", "")),
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
            dopant_distance_nm=_fixed_distance(get_attribute(ds, "dopant_distance_nm"), metadata),
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
