"""Training group, P1 parameter CNN: the demo's ``p1_s_nd`` under Lightning vs a plain PyTorch
loop, the data loaders, and prediction.

Rows (keys are stable; docs/benchmarks.md says what each means):

* ``train.config.*``       the problem: image size, parameters, batch, threads, samples.
* ``train.a.lightning``    ``Trainer.fit`` of ``RegressionModule(ParameterCNN)`` (ram mode,
                           logger, checkpoints and progress bar off), steady-state seconds per
                           optimizer step (timed from the end of warm-up step W to the end of
                           step W + T by a callback: start-up excluded).
* ``train.b.plain``        the same network (same initial weights), the same DataLoader (same
                           seed, so the same batches), Adam, MSE: a plain
                           ``zero_grad/forward/backward/step`` loop, timed the same way.
* ``train.e.train_model``  ``mesoinv.training.train_p1.train_model`` (the production path: CSV
                           logger, checkpoint callbacks, progress log, mirror augmentation),
                           steady-state seconds per step, timed by an extra callback.
* ``train.*_rate``         the same as samples/s.
* ``train.ratio.overhead`` Lightning over plain, in %: the median over repeats of the
                           per-repeat CPU-time ratio (both loops back to back, order
                           alternating); target ≤ 5 %.
* ``train.f.*``            both loops again with a one-layer network (Flatten + Linear): the
                           loops' own cost per step, and Lightning's fixed cost in ms.
* ``train.check.same_losses``  max |loss_Lightning − loss_plain| over the steps of a repeat:
                           0 when both loops really saw the same batches from the same start.
* ``train.c.<mode>``       the train DataLoader alone, per batch, in each data mode (stream
                           with 0 and 1 workers, ram, device; device includes the gather in
                           ``on_after_batch_transfer``); ``train.ratio.loader_<mode>`` its
                           throughput over the training throughput (target ≥ 3×).
* ``train.d.*``            prediction: ``predict_images`` per map (batch 1 on purpose),
                           ``predict_dataset`` per map (whole command on a file), and a plain
                           batch-32 forward pass per map for comparison.
* ``train.paper.*``        the same at P1's 256 × 192 sites (fewer steps).

Training runs, loaders and prediction are interleaved repeat by repeat, so machine load hits
them alike (and ``measure``'s companions, the P1 potential models, run in the same repeats).
Input data: PLDOS maps simulated by ``P1Simulator`` (a few distinct samples, repeated with
distinct ids to fill the split; the training throughput does not depend on the values) written
by ``write_p1_netcdf`` in the exact split format.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

try:
    from .common import (LOADER_MODES, LoopComparison, P1Config, Row, Stopwatch, Timings,
                         alternating, lightning_run, model_definition, overhead_row,
                         p1_datamodule, p1_model_file, p1_network, plain_run,
                         progress, rate_row, ratio_row, state_copy, steady_state, step_clock,
                         write_splits)
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import (LOADER_MODES, LoopComparison, P1Config, Row, Stopwatch, Timings,
                        alternating, lightning_run, model_definition, overhead_row,
                        p1_datamodule, p1_model_file, p1_network, plain_run,
                        progress, rate_row, ratio_row, state_copy, steady_state, step_clock,
                        write_splits)

#: Target from the issue: loader throughput over training throughput.
TARGET_LOADER_OVER_TRAINING = 3.0

#: The model every row trains: the demo's p1_s_nd (P1 Fig. 9 CNN, Adam 1e-3, MSE).
MODEL_NAME = "p1_s_nd"

#: The demo's geometry (config/config.yaml: 64 × 48 sites). ≈ 1.7 min on the 2-core box for
#: the ParameterCNN rows; the potential models add ≈ 2–3 min (≈ 6 min in all, loaded box).
DEMO = P1Config("config/config.yaml", n_unique=32, batch_size=32, warmup_steps=5,
                timed_steps=24, n_repeats=9, n_predict=160, potential_models=True)
#: P1's geometry (config/paper.yaml: 256 × 192 sites), one line of each kind. ≈ 1.2 min.
PAPER = P1Config("config/paper.yaml", n_unique=4, batch_size=32, warmup_steps=1,
                 timed_steps=4, n_repeats=3, n_predict=24, loader_modes=("stream0", "ram"),
                 train_model=False, fixed_cost=False)
#: --quick: the test config's 40 × 30 sites, a few steps, one repeat.
QUICK = P1Config("config/test.yaml", n_unique=2, batch_size=8, warmup_steps=1, timed_steps=2,
                 n_repeats=1, n_predict=4, potential_models=True, potential_batch=8)
QUICK_PAPER = P1Config("config/test.yaml", n_unique=2, batch_size=8, warmup_steps=1,
                       timed_steps=1, n_repeats=1, n_predict=2,
                       loader_modes=("stream0", "ram"), train_model=False,
                       fixed_cost=False)


# -- timed paths ------------------------------------------------------------------------------

def _train_model_run(cfg, train, val, definition, state_root):
    """train_model as the workflow calls it; (steady-state step (wall, cpu), whole call)."""
    from mesoinv.training.train_p1 import train_model

    clock = step_clock()
    with Stopwatch() as whole:
        train_model(definition, train_path=train, val_path=val,
                    output=Path(state_root) / "model.pt", state_root=state_root,
                    progress=False, threads=1, extra_callbacks=[clock])
    return steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), whole


def _loader_pass(loader, datamodule):
    """(wall, cpu) seconds per batch over one epoch, after 2 untimed batches (worker start-up,
    first prefetch; 1 for a loader of at most 3 batches)."""
    skip = 2 if len(loader) > 3 else 1
    iterator = iter(loader)
    for _ in range(skip):
        datamodule.on_after_batch_transfer(next(iterator), 0)
    count = 0
    with Stopwatch() as sw:
        for batch in iterator:
            datamodule.on_after_batch_transfer(batch, 0)
            count += 1
    return sw.seconds / count, sw.cpu_seconds / count


def _predict_timings(model, maps, model_path, val_path, out_dir, repeat, batch_size):
    """(predict_images, predict_dataset, batched forward) per map for one repeat."""
    import numpy as np
    import torch

    from mesoinv.inference.p1_predict import predict_dataset, predict_images
    from mesoinv.training.normalization import ImageNormalization

    with Stopwatch() as images_sw:
        predict_images(model, maps)
    with Stopwatch() as dataset_sw:
        predict_dataset(model_path, val_path, out_dir / f"pred-{repeat}.nc")
    network = model.build_network()
    normalization = ImageNormalization.from_dict(model.input_normalization)
    stacked = torch.from_numpy(normalization(np.stack(maps)))
    with torch.no_grad(), Stopwatch() as batch_sw:
        for start in range(0, len(stacked), batch_size):
            network(stacked[start:start + batch_size])
    return images_sw, dataset_sw, batch_sw


# -- one geometry -----------------------------------------------------------------------------

def measure(cfg: P1Config, tmp: Path, tag: str, companions=()):
    """Every timing of one geometry; returns a namespace of Timings and facts.

    ``companions``: objects measured in the same repeats, so the machine's load hits all
    alike: ``companion.setup(cfg, tmp, tag)`` runs once after this geometry's set-up,
    ``companion.measure_repeat(cfg, repeat, tmp)`` at the end of every repeat (the P1
    potential models, ``training_p1_potential.PotentialModels``).
    """
    import torch

    from mesoinv.training.p1_data import iter_images

    definition = model_definition(cfg.batch_size, MODEL_NAME)
    progress(f"{tag}: simulating {cfg.n_unique} samples ({cfg.config_file}) and writing the "
             "splits")
    train, val, spec = write_splits(cfg, tmp)
    ram = p1_datamodule(train, val, definition, "ram")
    image_shape = ram.info.image_shape
    in_channels = len(ram.field_indices)
    torch.manual_seed(cfg.seed)
    network = p1_network(definition, ram)
    initial_state = state_copy(network)

    loaders = {}
    for name, mode, workers in LOADER_MODES:
        if name in cfg.loader_modes:
            module = p1_datamodule(train, val, definition, mode, workers)
            module.trainer = SimpleNamespace(training=True, world_size=1)  # a 1-rank fit
            loaders[name] = (module, module.train_dataloader())

    maps = list(iter_images(val, ram.val_field_indices))
    maps = (maps * (cfg.n_predict // len(maps) + 1))[:cfg.n_predict]
    model_path = tmp / "model.pt"
    model = p1_model_file(model_path, network, ram, definition)
    n_val = ram.val_info.n_samples

    loops, production, whole_calls = LoopComparison(), Timings(), Timings()
    tiny_lightning, tiny_plain = Timings(), Timings()
    if cfg.fixed_cost:
        # A network that costs nothing (one linear layer): what is left is the per-step cost
        # of the loop itself, Lightning's or the plain one.
        torch.manual_seed(cfg.seed)
        tiny = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(
            in_channels * image_shape[0] * image_shape[1], len(definition["targets"])))
        tiny_state = state_copy(tiny)
    loader_t = {name: Timings() for name in loaders}
    pred_images, pred_dataset, pred_batch = Timings(), Timings(), Timings()
    for companion in companions:
        companion.setup(cfg, tmp, tag)
    paired_production = []
    for repeat in range(cfg.n_repeats):
        progress(f"{tag}: repeat {repeat + 1}/{cfg.n_repeats}")
        # Alternate which loop goes first, so a trend in the machine's load favours neither.
        order = alternating(repeat, "lightning", "plain")
        cpu_p = loops.measure(cfg, ram, network, initial_state, definition, order)
        if cfg.fixed_cost:
            for which in order:
                if which == "lightning":
                    tiny_lightning.add(*lightning_run(cfg, ram, tiny, tiny_state,
                                                      definition)[0])
                else:
                    tiny_plain.add(*plain_run(cfg, ram, tiny, tiny_state, definition)[0])
        if cfg.train_model:
            (wall, cpu), whole = _train_model_run(cfg, train, val, definition,
                                                  tmp / f"state-{repeat}")
            production.add(wall, cpu)
            paired_production.append(cpu / cpu_p)
            whole_calls.add_watch(whole)
        for name, (module, loader) in loaders.items():
            loader_t[name].add(*_loader_pass(loader, module))
        sw_images, sw_dataset, sw_batch = _predict_timings(
            model, maps, model_path, val, tmp, repeat, cfg.batch_size)
        pred_images.add(sw_images.seconds / len(maps), sw_images.cpu_seconds / len(maps))
        pred_dataset.add(sw_dataset.seconds / n_val, sw_dataset.cpu_seconds / n_val)
        pred_batch.add(sw_batch.seconds / len(maps), sw_batch.cpu_seconds / len(maps))
        # The companions in the same repeat, so the machine's load hits all alike.
        for companion in companions:
            companion.measure_repeat(cfg, repeat, tmp)
    return SimpleNamespace(
        cfg=cfg, image_shape=image_shape, in_channels=in_channels,
        parameters=sum(p.numel() for p in network.parameters()),
        n_train=ram.info.n_samples, n_val=n_val, lightning=loops.lightning, plain=loops.plain,
        paired=loops.paired, paired_production=paired_production,
        tiny_lightning=tiny_lightning, tiny_plain=tiny_plain,
        production=production, whole_calls=whole_calls, loaders=loader_t,
        pred_images=pred_images, pred_dataset=pred_dataset, pred_batch=pred_batch,
        loss_diff=max(loops.loss_diffs), n_maps=len(maps), fields=list(spec.magnetic_fields_T))


# -- rows -------------------------------------------------------------------------------------

def _loader_ratio(key, label, training: Timings, loader: Timings, workers: int) -> Row:
    if workers == 0:
        return ratio_row(key, label, training, loader, target_min=TARGET_LOADER_OVER_TRAINING,
                         note="loader throughput / training throughput")
    # With a worker process the batches are made outside this process: its CPU time says
    # nothing; the wall-clock rate is the throughput.
    value = training.median / loader.median
    return Row(key, label, value, "×", target=f"≥ {TARGET_LOADER_OVER_TRAINING:g}×",
               passed=value >= TARGET_LOADER_OVER_TRAINING,
               note="wall-clock medians (the worker's CPU time is not this process's)")


def rows(m, prefix: str, paper: bool) -> list[Row]:
    """The rows of one geometry measured by ``measure`` (``<prefix>.*``); ``paper``: the
    short form (one config row)."""
    cfg = m.cfg
    nx, ny = m.image_shape
    batch = cfg.batch_size
    result: list[Row] = []
    if not paper:
        import pytorch_lightning as pl
        import torch

        result += [
            Row(f"{prefix}.config.image", f"input image {nx} × {ny} sites, {m.in_channels} "
                f"channel(s) (fields {m.fields} T in the file)", nx * ny, "sites"),
            Row(f"{prefix}.config.parameters", "ParameterCNN parameters (conv 16/32/64, dense "
                "128/64: the demo's p1_s_nd)", m.parameters, "parameters"),
            Row(f"{prefix}.config.batch", "batch size (all ParameterCNN paths)", batch, "samples"),
            Row(f"{prefix}.config.threads", "torch intra-op threads", torch.get_num_threads(),
                "threads", note=f"torch {torch.__version__}, pytorch-lightning "
                                f"{pl.__version__}"),
            Row(f"{prefix}.config.steps", "optimizer steps per run: warm-up + timed",
                cfg.warmup_steps + cfg.timed_steps, "steps",
                note=f"{cfg.warmup_steps} + {cfg.timed_steps}; train split {m.n_train} "
                     f"samples = one epoch"),
        ]
    else:
        result.append(Row(f"{prefix}.config.image", f"input image {nx} × {ny} sites (paper)",
                        nx * ny, "sites", note=f"steps {cfg.warmup_steps} + "
                                               f"{cfg.timed_steps}, batch {batch}"))
    result += [
        m.lightning.row(f"{prefix}.a.lightning", "(a) Lightning Trainer.fit, RegressionModule, "
                        "ram mode: per step", note="steady state; logger, checkpoints, "
                                                   "progress bar off"),
        m.plain.row(f"{prefix}.b.plain", "(b) plain loop: zero_grad, forward, MSE, backward, "
                    "Adam step: per step", note="same initial weights, same DataLoader"),
    ]
    if m.production.wall:
        result.append(m.production.row(
            f"{prefix}.e.train_model", "(e) train_model (production path), per step",
            note=f"CSV logger, checkpoint callbacks, mirror augmentation; whole call "
                 f"{m.whole_calls.median:.1f} s for {m.n_train} samples + validation"))
    result += [
        rate_row(f"{prefix}.a.lightning_rate", "(a) Lightning training throughput",
                 m.lightning, batch, "samples/s"),
        rate_row(f"{prefix}.b.plain_rate", "(b) plain-loop training throughput", m.plain,
                 batch, "samples/s"),
    ]
    if m.production.wall:
        result.append(rate_row(f"{prefix}.e.train_model_rate",
                             "(e) train_model training throughput", m.production, batch,
                             "samples/s"))
    result.append(overhead_row(f"{prefix}.ratio.overhead", "(a) / (b) − 1: Lightning's "
                             "overhead per step", m.lightning, m.plain, m.paired))
    if m.production.wall:
        result.append(overhead_row(f"{prefix}.ratio.train_model_overhead",
                                 "(e) / (b) − 1: the production path's overhead",
                                 m.production, m.plain, m.paired_production,
                                 target=False))
    if m.tiny_lightning.wall:
        fixed_ms = 1e3 * (m.tiny_lightning.cpu_median - m.tiny_plain.cpu_median)
        result += [
            m.tiny_lightning.row(f"{prefix}.f.lightning_tiny", "(f) as (a) with a one-layer "
                                 "network (Flatten + Linear): per step",
                                 note="the loop's own cost"),
            m.tiny_plain.row(f"{prefix}.f.plain_tiny", "(f') as (b) with the same one-layer "
                             "network: per step"),
            Row(f"{prefix}.f.fixed_cost", "(f) − (f'): Lightning's fixed cost per step",
                fixed_ms, "ms",
                note=f"CPU medians; wall-clock "
                     f"{1e3 * (m.tiny_lightning.median - m.tiny_plain.median):+.2f} ms; "
                     f"= {100 * fixed_ms / 1e3 / m.plain.cpu_median:.1f} % of a (b) step"),
        ]
    result.append(Row(f"{prefix}.check.same_losses", "max |loss (a) − loss (b)| over the steps "
                    "of a repeat", m.loss_diff, "1",
                    note="0: same batches, same start, same arithmetic"))
    workers = {name: w for name, _, w in LOADER_MODES}
    labels = {"stream0": "stream, 0 workers", "stream1": "stream, 1 worker", "ram": "ram",
              "device": "device (host memory here; gather in on_after_batch_transfer)"}
    for name, timings in m.loaders.items():
        result.append(timings.row(f"{prefix}.c.{name}", f"(c) train loader alone, "
                                f"{labels[name]}: per batch",
                                note=f"{batch / timings.median:,.0f} samples/s"))
    for name, timings in m.loaders.items():
        result.append(_loader_ratio(f"{prefix}.ratio.loader_{name}",
                                  f"(c {name}) / (a): loader over training throughput",
                                  m.lightning, timings, workers[name]))
    result += [
        m.pred_images.row(f"{prefix}.d.predict_images", "(d) predict_images, per map (batch 1)",
                          note=f"{1 / m.pred_images.median:,.0f} maps/s; {m.n_maps} maps per "
                               "call, network build included"),
        rate_row(f"{prefix}.d.predict_rate", "(d) predict_images throughput", m.pred_images,
                 1, "maps/s"),
        m.pred_dataset.row(f"{prefix}.d.predict_dataset", "(d') predict_dataset on a split "
                           "file, per map", note=f"{m.n_val} maps: load model, read, predict, "
                                                 "write netCDF"),
        m.pred_batch.row(f"{prefix}.d.forward_batch", f"(d'') network forward, batches of "
                         f"{batch}, per map", note="what batch 1 gives up"),
    ]
    return result
