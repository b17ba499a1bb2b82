"""The trained-model file: everything inference needs, and what it must refuse.

One ``torch.save`` dict (loadable with ``weights_only=True``: tensors, numbers, strings,
lists, dicts only):

``format_version``      :data:`MODEL_FORMAT_VERSION`; another version is refused.
``model_name``, ``model_kind``
``network``             ``{"class": ..., "kwargs": {...}}``: rebuilds the ``nn.Module``.
``state_dict``          the weights (the best validation checkpoint).
``inputs``              variable, input fields (T), image shape (sites), transform.
``input_normalization`` statistics of the training split (:class:`ImageNormalization`).
``targets``             kind (scalars, fourier_coefficients, potential; absent = scalars),
                        names, units and statistics (:mod:`mesoinv.training.targets`); for
                        the Fourier model also the modes and the physics of Eq. (1).
``baselines``           reference predictions from the training split (potential models:
                        the pixelwise training-mean potential in meV); may be empty. P2
                        diffusion models write none (older P2 files hold
                        ``most_frequent_placement``, ``training_mean_ldos``: the evaluation
                        falls back on them only when given no training split).
``data_metadata``       physics of the training data: lattice constant (nm), region and QPC
                        (sites), Fermi energy (meV), hopping (meV), effective mass (kg), ...
``hyperparameters``     the model's config entry as trained.
``diffusion``, ``sampling``, ``image_normalization``, ``trace_normalization``
                        P2 diffusion models only (:mod:`mesoinv.training.train_p2`):
                        the noise schedule, the default sampler settings, the LDOS and G(B)
                        statistics of the training split. There ``inputs`` describes the
                        conditioning trace (fields in T) and ``targets`` the generated image
                        (kind ``ldos_image``).
``training``            dataset, split sizes and checksums, steps, epochs, best val loss,
                        seed, versions, the command.
"""

import errno
import hashlib
import math
from pathlib import Path

import torch

from ..datasets.netcdf import atomic_path
from ..models import EncoderDecoder, FourierCNN, ParameterCNN
from ..models.p2_unet import ConditionalUNet

__all__ = ["MODEL_FORMAT_VERSION", "ModelFile", "IncompatibleDataError", "NETWORKS",
           "network_from_spec", "save_model_file", "load_model_file", "file_sha256",
           "torch_load_problem"]

MODEL_FORMAT_VERSION = "mesoinv-model-1"

#: Network classes a model file may name.
NETWORKS = {"ParameterCNN": ParameterCNN, "FourierCNN": FourierCNN,
            "EncoderDecoder": EncoderDecoder, "ConditionalUNet": ConditionalUNet}

#: Physical metadata of a P2 model's training data compared with a new trace's, with units.
CHECKED_P2_METADATA = {"dataset_kind": None, "width_sites": "sites", "length_sites": "sites",
                       "antidot_radius_sites": "sites", "energy_t": "t",
                       "lattice_constant_nm": "nm", "ldos_padding_sites": "sites"}

#: Physical metadata compared between a model's training data and new input, with units.
CHECKED_METADATA = {"dataset_kind": None, "lattice_constant_nm": "nm", "energy_meV": "meV",
                    "effective_mass_kg": "kg", "qpc_first_y_site": "sites",
                    "qpc_width_sites": "sites", "relative_permittivity": None,
                    "thomas_fermi_wavevector_per_nm": "nm-1", "cutoff_factor": None}


def network_from_spec(spec: dict) -> torch.nn.Module:
    """A fresh (untrained) network from ``{"class": <name in NETWORKS>, "kwargs": {...}}``."""
    return NETWORKS[spec["class"]](**spec["kwargs"])


class IncompatibleDataError(ValueError):
    """Input data differ from what the model was trained on; the message names the mismatch."""


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def torch_load_problem(error, path=None) -> str:
    """What a failed ``torch.load(weights_only=True)`` says about the file, in our words.

    torch's own messages are not passed on: for a file holding anything but tensors and plain
    types they advise ``weights_only=False``, which would run arbitrary code from the file.
    """
    size = None
    if path is not None:
        try:
            size = Path(path).stat().st_size
        except OSError:
            pass
    name = type(error).__name__
    text = str(error)
    if size == 0:
        return "the file is empty"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EIO,
                                                      errno.EISDIR):
        return f"it cannot be read: {error.strerror or name}"
    if isinstance(error, (EOFError, OSError)) or "central directory" in text \
            or "zip archive" in text:  # torch's reader fails on a cut file with EINVAL, too
        return f"truncated, or not a torch file ({size} bytes; {name})" if size is not None \
            else f"truncated, or not a torch file ({name})"
    if "Unsupported global" in text:
        return ("it holds Python objects other than tensors, numbers, strings, lists and "
                "dicts, which mesoinv files never do; it is not loaded")
    return f"not a torch file ({name})"


def save_model_file(path, content: dict) -> Path:
    """Write a model file atomically (``content`` as described in the module docstring)."""
    content = {"format_version": MODEL_FORMAT_VERSION, **content}
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return Path(path)


class ModelFile:
    """A loaded model file. Attributes mirror the keys of the module docstring."""

    def __init__(self, content: dict, path=None):
        self.content = content
        self.path = None if path is None else str(path)
        for key in ("model_name", "model_kind", "network", "state_dict", "inputs",
                    "input_normalization", "targets", "data_metadata", "hyperparameters",
                    "training"):
            setattr(self, key, content[key])
        self.baselines = content.get("baselines", {})
        for key in ("diffusion", "sampling", "image_normalization", "trace_normalization"):
            setattr(self, key, content.get(key))

    @property
    def is_diffusion(self) -> bool:
        """A P2 trace → LDOS generator (no target object; see :meth:`check_trace`)."""
        return self.targets.get("kind") == "ldos_image"

    @property
    def target_set(self):
        """The fitted target object (:mod:`mesoinv.training.targets`) of a P1 model."""
        from .targets import targets_from_dict

        if self.is_diffusion:
            raise ValueError(f"model '{self.model_name}' generates LDOS images from traces; "
                             "it has no P1 target object")
        return targets_from_dict(self.targets)

    def check_trace(self, *, fields_T, metadata: dict, source: str):
        """Refuse traces a P2 model was not trained for: another field grid (count, or any
        field off by more than 1e-6 of the grid spacing, at least 1e-9 T) or another device
        (``CHECKED_P2_METADATA``).

        Raises
        ------
        IncompatibleDataError
            Naming every mismatch, with the trained value and the given one.
        """
        problems = []
        trained = [float(f) for f in self.inputs["fields_T"]]
        given = [float(f) for f in fields_T]
        if len(given) != len(trained):
            problems.append(f"{len(given)} field points ≠ {len(trained)} (trained, "
                            f"{trained[0]:g}…{trained[-1]:g} T)")
        else:
            worst = max((abs(a - b) for a, b in zip(given, trained)), default=0.0)
            # A CSV written with a few significant digits must pass: tolerate 1e-6 of the
            # grid spacing (at least 1e-9 T).
            spacing = min((abs(b - a) for a, b in zip(trained, trained[1:])), default=1.0)
            if worst > max(1e-9, 1e-6 * spacing):
                problems.append(f"field grid differs from the trained one by up to {worst:.3g} T "
                                f"(trained {trained[0]:g}…{trained[-1]:g} T in "
                                f"{len(trained)} points)")
        problems += self._metadata_problems(metadata, CHECKED_P2_METADATA)
        if problems:
            raise IncompatibleDataError(
                f"{source} does not match model '{self.model_name}' (trained on dataset "
                f"'{self.training.get('dataset')}'): " + "; ".join(problems))

    def _metadata_problems(self, metadata: dict, checked: dict) -> list:
        problems = []
        for key, unit in checked.items():
            if key not in metadata or key not in self.data_metadata:
                continue
            trained, given = self.data_metadata[key], metadata[key]
            if isinstance(trained, str) or isinstance(given, str):
                same = trained == given
            else:
                same = math.isclose(float(trained), float(given), rel_tol=1e-9, abs_tol=0)
            if not same:
                problems.append(f"{key} = {given}{' ' + unit if unit else ''} ≠ {trained}"
                                f"{' ' + unit if unit else ''} (trained)")
        return problems

    def build_network(self) -> torch.nn.Module:
        """The network with its trained weights, in eval mode, on the CPU."""
        network = network_from_spec(self.network)
        network.load_state_dict(self.state_dict)
        return network.eval()

    def check_data(self, *, image_shape, fields_T, metadata: dict, source: str):
        """Refuse data the model was not trained for.

        Parameters
        ----------
        image_shape : (int, int)
            (nx, ny) of the input maps in sites.
        fields_T : list of float
            Fields (tesla) available in the input; the model's input fields must be among them.
        metadata : dict
            Physical metadata of the input (keys of ``CHECKED_METADATA`` that are known).
        source : str
            Named in the error (a file name).

        Raises
        ------
        IncompatibleDataError
            Naming every mismatch, with the trained value and the given one.
        """
        problems = []
        trained_shape = tuple(self.inputs["image_shape"])
        if tuple(image_shape) != trained_shape:
            problems.append(f"map shape {tuple(image_shape)} sites ≠ {trained_shape} sites")
        missing = [f for f in self.inputs["fields_T"]
                   if not any(abs(f - float(g)) <= 1e-9 for g in fields_T)]
        if missing:
            problems.append(f"field(s) {missing} T missing (input has {list(fields_T)} T)")
        problems += self._metadata_problems(metadata, CHECKED_METADATA)
        if self.targets.get("kind") in ("fourier_coefficients", "potential"):
            # A potential model learned one disorder ensemble: data from another (s or N_d
            # outside the trained ranges) would be extrapolation, refused.
            for key, unit in (("dopant_distance_range_nm", "nm"),
                              ("dopant_density_range_cm2", "cm-2")):
                if key not in metadata or key not in self.data_metadata:
                    continue
                low, high = (float(v) for v in self.data_metadata[key])
                given = [float(v) for v in metadata[key]]
                tolerance = 1e-9 * max(abs(low), abs(high))
                if min(given) < low - tolerance or max(given) > high + tolerance:
                    problems.append(f"{key} = {given} {unit} outside the trained "
                                    f"[{low:g}, {high:g}] {unit}")
        if self.targets.get("kind") == "fourier_coefficients" and \
                "dopant_distance_range_nm" in metadata:
            # The coefficients → V(x, y) rebuild (Eq. 1) holds for the trained s only.
            trained_s = float(self.targets["physics"]["dopant_distance_nm"])
            given = [float(v) for v in metadata["dopant_distance_range_nm"]]
            if any(not math.isclose(v, trained_s, rel_tol=1e-9) for v in given):
                problems.append(f"dopant distance s {given} nm ≠ {trained_s} nm (trained; the "
                                "Fourier basis of Eq. (1) depends on s)")
        if problems:
            raise IncompatibleDataError(
                f"{source} does not match model '{self.model_name}' (trained on dataset "
                f"'{self.training.get('dataset')}'): " + "; ".join(problems))


def load_model_file(path) -> ModelFile:
    """Load and check a model file.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; not a model file; another format version (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors: not a torch file at all
        raise ValueError(f"{path} is not a mesoinv model file "
                         f"({torch_load_problem(error, path)})") from None
    if not isinstance(content, dict) or "format_version" not in content:
        raise ValueError(f"{path} is not a mesoinv model file (no format_version)")
    if content["format_version"] != MODEL_FORMAT_VERSION:
        raise ValueError(f"{path} has model format {content['format_version']!r}; this "
                         f"mesoinv reads {MODEL_FORMAT_VERSION!r} (retrain the model, or use "
                         "the mesoinv version that wrote it)")
    return ModelFile(content, path)
