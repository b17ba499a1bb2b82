"""The file of LDOS images a P2 diffusion model generated from G(B) traces: writer and reader.

Written by :mod:`mesoinv.inference.p2_generate` (``mesoinv predict`` with a ``p2_diffusion``
model file), read by the evaluation (:mod:`mesoinv.evaluation.p2_generation`).

Format (netCDF4, :data:`GENERATED_FORMAT_VERSION`, written atomically)
-----------------------------------------------------------------------
Dimensions ``trace`` (n), ``draw`` (samples_per_trace), ``image_x``, ``y``, ``antidot`` (2),
``field``. Variables (every one with ``units`` and ``long_name``):

==========================  =============================  =======  ===============================
variable                    dims                           units    meaning
==========================  =============================  =======  ===============================
``image_x``                 image_x                        1 (a)    x of an image column from the
                                                                    wire's axis, j − p − (W−1)/2
``y``                       y                              1 (a)    y = k of an image row
``field``                   field                          T        the trace's fields
``draw``                    draw                           1        index of the draw
``sample_id``               trace                          1        sample id (CSV: column position)
``trace_name``              trace                          —        ``sample <id>`` / CSV header
``trace_seed``              trace                          1        the trace's generator seed
``conductance``             trace, field                   e2/h     the input trace G(B)
``generated_ldos``          trace, draw, image_x, y        t-1      generated LDOS (float32)
``generated_ldos_mean``     trace, image_x, y              t-1      mean over the draws
``generated_ldos_std``      trace, image_x, y              t-1      std over the draws (ddof 0)
``antidot_x``/``_y``        trace, draw, antidot           1        centres found by the detector
                                                                    (site indices i, k); NaN: none
``antidot_count``           trace, draw                    1        antidots found (0, 1, 2);
                                                                    0 = "no antidot found"
``antidot_depth``           trace, draw, antidot           1        detector depth (0 = clean hole)
``ldos_true``               trace, image_x, y              t-1      true LDOS, where known
``antidot_x_true``/``_y``   trace, antidot                 1        true centres, where known
==========================  =============================  =======  ===============================

Attributes: ``format_version``, ``sampler``, ``steps`` (T for DDPM), ``eta``, ``clip_x0``,
``guidance_scale`` and ``guidance_mapping``, ``seed``, ``seed_rule``, ``samples_per_trace``,
``num_timesteps``, ``model_name``, ``model_kind``, ``model_file``, ``model_file_sha256``,
``training_dataset``, ``split``, ``input_file``, ``input_kind`` (dataset, csv),
``has_truth``, ``detector``, ``detector_max_depth``, ``antidot_summary`` (e.g. "no antidot
found in 1 of 4 images: ..."), ``data_metadata`` (JSON), ``device``, ``conductance_unit_input``,
the training ensemble (``training_potential_amplitude_t``, … and ``training_ensemble``; CSV
input also ``conductance_conversion``, and after ``--resample`` ``resampled_from_fields_T`` and
``history``), ``image_normalization`` (JSON),
``lattice_constant_nm``, ``ldos_padding_sites``, ``antidot_radius_sites``, ``command``,
``code_version``, ``Conventions``.

Antidot positions are found with :class:`mesoinv.inference.antidot_detector.AntidotDetector`
built from the model's training metadata (the same detector the evaluation uses).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import netCDF4
import numpy as np

from ..datasets.netcdf import atomic_path, code_version
from .antidot_detector import AntidotDetector

if TYPE_CHECKING:
    from ..training.model_file import ModelFile
    from .p2_generate import SamplingOptions

__all__ = ["GENERATED_FORMAT_VERSION", "write_generated", "read_generated", "GeneratedFile",
           "image_coordinates", "antidot_summary"]

GENERATED_FORMAT_VERSION = "mesoinv-generated-ldos-1"

_DETECTOR_TEXT = ("AntidotDetector (mesoinv.inference.antidot_detector): template matching "
                  "with the exact disk of the training data's antidot radius, half-integer grid; "
                  "a disk counts as an antidot when its depth (mean hole map) is at most "
                  "detector_max_depth, else 'no antidot found' (NaN centre)")


def antidot_summary(counts, names) -> str:
    """One line on the antidots found per image (counts (n, k)): "no antidot found" where so."""
    counts = np.asarray(counts).reshape(len(names), -1)
    total = counts.size
    if total == 0:
        return "no images"
    parts = [f"2 antidots found in {int((counts == 2).sum())} of {total} images"]
    for c, text in ((1, "only 1 antidot found"), (0, "no antidot found")):
        where = [f"{names[i]!s} draw {j}" for i, j in zip(*np.nonzero(counts == c))]
        if where:
            shown = ", ".join(where[:5]) + (f", … ({len(where) - 5} more)"
                                            if len(where) > 5 else "")
            parts.append(f"{text} in {len(where)}: {shown}")
    return "; ".join(parts)


# -- writing ----------------------------------------------------------------------------------

def image_coordinates(model: ModelFile):
    """(image_x, y) coordinates of the generated images, lattice constants (dataset rule)."""
    meta = model.data_metadata
    height, width = model.targets["image_shape"]
    W = int(meta.get("width_sites", height))
    p = int(meta.get("ldos_padding_sites", (height - W) // 2))
    return np.arange(height) - p - (W - 1) / 2.0, np.arange(width, dtype=np.float64)


def write_generated(output, model: ModelFile, model_path, *, sample_ids, traces, fields_T,
                    generated, options: SamplingOptions, input_file, input_kind, split,
                    true_ldos=None, true_placements=None, trace_names=None,
                    extra=None) -> Path:
    """Write generated images (format :data:`GENERATED_FORMAT_VERSION`, module docstring),
    atomically, with the antidots the detector finds in them.

    Parameters
    ----------
    generated : array (n, k, image_x, y)
        States per t per site.
    true_ldos : array (n, image_x, y), optional
    true_placements : array (n, 2, 2), optional
        ``[[cx1, cy1], [cx2, cy2]]`` per trace, site indices.
    trace_names : list of str, optional
        Default ``sample <id>``.
    extra : dict, optional
        More global attributes.
    """
    # Imported here: the module stays free of torch at import (the CLI reads
    # GENERATED_FORMAT_VERSION from it), and p2_generate imports this module.
    from ..training.model_file import file_sha256
    from .p2_generate import GUIDANCE_MAPPING, SEED_RULE, trace_seed

    generated = np.asarray(generated, dtype=np.float64)
    n, k, height, width = generated.shape
    if tuple(model.targets["image_shape"]) != (height, width):
        raise ValueError(f"generated images are {height} × {width}, the model's "
                         f"{tuple(model.targets['image_shape'])}")
    sample_ids = np.asarray(sample_ids, dtype=np.int64)
    traces = np.asarray(traces, dtype=np.float64).reshape(n, -1)
    fields_T = np.asarray(fields_T, dtype=np.float64)
    meta = model.data_metadata
    detector = AntidotDetector.from_metadata(meta)
    detection = detector.detect(generated) if n else None
    image_x, y = image_coordinates(model)
    names = trace_names or [f"sample {int(s)}" for s in sample_ids]
    seeds = np.array([trace_seed(options.seed, s) for s in sample_ids], dtype=np.int64)
    images32 = generated.astype(np.float32)
    mean = generated.mean(axis=1) if n else np.zeros((0, height, width))
    std = generated.std(axis=1) if n else np.zeros((0, height, width))

    def variable(ds, name, dims, data, units, long_name, dtype="f8", **options):
        var = ds.createVariable(name, dtype, dims, **options)
        var.units, var.long_name = units, long_name
        if np.size(data):
            var[:] = data
        return var

    compressed = {"zlib": True, "complevel": 1, "shuffle": True}
    image_chunks = {"chunksizes": (1, k, height, width)} if n else {}
    with atomic_path(output) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("trace", n)
            ds.createDimension("draw", k)
            ds.createDimension("image_x", height)
            ds.createDimension("y", width)
            ds.createDimension("antidot", 2)
            ds.createDimension("field", len(fields_T))
            variable(ds, "image_x", ("image_x",), image_x, "1",
                     "x of the image column from the wire's axis, j - p - (W-1)/2 (lattice "
                     "constants a); the p padding columns on each side lie outside the wire")
            variable(ds, "y", ("y",), y, "1", "y = k of the image row along the wire "
                     "(lattice constants a)")
            variable(ds, "field", ("field",), fields_T, "T", "perpendicular field B_z")
            variable(ds, "draw", ("draw",), np.arange(k, dtype=np.int32), "1",
                     "index of the generated draw of a trace", "i4")
            variable(ds, "sample_id", ("trace",), sample_ids, "1",
                     "sample id in the input (position of the column for a CSV input)", "i8")
            var = ds.createVariable("trace_name", str, ("trace",))
            var.units, var.long_name = "1", "name of the trace (sample id or CSV header)"
            for i, name in enumerate(names):
                var[i] = str(name)
            variable(ds, "trace_seed", ("trace",), seeds, "1",
                     "seed of the trace's torch generator (seed_rule)", "i8")
            variable(ds, "conductance", ("trace", "field"), traces, "e2/h",
                     "input magnetoconductance G(B), spinless")
            variable(ds, "generated_ldos", ("trace", "draw", "image_x", "y"), images32, "t-1",
                     "generated LDOS at B = 0 (states per t per site; padding columns 0)",
                     "f4", **compressed, **image_chunks)
            variable(ds, "generated_ldos_mean", ("trace", "image_x", "y"), mean, "t-1",
                     "mean of the generated LDOS over the draws", "f4", **compressed)
            variable(ds, "generated_ldos_std", ("trace", "image_x", "y"), std, "t-1",
                     "standard deviation of the generated LDOS over the draws (ddof 0)", "f4",
                     **compressed)
            for axis, name in ((0, "antidot_x"), (1, "antidot_y")):
                variable(ds, name, ("trace", "draw", "antidot"),
                         detection.centres[..., axis] if n else [], "1",
                         f"antidot centre c_{'xy'[axis]} found in the generated image (site "
                         f"index {'ik'[axis]}; ordered by (c_y, c_x); NaN: no antidot found)")
            variable(ds, "antidot_count", ("trace", "draw"),
                     detection.count if n else [], "1",
                     "antidots found in the generated image (0 = no antidot found; a missing "
                     "one has NaN antidot_x/antidot_y)", "i4")
            variable(ds, "antidot_depth", ("trace", "draw", "antidot"),
                     detection.depth if n else [], "1",
                     "detector depth of the found antidot: mean hole map over its disk "
                     "(0 = a clean hole, about 1 = no hole)")
            if true_ldos is not None:
                variable(ds, "ldos_true", ("trace", "image_x", "y"),
                         np.asarray(true_ldos, dtype=np.float64).astype(np.float32), "t-1",
                         "true LDOS at B = 0 from the input file", "f4", **compressed)
            if true_placements is not None:
                placements = np.asarray(true_placements, dtype=np.float64)
                for axis, name in ((0, "antidot_x_true"), (1, "antidot_y_true")):
                    variable(ds, name, ("trace", "antidot"), placements[..., axis], "1",
                             f"true antidot centre c_{'xy'[axis]} (site index {'ik'[axis]}), "
                             "the class's canonical representative")
            ds.setncatts({
                "title": f"mesoinv LDOS images generated by model '{model.model_name}'",
                "format_version": GENERATED_FORMAT_VERSION,
                **options.attributes(),
                "num_timesteps": np.int64(model.diffusion["num_timesteps"]),
                "guidance_mapping": GUIDANCE_MAPPING, "seed_rule": SEED_RULE,
                "model_name": model.model_name, "model_kind": model.model_kind,
                "model_file": str(model_path), "model_file_sha256": file_sha256(model_path),
                "training_dataset": str(model.training.get("dataset", "")),
                "split": str(split), "input_file": str(input_file),
                "input_kind": input_kind,
                "has_truth": np.int32(true_ldos is not None and true_placements is not None),
                "detector": _DETECTOR_TEXT,
                "detector_max_depth": float(detector.max_depth)
                if detector.max_depth is not None else "none",
                "antidot_summary": antidot_summary(detection.count if n else np.zeros((0, k)),
                                                   names),
                "data_metadata": json.dumps(meta, sort_keys=True),
                "image_normalization": json.dumps(model.image_normalization, sort_keys=True),
                "lattice_constant_nm": float(meta.get("lattice_constant_nm", float("nan"))),
                "ldos_padding_sites": np.int32(meta.get("ldos_padding_sites", 0)),
                "antidot_radius_sites": float(meta.get("antidot_radius_sites", float("nan"))),
                "command": " ".join(sys.argv), "code_version": code_version(),
                "Conventions": "CF-1.10 (units and long_name on every variable; t = hopping "
                               "energy; lengths in lattice constants a)",
                **(extra or {})})
    return Path(output)


# -- reading ----------------------------------------------------------------------------------

@dataclass
class GeneratedFile:
    """Content of a generated file (module docstring)."""

    path: str
    sample_ids: np.ndarray          # (n,)
    names: list
    fields_T: np.ndarray            # (n_fields,)
    traces: np.ndarray              # (n, n_fields) e²/h
    generated: np.ndarray           # (n, k, image_x, y) t⁻¹
    found: np.ndarray               # (n, k, 2, 2)
    true_ldos: np.ndarray | None    # (n, image_x, y)
    true_placements: np.ndarray | None  # (n, 2, 2)
    attrs: dict
    found_count: np.ndarray | None = None  # (n, k) antidots found (older files: None)

    @property
    def options(self) -> SamplingOptions:
        """The sampler settings the file was generated with (its attributes)."""
        from .p2_generate import SamplingOptions   # torch: not at import (write_generated)

        return SamplingOptions.from_attributes(self.attrs)

    @property
    def padding(self) -> int:
        return int(self.attrs.get("ldos_padding_sites", 0))

    @property
    def missing_truth(self) -> list:
        return [name for name, value in (("ldos_true", self.true_ldos),
                                         ("antidot_x_true/antidot_y_true",
                                          self.true_placements)) if value is None]


def read_generated(path) -> GeneratedFile:
    """Read a generated file.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; another format (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generated file {path} does not exist")
    with netCDF4.Dataset(path) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        if attrs.get("format_version") != GENERATED_FORMAT_VERSION:
            raise ValueError(f"{path} has format {attrs.get('format_version')!r}, not "
                             f"{GENERATED_FORMAT_VERSION!r} (write it with mesoinv predict and a "
                             "p2_diffusion model)")
        ds.set_auto_mask(False)

        def get(name, dtype=np.float64):
            return np.asarray(ds[name][:], dtype=dtype)

        found = np.stack([get("antidot_x"), get("antidot_y")], axis=-1)
        true_ldos = get("ldos_true") if "ldos_true" in ds.variables else None
        true_placements = (np.stack([get("antidot_x_true"), get("antidot_y_true")], axis=-1)
                           if "antidot_x_true" in ds.variables
                           and "antidot_y_true" in ds.variables else None)
        names = [str(v) for v in ds["trace_name"][:]]
        count = get("antidot_count", np.int64) if "antidot_count" in ds.variables else None
        return GeneratedFile(str(path), get("sample_id", np.int64), names, get("field"),
                             get("conductance"), get("generated_ldos"), found, true_ldos,
                             true_placements, attrs, count)
