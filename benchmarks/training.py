"""Benchmark group "training": the P1 CNN under Lightning vs a plain PyTorch loop, the data
loaders, and prediction.

Rows (keys are stable; docs/benchmarks.md says what each means):

* ``train.config.*``       the problem: image size, parameters, batch, threads, samples.
* ``train.a.lightning``    ``Trainer.fit`` of ``RegressionModule(ParameterCNN)`` (ram mode,
                           logger, checkpoints and progress bar off), steady-state seconds per
                           optimizer step (timed from the end of warm-up step W to the end of
                           step W + T by a callback: start-up excluded).
* ``train.b.plain``        the same network (same initial weights), the same DataLoader (same
                           seed, so the same batches), Adam, MSE: a plain
                           ``zero_grad/forward/backward/step`` loop, timed the same way.
* ``train.e.train_model``  ``mesoinv.training.train.train_model`` (the production path: CSV
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
* ``train.p2.*``           P2's conditional diffusion U-Net (``ConditionalUNet``, the "small"
                           demo size at 60 × 60, 50 field points) on synthetic batches:
                           ``a.sam`` / ``a.adam`` steady-state seconds per step of
                           ``Trainer.fit(DiffusionModule)`` (manual optimization) with SAM
                           (two forward/backward passes) and with Adam, same batches, same
                           initial weights, same t/noise draws; ``*_rate`` as steps/s;
                           ``ratio.sam_over_adam`` the median of per-repeat CPU ratios;
                           ``check.same_first_loss`` 0 when both runs started alike;
                           ``s.ddpm`` / ``s.ddim`` seconds per generated image of
                           ``GaussianDiffusion.sample`` (DDPM all 1000 steps, DDIM 50 steps,
                           γ = 1: one network pass per step), a batch of a few images timed
                           and divided; ``ratio.ddpm_over_ddim`` the median of per-repeat
                           CPU ratios.
* ``train.<m>.*``          the two P1 potential models, ``m`` = ``fourier`` (the demo's
                           ``p1_fourier``: ``FourierCNN``, 2 N standardised coefficients) and
                           ``encdec`` (``p1_potential``: ``EncoderDecoder``, min-max V image),
                           on the demo geometry with a fixed s (``p1_fixed``), at each model's
                           own batch size: ``a``/``b``/``ratio.overhead``/``check`` as above
                           (Lightning vs the plain loop, same batches, same start);
                           ``d.predict_images`` (network output per map: coefficients or V);
                           for ``fourier`` also ``d.rebuild`` (Eq. (1) of the predicted
                           coefficients on the grid, ``FourierTargets.potential_meV``),
                           ``d.predict_potential`` (both: V(x, y) in meV, what ``mesoinv
                           predict`` computes) and ``d.rebuild_share``; ``d.predict_dataset``
                           (the whole command on the val split, netCDF written).

The P2 rows run after the P1 rows, in their own repeats (SAM and Adam back to back, order
alternating; DDPM and DDIM back to back, order alternating), on random images and traces of
the right shapes generated here (the cost of a step does not depend on the values).

Training runs, loaders and prediction are interleaved repeat by repeat, so machine load hits
them alike. Input data: PLDOS maps simulated by ``P1Simulator`` (a few distinct samples,
repeated with distinct ids to fill the split; the training throughput does not depend on the
values) written by ``write_p1_netcdf`` in the exact split format; for the potential models a
second pair of splits from the config's ``p1_fixed`` (one dopant distance, as Eq. (1)'s rebuild
needs), with the true coefficients, modes and potentials the targets are read from.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

try:
    from .common import REPO_ROOT, Row, Stopwatch, Timings, ratio_row
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import REPO_ROOT, Row, Stopwatch, Timings, ratio_row

#: Targets from the issue.
TARGET_OVERHEAD_PERCENT = 5.0
TARGET_LOADER_OVER_TRAINING = 3.0

#: The model every row trains: the demo's p1_s_nd (P1 Fig. 9 CNN, Adam 1e-3, MSE).
MODEL_CONFIG = "config/config.yaml"
MODEL_NAME = "p1_s_nd"

#: The P1 potential models (P1 Sec. IV): (row key, entry of MODEL_CONFIG); their dataset.
POTENTIAL_MODELS = (("fourier", "p1_fourier"), ("encdec", "p1_potential"))
POTENTIAL_DATASET = "p1_fixed"

LOADER_MODES = (("stream0", "stream", 0), ("stream1", "stream", 1), ("ram", "ram", 0),
                ("device", "device", 0))


@dataclass(frozen=True)
class Config:
    """Problem size and repeat counts of one part of a run."""

    config_file: str     # P1 dataset spec (geometry, fields) from this config's p1_varying
    n_unique: int        # distinct simulated samples, repeated to fill the split
    batch_size: int
    warmup_steps: int    # W: untimed steps at the start of every training run
    timed_steps: int     # T: timed steps after warm-up (train split = (W + T) batches)
    n_repeats: int       # interleaved repeats of every path
    n_predict: int       # maps per predict repeat
    loader_modes: tuple = tuple(name for name, _, _ in LOADER_MODES)
    train_model: bool = True
    fixed_cost: bool = True  # also time both loops with a one-layer network
    potential_models: bool = False  # also the P1 potential models (POTENTIAL_MODELS)
    potential_batch: int | None = None  # their batch size (None: each model's config entry)
    seed: int = 1


#: The demo's geometry (config/config.yaml: 64 × 48 sites). ≈ 1.7 min on the 2-core box for
#: the ParameterCNN rows; the potential models add ≈ 2–3 min (≈ 6 min in all, loaded box).
DEMO = Config("config/config.yaml", n_unique=32, batch_size=32, warmup_steps=5,
              timed_steps=24, n_repeats=9, n_predict=160, potential_models=True)
#: P1's geometry (config/paper.yaml: 256 × 192 sites), one line of each kind. ≈ 1.2 min.
PAPER = Config("config/paper.yaml", n_unique=4, batch_size=32, warmup_steps=1,
               timed_steps=4, n_repeats=3, n_predict=24, loader_modes=("stream0", "ram"),
               train_model=False, fixed_cost=False)
#: --quick: the test config's 40 × 30 sites, a few steps, one repeat.
QUICK = Config("config/test.yaml", n_unique=2, batch_size=8, warmup_steps=1, timed_steps=2,
               n_repeats=1, n_predict=4, potential_models=True, potential_batch=8)
QUICK_PAPER = Config("config/test.yaml", n_unique=2, batch_size=8, warmup_steps=1,
                     timed_steps=1, n_repeats=1, n_predict=2,
                     loader_modes=("stream0", "ram"), train_model=False,
                     fixed_cost=False)


@dataclass(frozen=True)
class P2Config:
    """Problem size and repeat counts of the P2 diffusion rows."""

    image_size: int            # square image side (P2: the 50 × 60 LDOS padded to 60 × 60)
    n_fields: int              # trace length (field points)
    architecture: tuple        # ConditionalUNet keyword arguments, as (name, value) pairs
    num_timesteps: int         # T of the diffusion (DDPM runs all of them)
    ddim_steps: int
    batch_size: int            # training batch
    warmup_steps: int          # W: untimed steps at the start of every training run
    timed_steps: int           # T: timed steps after warm-up
    n_images: int              # images generated per sampling call (time per image = / n)
    n_repeats: int
    learning_rate: float = 2e-4   # train_diffusion's defaults: SAM(Adam), rho 0.05,
    rho: float = 0.05             # condition dropout 0.1
    condition_dropout: float = 0.1
    seed: int = 3


#: The "small" demo-size network: 457,321 parameters at 60 × 60, 50 field points. On the
#: 2-core box ≈ 0.36 s per Adam step (batch 8) and ≈ 16 ms per network pass of one image: the
#: three full 1000-step DDPM chains of 2 images dominate (≈ 1.6 min; ≈ 2.2 min in all).
P2_DEMO = P2Config(image_size=60, n_fields=50, architecture=(
    ("base_channels", 16), ("channel_mults", (1, 2, 2)), ("linear_attention_head_dim", 16),
    ("attention_head_dim", 16), ("trace_token_dim", 32), ("condition_channels", 8)),
    num_timesteps=1000, ddim_steps=50, batch_size=8, warmup_steps=2, timed_steps=6,
    n_images=2, n_repeats=3)
#: --quick: 12 × 12 images, a tiny network (config/test.yaml's p2_ldos), 20 diffusion steps.
P2_QUICK = P2Config(image_size=12, n_fields=6, architecture=(
    ("base_channels", 8), ("channel_mults", (1, 2, 2)), ("groups", 4),
    ("linear_attention_head_dim", 8), ("attention_head_dim", 8), ("trace_token_dim", 16),
    ("trace_layers", 1), ("trace_heads", 2), ("condition_channels", 4)),
    num_timesteps=20, ddim_steps=5, batch_size=4, warmup_steps=1, timed_steps=2, n_images=2,
    n_repeats=1)


def _progress(message: str) -> None:
    print(f"[training] {message}", file=sys.stderr, flush=True)


# -- data -------------------------------------------------------------------------------------

def _write_splits(cfg: Config, directory: Path, dataset: str = "p1_varying",
                  batch_size: int | None = None, prefix: str = "bench"):
    """Train and val files in the P1 split format of ``cfg.config_file``'s ``dataset``
    (every stored variable: PLDOS, potential, coefficients, modes, parameters); the train
    split holds (W + T) batches of ``batch_size`` (default ``cfg.batch_size``). Returns
    (train, val, spec)."""
    from dataclasses import replace

    from mesoinv.config import load_config
    from mesoinv.datasets import P1Simulator, dataset_spec
    from mesoinv.datasets.netcdf import write_p1_netcdf

    spec = dataset_spec(load_config(REPO_ROOT / cfg.config_file), dataset)
    simulator = P1Simulator(spec)
    unique = [simulator.simulate(i) for i in range(cfg.n_unique)]

    def repeated(n, first_id):
        for k in range(n):
            yield replace(unique[k % len(unique)], sample_id=first_id + k)

    batch_size = batch_size or cfg.batch_size
    n_train = (cfg.warmup_steps + cfg.timed_steps) * batch_size
    n_val = max(batch_size, cfg.n_unique)
    train = directory / f"{prefix}-train.nc"
    val = directory / f"{prefix}-val.nc"
    meta = simulator.file_metadata()
    write_p1_netcdf(train, spec, _Sized(repeated(n_train, 0), n_train), **meta,
                    extra_attributes={"split": "train"})
    write_p1_netcdf(val, spec, _Sized(repeated(n_val, n_train), n_val), **meta,
                    extra_attributes={"split": "val"})
    return train, val, spec


class _Sized:
    """A lazy iterable with a length (write_p1_netcdf needs ``len``)."""

    def __init__(self, iterable, n):
        self.iterable, self.n = iterable, n

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.iterable)


def _model_definition(batch_size: int | None, name: str = MODEL_NAME) -> dict:
    """The config entry of model ``name`` (batch ``batch_size``; None: the entry's own)."""
    from mesoinv.config import load_config

    definition = dict(load_config(REPO_ROOT / MODEL_CONFIG)["models"][name], name=name)
    batch_size = batch_size or definition["batch_size"]
    definition.update(batch_size=batch_size, max_epochs=1, max_steps=None, data_mode="ram",
                      num_workers=0)
    return definition


def _datamodule(train, val, definition, data_mode, num_workers=0, mirror=False):
    from mesoinv.training.data import ImageDataModule
    from mesoinv.training.train import target_set

    inputs = definition["inputs"]
    module = ImageDataModule(train, val, targets=target_set(definition),
                             fields_T=inputs["fields_T"], transform=inputs["transform"],
                             batch_size=definition["batch_size"], data_mode=data_mode,
                             num_workers=num_workers, mirror_augmentation=mirror,
                             variable=inputs["variable"], max_workers=num_workers)
    module.setup("fit")
    return module


def _network(definition, datamodule):
    """The model kind's network, built from its spec as ``train_model`` builds it."""
    from mesoinv.training.model_file import network_from_spec

    return network_from_spec(_network_spec(definition, datamodule))


def _network_spec(definition, datamodule) -> dict:
    from mesoinv.training.train import network_spec

    return network_spec(definition["kind"], definition["architecture"],
                        datamodule.info.image_shape, len(datamodule.field_indices),
                        datamodule.target_set.n_outputs)


# -- training ---------------------------------------------------------------------------------

def _steady_state(stamps, warmup, timed):
    """(wall, cpu) seconds per step between the end of step ``warmup`` and ``warmup + timed``."""
    (w0, c0), (w1, c1) = stamps[warmup - 1], stamps[warmup + timed - 1]
    return (w1 - w0) / timed, (c1 - c0) / timed


def _step_clock():
    import pytorch_lightning as pl

    class StepClock(pl.Callback):
        """Wall and CPU clock and the loss at the end of every training step."""

        def __init__(self):
            self.stamps, self.losses = [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(outputs["loss"].item())
            self.stamps.append((time.perf_counter(), time.process_time()))

    return StepClock()


def _lightning_run(cfg, datamodule, network, initial_state, definition):
    import pytorch_lightning as pl
    import torch

    from mesoinv.training.modules import RegressionModule

    network.load_state_dict(initial_state)
    module = RegressionModule(network, model_name=definition["name"],
                              optimizer=definition["optimizer"])
    clock = _step_clock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true",
                         max_steps=cfg.warmup_steps + cfg.timed_steps, max_epochs=1,
                         callbacks=[clock], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, deterministic=True)
    torch.manual_seed(cfg.seed)            # the sampler's permutation: same as the plain loop
    trainer.fit(module, datamodule=datamodule)
    return _steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), clock.losses


def _plain_run(cfg, datamodule, network, initial_state, definition):
    import torch

    from mesoinv.training.modules import make_optimizer

    network.load_state_dict(initial_state)
    network.train()
    optimizer = make_optimizer(network.parameters(), definition["optimizer"]["name"],
                               definition["optimizer"]["learning_rate"],
                               definition["optimizer"].get("weight_decay", 0.0))
    loss_fn = torch.nn.MSELoss()
    loader = datamodule.train_dataloader()
    n_steps = cfg.warmup_steps + cfg.timed_steps
    stamps, losses = [], []
    torch.manual_seed(cfg.seed)
    for step, (inputs, targets) in enumerate(loader):
        if step == n_steps:
            break
        optimizer.zero_grad()
        loss = loss_fn(network(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        stamps.append((time.perf_counter(), time.process_time()))
    return _steady_state(stamps, cfg.warmup_steps, cfg.timed_steps), losses


def _train_model_run(cfg, train, val, definition, state_root):
    """train_model as the workflow calls it; (steady-state step (wall, cpu), whole call)."""
    from mesoinv.training.train import train_model

    clock = _step_clock()
    with Stopwatch() as whole:
        train_model(definition, train_path=train, val_path=val,
                    output=Path(state_root) / "model.pt", state_root=state_root,
                    progress=False, threads=1, extra_callbacks=[clock])
    return _steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), whole


# -- loaders ----------------------------------------------------------------------------------

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


# -- prediction -------------------------------------------------------------------------------

def _model_file(path, network, datamodule, definition):
    """A model file as ``train_model`` writes it (targets, baselines), with these weights."""
    from mesoinv.training.model_file import load_model_file, save_model_file
    from mesoinv.training.targets import training_mean_potential

    info = datamodule.info
    spec = _network_spec(definition, datamodule)
    inputs = definition["inputs"]
    targets = datamodule.target_set
    baselines = {}
    if targets.kind in ("fourier_coefficients", "potential"):
        baselines["training_mean_potential_meV"] = \
            training_mean_potential(datamodule.train_path).tolist()
    save_model_file(path, {
        "model_name": definition["name"], "model_kind": definition["kind"], "network": spec,
        "state_dict": {k: v.detach().clone() for k, v in network.state_dict().items()},
        "inputs": {"variable": inputs["variable"], "fields_T": datamodule.fields_T,
                   "image_shape": list(info.image_shape), "transform": inputs["transform"]},
        "input_normalization": datamodule.normalization.to_dict(),
        "targets": targets.to_dict(), "baselines": baselines,
        "data_metadata": dict(info.metadata), "hyperparameters": definition,
        "training": {"dataset": "benchmark", "n_train": info.n_samples,
                     "n_val": datamodule.val_info.n_samples},
    })
    return load_model_file(path)


def _predict_timings(model, maps, model_path, val_path, out_dir, repeat, batch_size):
    """(predict_images, predict_dataset, batched forward) per map for one repeat."""
    import numpy as np
    import torch

    from mesoinv.evaluation.predict import predict_dataset, predict_images
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


# -- potential models -------------------------------------------------------------------------

def _potential_models(cfg: Config, tmp: Path, tag: str) -> list:
    """Data, networks and model files of the P1 potential models, and empty timings.

    One pair of p1_fixed splits serves both models: (W + T) batches of the larger batch, so
    each run is at most one epoch. The model files hold the initial weights (prediction time
    does not depend on them)."""
    import torch

    from mesoinv.training.data import iter_images

    definitions = [(key, _model_definition(cfg.potential_batch, name))
                   for key, name in POTENTIAL_MODELS]
    batch = max(d["batch_size"] for _, d in definitions)
    _progress(f"{tag}: simulating {cfg.n_unique} samples ({cfg.config_file}, "
              f"{POTENTIAL_DATASET}) and writing the splits")
    train, val, _ = _write_splits(cfg, tmp, POTENTIAL_DATASET, batch_size=batch,
                                  prefix="bench-fixed")
    models = []
    for key, definition in definitions:
        ram = _datamodule(train, val, definition, "ram")
        torch.manual_seed(cfg.seed)
        network = _network(definition, ram)
        maps = list(iter_images(val, ram.val_field_indices))
        maps = (maps * (cfg.n_predict // len(maps) + 1))[:cfg.n_predict]
        model_path = tmp / f"model-{key}.pt"
        models.append(SimpleNamespace(
            key=key, definition=definition, val=val, ram=ram, network=network,
            initial_state={k: v.detach().clone() for k, v in network.state_dict().items()},
            maps=maps, model_path=model_path,
            model=_model_file(model_path, network, ram, definition),
            parameters=sum(q.numel() for q in network.parameters()),
            n_outputs=ram.target_set.n_outputs, n_train=ram.info.n_samples,
            n_val=ram.val_info.n_samples, lightning=Timings(), plain=Timings(), paired=[],
            loss_diffs=[], pred_images=Timings(), rebuild=Timings(),
            pred_potential=Timings(), rebuild_share=[], pred_dataset=Timings()))
    return models


def _potential_repeat(cfg: Config, p, repeat: int, tmp: Path) -> None:
    """One repeat of one potential model: (a) and (b) back to back, then prediction."""
    from mesoinv.evaluation.predict import predict_dataset, predict_images

    order = ("lightning", "plain") if repeat % 2 == 0 else ("plain", "lightning")
    results = {}
    for which in order:
        runner = _lightning_run if which == "lightning" else _plain_run
        results[which] = runner(cfg, p.ram, p.network, p.initial_state, p.definition)
    (wall_l, cpu_l), losses_l = results["lightning"]
    (wall_p, cpu_p), losses_p = results["plain"]
    p.lightning.add(wall_l, cpu_l)
    p.plain.add(wall_p, cpu_p)
    p.paired.append(cpu_l / cpu_p)
    p.loss_diffs.append(max(abs(a - b) for a, b in zip(losses_l, losses_p))
                        if len(losses_l) == len(losses_p) else float("inf"))

    n = len(p.maps)
    targets = p.model.target_set
    with Stopwatch() as images_sw:
        predictions = predict_images(p.model, p.maps)
    p.pred_images.add(images_sw.seconds / n, images_sw.cpu_seconds / n)
    if targets.kind == "fourier_coefficients":
        # What write_potential_predictions does with predict_images' coefficients.
        with Stopwatch() as rebuild_sw:
            potentials = targets.potential_meV(predictions)
        assert potentials.shape == (n, *p.model.inputs["image_shape"]), potentials.shape
        p.rebuild.add(rebuild_sw.seconds / n, rebuild_sw.cpu_seconds / n)
        p.pred_potential.add((images_sw.seconds + rebuild_sw.seconds) / n,
                             (images_sw.cpu_seconds + rebuild_sw.cpu_seconds) / n)
        p.rebuild_share.append(rebuild_sw.cpu_seconds
                               / (images_sw.cpu_seconds + rebuild_sw.cpu_seconds))
    with Stopwatch() as dataset_sw:
        predict_dataset(p.model_path, p.val, tmp / f"pred-{p.key}-{repeat}.nc")
    p.pred_dataset.add(dataset_sw.seconds / p.n_val, dataset_sw.cpu_seconds / p.n_val)


# -- one geometry -----------------------------------------------------------------------------

def _measure(cfg: Config, tmp: Path, tag: str):
    """Every timing of one geometry; returns a dict of Timings and facts."""
    import torch

    from mesoinv.training.data import iter_images

    definition = _model_definition(cfg.batch_size)
    _progress(f"{tag}: simulating {cfg.n_unique} samples ({cfg.config_file}) and writing the "
              "splits")
    train, val, spec = _write_splits(cfg, tmp)
    ram = _datamodule(train, val, definition, "ram")
    image_shape = ram.info.image_shape
    in_channels = len(ram.field_indices)
    torch.manual_seed(cfg.seed)
    network = _network(definition, ram)
    initial_state = {k: v.detach().clone() for k, v in network.state_dict().items()}

    loaders = {}
    for name, mode, workers in LOADER_MODES:
        if name in cfg.loader_modes:
            module = _datamodule(train, val, definition, mode, workers)
            module.trainer = SimpleNamespace(training=True, world_size=1)  # a 1-rank fit
            loaders[name] = (module, module.train_dataloader())

    maps = list(iter_images(val, ram.val_field_indices))
    maps = (maps * (cfg.n_predict // len(maps) + 1))[:cfg.n_predict]
    model_path = tmp / "model.pt"
    model = _model_file(model_path, network, ram, definition)
    n_val = ram.val_info.n_samples

    lightning, plain, production, whole_calls = Timings(), Timings(), Timings(), Timings()
    tiny_lightning, tiny_plain = Timings(), Timings()
    if cfg.fixed_cost:
        # A network that costs nothing (one linear layer): what is left is the per-step cost
        # of the loop itself, Lightning's or the plain one.
        torch.manual_seed(cfg.seed)
        tiny = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(
            in_channels * image_shape[0] * image_shape[1], len(definition["targets"])))
        tiny_state = {k: v.detach().clone() for k, v in tiny.state_dict().items()}
    loader_t = {name: Timings() for name in loaders}
    pred_images, pred_dataset, pred_batch = Timings(), Timings(), Timings()
    potential = _potential_models(cfg, tmp, tag) if cfg.potential_models else []
    loss_diffs, paired, paired_production = [], [], []
    for repeat in range(cfg.n_repeats):
        _progress(f"{tag}: repeat {repeat + 1}/{cfg.n_repeats}")
        # Alternate which loop goes first, so a trend in the machine's load favours neither.
        order = ("lightning", "plain") if repeat % 2 == 0 else ("plain", "lightning")
        results = {}
        for which in order:
            runner = _lightning_run if which == "lightning" else _plain_run
            results[which] = runner(cfg, ram, network, initial_state, definition)
        (wall_l, cpu_l), losses_l = results["lightning"]
        (wall_p, cpu_p), losses_p = results["plain"]
        lightning.add(wall_l, cpu_l)
        plain.add(wall_p, cpu_p)
        paired.append(cpu_l / cpu_p)
        loss_diffs.append(max(abs(a - b) for a, b in zip(losses_l, losses_p))
                          if len(losses_l) == len(losses_p) else float("inf"))
        if cfg.fixed_cost:
            for which in order:
                if which == "lightning":
                    tiny_lightning.add(*_lightning_run(cfg, ram, tiny, tiny_state,
                                                       definition)[0])
                else:
                    tiny_plain.add(*_plain_run(cfg, ram, tiny, tiny_state, definition)[0])
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
        # The potential models in the same repeat, so the machine's load hits all alike.
        for p in potential:
            _potential_repeat(cfg, p, repeat, tmp)
    return SimpleNamespace(
        cfg=cfg, image_shape=image_shape, in_channels=in_channels,
        parameters=sum(p.numel() for p in network.parameters()),
        n_train=ram.info.n_samples, n_val=n_val, lightning=lightning, plain=plain,
        paired=paired, paired_production=paired_production, tiny_lightning=tiny_lightning,
        tiny_plain=tiny_plain,
        production=production, whole_calls=whole_calls, loaders=loader_t,
        pred_images=pred_images, pred_dataset=pred_dataset, pred_batch=pred_batch,
        loss_diff=max(loss_diffs), n_maps=len(maps), fields=list(spec.magnetic_fields_T),
        potential=potential)


# -- P2 diffusion model -----------------------------------------------------------------------

def _p2_network(cfg: P2Config):
    from mesoinv.models.diffusion_unet import ConditionalUNet

    return ConditionalUNet(cfg.image_size, 1, cfg.n_fields, **dict(cfg.architecture))


def _p2_optimizer(cfg: P2Config, name: str) -> dict:
    if name == "sam":
        return {"name": "sam", "base": "adam", "learning_rate": cfg.learning_rate,
                "rho": cfg.rho}
    return {"name": "adam", "learning_rate": cfg.learning_rate}


def _p2_training_run(cfg: P2Config, loader, network, initial_state, optimizer: str):
    """``Trainer.fit(DiffusionModule)`` with ``optimizer`` (sam/adam) from ``initial_state``:
    steady-state (wall, cpu) seconds per step and the loss of every step."""
    import pytorch_lightning as pl
    import torch

    from mesoinv.training.diffusion_module import DiffusionModule

    network.load_state_dict(initial_state)
    module = DiffusionModule(network, model_name="bench-p2",
                             optimizer=_p2_optimizer(cfg, optimizer),
                             diffusion={"num_timesteps": cfg.num_timesteps},
                             condition_dropout=cfg.condition_dropout)
    clock = _step_clock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true",
                         max_steps=cfg.warmup_steps + cfg.timed_steps, max_epochs=1,
                         callbacks=[clock], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, deterministic=True)
    torch.manual_seed(cfg.seed)     # t, noise and the condition-dropout mask: same draws
    trainer.fit(module, train_dataloaders=loader)
    if trainer.global_step != cfg.warmup_steps + cfg.timed_steps:
        raise RuntimeError(f"{optimizer}: global step {trainer.global_step}, expected "
                           f"{cfg.warmup_steps + cfg.timed_steps}")
    return _steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), clock.losses


def _p2_sampling_run(cfg: P2Config, diffusion, network, traces, sampler: str):
    """One ``GaussianDiffusion.sample`` call of ``cfg.n_images`` images: (wall, cpu) per
    image."""
    import torch

    n, size = cfg.n_images, cfg.image_size
    generator = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.ddim_steps if sampler == "ddim" else None
    with Stopwatch() as sw:
        images = diffusion.sample(network, traces, (n, 1, size, size), sampler=sampler,
                                  steps=steps, generator=generator)
    if images.shape != (n, 1, size, size) or not torch.isfinite(images).all():
        raise RuntimeError(f"{sampler}: bad samples {tuple(images.shape)}")
    return sw.seconds / n, sw.cpu_seconds / n


def _measure_p2(cfg: P2Config):
    """SAM vs Adam training and DDPM vs DDIM sampling of the P2 U-Net, side by side."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from mesoinv.models.diffusion import GaussianDiffusion

    size, n_train = cfg.image_size, (cfg.warmup_steps + cfg.timed_steps) * cfg.batch_size
    generator = torch.Generator().manual_seed(cfg.seed)
    # Normalised-looking synthetic data: images in [-1, 1], standardised traces.
    images = torch.rand(n_train, 1, size, size, generator=generator) * 2 - 1
    traces = torch.randn(n_train, cfg.n_fields, generator=generator)
    loader = DataLoader(TensorDataset(images, traces), batch_size=cfg.batch_size,
                        shuffle=False)
    torch.manual_seed(cfg.seed)
    network = _p2_network(cfg)
    initial_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    diffusion = GaussianDiffusion(num_timesteps=cfg.num_timesteps)
    sample_traces = torch.randn(cfg.n_images, cfg.n_fields, generator=generator)

    timings = {name: Timings() for name in ("sam", "adam", "ddpm", "ddim")}
    paired_train, paired_sample, first_loss_diffs = [], [], []
    for repeat in range(cfg.n_repeats):
        _progress(f"p2: repeat {repeat + 1}/{cfg.n_repeats}: training (SAM, Adam)")
        order = ("adam", "sam") if repeat % 2 == 0 else ("sam", "adam")
        losses = {}
        for name in order:
            (wall, cpu), losses[name] = _p2_training_run(cfg, loader, network, initial_state,
                                                         name)
            timings[name].add(wall, cpu)
        paired_train.append(timings["sam"].cpus[-1] / timings["adam"].cpus[-1])
        first_loss_diffs.append(abs(losses["sam"][0] - losses["adam"][0]))

        _progress(f"p2: repeat {repeat + 1}/{cfg.n_repeats}: sampling (DDPM "
                  f"{cfg.num_timesteps} steps, DDIM {cfg.ddim_steps} steps)")
        network.load_state_dict(initial_state)
        network.eval()
        order = ("ddim", "ddpm") if repeat % 2 == 0 else ("ddpm", "ddim")
        for name in order:
            timings[name].add(*_p2_sampling_run(cfg, diffusion, network, sample_traces, name))
        network.train()
        paired_sample.append(timings["ddpm"].cpus[-1] / timings["ddim"].cpus[-1])
    return SimpleNamespace(cfg=cfg, parameters=sum(q.numel() for q in network.parameters()),
                           timings=timings, paired_train=paired_train,
                           paired_sample=paired_sample,
                           first_loss_diff=max(first_loss_diffs))


def _paired_ratio_row(key, label, numerator: Timings, denominator: Timings, paired,
                      note="") -> Row:
    """Ratio (×): the median of the per-repeat CPU-time ratios; the note has their range and
    the ratios of the CPU and wall-clock medians."""
    value = statistics.median(paired)
    text = (f"median of {len(paired)} per-repeat CPU ratios (range {min(paired):.2f} … "
            f"{max(paired):.2f}); ratio of CPU medians "
            f"{numerator.cpu_median / denominator.cpu_median:.2f}, of wall-clock medians "
            f"{numerator.median / denominator.median:.2f}")
    return Row(key, label, value, "×", note=text + (f"; {note}" if note else ""))


def _p2_rows(m, prefix: str = "train.p2") -> list[Row]:
    cfg, t = m.cfg, m.timings
    arch = dict(m.cfg.architecture)
    size, batch = cfg.image_size, cfg.batch_size
    network = (f"ConditionalUNet (base {arch['base_channels']}, mults "
               f"{list(arch['channel_mults'])}, linear/bottleneck head dim "
               f"{arch['linear_attention_head_dim']}/{arch['attention_head_dim']}, trace token "
               f"{arch['trace_token_dim']}, condition channels {arch['condition_channels']})")
    ddpm_step = 1e3 * t["ddpm"].cpu_median / cfg.num_timesteps
    ddim_step = 1e3 * t["ddim"].cpu_median / cfg.ddim_steps
    return [
        Row(f"{prefix}.config.image", f"P2 diffusion: image {size} × {size} pixels, trace of "
            f"{cfg.n_fields} fields (synthetic)", size * size, "pixels"),
        Row(f"{prefix}.config.parameters", f"P2 diffusion: {network} parameters",
            m.parameters, "parameters"),
        Row(f"{prefix}.config.batch", "P2 diffusion: training batch size", batch, "samples",
            note=f"steps {cfg.warmup_steps} + {cfg.timed_steps} per run; lr "
                 f"{cfg.learning_rate:g}, rho {cfg.rho:g}, condition dropout "
                 f"{cfg.condition_dropout:g}"),
        t["sam"].row(f"{prefix}.a.sam", "P2 (a SAM) Trainer.fit(DiffusionModule), SAM(Adam), "
                     "manual optimization: per step",
                     note="steady state; two forward + backward passes per step"),
        t["adam"].row(f"{prefix}.a.adam", "P2 (a Adam) the same with Adam: per step",
                      note="same batches, same initial weights, same t / noise / dropout "
                           "draws"),
        _rate_row(f"{prefix}.a.sam_rate", "P2 (a SAM) training steps per second", t["sam"],
                  1, "steps/s", note=f"{batch / t['sam'].cpu_median:.1f} samples/s (CPU)"),
        _rate_row(f"{prefix}.a.adam_rate", "P2 (a Adam) training steps per second",
                  t["adam"], 1, "steps/s",
                  note=f"{batch / t['adam'].cpu_median:.1f} samples/s (CPU)"),
        _paired_ratio_row(f"{prefix}.ratio.sam_over_adam", "P2 SAM / Adam time per step",
                          t["sam"], t["adam"], m.paired_train,
                          note="expected ≈ 2 (two passes)"),
        Row(f"{prefix}.check.same_first_loss", "P2 |loss SAM − loss Adam| at the first step",
            m.first_loss_diff, "1", note="0: same batch, same weights, same t / noise draws"),
        t["ddpm"].row(f"{prefix}.s.ddpm", f"P2 (s DDPM) sample, {cfg.num_timesteps} steps, "
                      "per image", note=f"{cfg.n_images} images per call, γ = 1; "
                                        f"{ddpm_step:.1f} ms CPU per step and image"),
        t["ddim"].row(f"{prefix}.s.ddim", f"P2 (s DDIM) sample, {cfg.ddim_steps} steps, "
                      "η = 0, per image", note=f"{cfg.n_images} images per call, γ = 1; "
                                               f"{ddim_step:.1f} ms CPU per step and image"),
        _paired_ratio_row(f"{prefix}.ratio.ddpm_over_ddim", "P2 DDPM / DDIM time per image",
                          t["ddpm"], t["ddim"], m.paired_sample,
                          note=f"step-count ratio {cfg.num_timesteps / cfg.ddim_steps:g}"),
    ]


# -- rows -------------------------------------------------------------------------------------

def _rate_row(key, label, per_unit: Timings, count: int, unit: str, note="") -> Row:
    """Throughput from a per-step (or per-map) timing: value = count / wall median, CPU column
    = count / CPU median."""
    return Row(key, label, count / per_unit.median, unit, cpu=count / per_unit.cpu_median,
               n=len(per_unit.wall), note=note)


def _overhead_row(key, label, lightning: Timings, plain: Timings, paired, target=True) -> Row:
    """Overhead in %: 100 × (median over repeats of the per-repeat CPU-time ratio − 1).

    Each repeat runs both loops back to back (order alternating), so the per-repeat ratio
    cancels the drift of the machine's load between repeats; the note has the ratio of the
    CPU medians, of the wall-clock medians, and the difference in ms.
    """
    value = 100.0 * (statistics.median(paired) - 1.0)
    of_medians = 100.0 * (lightning.cpu_median / plain.cpu_median - 1.0)
    wall = 100.0 * (lightning.median / plain.median - 1.0)
    diff_ms = 1e3 * (lightning.cpu_median - plain.cpu_median)
    note = (f"median of {len(paired)} per-repeat CPU ratios (range "
            f"{100 * (min(paired) - 1):+.1f} … {100 * (max(paired) - 1):+.1f} %); ratio of CPU "
            f"medians {of_medians:+.1f} %, of wall-clock medians {wall:+.1f} %; "
            f"{diff_ms:+.1f} ms per step")
    return Row(key, label, value, "%",
               target=f"≤ {TARGET_OVERHEAD_PERCENT:g} %" if target else "",
               passed=(value <= TARGET_OVERHEAD_PERCENT) if target else None, note=note)


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


def _rows(m, prefix: str, paper: bool) -> list[Row]:
    cfg = m.cfg
    nx, ny = m.image_shape
    batch = cfg.batch_size
    rows: list[Row] = []
    if not paper:
        import pytorch_lightning as pl
        import torch

        rows += [
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
        rows.append(Row(f"{prefix}.config.image", f"input image {nx} × {ny} sites (paper)",
                        nx * ny, "sites", note=f"steps {cfg.warmup_steps} + "
                                               f"{cfg.timed_steps}, batch {batch}"))
    rows += [
        m.lightning.row(f"{prefix}.a.lightning", "(a) Lightning Trainer.fit, RegressionModule, "
                        "ram mode: per step", note="steady state; logger, checkpoints, "
                                                   "progress bar off"),
        m.plain.row(f"{prefix}.b.plain", "(b) plain loop: zero_grad, forward, MSE, backward, "
                    "Adam step: per step", note="same initial weights, same DataLoader"),
    ]
    if m.production.wall:
        rows.append(m.production.row(
            f"{prefix}.e.train_model", "(e) train_model (production path), per step",
            note=f"CSV logger, checkpoint callbacks, mirror augmentation; whole call "
                 f"{m.whole_calls.median:.1f} s for {m.n_train} samples + validation"))
    rows += [
        _rate_row(f"{prefix}.a.lightning_rate", "(a) Lightning training throughput",
                  m.lightning, batch, "samples/s"),
        _rate_row(f"{prefix}.b.plain_rate", "(b) plain-loop training throughput", m.plain,
                  batch, "samples/s"),
    ]
    if m.production.wall:
        rows.append(_rate_row(f"{prefix}.e.train_model_rate",
                              "(e) train_model training throughput", m.production, batch,
                              "samples/s"))
    rows.append(_overhead_row(f"{prefix}.ratio.overhead", "(a) / (b) − 1: Lightning's "
                              "overhead per step", m.lightning, m.plain, m.paired))
    if m.production.wall:
        rows.append(_overhead_row(f"{prefix}.ratio.train_model_overhead",
                                  "(e) / (b) − 1: the production path's overhead",
                                  m.production, m.plain, m.paired_production,
                                  target=False))
    if m.tiny_lightning.wall:
        fixed_ms = 1e3 * (m.tiny_lightning.cpu_median - m.tiny_plain.cpu_median)
        rows += [
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
    rows.append(Row(f"{prefix}.check.same_losses", "max |loss (a) − loss (b)| over the steps "
                    "of a repeat", m.loss_diff, "1",
                    note="0: same batches, same start, same arithmetic"))
    workers = {name: w for name, _, w in LOADER_MODES}
    labels = {"stream0": "stream, 0 workers", "stream1": "stream, 1 worker", "ram": "ram",
              "device": "device (host memory here; gather in on_after_batch_transfer)"}
    for name, timings in m.loaders.items():
        rows.append(timings.row(f"{prefix}.c.{name}", f"(c) train loader alone, "
                                f"{labels[name]}: per batch",
                                note=f"{batch / timings.median:,.0f} samples/s"))
    for name, timings in m.loaders.items():
        rows.append(_loader_ratio(f"{prefix}.ratio.loader_{name}",
                                  f"(c {name}) / (a): loader over training throughput",
                                  m.lightning, timings, workers[name]))
    rows += [
        m.pred_images.row(f"{prefix}.d.predict_images", "(d) predict_images, per map (batch 1)",
                          note=f"{1 / m.pred_images.median:,.0f} maps/s; {m.n_maps} maps per "
                               "call, network build included"),
        _rate_row(f"{prefix}.d.predict_rate", "(d) predict_images throughput", m.pred_images,
                  1, "maps/s"),
        m.pred_dataset.row(f"{prefix}.d.predict_dataset", "(d') predict_dataset on a split "
                           "file, per map", note=f"{m.n_val} maps: load model, read, predict, "
                                                 "write netCDF"),
        m.pred_batch.row(f"{prefix}.d.forward_batch", f"(d'') network forward, batches of "
                         f"{batch}, per map", note="what batch 1 gives up"),
    ]
    for p in m.potential:
        rows += _potential_rows(p, prefix)
    return rows


def _potential_rows(p, prefix: str) -> list[Row]:
    """The rows of one P1 potential model (``<prefix>.<key>.*``)."""
    k = f"{prefix}.{p.key}"
    d, arch = p.definition, p.definition["architecture"]
    name, batch = d["name"], d["batch_size"]
    if d["kind"] == "p1_fourier_cnn":
        network = (f"FourierCNN (conv {'/'.join(map(str, arch['conv_channels']))}, first "
                   f"kernel {arch['first_kernel_size']}, dense {arch['dense_units']})")
        outputs = f"{p.n_outputs} outputs: Re, Im of {p.n_outputs // 2} coefficients"
        predicted = "coefficients"
    else:
        network = (f"EncoderDecoder (encoder {'/'.join(map(str, arch['encoder_channels']))}, "
                   f"{arch['convs_per_block']} convs per block)")
        outputs = "output: the V image, min-max normalised"
        predicted = "V(x, y) in meV (min-max inverted)"
    rows = [
        Row(f"{k}.config.parameters", f"{name}: {network} parameters", p.parameters,
            "parameters", note=f"{d['kind']}; {outputs}"),
        Row(f"{k}.config.batch", f"{name}: batch size", batch, "samples",
            note=f"train split {p.n_train} samples; mirror augmentation off (both loops)"),
        p.lightning.row(f"{k}.a.lightning", f"{name} (a) Lightning Trainer.fit, "
                        "RegressionModule, ram mode: per step",
                        note="steady state; logger, checkpoints, progress bar off"),
        p.plain.row(f"{k}.b.plain", f"{name} (b) plain loop, same batches: per step",
                    note="same initial weights, same DataLoader"),
        _rate_row(f"{k}.a.lightning_rate", f"{name} (a) Lightning training throughput",
                  p.lightning, batch, "samples/s"),
        _rate_row(f"{k}.b.plain_rate", f"{name} (b) plain-loop training throughput", p.plain,
                  batch, "samples/s"),
        _overhead_row(f"{k}.ratio.overhead", f"{name} (a) / (b) − 1: Lightning's overhead "
                      "per step", p.lightning, p.plain, p.paired),
        Row(f"{k}.check.same_losses", f"{name} max |loss (a) − loss (b)| over the steps of a "
            "repeat", max(p.loss_diffs), "1", note="0: same batches, same start, same "
                                                   "arithmetic"),
        p.pred_images.row(f"{k}.d.predict_images", f"{name} (d) predict_images, per map "
                          "(batch 1)", note=f"{1 / p.pred_images.median:,.0f} maps/s; "
                                            f"{len(p.maps)} maps per call; returns {predicted}"),
        _rate_row(f"{k}.d.predict_rate", f"{name} (d) predict_images throughput",
                  p.pred_images, 1, "maps/s"),
    ]
    if p.rebuild.wall:
        rows += [
            p.rebuild.row(f"{k}.d.rebuild", f"{name} (d rebuild) V(x, y) from the predicted "
                          "coefficients, Eq. (1) (FourierTargets.potential_meV): per map",
                          note=f"{1 / p.rebuild.median:,.0f} maps/s"),
            p.pred_potential.row(f"{k}.d.predict_potential", f"{name} (d) + (d rebuild): "
                                 "V(x, y) in meV from a map, per map",
                                 note="what mesoinv predict computes, before the netCDF"),
            _rate_row(f"{k}.d.predict_potential_rate", f"{name} predict_images + rebuild "
                      "throughput", p.pred_potential, 1, "maps/s"),
            Row(f"{k}.d.rebuild_share", f"{name} rebuild / (predict_images + rebuild)",
                100.0 * statistics.median(p.rebuild_share), "%",
                note=f"median of {len(p.rebuild_share)} per-repeat CPU-time shares"),
        ]
    rows.append(p.pred_dataset.row(
        f"{k}.d.predict_dataset", f"{name} (d') predict_dataset on a split file, per map",
        note=f"{1 / p.pred_dataset.median:,.0f} maps/s; {p.n_val} maps: load model, read, "
             "predict" + (", rebuild" if p.rebuild.wall else "") + ", write netCDF (V, "
             "truth, coefficients)"))
    return rows


def run(quick: bool = False) -> list[Row]:
    """All training rows. ``quick``: the test geometry, a few steps, one repeat."""
    import pytorch_lightning  # noqa: F401 - sets its loggers to INFO on import
    import torch

    # Lightning's start-up chatter (accelerators, tips, SLURM hints) is not a result.
    levels = {name: logging.getLogger(name).level
              for name in ("pytorch_lightning", "lightning_fabric")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.WARNING)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.use_deterministic_algorithms(True)    # as train_model does on the CPU, for all paths
    try:
        with warnings.catch_warnings(), \
                tempfile.TemporaryDirectory(prefix="mesoinv-bench-training-") as tmp:
            warnings.filterwarnings("ignore", module=r"(pytorch_lightning|lightning_fabric)\.")
            tmp = Path(tmp)
            (tmp / "demo").mkdir()
            (tmp / "paper").mkdir()
            demo = _measure(QUICK if quick else DEMO, tmp / "demo", "demo")
            paper = _measure(QUICK_PAPER if quick else PAPER, tmp / "paper", "paper")
            p2 = _measure_p2(P2_QUICK if quick else P2_DEMO)
            return (_rows(demo, "train", paper=False) + _rows(paper, "train.paper", paper=True)
                    + _p2_rows(p2))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


