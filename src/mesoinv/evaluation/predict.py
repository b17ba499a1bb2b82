"""Inference: a trained model applied to PLDOS maps, predictions written to netCDF.

Inputs are either a netCDF file in the dataset format (every sample, or chosen ids) or a
``.npy`` array of maps with its physics given by the caller. Before anything is computed the
maps are checked against the model's training data (shape, lattice constant, Fermi energy,
effective mass, QPC, fields): a mismatch is an :class:`IncompatibleDataError` naming it, and
nothing is written. The evaluation of the workflow calls the same function on the test
split, so ``mesoinv predict`` on stored test samples gives the evaluation's numbers bit for
bit (each map is computed alone, batch size 1 — see :func:`predict_images`).
"""

import json
import sys
from pathlib import Path

import netCDF4
import numpy as np
import torch

from ..datasets.netcdf import atomic_path, code_version
from ..training.data import iter_images, read_split_info
from ..training.model_file import ModelFile, file_sha256, load_model_file
from ..training.normalization import ImageNormalization, TargetStandardization

__all__ = ["PREDICTIONS_FORMAT_VERSION", "predict_images", "predict_dataset", "predict_npy",
           "write_predictions"]

PREDICTIONS_FORMAT_VERSION = "mesoinv-predictions-1"


@torch.no_grad()
def predict_images(model: ModelFile, images) -> np.ndarray:
    """Predictions in physical units, shape (maps, targets), float64.

    ``images`` iterates over stored maps ``(channels, nx, ny)`` (the model's input channels).
    Each map goes through the network alone: a convolution's result may depend in its last
    bits on the batch it is computed in, and a prediction must not depend on its neighbours.
    """
    network = model.build_network()
    normalization = ImageNormalization.from_dict(model.input_normalization)
    targets = TargetStandardization.from_dict(model.targets)
    rows = []
    for image in images:
        x = torch.from_numpy(normalization(image))[None]
        rows.append(network(x).double().numpy()[0])
    if not rows:
        return np.zeros((0, len(targets.names)))
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
