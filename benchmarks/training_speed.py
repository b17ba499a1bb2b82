"""Training group, speed: ``torch.compile``, ``channels_last`` and the thread count for the
three P1 networks and P2's diffusion U-Net, side by side; and P2's generation time per trace
for the three predictors of the P2 evaluation (issue 19 item 5, issue 16 "Speed").

Rows (keys are stable; docs/benchmarks.md, section Training, says what each means):

* ``train.speed.<net>.config``     the network (``param``: the demo's ``p1_s_nd``
                                   ParameterCNN; ``fourier``: ``p1_fourier`` FourierCNN;
                                   ``encdec``: ``p1_potential`` EncoderDecoder; ``p2``: the
                                   demo's ``p2_ldos`` ConditionalUNet with the
                                   ``GaussianDiffusion`` loss), at its config entry's batch
                                   size (value) and optimizer.
* ``train.speed.<net>.<v>.rate``   training steps per second of variant ``<v>``:
                                   ``eager`` (the baseline: eager mode, contiguous NCHW, one
                                   torch thread), ``compile`` (``torch.compile(net)``, default
                                   mode), ``channels_last`` (model and inputs),
                                   ``compile_channels_last`` (both) and ``threads2``
                                   (eager with ``torch.set_num_threads(2)``). Steady state:
                                   1 / median seconds per step after W warm-up steps.
* ``train.speed.<net>.<v>.speedup`` eager time / variant time: the median over repeats of the
                                   per-repeat ratio (every repeat runs all five variants back
                                   to back, order rotating), with the range over repeats in
                                   the note. CPU time for the one-thread variants (the
                                   harness's convention, robust to other processes), wall
                                   clock for ``threads2`` (two threads' CPU time is not a
                                   duration). Target ≥ 1.3× with losses equal to rounding:
                                   PASS = adopt.
* ``train.speed.<net>.<v>.dloss``  max |loss(v) − loss(eager)| over the W + T steps of every
                                   repeat (same initial weights, batches and seed); note: the
                                   relative value, the first step's (before any update) and
                                   the losses after the last step.
* ``train.speed.<net>.<c>.compile_s``  for the two compiled variants: the compile time, i.e.
                                   the first step of the first run less a steady-state step
                                   (wall clock; Inductor compiles into a fresh cache
                                   directory for the run: the first compile is cold, the
                                   second of the same network reuses some kernels).
* ``train.p2gen.*``                P2 generation per trace on the demo's val traces
                                   (``results/``, read only): the 1-NN lookup (whole lookup
                                   and the search alone), the direct placement model (predict
                                   per trace, and its fit), the diffusion model (DDIM, the
                                   model file's sampling: 30 steps, γ = 2, 2 images per
                                   trace), batched as ``mesoinv predict`` batches and one trace
                                   per call; ratios of the diffusion model to the others.
                                   n/a when the demo's files are not there.

Every timing row's note has the 1-minute load average (``os.getloadavg()``) over its runs:
the machine is shared, so absolute numbers are noisy and the interleaved ratios are what
holds. ``--quick``: the test geometry, tiny networks, a few steps, one repeat; the compiled
variants use ``backend="eager"`` (Dynamo tracing only, no Inductor code generation, which
takes tens of seconds per network): their numbers mean nothing, the rows are exercised.

``run.py --only training.speed`` runs these rows alone; ``python -m
benchmarks.training_speed --variants channels_last --repeats 10`` a subset of the variants
with more repeats (``--generation`` adds the P2 generation rows).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

try:
    from .common import (REPO_ROOT, P1Config, Row, Stopwatch, Timings, p1_datamodule,
                         p1_network, progress, state_copy, write_splits)
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import (REPO_ROOT, P1Config, Row, Stopwatch, Timings, p1_datamodule,
                        p1_network, progress, state_copy, write_splits)

#: Adopt a variant when it is at least this much faster (issue 19 item 5, issue 16).
ADOPT_SPEEDUP = 1.3
#: "Equal to rounding": max |Δloss| / |loss| over the steps at most this (float32 arithmetic,
#: a different summation order, amplified by a few Adam steps; a wrong computation differs
#: by O(1)).
LOSS_RTOL = 1e-3

#: (key, compile, channels_last, threads). Eager first: the baseline of every ratio.
VARIANTS = (("eager", False, False, 1), ("compile", True, False, 1),
            ("channels_last", False, True, 1), ("compile_channels_last", True, True, 1),
            ("threads2", False, False, 2))
VARIANT_LABELS = {"eager": "eager (baseline)", "compile": "torch.compile (default mode)",
                  "channels_last": "channels_last (model and inputs)",
                  "compile_channels_last": "torch.compile + channels_last",
                  "threads2": "eager, torch.set_num_threads(2)"}

#: The P1 networks: (row key, model entry of the config; its dataset is the entry's).
P1_NETWORKS = (("param", "p1_s_nd"), ("fourier", "p1_fourier"), ("encdec", "p1_potential"))
#: The P2 diffusion model's entry (architecture, batch, optimizer, diffusion, dropout; its
#: dataset's geometry gives the image size and field points).
P2_MODEL = "p2_ldos"

#: The demo's P2 files the generation rows read (never written).
P2_MODEL_FILE = REPO_ROOT / "results" / "models" / "p2_ldos" / "model.pt"
P2_TRAIN = REPO_ROOT / "results" / "datasets" / "p2_fingerprints" / "p2_fingerprints-train.nc"
P2_VAL = REPO_ROOT / "results" / "datasets" / "p2_fingerprints" / "p2_fingerprints-val.nc"


@dataclass(frozen=True)
class SpeedConfig:
    """Sizes and repeat counts of the speed rows."""

    config_file: str        # networks, batches and geometries from this config
    warmup_steps: int       # W: untimed steps of every run (the compiled runs compile here)
    timed_steps: int        # T
    n_repeats: int          # every repeat runs all variants, order rotating
    n_unique: int = 4       # simulated P1 samples (repeated to fill the batches)
    compile_backend: str = "inductor"   # torch.compile's backend (quick: "eager")
    gen_traces: int = 24    # traces of one batched diffusion generation call
    gen_single: int = 2     # traces generated one per call
    gen_steps: int | None = None    # DDIM steps; None: the model file's (demo: 30)
    gen_repeats: int = 3
    placement_steps: int | None = None  # the placement fit's steps; None: its default (2000)
    variants: tuple = ()    # keys of VARIANTS to run (eager always first); (): all
    generation: bool = True     # also the P2 generation rows
    seed: int = 11

    def selected(self) -> tuple:
        """The VARIANTS this config runs, eager first."""
        keys = set(self.variants) | {"eager"} if self.variants else None
        return tuple(v for v in VARIANTS if keys is None or v[0] in keys)


#: The demo (config/config.yaml): 14.5 min on the 2-core box at load 6–10, ≈ 10 of it the
#: eight Inductor compilations (P2's U-Net ≈ 5.3 + 1.4 min); without the compiled variants
#: ≈ 1 min (``python -m benchmarks.training_speed --variants channels_last``).
SPEED_DEMO = SpeedConfig("config/config.yaml", warmup_steps=2, timed_steps=5, n_repeats=3)
#: --quick: the test config's geometry and tiny networks, backend "eager": seconds.
SPEED_QUICK = SpeedConfig("config/test.yaml", warmup_steps=1, timed_steps=1, n_repeats=1,
                          n_unique=2, compile_backend="eager", gen_traces=2, gen_single=1,
                          gen_steps=2, gen_repeats=1, placement_steps=5)


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


def _load_note(loads) -> str:
    loads = [x for x in loads if not math.isnan(x)]
    if not loads:
        return "load average n/a"
    return (f"load avg (1 min) {statistics.median(loads):.1f} (range {min(loads):.1f} … "
            f"{max(loads):.1f}) on {os.cpu_count()} cores")


# -- the networks and their training steps ----------------------------------------------------

@dataclass
class SpeedNetwork:
    """One network under test: its batches (materialised once, the same for every variant),
    its loss, its optimizer and what the rows say about it."""

    key: str
    label: str
    network: object                 # the eager network (NCHW)
    batches: list                   # (inputs…) tuples, W + T of them
    loss: object                    # loss(net, batch) -> scalar tensor (draws: global RNG)
    optimizer: dict                 # {"name", "learning_rate", ...}
    batch_size: int
    image: str
    channels_last_inputs: object    # batch -> batch in channels_last
    initial_state: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)     # variant -> Timings
    loads: dict = field(default_factory=dict)       # variant -> [load average per run]
    paired: dict = field(default_factory=dict)      # variant -> [speedup per repeat]
    paired_wall: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)      # variant -> [losses of every run]
    compile_s: dict = field(default_factory=dict)   # variant -> (wall, cpu) compile time
    models: dict = field(default_factory=dict)      # variant -> module to call


def _definition(cfg: SpeedConfig, name: str) -> dict:
    """The config entry ``name`` of ``cfg.config_file`` as common.model_definition shapes it
    (one epoch, ram mode, no workers; its own batch size)."""
    from mesoinv.config import load_config

    definition = dict(load_config(REPO_ROOT / cfg.config_file)["models"][name], name=name)
    definition.update(max_epochs=1, max_steps=None, data_mode="ram", num_workers=0)
    return definition


def _p1_splits(cfg: SpeedConfig, tmp: Path, dataset: str, batch: int):
    """Train and val files of ``dataset`` holding (W + T) batches of ``batch``: a few
    simulated samples repeated (common.write_splits)."""
    p1 = P1Config(cfg.config_file, n_unique=cfg.n_unique, batch_size=batch,
                  warmup_steps=cfg.warmup_steps, timed_steps=cfg.timed_steps, n_repeats=1,
                  n_predict=1, seed=cfg.seed)
    progress(f"speed: simulating {cfg.n_unique} samples ({cfg.config_file}, {dataset})")
    directory = tmp / dataset
    directory.mkdir()
    train, val, _ = write_splits(p1, directory, dataset, prefix=f"speed-{dataset}")
    return train, val


def _p1_network(cfg: SpeedConfig, splits, key: str, name: str):
    """A P1 network of the config entry ``name`` and real batches of its targets from
    ``splits`` (train, val), read by its ram data module."""
    import torch

    definition = _definition(cfg, name)
    batch = definition["batch_size"]
    dataset = definition["dataset"]
    train, val = splits
    ram = p1_datamodule(train, val, definition, "ram")
    torch.manual_seed(cfg.seed)
    # ram mode, no mirror augmentation: the loader's batches are what the network sees
    batches = [tuple(b) for _, b in zip(range(cfg.warmup_steps + cfg.timed_steps),
                                        ram.train_dataloader())]
    torch.manual_seed(cfg.seed)
    network = p1_network(definition, ram)
    nx, ny = ram.info.image_shape
    arch = definition["architecture"]

    def loss(net, batch):
        inputs, targets = batch
        return torch.nn.functional.mse_loss(net(inputs), targets)

    def channels_last(batch):
        inputs, targets = batch
        return inputs.contiguous(memory_format=torch.channels_last), targets

    return SpeedNetwork(
        key=key, label=f"{name} ({type(network).__name__}, "
                       f"{sum(p.numel() for p in network.parameters()):,} parameters; "
                       f"architecture {arch})",
        network=network, batches=batches, loss=loss, optimizer=definition["optimizer"],
        batch_size=batch, image=f"{nx} × {ny} sites, {len(ram.field_indices)} channel(s), "
                                f"{dataset}", channels_last_inputs=channels_last)


def _p2_network(cfg: SpeedConfig):
    """The P2 diffusion U-Net of the config's p2_ldos entry on synthetic batches of its
    dataset's shapes (images in [−1, 1], standard-normal traces; a step's cost does not
    depend on the values), with GaussianDiffusion's loss as DiffusionModule computes it."""
    import torch

    from mesoinv.config import load_config
    from mesoinv.datasets import dataset_spec
    from mesoinv.models.gaussian_diffusion import GaussianDiffusion
    from mesoinv.models.p2_unet import ConditionalUNet

    config = load_config(REPO_ROOT / cfg.config_file)
    definition = config["models"][P2_MODEL]
    dataset = definition["dataset"]
    spec = dataset_spec(config, dataset)
    # the data module's image_size: image_x = W + 2 × padding (square with the demo's padding)
    size = spec.geometry.width_sites + 2 * spec.ldos_padding_sites
    n_fields = len(spec.fields_T)
    batch = int(definition["batch_size"])
    diffusion = GaussianDiffusion(**definition["diffusion"])
    dropout = float(definition["condition_dropout"])
    generator = torch.Generator().manual_seed(cfg.seed)
    n = cfg.warmup_steps + cfg.timed_steps
    batches = [(torch.rand(batch, 1, size, size, generator=generator) * 2 - 1,
                torch.randn(batch, n_fields, generator=generator)) for _ in range(n)]
    torch.manual_seed(cfg.seed)
    network = ConditionalUNet(size, 1, n_fields, **definition["architecture"])

    def loss(net, batch):
        image, trace = batch
        t, noise, keep = diffusion.draw_training_inputs(image, dropout)
        return diffusion.loss(net, image, trace, t=t, noise=noise, keep_condition=keep)

    def channels_last(batch):
        image, trace = batch
        return image.contiguous(memory_format=torch.channels_last), trace

    optimizer = dict(definition["optimizer"])
    if optimizer["name"] == "sam":      # SAM's second pass is timed in train.p2.*
        optimizer["name"] = optimizer.get("base", "adam")
    return SpeedNetwork(
        key="p2", label=f"{P2_MODEL} (ConditionalUNet, "
                        f"{sum(p.numel() for p in network.parameters()):,} parameters; "
                        f"{definition['architecture']}; GaussianDiffusion loss, T = "
                        f"{diffusion.num_timesteps}, condition dropout {dropout:g})",
        network=network, batches=batches, loss=loss, optimizer=optimizer, batch_size=batch,
        image=f"{size} × {size} pixels, {n_fields} field points ({dataset}'s shapes, "
              "synthetic values)",
        channels_last_inputs=channels_last)


def _make_optimizer(parameters, config: dict):
    """The entry's optimizer."""
    from mesoinv.training.optimizers import make_optimizer

    return make_optimizer(parameters, config["name"], config["learning_rate"],
                          config.get("weight_decay", 0.0))


def _prepare(net: SpeedNetwork, backend: str, variants) -> None:
    """The module of every variant: the eager network, a channels_last copy, and compiled
    wrappers of both (compilation itself happens at their first call)."""
    import copy

    import torch

    net.initial_state = state_copy(net.network)
    last = copy.deepcopy(net.network).to(memory_format=torch.channels_last)
    for key, compiled, channels_last, _ in variants:
        module = last if channels_last else net.network
        net.models[key] = (torch.compile(module, backend=backend) if compiled else module,
                           module)
        net.timings[key], net.loads[key], net.losses[key] = Timings(), [], []
        net.paired[key], net.paired_wall[key] = [], []


def _run(net: SpeedNetwork, variant, cfg: SpeedConfig):
    """W + T training steps of one variant from the initial weights, on the same batches with
    the same seed: (steady (wall, cpu) per step, first step (wall, cpu), losses)."""
    import torch

    key, _, channels_last, threads = variant
    call, module = net.models[key]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        module.load_state_dict(net.initial_state)   # in place: channels_last strides kept
        module.train()
        optimizer = _make_optimizer(module.parameters(), net.optimizer)
        torch.manual_seed(cfg.seed)                  # the diffusion loss's t / noise draws
        stamps, losses = [], []
        start = (time.perf_counter(), time.process_time())
        for batch in net.batches[:cfg.warmup_steps + cfg.timed_steps]:
            if channels_last:
                batch = net.channels_last_inputs(batch)
            optimizer.zero_grad()
            loss = net.loss(call, batch)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            stamps.append((time.perf_counter(), time.process_time()))
    finally:
        torch.set_num_threads(previous)
    w, t = cfg.warmup_steps, cfg.timed_steps
    steady = ((stamps[w + t - 1][0] - stamps[w - 1][0]) / t,
              (stamps[w + t - 1][1] - stamps[w - 1][1]) / t)
    first = (stamps[0][0] - start[0], stamps[0][1] - start[1])
    return steady, first, losses


def _measure_network(net: SpeedNetwork, cfg: SpeedConfig) -> None:
    """All variants of one network, repeat by repeat, order rotating (A B C D E, B C D E A,
    …), so a burst of load hits every variant alike."""
    variants = cfg.selected()
    firsts = {key: [] for key, *_ in variants}
    for repeat in range(cfg.n_repeats):
        order = variants[repeat % len(variants):] + variants[:repeat % len(variants)]
        progress(f"speed {net.key}: repeat {repeat + 1}/{cfg.n_repeats} "
                 f"({', '.join(v[0] for v in order)})")
        for variant in order:
            key = variant[0]
            load = load_average()
            (wall, cpu), first, losses = _run(net, variant, cfg)
            net.timings[key].add(wall, cpu)
            net.loads[key].append(0.5 * (load + load_average()))
            net.losses[key].append(losses)
            firsts[key].append(first)
        base = net.timings["eager"]
        for key, _, _, threads in variants[1:]:
            t = net.timings[key]
            net.paired_wall[key].append(base.wall[-1] / t.wall[-1])
            net.paired[key].append(base.cpus[-1] / t.cpus[-1] if threads == 1
                                   else base.wall[-1] / t.wall[-1])
    for key, compiled, *_ in variants:
        if compiled:
            wall, cpu = firsts[key][0]
            net.compile_s[key] = (wall - net.timings[key].median,
                                  cpu - net.timings[key].cpu_median)


def _loss_check(net: SpeedNetwork, key: str):
    """(max |Δloss|, max relative, first-step |Δloss|, eager's and this variant's last
    losses) against eager, over every repeat."""
    diffs, rel, first = [], [], []
    for mine, base in zip(net.losses[key], net.losses["eager"]):
        d = [abs(a - b) for a, b in zip(mine, base)]
        diffs.append(max(d))
        rel.append(max(x / max(abs(b), 1e-30) for x, b in zip(d, base)))
        first.append(d[0])
    return (max(diffs), max(rel), max(first), net.losses["eager"][0][-1],
            net.losses[key][0][-1])


def _network_rows(net: SpeedNetwork, cfg: SpeedConfig) -> list[Row]:
    k = f"train.speed.{net.key}"
    steps = cfg.warmup_steps + cfg.timed_steps
    rows = [Row(f"{k}.config", f"speed: {net.label}: batch size", net.batch_size, "samples",
                note=f"{net.image}; optimizer {net.optimizer['name']} lr "
                     f"{net.optimizer['learning_rate']:g}; plain loop, {steps} steps per run "
                     f"(W {cfg.warmup_steps} + T {cfg.timed_steps}), {cfg.n_repeats} "
                     "repeats of all variants, order rotating")]
    variants = cfg.selected()
    for key, compiled, channels_last, threads in variants:
        t = net.timings[key]
        rows.append(Row(
            f"{k}.{key}.rate", f"speed {net.key}: {VARIANT_LABELS[key]}: training steps per "
            "second", 1.0 / t.median, "steps/s", minimum=None, cpu=1.0 / t.cpu_median,
            n=len(t.wall),
            note=f"{1e3 * t.median:.1f} ms wall, {1e3 * t.cpu_median:.1f} ms CPU per step "
                 f"(median); {net.batch_size / t.median:.1f} samples/s; "
                 f"{_load_note(net.loads[key])}"))
    for key, compiled, channels_last, threads in variants[1:]:
        paired, wall = net.paired[key], net.paired_wall[key]
        value = statistics.median(paired)
        dmax, drel, dfirst, last_eager, last_mine = _loss_check(net, key)
        equal = drel <= LOSS_RTOL
        what = "CPU-time" if threads == 1 else "wall-clock"
        other = (f"; wall-clock {statistics.median(wall):.2f} (range {min(wall):.2f} … "
                 f"{max(wall):.2f})" if threads == 1 else "")
        rows.append(Row(
            f"{k}.{key}.speedup", f"speed {net.key}: {VARIANT_LABELS[key]} over eager "
            "(time per step eager / variant)", value, "×",
            target=f"≥ {ADOPT_SPEEDUP:g}× and equal losses", passed=value >= ADOPT_SPEEDUP
            and equal,
            note=f"median of {len(paired)} per-repeat {what} ratios (range {min(paired):.2f} "
                 f"… {max(paired):.2f}){other}; losses "
                 f"{'equal to rounding' if equal else 'DIFFER'}; "
                 f"{_load_note(net.loads[key] + net.loads['eager'])}"))
        rows.append(Row(
            f"{k}.{key}.dloss", f"speed {net.key}: {VARIANT_LABELS[key]}: max |loss − loss "
            f"eager| over {steps} steps", dmax, "1",
            note=f"relative {drel:.1e} (≤ {LOSS_RTOL:g}: equal to rounding); first step "
                 f"{dfirst:.1e}; loss after step {steps}: {last_mine:.6g} (eager "
                 f"{last_eager:.6g})"))
    for key, compiled, *_ in variants:
        if compiled:
            wall, cpu = net.compile_s[key]
            rows.append(Row(
                f"{k}.{key}.compile_s", f"speed {net.key}: {VARIANT_LABELS[key]}: compile "
                "time (first step − a steady step)", wall, "s", cpu=cpu, n=1,
                note=f"backend {cfg.compile_backend}; Inductor cache: a fresh directory for "
                     "the run (the second compile of a network reuses kernels of the first); "
                     "CPU column: this process only (not the compile workers); = "
                     f"{wall / net.timings[key].median:,.0f} steady steps"))
    return rows


# -- P2 generation per trace ------------------------------------------------------------------

def _generation(cfg: SpeedConfig):
    """The three predictors of the P2 evaluation on the demo's val traces, interleaved."""
    import numpy as np
    import torch

    from mesoinv.evaluation.p2_generation.baselines import (NearestTraceLookup,
                                                            nearest_training_traces)
    from mesoinv.evaluation.p2_generation.placement_baseline import (
        PlacementBaselineOptions, fit_placement_baseline, predict_placements)
    from mesoinv.inference.antidot_detector import read_geometry
    from mesoinv.inference.p2_generate import (generate_images, load_diffusion_model,
                                               resolve_sampling)
    from mesoinv.inference.traces import read_sample_ids
    from mesoinv.training.p2_readers import read_traces

    missing = [p for p in (P2_MODEL_FILE, P2_TRAIN, P2_VAL) if not p.is_file()]
    if missing:
        return SimpleNamespace(missing=[str(p.relative_to(REPO_ROOT)) for p in missing])
    model = load_diffusion_model(P2_MODEL_FILE)
    options = resolve_sampling(model, steps=cfg.gen_steps)
    traces = read_traces(P2_VAL)
    ids = read_sample_ids(P2_VAL)
    train_traces = read_traces(P2_TRAIN)
    geometry, _, _ = read_geometry(P2_TRAIN)
    placement_options = (PlacementBaselineOptions() if cfg.placement_steps is None
                         else PlacementBaselineOptions(steps=cfg.placement_steps))
    progress(f"p2gen: fitting the direct placement model ({placement_options.steps} steps)")
    fit = Timings()
    load_fit = [load_average()]
    with Stopwatch() as sw:
        fitted = fit_placement_baseline(P2_TRAIN, geometry, placement_options)
    fit.add_watch(sw)
    load_fit.append(load_average())
    n_all, n_gen, n_single = len(traces), min(cfg.gen_traces, len(traces)), \
        min(cfg.gen_single, len(traces))
    t = {name: Timings() for name in ("nn_lookup", "nn_search", "placement_predict",
                                      "diffusion", "diffusion_single")}
    loads = {name: [] for name in t}
    checks = {}
    for repeat in range(cfg.gen_repeats):
        progress(f"p2gen: repeat {repeat + 1}/{cfg.gen_repeats} (1-NN, placement, diffusion "
                 f"{options.sampler} {options.steps} steps × {n_gen} traces batched, "
                 f"{n_single} alone)")
        load = load_average()
        with Stopwatch() as sw:
            lookup = NearestTraceLookup.from_training_split(P2_TRAIN, traces)
        t["nn_lookup"].add(sw.seconds / n_all, sw.cpu_seconds / n_all)
        with Stopwatch() as sw:
            rows, _ = nearest_training_traces(train_traces, traces)
        t["nn_search"].add(sw.seconds / n_all, sw.cpu_seconds / n_all)
        with Stopwatch() as sw:
            placements = predict_placements(fitted, traces)
        t["placement_predict"].add(sw.seconds / n_all, sw.cpu_seconds / n_all)
        with Stopwatch() as sw:
            images = generate_images(model, traces[:n_gen], ids[:n_gen], options)
        t["diffusion"].add(sw.seconds / n_gen, sw.cpu_seconds / n_gen)
        with Stopwatch() as sw:
            generate_images(model, traces[:n_single], ids[:n_single], options,
                            batch_images=options.samples_per_trace)
        t["diffusion_single"].add(sw.seconds / n_single, sw.cpu_seconds / n_single)
        load = 0.5 * (load + load_average())
        for name in loads:
            loads[name].append(load)
        checks = {"lookup_rows_equal": bool(np.array_equal(lookup.rows, rows)),
                  "placements_shape": placements.shape, "images_shape": images.shape,
                  "finite": bool(np.isfinite(images).all() and np.isfinite(placements).all())}
    return SimpleNamespace(missing=[], t=t, loads=loads, fit=fit, load_fit=load_fit,
                           options=options, n_all=n_all, n_gen=n_gen, n_single=n_single,
                           n_train=len(train_traces), placement_options=placement_options,
                           final_loss=fitted.final_loss, checks=checks,
                           threads=torch.get_num_threads())


def _generation_rows(g) -> list[Row]:
    k = "train.p2gen"
    keys = ("nn_lookup", "nn_search", "placement_predict", "placement_fit", "diffusion",
            "diffusion_single", "ratio.diffusion_over_nn", "ratio.diffusion_over_placement")
    if g.missing:
        why = f"not measured: {', '.join(g.missing)} missing (run the demo)"
        return [Row(f"{k}.{key}", f"P2 generation: {key}", math.nan, "s", note=why)
                for key in keys]
    t, o = g.t, g.options
    sampler = (f"{o.sampler.upper()} {o.steps} steps, γ = {o.guidance_scale:g} "
               f"({'two network passes per step, one batch' if o.guidance_scale not in (0, 1) else 'one pass per step'}), "
               f"{o.samples_per_trace} images per trace")
    rows = [
        t["nn_lookup"].row(f"{k}.nn_lookup", "P2 generation: 1-NN lookup "
                           "(NearestTraceLookup.from_training_split), per trace",
                           note=f"{g.n_all} val traces against {g.n_train} training traces: "
                                "read the train split, search, load the answers' LDOS; "
                                + _load_note(g.loads["nn_lookup"])),
        t["nn_search"].row(f"{k}.nn_search", "P2 generation: 1-NN search alone "
                           "(nearest_training_traces, traces in memory), per trace",
                           note=_load_note(g.loads["nn_search"])),
        t["placement_predict"].row(f"{k}.placement_predict", "P2 generation: direct placement "
                                   "model, predict_placements, per trace",
                                   note=f"{g.n_all} traces in one call; "
                                        + _load_note(g.loads["placement_predict"])),
        g.fit.row(f"{k}.placement_fit", "P2 generation: direct placement model, "
                  "fit_placement_baseline (once)",
                  note=f"{g.placement_options.steps} steps, batch "
                       f"{g.placement_options.batch_size}, on {g.n_train} training traces; "
                       f"final loss {g.final_loss:.3g}; {_load_note(g.load_fit)}"),
        t["diffusion"].row(f"{k}.diffusion", "P2 generation: diffusion model, "
                           "generate_images (batched as mesoinv predict), per trace",
                           note=f"{sampler}; {g.n_gen} traces per call; model file build "
                                f"included; {_load_note(g.loads['diffusion'])}"),
        t["diffusion_single"].row(f"{k}.diffusion_single", "P2 generation: diffusion model, "
                                  "one trace per call, per trace",
                                  note=f"{sampler}; {g.n_single} call(s); "
                                       + _load_note(g.loads["diffusion_single"])),
    ]
    for key, other, label in (("diffusion_over_nn", "nn_lookup", "the 1-NN lookup"),
                              ("diffusion_over_placement", "placement_predict",
                               "the placement model's predict")):
        paired = [a / b for a, b in zip(t["diffusion"].cpus, t[other].cpus)]
        rows.append(Row(f"{k}.ratio.{key}", f"P2 generation: diffusion (batched) / {label}, "
                        "time per trace", statistics.median(paired), "×",
                        note=f"median of {len(paired)} per-repeat CPU ratios (range "
                             f"{min(paired):.3g} … {max(paired):.3g})"))
    return rows


# -- entry point ------------------------------------------------------------------------------

def measure(cfg: SpeedConfig):
    """Every speed timing: the four networks (one after the other, each with its variants
    interleaved), then P2 generation. Inductor compiles into a fresh cache directory for the
    run (the first compile is cold), removed afterwards."""
    import torch

    cache_names = ("TORCHINDUCTOR_CACHE_DIR",)
    saved = {name: os.environ.get(name) for name in cache_names}
    with tempfile.TemporaryDirectory(prefix="mesoinv-bench-speed-") as tmp:
        tmp = Path(tmp)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor-cache")
        try:
            networks, splits = [], {}
            definitions = {name: _definition(cfg, name) for _, name in P1_NETWORKS}
            for key, name in P1_NETWORKS:
                dataset = definitions[name]["dataset"]
                if dataset not in splits:    # one pair of files per dataset, largest batch
                    batch = max(d["batch_size"] for d in definitions.values()
                                if d["dataset"] == dataset)
                    splits[dataset] = _p1_splits(cfg, tmp, dataset, batch)
                networks.append(_p1_network(cfg, splits[dataset], key, name))
            networks.append(_p2_network(cfg))
            for net in networks:
                _prepare(net, cfg.compile_backend, cfg.selected())
                _measure_network(net, cfg)
                net.models.clear()
                torch._dynamo.reset()
            generation = _generation(cfg) if cfg.generation else None
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return SimpleNamespace(cfg=cfg, networks=networks, generation=generation)


def rows(m) -> list[Row]:
    result: list[Row] = []
    for net in m.networks:
        result += _network_rows(net, m.cfg)
    return result + (_generation_rows(m.generation) if m.generation is not None else [])


def main(argv=None) -> int:
    """A subset of the speed rows with more repeats, e.g. a confirmation of one variant:
    ``python -m benchmarks.training_speed --variants channels_last --repeats 10``."""
    import argparse
    from dataclasses import replace

    try:
        from .common import table_markdown
        from .training import group_settings
    except ImportError:  # pragma: no cover
        from common import table_markdown
        from training import group_settings

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--variants", default="",
                        help="comma-separated variants besides eager (default: all): "
                             + ", ".join(v[0] for v in VARIANTS[1:]))
    parser.add_argument("--repeats", type=int, default=SPEED_DEMO.n_repeats)
    parser.add_argument("--generation", action="store_true", help="also the P2 generation rows")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = set(variants) - {v[0] for v in VARIANTS}
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}")
    cfg = replace(SPEED_QUICK if args.quick else SPEED_DEMO, n_repeats=args.repeats,
                  variants=variants, generation=args.generation)
    start = time.perf_counter()
    with group_settings():
        table = table_markdown(rows(measure(cfg)))
    print(table)
    print(f"{time.perf_counter() - start:.0f} s; load average at the end "
          f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "1")    # as run.py, before torch is imported
    sys.exit(main())
