"""P1 inference: a trained model applied to PLDOS maps, predictions written to netCDF.

Inputs are either a netCDF file in the dataset format (every sample, or chosen ids) or a
``.npy`` array of maps with its physics given by the caller. Before anything is computed:

* the outputs are checked (:func:`mesoinv.datasets.integrity.check_outputs`): never the model
  or the input file, never an existing file unless ``force``, every one writable;
* the maps are checked against the model's training data (shape, lattice constant, Fermi
  energy, effective mass, QPC, fields): a mismatch is an
  :class:`mesoinv.training.model_file.IncompatibleDataError` naming it;
* the maps are validated as the dataset validation does: every value finite, the PLDOS ≥ 0,
  and for a netCDF input each selected sample equal to its ``sample_checksum``
  (:func:`mesoinv.datasets.integrity.check_samples`), else an
  :class:`~mesoinv.datasets.integrity.InputDataError` naming the sample and the value.

A prediction that comes out NaN or infinite is a :class:`NonFinitePredictionError` naming the
sample, never a file. The predictions and the figure are written together or not at all
(:class:`mesoinv.datasets.netcdf.atomic_outputs`). The evaluation of the workflow calls the
same function on the test split, so ``mesoinv predict`` on stored test samples gives the
evaluation's numbers bit for bit (each map is computed alone, batch size 1 — see
:func:`predict_images`).

The maps are read by :mod:`mesoinv.inference.maps`; the two output formats, by what the model
predicts (parameters, or the potential V(x, y)), are written by
:mod:`mesoinv.inference.p1_formats`, and ``--figure`` draws :mod:`mesoinv.inference.p1_figures`.
"""

from pathlib import Path

import numpy as np
import torch

from ..datasets.integrity import check_outputs, check_samples
from ..datasets.netcdf import atomic_outputs
from ..training.model_file import ModelFile, load_model_file
from ..training.normalization import ImageNormalization
from ..training.p1_data import iter_images, read_split_info
from .maps import load_npy_maps, read_sample_ids, read_true_targets, select_channels
from .p1_formats import write_potential_predictions, write_predictions
from .selection import select_positions

__all__ = ["predict_images", "predict_dataset", "predict_npy", "POTENTIAL_KINDS",
           "NonFinitePredictionError", "check_finite_predictions"]

#: Target kinds whose predictions are potentials V(x, y).
POTENTIAL_KINDS = ("fourier_coefficients", "potential")


class NonFinitePredictionError(RuntimeError):
    """The model gave NaN or inf for a valid input; nothing is written."""


def check_finite_predictions(model: ModelFile, predictions, labels) -> None:
    """Refuse predictions with a NaN or infinite value, naming the first sample (``labels``:
    one per row, e.g. ``sample 7`` or ``map 0``) and what is not finite."""
    predictions = np.asarray(predictions)
    bad = np.argwhere(~np.isfinite(predictions))
    if not len(bad):
        return
    row = int(bad[0][0])
    rest = tuple(int(i) for i in bad[0][1:])
    names = model.targets.get("names") if isinstance(model.targets, dict) else None
    if names and len(rest) == 1 and rest[0] < len(names):
        what = f"{names[rest[0]]} = {predictions[tuple(bad[0])]}"
    else:
        what = f"value {predictions[tuple(bad[0])]} at {rest}"
    count = int(np.any(~np.isfinite(predictions.reshape(len(predictions), -1)), axis=1).sum())
    raise NonFinitePredictionError(
        f"model '{model.model_name}' gave a non-finite prediction for {labels[row]} ({what}; "
        f"{count} of {len(predictions)} predictions not finite): nothing was written")


@torch.no_grad()
def predict_images(model: ModelFile, images, device="cpu") -> np.ndarray:
    """Predictions in physical units, float64 (the network on ``device``).

    ``images`` iterates over stored maps ``(channels, nx, ny)`` (the model's input channels).
    Each map goes through the network alone: a convolution's result may depend in its last
    bits on the batch it is computed in, and a prediction must not depend on its neighbours.

    Returns
    -------
    ndarray
        (maps, targets) for parameter models; (maps, 2 N) real and imaginary parts of the
        coefficients for the Fourier model; (maps, nx, ny) V in meV for the encoder-decoder.
    """
    network = model.build_network().to(device)
    normalization = ImageNormalization.from_dict(model.input_normalization)
    targets = model.target_set
    rows = []
    for image in images:
        x = torch.from_numpy(normalization(image))[None].to(device)
        rows.append(network(x).double().cpu().numpy()[0])
    if not rows:
        if targets.kind == "potential":
            return np.zeros((0, *model.inputs["image_shape"]))
        return np.zeros((0, targets.n_outputs))
    return targets.invert(np.stack(rows))


def predict_dataset(model_path, input_path, output, *, ids=None, figure=None,
                    force: bool = False, device="cpu") -> Path:
    """Predict every (or the given) sample of a dataset-format netCDF file.

    Parameters
    ----------
    model_path : path-like
        Model file written by the training stage.
    input_path : path-like
        A split or shard file (P1 format), or any file of that format.
    output : path-like
        netCDF predictions, written atomically: format
        :data:`mesoinv.inference.p1_formats.PREDICTIONS_FORMAT_VERSION`, or
        :data:`mesoinv.inference.p1_formats.POTENTIAL_PREDICTIONS_FORMAT_VERSION` for a model
        of the potential.
    ids : list of int, optional
        Sample ids (not positions); default every sample.
    figure : path-like, optional
        PNG: the first map with its predictions, and predicted vs true where known. Written
        together with ``output`` or not at all.
    force : bool
        Replace an existing ``output`` or ``figure`` (``--force``); never the model or input.
    device : str
        Where the network runs (``cpu``, ``cuda``;
        :func:`mesoinv.inference.devices.resolve_device`).

    Raises
    ------
    OutputExistsError, OutputError
        Before anything is computed (module docstring).
    IncompatibleDataError, InputDataError, NonFinitePredictionError
        Nothing is written.
    """
    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", input_path)], force=force)
    model = load_model_file(model_path)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    info = read_split_info(input_path, model.inputs["variable"])
    model.check_data(image_shape=info.image_shape, fields_T=info.fields_T,
                     metadata=info.metadata, source=str(input_path))
    sample_ids = read_sample_ids(input_path)
    positions = select_positions(sample_ids, ids, input_path)
    check_samples(input_path, positions)
    field_indices = info.field_indices(model.inputs["fields_T"])
    predictions = predict_images(model, iter_images(input_path, field_indices,
                                                    model.inputs["variable"], positions),
                                 device)
    check_finite_predictions(model, predictions,
                             [f"sample {sample_ids[p]} of {input_path}" for p in positions])
    first = None
    if figure is not None:
        first = next(iter_images(input_path, field_indices, model.inputs["variable"],
                                 positions[:1]), None)
    with atomic_outputs(output, figure) as (tmp, tmp_figure):
        if model.target_set.kind in POTENTIAL_KINDS:
            write_potential_predictions(
                tmp, model, model_path, sample_ids[positions], predictions,
                input_file=str(input_path), split=info.split, truth_file=input_path,
                positions=positions)
            if figure is not None:
                from .p1_figures import plot_potential_prediction

                plot_potential_prediction(tmp, first, tmp_figure)
        else:
            truth = read_true_targets(input_path, model.targets["names"], positions)
            write_predictions(tmp, model, model_path, sample_ids[positions], predictions,
                              truth, input_file=str(input_path), split=info.split)
            if figure is not None:
                from .p1_figures import plot_parameter_prediction

                plot_parameter_prediction(tmp, first, info.metadata.get("lattice_constant_nm"),
                                          tmp_figure)
    return Path(output)


def predict_npy(model_path, npy_path, output, *, lattice_constant_nm: float,
                energy_meV: float, fields_T, figure=None, force: bool = False,
                device="cpu") -> Path:
    """Predict maps from a ``.npy`` array of shape (nx, ny), (channels, nx, ny) or
    (maps, channels, nx, ny); the channels are the PLDOS (meV⁻¹ per site, as stored by the
    simulator) at ``fields_T`` (tesla), at the given lattice constant (nm) and Fermi energy
    (meV). The QPC's position cannot be checked from a bare array: it is assumed to be the
    training data's (stated in the output's attributes). Every value must be finite and ≥ 0.
    Outputs, ``force`` and errors as :func:`predict_dataset`."""
    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", npy_path)], force=force)
    model = load_model_file(model_path)
    npy_path = Path(npy_path)
    maps, fields_T = load_npy_maps(npy_path, fields_T)
    metadata = {"lattice_constant_nm": lattice_constant_nm, "energy_meV": energy_meV}
    model.check_data(image_shape=maps.shape[-2:], fields_T=fields_T, metadata=metadata,
                     source=str(npy_path))
    images = select_channels(maps, fields_T, model.inputs["fields_T"])
    predictions = predict_images(model, images, device)
    check_finite_predictions(model, predictions,
                             [f"map {i} of {npy_path}" for i in range(len(maps))])
    extra = {"unchecked": "QPC position and width (bare array)"}
    with atomic_outputs(output, figure) as (tmp, tmp_figure):
        if model.target_set.kind in POTENTIAL_KINDS:
            write_potential_predictions(
                tmp, model, model_path, np.arange(len(maps)), predictions,
                input_file=str(npy_path), split="unknown",
                lattice_constant_nm=lattice_constant_nm, extra=extra)
            if figure is not None:
                from .p1_figures import plot_potential_prediction

                plot_potential_prediction(tmp, images[0], tmp_figure)
        else:
            write_predictions(tmp, model, model_path, np.arange(len(maps)), predictions,
                              None, input_file=str(npy_path), split="unknown", extra=extra)
            if figure is not None:
                from .p1_figures import plot_parameter_prediction

                plot_parameter_prediction(tmp, images[0], lattice_constant_nm, tmp_figure)
    return Path(output)
