"""Inference for P2 diffusion models: LDOS images and antidot positions generated from G(B)
traces, written to netCDF (``mesoinv predict`` with a ``p2_diffusion`` model file).

Inputs
------
* :func:`generate_from_dataset`: a netCDF file in the P2 dataset format (a split or shard
  file: ``conductance(sample, field)`` in e²/h, ``field`` in T), every sample or the given
  sample ids. Where the file holds the truth (``ldos``, ``antidot_x``/``antidot_y``), it is
  copied into the output beside the generated images.
* :func:`generate_from_csv`: a CSV of field and conductance (format in its docstring).

Before anything is computed the traces are checked against the model's training data with
:meth:`mesoinv.training.model_file.ModelFile.check_trace`: the field grid (same number of
points, every field within 1e-6 of the training grid's spacing) and, for a netCDF input, the
device (``dataset_kind``, W, L, antidot radius, Fermi energy, lattice constant, padding). A
mismatch is an :class:`~mesoinv.training.model_file.IncompatibleDataError` naming it, and
nothing is written.

Generation
----------
Each trace is normalised with the training split's statistics stored in the model file, and
``samples_per_trace`` images are drawn for it as one batch with
:meth:`mesoinv.models.diffusion.GaussianDiffusion.sample` (DDPM ancestral sampling over all T
steps, P2's generation, or deterministic DDIM over ``steps``), mapped back to states per t
per site by :meth:`~mesoinv.training.p2_data.LDOSNormalization.inverse` (padding columns set
to exactly 0). Options left ``None`` take the model file's ``sampling`` defaults.

Seeds: the draws of a trace come from a ``torch.Generator`` (CPU) seeded with
:func:`trace_seed` ``(seed, sample_id)``: the first 63 bits of
``numpy.random.SeedSequence(seed, spawn_key=(sample_id,))``. A trace's images therefore
depend only on the model, the options, the seed and its own sample id (for a CSV: the column's
position), not on which other traces are generated with it; each trace is its own batch of
``samples_per_trace`` images, so not even the last bits of a convolution depend on its
neighbours. The same call twice gives the same bytes (on the same machine and torch build).

Guidance: γ (``guidance_scale``) is P2's deformed score γ ∇log P(x, y) + (1 − γ) ∇log P(x),
which is classifier-free guidance ε̂ = γ ε(x_t, y) + (1 − γ) ε(x_t, ∅) with the network's
learned null condition: γ = 1 the conditional model, γ = 0 the trace-blind model, γ > 1
sharper; Ho & Salimans' w is γ − 1 (:mod:`mesoinv.models.diffusion`).

Output (netCDF4, :data:`GENERATED_FORMAT_VERSION`, written atomically)
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
                                                                    (site indices i, k)
``antidot_depth``           trace, draw, antidot           1        detector depth (0 = clean hole)
``ldos_true``               trace, image_x, y              t-1      true LDOS, where known
``antidot_x_true``/``_y``   trace, antidot                 1        true centres, where known
==========================  =============================  =======  ===============================

Attributes: ``format_version``, ``sampler``, ``steps`` (T for DDPM), ``eta``, ``clip_x0``,
``guidance_scale`` and ``guidance_mapping``, ``seed``, ``seed_rule``, ``samples_per_trace``,
``num_timesteps``, ``model_name``, ``model_kind``, ``model_file``, ``model_file_sha256``,
``training_dataset``, ``split``, ``input_file``, ``input_kind`` (dataset, csv),
``has_truth``, ``detector``, ``data_metadata`` (JSON), ``image_normalization`` (JSON),
``lattice_constant_nm``, ``ldos_padding_sites``, ``antidot_radius_sites``, ``command``,
``code_version``, ``Conventions``.

Antidot positions are found with :class:`mesoinv.evaluation.antidots.AntidotDetector` built
from the model's training metadata (the same detector the evaluation uses).
"""

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import torch

from ..datasets.netcdf import atomic_path, code_version
from ..models.diffusion import GaussianDiffusion
from ..training.model_file import (IncompatibleDataError, ModelFile, file_sha256,
                                   load_model_file)
from ..training.p2_data import (LDOSNormalization, TraceNormalization, load_ldos,
                                read_p2_split_info, read_placements, read_traces)
from .antidots import AntidotDetector

__all__ = ["GENERATED_FORMAT_VERSION", "GUIDANCE_MAPPING", "SEED_RULE", "SamplingOptions",
           "load_diffusion_model", "resolve_sampling", "trace_seed", "generate_images",
           "read_trace_csv", "write_generated", "generate_from_dataset", "generate_from_csv",
           "plot_generated", "image_coordinates"]

GENERATED_FORMAT_VERSION = "mesoinv-generated-ldos-1"

GUIDANCE_MAPPING = ("P2's deformed score gamma*grad log P(x,y) + (1-gamma)*grad log P(x) is "
                    "classifier-free guidance eps = gamma*eps(x_t, trace) + (1-gamma)*"
                    "eps(x_t, null): gamma = 1 conditional, 0 trace-blind, > 1 sharper; "
                    "Ho & Salimans' w = gamma - 1")

SEED_RULE = ("torch.Generator (CPU) per trace seeded with the first 63 bits of "
             "numpy SeedSequence(seed, spawn_key=(sample_id,)).generate_state(1, uint64); "
             "the trace's draws are one batch")

_DETECTOR_TEXT = ("AntidotDetector (mesoinv.evaluation.antidots): template matching with the "
                  "exact disk of the training data's antidot radius, half-integer grid")


# -- the model and its options ----------------------------------------------------------------

def load_diffusion_model(model_path) -> ModelFile:
    """Load a model file and refuse one that is not a P2 diffusion model."""
    model = load_model_file(model_path)
    if not model.is_diffusion:
        raise ValueError(f"{model_path}: model '{model.model_name}' ({model.model_kind}) does "
                         "not generate LDOS images from G(B) traces; use it with a P1 input")
    return model


@dataclass(frozen=True)
class SamplingOptions:
    """Resolved sampler settings (:func:`resolve_sampling`)."""

    sampler: str
    steps: int
    eta: float
    guidance_scale: float
    samples_per_trace: int
    seed: int
    clip_x0: float | None

    def sample_kwargs(self) -> dict:
        """Keyword arguments of :meth:`GaussianDiffusion.sample` (without the generator)."""
        kwargs = {"sampler": self.sampler, "guidance_scale": self.guidance_scale,
                  "clip_x0": self.clip_x0}
        if self.sampler == "ddim":
            kwargs.update(steps=self.steps, eta=self.eta)
        return kwargs

    def attributes(self) -> dict:
        """netCDF attributes (no None: ``clip_x0`` "none" when off)."""
        return {"sampler": self.sampler, "steps": np.int64(self.steps),
                "eta": float(self.eta) if self.sampler == "ddim" else float("nan"),
                "guidance_scale": float(self.guidance_scale),
                "samples_per_trace": np.int64(self.samples_per_trace),
                "seed": np.int64(self.seed),
                "clip_x0": "none" if self.clip_x0 is None else float(self.clip_x0)}

    @classmethod
    def from_attributes(cls, attrs: dict) -> "SamplingOptions":
        clip = attrs.get("clip_x0", "none")
        eta = float(attrs.get("eta", 0.0))
        return cls(str(attrs["sampler"]), int(attrs["steps"]), 0.0 if math.isnan(eta) else eta,
                   float(attrs["guidance_scale"]), int(attrs["samples_per_trace"]),
                   int(attrs["seed"]), None if isinstance(clip, str) else float(clip))


def resolve_sampling(model: ModelFile, *, samples_per_trace=None, sampler=None, steps=None,
                     guidance_scale=None, seed=None, eta=None) -> SamplingOptions:
    """The sampler settings: each ``None`` takes the model file's ``sampling`` default.

    DDPM always runs all T steps (``steps`` must then be None or T); DDIM takes ``steps``, or
    the file's ``steps`` (when its default sampler is DDIM), or min(50, T).

    Raises
    ------
    ValueError
        Unknown sampler, steps outside 1 … T (or ≠ T for DDPM), samples_per_trace < 1, a
        non-finite γ, a negative seed.
    """
    defaults = dict(model.sampling or {})
    T = int((model.diffusion or {}).get("num_timesteps", 1000))
    sampler = sampler if sampler is not None else defaults.get("sampler", "ddim")
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {sampler!r} (known: ddpm, ddim)")
    if sampler == "ddpm":
        if steps not in (None, T):
            raise ValueError(f"DDPM runs all {T} steps of this model; for fewer steps use "
                             f"sampler 'ddim' (got steps={steps})")
        steps = T
    else:
        default_steps = defaults.get("steps") if defaults.get("sampler", "ddim") == "ddim" \
            else None
        steps = int(steps if steps is not None else (default_steps or min(50, T)))
        if not 1 <= steps <= T:
            raise ValueError(f"DDIM steps must be in 1 … {T} (the model's diffusion steps), "
                             f"got {steps}")
    samples = int(samples_per_trace if samples_per_trace is not None
                  else defaults.get("samples_per_trace", 4))
    if samples < 1:
        raise ValueError(f"samples_per_trace must be at least 1, got {samples}")
    gamma = float(guidance_scale if guidance_scale is not None
                  else defaults.get("guidance_scale", 1.0))
    if not math.isfinite(gamma):
        raise ValueError(f"guidance_scale must be finite, got {gamma}")
    seed = int(seed if seed is not None else defaults.get("seed", 0))
    if seed < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    eta = float(eta if eta is not None else defaults.get("eta", 0.0) or 0.0)
    clip = defaults.get("clip_x0")
    return SamplingOptions(sampler, int(steps), eta, gamma, samples, seed,
                           None if clip is None else float(clip))


def trace_seed(seed: int, sample_id: int) -> int:
    """The generator seed of one trace (module docstring)."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(sample_id),)).generate_state(
        1, np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


def _network_and_diffusion(model: ModelFile, device):
    network = model.build_network().to(device)
    return network, GaussianDiffusion(**model.diffusion)


@torch.no_grad()
def generate_images(model: ModelFile, traces, sample_ids, options: SamplingOptions, *,
                    unconditional: bool = False, device="cpu", network=None,
                    callback=None, record_attention: bool = False,
                    batch_images: int = 256) -> np.ndarray:
    """Generated LDOS images for G(B) traces.

    Parameters
    ----------
    model : ModelFile
        A P2 diffusion model (:func:`load_diffusion_model`).
    traces : array (n, n_fields)
        Conductance in e²/h on the training field grid (checked by the caller).
    sample_ids : sequence of int (n,)
        Fix each trace's seed (:func:`trace_seed`).
    options : SamplingOptions
    unconditional : bool
        Ignore the traces: the model's null condition, i.e. γ = 0 (a trace-blind baseline
        with the same seeds).
    device : str or torch.device
        Where the network runs; the noise is drawn on the CPU either way.
    network : nn.Module, optional
        An already built network (on ``device``); default built from the model file.
    callback : callable, optional
        ``callback(trace_index, SamplingStep)`` after every denoising step.
    record_attention : bool
        Hand the bottleneck attention weights to ``callback`` (``SamplingStep.attention``).
    batch_images : int
        Images per network call: ⌊batch_images / samples_per_trace⌋ traces are generated
        together (at least one). Each trace keeps its own generator, so its draws do not depend
        on its neighbours (up to the floating-point rounding of a batched network call).

    Returns
    -------
    ndarray (n, samples_per_trace, image_x, y), float64, states per t per site, padding 0.
    """
    traces = np.asarray(traces, dtype=np.float64)
    if network is None:
        network, diffusion = _network_and_diffusion(model, device)
    else:
        diffusion = GaussianDiffusion(**model.diffusion)
    image_norm = LDOSNormalization.from_dict(model.image_normalization)
    trace_norm = TraceNormalization.from_dict(model.trace_normalization)
    size = int(model.network["kwargs"]["image_size"])
    channels = int(model.network["kwargs"].get("in_channels", 1))
    k = options.samples_per_trace
    out = np.empty((len(traces), k, size, size), dtype=np.float64)
    kwargs = options.sample_kwargs()
    if options.clip_x0 is not None:
        # clip_x0 = c: the network-space range of LDOS in [0, c × training maximum]
        kwargs["clip_x0"] = image_norm.bounds(options.clip_x0)
    if unconditional:
        kwargs["guidance_scale"] = 0.0
    sample_ids = [int(s) for s in sample_ids]
    # Several traces per network call (one generator each, so a trace's draws are the ones it
    # gets alone); one trace at a time when a callback follows the steps of each trace.
    per_call = 1 if callback is not None else max(1, int(batch_images) // k)
    for start in range(0, len(traces), per_call):
        rows = range(start, min(start + per_call, len(traces)))
        generators = [torch.Generator().manual_seed(trace_seed(options.seed, sample_ids[row]))
                      for row in rows]
        condition = None
        if not unconditional:
            condition = torch.from_numpy(
                trace_norm(traces[rows.start:rows.stop])).to(device).repeat_interleave(k, 0)
        step_callback = None
        if callback is not None:
            def step_callback(step, row=start):
                callback(row, step)
        x = diffusion.sample(network, condition, (len(rows) * k, channels, size, size),
                             generator=generators if len(rows) > 1 else generators[0],
                             callback=step_callback, record_attention=record_attention,
                             **kwargs)
        out[rows.start:rows.stop] = image_norm.inverse(x[:, 0]).reshape(len(rows), k, size,
                                                                          size)
    return out


# -- inputs -----------------------------------------------------------------------------------

def read_trace_csv(csv_path):
    """Read traces from a CSV file (format: :func:`generate_from_csv`).

    Returns
    -------
    fields_T : ndarray (n_fields,)
    traces : ndarray (n_traces, n_fields), e²/h
    names : list of str
        The header of each trace column.

    Raises
    ------
    ValueError
        No header ``field_T`` first, no trace column, non-numeric or non-finite values.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"input file {csv_path} does not exist")
    try:
        table = pd.read_csv(csv_path, comment="#", skipinitialspace=True)
    except Exception as error:  # empty file, ragged rows: pandas' own exception types
        raise ValueError(f"{csv_path}: not a readable CSV of field and conductance "
                         f"({type(error).__name__}: {error})") from None
    columns = [str(c).strip() for c in table.columns]
    if not columns or columns[0] != "field_T":
        raise ValueError(f"{csv_path}: the first column must be 'field_T' (the field in tesla), "
                         f"got header {columns}")
    if len(columns) < 2:
        raise ValueError(f"{csv_path}: no conductance column after 'field_T' (expected "
                         "'field_T,conductance_e2_h' or one column per trace)")
    try:
        values = table.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{csv_path}: every value must be a number (field in T, "
                         "conductance in e²/h)") from None
    if values.shape[0] == 0:
        raise ValueError(f"{csv_path}: no rows")
    if not np.all(np.isfinite(values)):
        bad = sorted({columns[j] for j in np.nonzero(~np.isfinite(values))[1]})
        raise ValueError(f"{csv_path}: empty, NaN or infinite values in column(s) {bad}")
    return values[:, 0], values[:, 1:].T.copy(), columns[1:]


def image_coordinates(model: ModelFile):
    """(image_x, y) coordinates of the generated images, lattice constants (dataset rule)."""
    meta = model.data_metadata
    height, width = model.targets["image_shape"]
    W = int(meta.get("width_sites", height))
    p = int(meta.get("ldos_padding_sites", (height - W) // 2))
    return np.arange(height) - p - (W - 1) / 2.0, np.arange(width, dtype=np.float64)


def _positions(sample_ids: np.ndarray, ids, source) -> list:
    if ids is None:
        return list(range(len(sample_ids)))
    where = {int(s): i for i, s in enumerate(sample_ids)}
    missing = [int(i) for i in ids if int(i) not in where]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise ValueError(f"sample id(s) {shown} not in {source} ({len(sample_ids)} samples)")
    return [where[int(i)] for i in ids]


# -- output -----------------------------------------------------------------------------------

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
    generated = np.asarray(generated, dtype=np.float64)
    n, k, height, width = generated.shape
    if tuple(model.targets["image_shape"]) != (height, width):
        raise ValueError(f"generated images are {height} × {width}, the model's "
                         f"{tuple(model.targets['image_shape'])}")
    sample_ids = np.asarray(sample_ids, dtype=np.int64)
    traces = np.asarray(traces, dtype=np.float64).reshape(n, -1)
    fields_T = np.asarray(fields_T, dtype=np.float64)
    meta = model.data_metadata
    detection = (AntidotDetector.from_metadata(meta).detect(generated) if n
                 else None)
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
                         f"index {'ik'[axis]}; ordered by (c_y, c_x))")
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


# -- entry points -----------------------------------------------------------------------------

def generate_from_dataset(model_path, input_path, output, *, ids=None, samples_per_trace=None,
                          sampler=None, steps=None, guidance_scale=None, seed=None,
                          figure=None, device="cpu") -> Path:
    """Generate LDOS images for the traces of a P2 dataset-format netCDF file.

    Parameters
    ----------
    model_path : path-like
        A ``p2_diffusion`` model file.
    input_path : path-like
        P2 split or shard file (``conductance``, ``field``; ``ldos`` and ``antidot_x/y``
        are copied as the truth when present).
    output : path-like
        netCDF to write (:data:`GENERATED_FORMAT_VERSION`), atomically.
    ids : list of int, optional
        Sample ids (not positions); default every sample.
    samples_per_trace, sampler, steps, guidance_scale, seed
        ``None`` → the model file's ``sampling`` defaults (:func:`resolve_sampling`).
    figure : path-like, optional
        PNG of the first trace (:func:`plot_generated`).
    device : str
        Where the network runs (``cpu``, ``cuda``).

    Raises
    ------
    IncompatibleDataError
        Another field grid or device than the training data's (nothing written).
    ValueError
        Not a diffusion model, not a P2 file, unknown ids, bad sampling options.
    """
    model = load_diffusion_model(model_path)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    info = read_p2_split_info(input_path)
    model.check_trace(fields_T=info.fields_T, metadata=info.metadata, source=str(input_path))
    if tuple(info.image_shape) != tuple(model.targets["image_shape"]):
        raise IncompatibleDataError(
            f"{input_path}: LDOS images {info.image_shape} (image_x, y) ≠ "
            f"{tuple(model.targets['image_shape'])} (trained)")
    options = resolve_sampling(model, samples_per_trace=samples_per_trace, sampler=sampler,
                               steps=steps, guidance_scale=guidance_scale, seed=seed)
    with netCDF4.Dataset(input_path) as ds:
        sample_ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
        has_ldos = "ldos" in ds.variables
        has_placements = "antidot_x" in ds.variables and "antidot_y" in ds.variables
    positions = _positions(sample_ids, ids, input_path)
    if not positions:
        raise ValueError(f"{input_path}: no traces selected")
    traces = read_traces(input_path)[positions]
    true_ldos = true_placements = None
    if has_ldos:
        true_ldos = load_ldos(input_path, positions)
    if has_placements:
        true_placements = read_placements(input_path)[positions]
    generated = generate_images(model, traces, sample_ids[positions], options, device=device)
    path = write_generated(output, model, model_path, sample_ids=sample_ids[positions],
                           traces=traces, fields_T=info.fields_T, generated=generated,
                           options=options, input_file=str(input_path), input_kind="dataset",
                           split=info.split, true_ldos=true_ldos,
                           true_placements=true_placements)
    if figure is not None:
        plot_generated(path, figure)
    return path


def generate_from_csv(model_path, csv_path, output, *, ids=None, samples_per_trace=None,
                      sampler=None, steps=None, guidance_scale=None, seed=None, figure=None,
                      device="cpu") -> Path:
    """Generate LDOS images for traces given in a CSV file.

    CSV format
    ----------
    A header row, then one row per field point, comma-separated; lines starting with ``#``
    are comments::

        field_T,conductance_e2_h
        0.0,15.93
        0.0408163265306122,15.71
        ...

    * first column ``field_T``: the perpendicular field B in tesla, in the order of the
      training grid. It must be the model's training grid (its ``inputs.fields_T``: same
      number of points, each within 1e-6 of the grid spacing).
      Another grid or another length raises :class:`IncompatibleDataError` naming it;
    * one further column ``conductance_e2_h`` for one trace, or several columns (any header;
      the header becomes ``trace_name``) for several traces on the same field axis: the
      two-terminal conductance G(B) in e²/h, spinless (as the datasets store it).

    A CSV carries no device description: W, L, antidot radius, Fermi energy and lattice
    constant are assumed to be the training data's (the output's ``unchecked`` attribute says
    so), and there is no truth. The traces get ``sample_id`` 0, 1, … (column positions), which
    fix their seeds; ``ids`` selects among them.

    Other parameters and errors as :func:`generate_from_dataset`.
    """
    model = load_diffusion_model(model_path)
    fields_T, traces, names = read_trace_csv(csv_path)
    model.check_trace(fields_T=fields_T, metadata={}, source=str(csv_path))
    options = resolve_sampling(model, samples_per_trace=samples_per_trace, sampler=sampler,
                               steps=steps, guidance_scale=guidance_scale, seed=seed)
    sample_ids = np.arange(len(traces), dtype=np.int64)
    positions = _positions(sample_ids, ids, csv_path)
    if not positions:
        raise ValueError(f"{csv_path}: no traces selected")
    traces = traces[positions]
    generated = generate_images(model, traces, sample_ids[positions], options, device=device)
    path = write_generated(
        output, model, model_path, sample_ids=sample_ids[positions], traces=traces,
        fields_T=fields_T, generated=generated, options=options, input_file=str(csv_path),
        input_kind="csv", split="unknown", trace_names=[names[i] for i in positions],
        extra={"unchecked": "device (W, L, antidot radius, Fermi energy, lattice constant): "
                            "a CSV has none; the training data's are assumed"})
    if figure is not None:
        plot_generated(path, figure)
    return path


# -- figure -----------------------------------------------------------------------------------

def _draw_antidots(ax, centres, radius, color, style="-"):
    from matplotlib.patches import Circle

    for cx, cy in np.asarray(centres, dtype=np.float64).reshape(-1, 2):
        ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor=color, lw=1.1,
                            linestyle=style))


def plot_generated(generated_path, output, *, trace: int = 0) -> Path:
    """One trace of a generated file: G(B), the true LDOS where known, up to three draws, the
    mean and the spread over the draws; found antidots as solid circles, true ones dashed.

    ``trace`` is the position in the file (not the sample id).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import _save

    with netCDF4.Dataset(generated_path) as ds:
        n = ds.dimensions["trace"].size
        if not 0 <= trace < n:
            raise ValueError(f"{generated_path}: no trace at position {trace} ({n} traces)")
        fields = np.asarray(ds["field"][:])
        conductance = np.asarray(ds["conductance"][trace])
        draws = np.asarray(ds["generated_ldos"][trace], dtype=np.float64)
        mean = np.asarray(ds["generated_ldos_mean"][trace], dtype=np.float64)
        std = np.asarray(ds["generated_ldos_std"][trace], dtype=np.float64)
        found = np.stack([np.asarray(ds["antidot_x"][trace]), np.asarray(ds["antidot_y"][trace])],
                         axis=-1)
        true = (np.asarray(ds["ldos_true"][trace], dtype=np.float64)
                if "ldos_true" in ds.variables else None)
        true_pos = (np.stack([np.asarray(ds["antidot_x_true"][trace]),
                              np.asarray(ds["antidot_y_true"][trace])], axis=-1)
                    if "antidot_x_true" in ds.variables else None)
        name = str(ds["trace_name"][trace])
        a = {k: ds.getncattr(k) for k in ds.ncattrs()}
    p = int(a.get("ldos_padding_sites", 0))
    radius = float(a.get("antidot_radius_sites", 0.0))
    height, width = draws.shape[-2:]
    extent = (-p - 0.5, height - p - 0.5, -0.5, width - 0.5)   # site indices i, k
    shown = min(3, len(draws))
    images = []
    if true is not None:
        images.append(("true LDOS", true, "inferno", true_pos, None))
    for d in range(shown):
        images.append((f"draw {d}", draws[d], "inferno", true_pos, found[d]))
    images.append((f"mean of {len(draws)} draws", mean, "inferno", true_pos, None))
    images.append(("std over draws", std, "viridis", true_pos, None))
    # One LDOS colour scale: the true image's (generated images are compared with it), else
    # the generated ones'; it ends at the 99.5th percentile (the colour bar extends).
    reference = true if true is not None else np.concatenate([draws.ravel(), mean.ravel()])
    vmax = float(np.percentile(reference, 99.5)) or 1.0
    columns = len(images) + 1
    fig, axes = plt.subplots(1, columns, figsize=(2.55 * columns + 0.8, 3.5),
                             constrained_layout=True, squeeze=False,
                             gridspec_kw={"width_ratios": [1.6] + [1] * len(images)})
    ax = axes[0, 0]
    ax.plot(fields, conductance, lw=1.0)
    ax.set_xlabel("B (T)")
    ax.set_ylabel("G (e²/h)")
    ax.set_title(f"trace: {name}", fontsize=9)
    for ax, (title, image, cmap, truth, detected) in zip(axes[0, 1:], images):
        options = {"vmin": 0.0, "vmax": vmax} if cmap == "inferno" else {}
        mesh = ax.imshow(image.T, origin="lower", cmap=cmap, extent=extent, aspect="equal",
                         **options)
        if truth is not None:
            _draw_antidots(ax, truth, radius, "cyan", "--")
        if detected is not None:
            _draw_antidots(ax, detected, radius, "lime")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("i (sites)")
        ax.set_ylabel("k (sites)")
        if cmap != "inferno" or title.startswith("mean"):
            fig.colorbar(mesh, ax=ax, shrink=0.75, label="LDOS (t⁻¹)",
                         extend="max" if cmap == "inferno" else "neither")
    guidance = float(a["guidance_scale"])
    fig.suptitle(f"{a['model_name']}: {a['sampler']} {int(a['steps'])} steps, γ = {guidance:g}, "
                 f"seed {int(a['seed'])}; found antidots solid, true dashed", fontsize=9)
    return _save(fig, output)
