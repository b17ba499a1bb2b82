"""Inference for P2 diffusion models: LDOS images generated from G(B) traces
(``mesoinv predict`` with a ``p2_diffusion`` model file).

Inputs
------
* :func:`generate_from_dataset`: a netCDF file in the P2 dataset format (a split or shard
  file: ``conductance(sample, field)`` in e²/h, ``field`` in T), every sample or the given
  sample ids. Where the file holds the truth (``ldos``, ``antidot_x``/``antidot_y``), it is
  copied into the output beside the generated images.
* :func:`generate_from_csv`: a CSV of field and conductance (format in
  :mod:`mesoinv.inference.traces`).

Before anything is computed:

* the outputs are checked (:func:`mesoinv.datasets.integrity.check_outputs`): never the model
  or the input file, never an existing file unless ``force``, every one writable — a DDPM run
  never finds out after its generation that it cannot write;
* the traces are checked against the model's training data with
  :meth:`mesoinv.training.model_file.ModelFile.check_trace`: the field grid (same number of
  points, every field within 1e-6 of the training grid's spacing) and, for a netCDF input, the
  device (``dataset_kind``, W, L, antidot radius, Fermi energy, lattice constant, padding). A
  mismatch is an :class:`~mesoinv.training.model_file.IncompatibleDataError` naming it;
* the traces are validated: finite, 0 ≤ G(B) ≤ the leads' open channels at each field (a
  netCDF input: its ``open_channels``; a CSV: the model's training data, or at most W channels
  for a lead W sites wide in older model files), and for a netCDF input every selected sample
  equal to its ``sample_checksum`` with its stored LDOS ≥ 0
  (:func:`mesoinv.datasets.integrity.check_samples`); else an
  :class:`~mesoinv.datasets.integrity.InputDataError` naming the sample or trace and the value.

Generated images that come out NaN or infinite are an error naming the trace, never a file;
the generated file and the figure are written together or not at all.

Generation
----------
Each trace is normalised with the training split's statistics stored in the model file, and
``samples_per_trace`` images are drawn for it as one batch with
:meth:`mesoinv.models.gaussian_diffusion.GaussianDiffusion.sample` (DDPM ancestral sampling
over all T steps, P2's generation, or deterministic DDIM over ``steps``), mapped back to states
per t per site by :meth:`~mesoinv.training.normalization.LDOSNormalization.inverse` (padding
columns set to exactly 0). Options left ``None`` take the model file's ``sampling`` defaults.

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
sharper; Ho & Salimans' w is γ − 1 (:mod:`mesoinv.models.gaussian_diffusion`).

Output: a netCDF file of format :data:`mesoinv.inference.p2_format.GENERATED_FORMAT_VERSION`
(:func:`mesoinv.inference.p2_format.write_generated`), with the antidots that
:class:`mesoinv.inference.antidot_detector.AntidotDetector` finds in each generated image, and
optionally a figure of its first trace (:func:`mesoinv.inference.p2_figures.plot_generated`).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..datasets.integrity import (InputDataError, check_outputs, check_samples,
                                  conductance_bound_text, conductance_outside)
from ..datasets.netcdf import atomic_outputs
from ..models.gaussian_diffusion import GaussianDiffusion
from ..training.model_file import IncompatibleDataError, ModelFile, load_model_file
from ..training.normalization import LDOSNormalization, TraceNormalization
from ..training.p2_readers import read_p2_split_info
from .p1_predict import check_finite_predictions
from .p2_format import write_generated
from .selection import select_positions
from .traces import read_dataset_traces, read_sample_ids, read_trace_csv

__all__ = ["GUIDANCE_MAPPING", "SEED_RULE", "SamplingOptions", "load_diffusion_model",
           "resolve_sampling", "trace_seed", "build_network_and_diffusion", "generate_images",
           "generate_from_dataset", "generate_from_csv", "check_trace_values"]

GUIDANCE_MAPPING = ("P2's deformed score gamma*grad log P(x,y) + (1-gamma)*grad log P(x) is "
                    "classifier-free guidance eps = gamma*eps(x_t, trace) + (1-gamma)*"
                    "eps(x_t, null): gamma = 1 conditional, 0 trace-blind, > 1 sharper; "
                    "Ho & Salimans' w = gamma - 1")

SEED_RULE = ("torch.Generator (CPU) per trace seeded with the first 63 bits of "
             "numpy SeedSequence(seed, spawn_key=(sample_id,)).generate_state(1, uint64); "
             "the trace's draws are one batch")


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


def build_network_and_diffusion(model: ModelFile, device="cpu"):
    """The model file's network (trained weights, eval mode, on ``device``) and its
    :class:`~mesoinv.models.gaussian_diffusion.GaussianDiffusion` (noise schedule)."""
    network = model.build_network().to(device)
    return network, GaussianDiffusion(**model.diffusion)


# -- generation -------------------------------------------------------------------------------

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
        network, diffusion = build_network_and_diffusion(model, device)
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


# -- entry points -----------------------------------------------------------------------------

def check_trace_values(model: ModelFile, traces, names, fields_T, source) -> None:
    """Refuse traces with a conductance outside [0, open channels] (e²/h, at each field).

    The bound is the training data's ``open_channels`` per field (model files written since it
    is stored), else W for a lead W sites wide (``width_sites``: no single-orbital lead of W
    sites has more open channels), else none above.

    Raises
    ------
    InputDataError
        ``<source>: trace '<name>': conductance = … e²/h at B = … T is outside …``.
    """
    meta = model.data_metadata or {}
    bound = meta.get("open_channels")
    outside = conductance_outside(traces, bound if bound is not None
                                  else meta.get("width_sites"))
    if outside is None:
        return
    row, column, value = outside
    if bound is not None:
        text = conductance_bound_text(bound, column)
    elif meta.get("width_sites") is not None:
        width = int(meta["width_sites"])
        text = (f"is outside [0, {width}] (a lead {width} sites wide has at most {width} open "
                "channels)")
    else:
        text = conductance_bound_text(None, column)
    raise InputDataError(f"{source}: trace '{names[row]}': conductance = {value:.6g} e²/h at "
                         f"B = {float(fields_T[column]):g} T {text}")


def _write(output, figure, model, model_path, generated, **kwargs) -> Path:
    """The generated file and its figure, together or not at all."""
    with atomic_outputs(output, figure) as (tmp, tmp_figure):
        write_generated(tmp, model, model_path, generated=generated, **kwargs)
        if figure is not None:
            from .p2_figures import plot_generated   # matplotlib only when a figure is wanted

            plot_generated(tmp, tmp_figure)
    return Path(output)


def generate_from_dataset(model_path, input_path, output, *, ids=None, samples_per_trace=None,
                          sampler=None, steps=None, guidance_scale=None, seed=None,
                          figure=None, device="cpu", force: bool = False) -> Path:
    """Generate LDOS images for the traces of a P2 dataset-format netCDF file.

    Parameters
    ----------
    model_path : path-like
        A ``p2_diffusion`` model file.
    input_path : path-like
        P2 split or shard file (``conductance``, ``field``; ``ldos`` and ``antidot_x/y``
        are copied as the truth when present).
    output : path-like
        netCDF to write (:data:`mesoinv.inference.p2_format.GENERATED_FORMAT_VERSION`),
        atomically.
    ids : list of int, optional
        Sample ids (not positions); default every sample.
    samples_per_trace, sampler, steps, guidance_scale, seed
        ``None`` → the model file's ``sampling`` defaults (:func:`resolve_sampling`).
    figure : path-like, optional
        PNG of the first trace (:func:`mesoinv.inference.p2_figures.plot_generated`), written
        together with ``output`` or not at all.
    device : str
        Where the network runs (``cpu``, ``cuda``).
    force : bool
        Replace an existing ``output`` or ``figure`` (``--force``); never the model or input.

    Raises
    ------
    OutputExistsError, OutputError
        Before anything is computed.
    IncompatibleDataError
        Another field grid or device than the training data's (nothing written).
    InputDataError
        A trace or sample that fails its checks (module docstring; nothing written).
    ValueError
        Not a diffusion model, not a P2 file, unknown ids, bad sampling options.
    NonFinitePredictionError
        NaN or inf in the generated images (nothing written).
    """
    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", input_path)], force=force)
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
    check_samples(input_path, select_positions(read_sample_ids(input_path), ids, input_path))
    selected = read_dataset_traces(input_path, ids)
    names = [f"sample {int(i)}" for i in selected.sample_ids]
    check_trace_values(model, selected.traces, names, info.fields_T, input_path)
    generated = generate_images(model, selected.traces, selected.sample_ids, options,
                                device=device)
    check_finite_predictions(model, generated, [f"{n} of {input_path}" for n in names])
    return _write(output, figure, model, model_path, generated, sample_ids=selected.sample_ids,
                  traces=selected.traces, fields_T=info.fields_T, options=options,
                  input_file=str(input_path), input_kind="dataset", split=info.split,
                  true_ldos=selected.true_ldos, true_placements=selected.true_placements)


def generate_from_csv(model_path, csv_path, output, *, ids=None, samples_per_trace=None,
                      sampler=None, steps=None, guidance_scale=None, seed=None, figure=None,
                      device="cpu", force: bool = False) -> Path:
    """Generate LDOS images for traces given in a CSV file.

    CSV format (:mod:`mesoinv.inference.traces`): a header row ``field_T`` followed by one
    conductance column per trace (``conductance_e2_h`` for one trace; the header becomes
    ``trace_name``), one row per field point; G(B) in e²/h, spinless (as the datasets store
    it). The ``field_T`` column (T) must be the model's training grid (its
    ``inputs.fields_T``: same number of points, each within 1e-6 of the grid spacing); another
    grid or another length raises :class:`IncompatibleDataError` naming it. Every conductance
    must lie in [0, open channels] (:func:`check_trace_values`).

    A CSV carries no device description: W, L, antidot radius, Fermi energy and lattice
    constant are assumed to be the training data's (the output's ``unchecked`` attribute says
    so), and there is no truth. The traces get ``sample_id`` 0, 1, … (column positions), which
    fix their seeds; ``ids`` selects among them.

    Other parameters and errors as :func:`generate_from_dataset`.
    """
    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", csv_path)], force=force)
    model = load_diffusion_model(model_path)
    fields_T, traces, names = read_trace_csv(csv_path)
    model.check_trace(fields_T=fields_T, metadata={}, source=str(csv_path))
    options = resolve_sampling(model, samples_per_trace=samples_per_trace, sampler=sampler,
                               steps=steps, guidance_scale=guidance_scale, seed=seed)
    sample_ids = np.arange(len(traces), dtype=np.int64)
    positions = select_positions(sample_ids, ids, csv_path)
    if not positions:
        raise ValueError(f"{csv_path}: no traces selected")
    traces = traces[positions]
    names = [names[i] for i in positions]
    check_trace_values(model, traces, names, fields_T, csv_path)
    generated = generate_images(model, traces, sample_ids[positions], options, device=device)
    check_finite_predictions(model, generated, [f"trace '{n}' of {csv_path}" for n in names])
    return _write(
        output, figure, model, model_path, generated, sample_ids=sample_ids[positions],
        traces=traces, fields_T=fields_T, options=options, input_file=str(csv_path),
        input_kind="csv", split="unknown", trace_names=names,
        extra={"unchecked": "device (W, L, antidot radius, Fermi energy, lattice constant): "
                            "a CSV has none; the training data's are assumed"})
