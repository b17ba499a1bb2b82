"""Inference: a trained model applied to PLDOS maps, predictions written to netCDF.

Inputs are either a netCDF file in the dataset format (every sample, or chosen ids) or a
``.npy`` array of maps with its physics given by the caller. Before anything is computed the
maps are checked against the model's training data (shape, lattice constant, Fermi energy,
effective mass, QPC, fields): a mismatch is an :class:`IncompatibleDataError` naming it, and
nothing is written. The evaluation of the workflow calls the same function on the test
split, so ``mesoinv predict`` on stored test samples gives the evaluation's numbers bit for
bit (each map is computed alone, batch size 1 — see :func:`predict_images`).

Two output formats, by what the model predicts:

* parameter models (``p1_parameter_cnn``): :data:`PREDICTIONS_FORMAT_VERSION`, one variable
  per target and ``<target>_true`` where known;
* potential models (``p1_fourier_cnn``, ``p1_encoder_decoder``):
  :data:`POTENTIAL_PREDICTIONS_FORMAT_VERSION`, the predicted potential V(x, y) in meV on the
  input's grid (``x``, ``y`` in nm as in the dataset), the truth where known, the Fourier
  coefficients (predicted ones for the Fourier model; true ones where known) on the ``mode``
  axis, and the training-mean potential (the evaluation's baseline).
"""

import json
import sys
from pathlib import Path

import netCDF4
import numpy as np
import torch

from ..datasets.netcdf import atomic_path, code_version
from ..training.data import iter_images, read_split_info
from ..training.model_file import IncompatibleDataError, ModelFile, file_sha256, load_model_file
from ..training.normalization import ImageNormalization

__all__ = ["PREDICTIONS_FORMAT_VERSION", "POTENTIAL_PREDICTIONS_FORMAT_VERSION",
           "predict_images", "predict_dataset", "predict_npy", "write_predictions",
           "write_potential_predictions", "POTENTIAL_KINDS"]

PREDICTIONS_FORMAT_VERSION = "mesoinv-predictions-1"
POTENTIAL_PREDICTIONS_FORMAT_VERSION = "mesoinv-potential-predictions-1"

#: Target kinds whose predictions are potentials V(x, y).
POTENTIAL_KINDS = ("fourier_coefficients", "potential")


@torch.no_grad()
def predict_images(model: ModelFile, images) -> np.ndarray:
    """Predictions in physical units, float64.

    ``images`` iterates over stored maps ``(channels, nx, ny)`` (the model's input channels).
    Each map goes through the network alone: a convolution's result may depend in its last
    bits on the batch it is computed in, and a prediction must not depend on its neighbours.

    Returns
    -------
    ndarray
        (maps, targets) for parameter models; (maps, 2 N) real and imaginary parts of the
        coefficients for the Fourier model; (maps, nx, ny) V in meV for the encoder-decoder.
    """
    network = model.build_network()
    normalization = ImageNormalization.from_dict(model.input_normalization)
    targets = model.target_set
    rows = []
    for image in images:
        x = torch.from_numpy(normalization(image))[None]
        rows.append(network(x).double().numpy()[0])
    if not rows:
        if targets.kind == "potential":
            return np.zeros((0, *model.inputs["image_shape"]))
        return np.zeros((0, targets.n_outputs))
    return targets.invert(np.stack(rows))


def _select_positions(sample_ids: np.ndarray, ids, source) -> list[int]:
    if ids is None:
        return list(range(len(sample_ids)))
    where = {int(s): i for i, s in enumerate(sample_ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise ValueError(f"sample id(s) {shown} not in {source} "
                         f"({len(sample_ids)} samples)")
    return [where[i] for i in ids]


def predict_dataset(model_path, input_path, output, *, ids=None, figure=None) -> Path:
    """Predict every (or the given) sample of a dataset-format netCDF file.

    Parameters
    ----------
    model_path : path-like
        Model file written by the training stage.
    input_path : path-like
        A split or shard file (P1 format), or any file of that format.
    output : path-like
        netCDF predictions (:data:`PREDICTIONS_FORMAT_VERSION`), written atomically.
    ids : list of int, optional
        Sample ids (not positions); default every sample.
    figure : path-like, optional
        PNG: the first map with its predictions, and predicted vs true where known.
    """
    model = load_model_file(model_path)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    info = read_split_info(input_path, model.inputs["variable"])
    model.check_data(image_shape=info.image_shape, fields_T=info.fields_T,
                     metadata=info.metadata, source=str(input_path))
    with netCDF4.Dataset(input_path) as ds:
        sample_ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
        truth_available = all(n in ds.variables for n in model.targets["names"])
    positions = _select_positions(sample_ids, ids, input_path)
    field_indices = info.field_indices(model.inputs["fields_T"])
    predictions = predict_images(model, iter_images(input_path, field_indices,
                                                    model.inputs["variable"], positions))
    if model.target_set.kind in POTENTIAL_KINDS:
        path = write_potential_predictions(
            output, model, model_path, sample_ids[positions], predictions,
            input_file=str(input_path), split=info.split, truth_file=input_path,
            positions=positions)
        if figure is not None:
            first = next(iter_images(input_path, field_indices, model.inputs["variable"],
                                     positions[:1]), None)
            _potential_figure(path, first, figure)
        return path
    truth = None
    if truth_available:
        with netCDF4.Dataset(input_path) as ds:
            truth = np.stack([np.asarray(ds[n][:], np.float64)[positions]
                              for n in model.targets["names"]], axis=-1)
    path = write_predictions(output, model, model_path, sample_ids[positions], predictions,
                             truth, input_file=str(input_path), split=info.split)
    if figure is not None:
        first = next(iter_images(input_path, field_indices, model.inputs["variable"],
                                 positions[:1]), None)
        _figure(path, first, info.metadata.get("lattice_constant_nm"), figure)
    return path


def predict_npy(model_path, npy_path, output, *, lattice_constant_nm: float,
                energy_meV: float, fields_T, figure=None) -> Path:
    """Predict maps from a ``.npy`` array of shape (nx, ny), (channels, nx, ny) or
    (maps, channels, nx, ny); the channels are the PLDOS (meV⁻¹ per site, as stored by the
    simulator) at ``fields_T`` (tesla), at the given lattice constant (nm) and Fermi energy
    (meV). The QPC's position cannot be checked from a bare array: it is assumed to be the
    training data's (stated in the output's attributes)."""
    model = load_model_file(model_path)
    npy_path = Path(npy_path)
    if not npy_path.is_file():
        raise FileNotFoundError(f"input file {npy_path} does not exist")
    maps = np.load(npy_path, allow_pickle=False)
    fields_T = [float(f) for f in fields_T]
    if maps.ndim == 2:
        maps = maps[None, None]
    elif maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise ValueError(f"{npy_path}: expected (nx, ny), (channels, nx, ny) or "
                         f"(maps, channels, nx, ny), got shape {maps.shape}")
    if maps.shape[1] != len(fields_T):
        raise ValueError(f"{npy_path}: {maps.shape[1]} channel(s) but {len(fields_T)} field(s) "
                         f"given with --fields-T {fields_T}")
    if not np.all(np.isfinite(maps)):
        raise ValueError(f"{npy_path}: the maps contain NaN or inf")
    metadata = {"lattice_constant_nm": lattice_constant_nm, "energy_meV": energy_meV}
    model.check_data(image_shape=maps.shape[-2:], fields_T=fields_T, metadata=metadata,
                     source=str(npy_path))
    channel = [next(i for i, g in enumerate(fields_T) if abs(g - f) <= 1e-9)
               for f in model.inputs["fields_T"]]
    images = [m[channel].astype(np.float64) for m in maps]
    predictions = predict_images(model, images)
    if model.target_set.kind in POTENTIAL_KINDS:
        path = write_potential_predictions(
            output, model, model_path, np.arange(len(maps)), predictions,
            input_file=str(npy_path), split="unknown", lattice_constant_nm=lattice_constant_nm,
            extra={"unchecked": "QPC position and width (bare array)"})
        if figure is not None:
            _potential_figure(path, images[0], figure)
        return path
    path = write_predictions(output, model, model_path, np.arange(len(maps)), predictions,
                             None, input_file=str(npy_path), split="unknown",
                             extra={"unchecked": "QPC position and width (bare array)"})
    if figure is not None:
        _figure(path, images[0], lattice_constant_nm, figure)
    return path


def write_predictions(output, model: ModelFile, model_path, sample_ids, predictions, truth,
                      *, input_file, split, extra=None) -> Path:
    """Write predictions (and the truth where known) with units, atomically."""
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


def _attribute_value(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _true_potentials(path, positions):
    """(potential (n, nx, ny) meV, coefficients (n, 2 N) or None, modes) from a dataset file."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        if "potential" not in ds.variables:
            return None, None, None
        potential = np.stack([np.asarray(ds["potential"][p], np.float64) for p in positions]) \
            if len(positions) else None
        coefficients, modes = None, None
        if "fourier_coefficient_real" in ds.variables:
            real = np.asarray(ds["fourier_coefficient_real"][:], np.float64)[positions]
            imag = np.asarray(ds["fourier_coefficient_imag"][:], np.float64)[positions]
            coefficients = np.concatenate([real, imag], axis=-1)
            modes = {name: np.asarray(ds[name][:]) for name in ("qx", "qy", "mode_m", "mode_n")}
    return potential, coefficients, modes


def write_potential_predictions(output, model: ModelFile, model_path, sample_ids, predictions,
                                *, input_file, split, truth_file=None, positions=None,
                                lattice_constant_nm=None, extra=None) -> Path:
    """Write predicted potentials (format :data:`POTENTIAL_PREDICTIONS_FORMAT_VERSION`).

    Parameters
    ----------
    predictions : ndarray
        :func:`predict_images` output: (n, 2 N) coefficients (Fourier model) or (n, nx, ny)
        potentials in meV (encoder-decoder).
    truth_file, positions : optional
        Dataset file and sample positions to take the true potential and coefficients from.
    lattice_constant_nm : float, optional
        Grid spacing when there is no truth file (``.npy`` input); else the file's ``x``, ``y``.
    """
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
        true_potential, true_coefficients, modes = _true_potentials(truth_file, positions)
        with netCDF4.Dataset(truth_file) as ds:
            x_nm, y_nm = np.asarray(ds["x"][:], np.float64), np.asarray(ds["y"][:], np.float64)
            # s, N_d of the predicted data (the evaluation's Eq. 1 basis and σ), not the model's
            metadata = {**metadata, **{k: _attribute_value(ds.getncattr(k)) for k in (
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


def _potential_figure(predictions_path, first_map, output):
    """Input PLDOS, predicted V and, where known, true V and the error, of the first sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import _save

    with netCDF4.Dataset(predictions_path) as ds:
        x_nm, y_nm = np.asarray(ds["x"][:]), np.asarray(ds["y"][:])
        predicted = np.asarray(ds["potential"][0]) if len(ds["sample_id"]) else None
        true = np.asarray(ds["potential_true"][0]) if "potential_true" in ds.variables \
            and len(ds["sample_id"]) else None
        sample_id = int(ds["sample_id"][0]) if len(ds["sample_id"]) else None
        model_name, kind = ds.model_name, ds.model_kind
    extent = (x_nm[0], x_nm[-1], y_nm[0], y_nm[-1])
    panels = [("input PLDOS", first_map[0] if first_map is not None else None, "inferno",
               "PLDOS (meV⁻¹ per site)")]
    limit = float(np.max(np.abs(predicted))) if predicted is not None else 1.0
    if true is not None:
        limit = max(limit, float(np.max(np.abs(true))))
    panels.append(("predicted V", predicted, "RdBu_r", "V (meV)"))
    if true is not None:
        panels += [("true V", true, "RdBu_r", "V (meV)"),
                   ("predicted − true", predicted - true, "PuOr_r", "ΔV (meV)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4),
                             constrained_layout=True, squeeze=False)
    for ax, (title, image, cmap, label) in zip(axes[0], panels):
        if image is None:
            ax.set_axis_off()
            continue
        options = {}
        if cmap == "RdBu_r":
            options = {"vmin": -limit, "vmax": limit}
        elif cmap == "PuOr_r":
            err = float(np.max(np.abs(image))) or 1.0
            options = {"vmin": -err, "vmax": err}
        else:
            options = {"vmax": float(np.percentile(image, 99.5))}
        mesh = ax.imshow(np.asarray(image).T, origin="lower", cmap=cmap, extent=extent,
                         aspect="equal", **options)
        fig.colorbar(mesh, ax=ax, label=label, shrink=0.8,
                     extend="max" if cmap == "inferno" else "neither")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
    if true is not None and predicted is not None:
        r = np.corrcoef(predicted.ravel(), true.ravel())[0, 1]
        fig.suptitle(f"{model_name} ({kind}), sample {sample_id}: r_P = {r:.3f}", fontsize=10)
    else:
        fig.suptitle(f"{model_name} ({kind}), sample {sample_id}", fontsize=10)
    return _save(fig, output)


def _figure(predictions_path, first_map, lattice_constant_nm, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import _save

    with netCDF4.Dataset(predictions_path) as ds:
        names = json.loads(ds.targets)
        units = json.loads(ds.target_units)
        pred = {n: np.asarray(ds[n][:]) for n in names}
        true = {n: np.asarray(ds[f"{n}_true"][:]) for n in names if f"{n}_true" in ds.variables}
        sample_ids = np.asarray(ds["sample_id"][:])
        model_name = ds.model_name
    panels = 1 + (len(true) if true else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), constrained_layout=True,
                             squeeze=False)
    ax = axes[0, 0]
    if first_map is not None:
        a = lattice_constant_nm or 1.0
        image = np.asarray(first_map)[0]
        mesh = ax.imshow(image.T, origin="lower", cmap="inferno", aspect="equal",
                         extent=(0, image.shape[0] * a, 0, image.shape[1] * a),
                         vmax=np.percentile(image, 99.5))
        fig.colorbar(mesh, ax=ax, label="PLDOS (meV⁻¹ per site)", extend="max", shrink=0.8)
        ax.set_xlabel("x (nm)" if lattice_constant_nm else "x (sites)")
        ax.set_ylabel("y (nm)" if lattice_constant_nm else "y (sites)")
    text = "\n".join(f"{n} = {pred[n][0]:.4g} {units[n]}"
                     + (f" (true {true[n][0]:.4g})" if n in true else "") for n in names)
    ax.set_title(f"sample {sample_ids[0] if len(sample_ids) else '-'}: {model_name}\n{text}",
                 fontsize=8)
    for k, n in enumerate(true, start=1):
        ax = axes[0, k]
        ax.scatter(true[n], pred[n], s=6, alpha=0.6)
        low, high = float(np.min(true[n])), float(np.max(true[n]))
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set_xlabel(f"true {n} ({units[n]})")
        ax.set_ylabel(f"predicted {n} ({units[n]})")
    return _save(fig, output)
