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
  points, every field within 1e-6 of the training grid's spacing; a CSV's grid within
  :data:`FIELD_GRID_TOLERANCE` = 1e-3 of it is taken as the model's, another one is refused or,
  with ``resample``, interpolated: "Real data" below) and, for a netCDF input, the
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
``numpy.random.SeedSequence(seed, spawn_key=(sample_id,))``. A trace's noise therefore
depends only on the seed and its own sample id (for a CSV: the column's position), not on
which other traces are generated with it, on any device (the noise is drawn on the CPU).
Several traces share a network call (``batch_images``, :func:`generate_images`), so the last
bits of a convolution may depend on the batch a trace is computed in; the same call twice
gives the same bytes on the same machine, torch build and device (``--device``, selected by
:func:`mesoinv.inference.devices.resolve_device`; CPU and GPU agree up to rounding).

Real data (CSV input)
---------------------
* Field grid: a CSV grid with as many points as the model's, every field within
  :data:`FIELD_GRID_TOLERANCE` (10⁻³) × the training grid's spacing of the trained field, is
  the model's grid written with a few significant digits: it is replaced by the trained grid.
  Another grid is refused, unless ``resample``: then each trace is interpolated linearly
  (``numpy.interp``) onto the model's grid, only inside the measured range (a model field
  outside the measured one, beyond the same tolerance, is refused: no extrapolation), with a
  warning; the output records ``resampled_from_fields_T`` and a ``history`` line.
* Conductance unit: ``conductance_unit`` ``e2/h`` (default; spinless, as the datasets) or
  ``2e2/h`` (a spin-degenerate measurement): values in 2e²/h are multiplied by 2 to e²/h
  before anything else; recorded as ``conductance_unit_input``. The converted trace must lie
  in [0, open channels] (:func:`check_trace_values`).

Training ensemble: the disorder amplitude (t), distribution, realisations per configuration,
number of configurations and split unit of the training data (the model file's
``data_metadata``) are copied into the output's attributes (``training_*``,
:func:`training_ensemble`) and summarised in ``training_ensemble``.

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
import warnings
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
           "generate_from_dataset", "generate_from_csv", "check_trace_values",
           "FIELD_GRID_TOLERANCE", "CONDUCTANCE_UNITS", "conductance_factor", "match_field_grid",
           "training_ensemble", "training_ensemble_text"]

#: A CSV field grid is the model's when every field is within this fraction of the training
#: grid's spacing of the trained field (a grid written with a few significant digits).
FIELD_GRID_TOLERANCE = 1e-3

#: ``--conductance-unit``: factor to e²/h (spinless, the datasets' unit).
CONDUCTANCE_UNITS = {"e2/h": 1.0, "2e2/h": 2.0}

GUIDANCE_MAPPING = ("P2's deformed score gamma*grad log P(x,y) + (1-gamma)*grad log P(x) is "
                    "classifier-free guidance eps = gamma*eps(x_t, trace) + (1-gamma)*"
                    "eps(x_t, null): gamma = 1 conditional, 0 trace-blind, > 1 sharper; "
                    "Ho & Salimans' w = gamma - 1")

SEED_RULE = ("torch.Generator (CPU) per trace seeded with the first 63 bits of "
             "numpy SeedSequence(seed, spawn_key=(sample_id,)).generate_state(1, uint64); "
             "the noise of a trace's draws comes from its own generator, whichever traces "
             "share its network call")


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


def conductance_factor(unit) -> float:
    """The factor from ``unit`` (``e2/h``, ``2e2/h``; None = ``e2/h``) to e²/h.

    Raises
    ------
    ValueError
        Another unit (one line naming the known ones).
    """
    unit = "e2/h" if unit is None else str(unit)
    if unit not in CONDUCTANCE_UNITS:
        raise ValueError(f"unknown conductance unit {unit!r} (choose e2/h, or 2e2/h for a "
                         "spin-degenerate measurement; 2e2/h is multiplied by 2 to e2/h)")
    return CONDUCTANCE_UNITS[unit]


def match_field_grid(model: ModelFile, fields_T, traces, source, *, resample: bool = False):
    """Put CSV traces on the model's field grid (module docstring, "Real data").

    Returns
    -------
    fields_T : ndarray
        The model's grid (when the given one matches it or was resampled), else the given
        grid unchanged (for :meth:`ModelFile.check_trace` to refuse, naming the mismatch).
    traces : ndarray (n, n_fields)
    resampled_from : ndarray or None
        The measured grid the traces were interpolated from.

    Raises
    ------
    IncompatibleDataError
        ``resample`` with a model field outside the measured range, or a measured grid that is
        not strictly monotonic.
    """
    given = np.asarray(fields_T, dtype=np.float64)
    traces = np.asarray(traces, dtype=np.float64)
    trained = np.asarray([float(f) for f in model.inputs["fields_T"]], dtype=np.float64)
    spacing = float(np.min(np.abs(np.diff(trained)))) if len(trained) > 1 else 1.0
    tolerance = max(1e-9, FIELD_GRID_TOLERANCE * spacing)
    if len(given) == len(trained) and np.max(np.abs(given - trained), initial=0.0) <= tolerance:
        return trained.copy(), traces, None
    if not resample:
        return given, traces, None
    if len(given) < 2:
        raise IncompatibleDataError(f"{source}: --resample needs at least 2 measured fields, "
                                    f"got {len(given)}")
    steps = np.diff(given)
    if np.all(steps < 0):
        given, traces = given[::-1], traces[:, ::-1]
    elif not np.all(steps > 0):
        raise IncompatibleDataError(f"{source}: --resample needs a strictly increasing or "
                                    "decreasing field_T column")
    low, high = trained.min(), trained.max()
    if low < given[0] - tolerance or high > given[-1] + tolerance:
        raise IncompatibleDataError(
            f"{source}: the model's fields {low:g}…{high:g} T are not inside the measured "
            f"{given[0]:g}…{given[-1]:g} T; --resample interpolates, it does not extrapolate")
    resampled = np.stack([np.interp(trained, given, trace) for trace in traces]) \
        if len(traces) else np.zeros((0, len(trained)))
    warnings.warn(f"{source}: traces measured on {len(given)} fields {given[0]:g}…"
                  f"{given[-1]:g} T interpolated linearly onto the model's {len(trained)} "
                  f"fields {trained[0]:g}…{trained[-1]:g} T (--resample)", stacklevel=2)
    return trained.copy(), resampled, given


#: ``data_metadata`` keys describing the training potentials: attribute ``training_<key>``.
TRAINING_ENSEMBLE_KEYS = ("potential_amplitude_t", "potential_distribution",
                          "realizations_per_configuration", "n_configurations", "split_unit",
                          "dataset_name", "dataset_kind")


def training_ensemble(model: ModelFile) -> dict:
    """The disorder amplitude and ensemble of the model's training data (``data_metadata``),
    as netCDF attributes ``training_<key>`` plus the text ``training_ensemble``."""
    meta = model.data_metadata or {}
    out = {}
    for key in TRAINING_ENSEMBLE_KEYS:
        if key in meta and meta[key] is not None:
            value = meta[key]
            out[f"training_{key}"] = value if isinstance(value, (str, int, float)) \
                else str(value)
    out["training_ensemble"] = training_ensemble_text(model)
    return out


def training_ensemble_text(model: ModelFile) -> str:
    """One line: the training potentials (for the output and the command's summary)."""
    meta = model.data_metadata or {}
    parts = []
    if meta.get("potential_amplitude_t") is not None:
        parts.append(f"disorder amplitude A = {float(meta['potential_amplitude_t']):g} t")
    if meta.get("potential_distribution"):
        parts.append(str(meta["potential_distribution"]))
    if meta.get("realizations_per_configuration") is not None:
        parts.append(f"{int(meta['realizations_per_configuration'])} realisations per antidot "
                     "placement")
    if meta.get("n_configurations") is not None:
        parts.append(f"{int(meta['n_configurations'])} placements in the dataset")
    if meta.get("split_unit"):
        parts.append(f"split by {meta['split_unit']}")
    if not parts:
        return "training ensemble not recorded in the model file"
    dataset = meta.get("dataset_name") or model.training.get("dataset")
    return (f"trained on '{dataset}': " if dataset else "") + "; ".join(parts)


def _write(output, figure, model, model_path, generated, **kwargs) -> Path:
    """The generated file and its figure, together or not at all."""
    kwargs["extra"] = {**training_ensemble(model), **(kwargs.get("extra") or {})}
    with atomic_outputs(output, figure) as (tmp, tmp_figure):
        write_generated(tmp, model, model_path, generated=generated, **kwargs)
        if figure is not None:
            from .p2_figures import plot_generated   # matplotlib only when a figure is wanted

            plot_generated(tmp, tmp_figure)
    return Path(output)


def generate_from_dataset(model_path, input_path, output, *, ids=None, samples_per_trace=None,
                          sampler=None, steps=None, guidance_scale=None, seed=None,
                          figure=None, device="cpu", force: bool = False) -> Path:
    """Generate LDOS images (maps) for the G(B) traces of a P2 dataset-format netCDF file.

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
        Where the network runs: ``cpu``, ``cuda`` or ``auto``
        (:func:`mesoinv.inference.devices.resolve_device`; ``cuda`` without a GPU is a
        ValueError before anything is read).
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
    from .devices import resolve_device

    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", input_path)], force=force)
    device = resolve_device(device)
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
                  true_ldos=selected.true_ldos, true_placements=selected.true_placements,
                  extra={"conductance_unit_input": "e2/h", "device": device})


def generate_from_csv(model_path, csv_path, output, *, ids=None, samples_per_trace=None,
                      sampler=None, steps=None, guidance_scale=None, seed=None, figure=None,
                      device="cpu", force: bool = False, resample: bool = False,
                      conductance_unit: str = "e2/h") -> Path:
    """Generate LDOS images (maps) for G(B) traces given in a CSV file (measured data).

    CSV format (:mod:`mesoinv.inference.traces`): a header row ``field_T`` followed by one
    conductance column per trace (``conductance_e2_h`` for one trace; the header becomes
    ``trace_name``), one row per field point. The ``field_T`` column (T) must be the model's
    training grid (its ``inputs.fields_T``: same number of points, each within
    :data:`FIELD_GRID_TOLERANCE` × the grid spacing), else, with ``resample``, is interpolated
    onto it (module docstring, "Real data"); another grid raises
    :class:`IncompatibleDataError` naming it. ``conductance_unit`` is ``e2/h`` (spinless, as
    the datasets) or ``2e2/h`` (multiplied by 2). Every converted conductance must lie in
    [0, open channels] (:func:`check_trace_values`).

    A CSV carries no device description: W, L, antidot radius, Fermi energy and lattice
    constant are assumed to be the training data's (the output's ``unchecked`` attribute says
    so), and there is no truth. The traces get ``sample_id`` 0, 1, … (column positions), which
    fix their seeds; ``ids`` selects among them.

    Other parameters and errors as :func:`generate_from_dataset`.
    """
    from .devices import resolve_device

    check_outputs([output, figure], inputs=[("model file", model_path),
                                            ("input file", csv_path)], force=force)
    factor = conductance_factor(conductance_unit)
    device = resolve_device(device)
    model = load_diffusion_model(model_path)
    fields_T, traces, names = read_trace_csv(csv_path)
    traces = traces * factor
    fields_T, traces, resampled_from = match_field_grid(model, fields_T, traces, csv_path,
                                                        resample=resample)
    try:
        model.check_trace(fields_T=fields_T, metadata={}, source=str(csv_path))
    except IncompatibleDataError as error:
        raise IncompatibleDataError(f"{error} (--resample interpolates a trace measured on "
                                    "another grid onto the model's)") from None
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
    unit = "e2/h" if conductance_unit is None else str(conductance_unit)
    extra = {"unchecked": "device (W, L, antidot radius, Fermi energy, lattice constant): "
                          "a CSV has none; the training data's are assumed",
             "conductance_unit_input": unit,
             "conductance_conversion": ("none (input in e2/h)" if factor == 1.0 else
                                        f"input in {unit} multiplied by {factor:g} to e2/h"),
             "device": device}
    if resampled_from is not None:
        extra["resampled_from_fields_T"] = np.asarray(resampled_from, dtype=np.float64)
        extra["history"] = (f"conductance interpolated linearly (numpy.interp) from the "
                            f"{len(resampled_from)} measured fields {resampled_from[0]:g}…"
                            f"{resampled_from[-1]:g} T of {csv_path} onto the model's "
                            f"{len(fields_T)} fields {fields_T[0]:g}…{fields_T[-1]:g} T "
                            "(mesoinv predict --resample)")
    return _write(
        output, figure, model, model_path, generated, sample_ids=sample_ids[positions],
        traces=traces, fields_T=fields_T, options=options, input_file=str(csv_path),
        input_kind="csv", split="unknown", trace_names=names, extra=extra)
