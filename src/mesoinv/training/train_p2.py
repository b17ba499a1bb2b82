"""Train P2's trace-conditioned diffusion model from its config entry and write its model file.

The same machinery as P1's :func:`mesoinv.training.train_p1.train_model` (whose helpers it
reuses): resumable state in ``<state_root>/<hash>/`` outside the workflow's declared outputs,
checkpoints written atomically and the newest usable one of the SLURM hpc checkpoints,
``checkpoints/last.ckpt`` and ``best.ckpt`` resumed on start (corrupt ones moved aside; the
global step continues; :mod:`.trainer`), Lightning as the one owner of SLURM preemption
(SIGURG), plain log lines off a terminal, the model file written atomically at the end.

What differs:

* data: :class:`mesoinv.training.p2_data.P2DataModule` (LDOS images and G(B) traces, both
  normalised with training-split statistics);
* network and module: :class:`mesoinv.models.p2_unet.ConditionalUNet` trained by
  :class:`mesoinv.training.p2_module.DiffusionModule` (ε-prediction, SAM or Adam with
  manual optimization, optional EMA). ``16-mixed`` precision is refused before anything runs;
* the state hash covers the resolved definition **without** its ``sampling`` block (sampling
  settings do not change training: changing them reuses the finished checkpoint and only
  rewrites the model file) and the content checksums of the two splits;
* weights: the best-``val_loss`` checkpoint when there is a validation split and
  ``weights: best`` (default), else the final ones. With EMA both are the averaged weights
  (Lightning's ``EMAWeightAveraging`` validates with them and stores them as the checkpoint's
  ``state_dict``, and leaves the module holding them after ``fit``).

Definition keys (:data:`DEFAULTS` fills what is missing; unknown keys in the nested blocks are
refused):

``kind``                 ``p2_diffusion``
``dataset``              name of the P2 dataset whose splits it trains on
``architecture``         :class:`ConditionalUNet` keyword arguments except ``image_size``,
                         ``in_channels`` and ``n_fields`` (those come from the data)
``diffusion``            ``num_timesteps``, ``beta_start``, ``beta_end``
``optimizer``            ``name`` (sam, adam, adamw), ``base`` (SAM's: adam, adamw),
                         ``learning_rate``, ``weight_decay``, ``rho``, ``adaptive``
``condition_dropout``    probability of the null condition per training sample
``ema_decay``            EMA decay of the weights, or null
``normalization``        ``image`` (linear, log, standardize), ``trace`` (per_field, global),
                         ``image_clip_sigma`` (outlier clipping, or null):
                         :mod:`mesoinv.training.normalization`
``sampling``             defaults stored for generation: ``sampler`` (ddpm, ddim), ``steps``,
                         ``eta``, ``guidance_scale`` (P2's γ), ``samples_per_trace``, ``seed``,
                         ``clip_x0``
``weights``              ``best`` or ``last``
``evaluation_split``     ``val`` (P2) or ``test``: the split the workflow scores; not training
shared with P1           ``batch_size``, ``max_epochs``, ``max_steps``, ``precision``, ``seed``,
                         ``early_stopping``, ``data_mode``, ``num_workers``,
                         ``checkpoint_every_n_steps``
"""

import copy
import json
import logging
import time

import pytorch_lightning as pl
import torch

from ..models.p2_unet import ConditionalUNet
from .p2_module import DiffusionModule, check_precision
from .model_file import save_model_file
from .optimizers import count_parameters
from .p2_data import P2DataModule
from .trainer import (available_cpus, devices_and_strategy, load_best_weights, make_trainer,
                      resolve_precision, resume_checkpoint, state_directory, training_record)

__all__ = ["train_diffusion_model", "resolve_definition", "diffusion_network_spec", "DEFAULTS",
           "MODEL_KIND"]

log = logging.getLogger("mesoinv.training")

MODEL_KIND = "p2_diffusion"

#: Every key of a p2_diffusion definition with its default (module docstring).
DEFAULTS = {
    "architecture": {},
    "diffusion": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                  "prediction": "epsilon"},
    "optimizer": {"name": "sam", "base": "adam", "learning_rate": 2e-4, "weight_decay": 0.0,
                  "rho": 0.05, "adaptive": False},
    "condition_dropout": 0.1,
    "ema_decay": None,
    "normalization": {"image": "linear", "trace": "per_field", "image_clip_sigma": None},
    "sampling": {"sampler": "ddim", "steps": 50, "eta": 0.0, "guidance_scale": 1.0,
                 "samples_per_trace": 4, "seed": 0, "clip_x0": 1.0},
    "weights": "best",
    "evaluation_split": "val",
    "batch_size": 32, "max_epochs": 5, "max_steps": None, "precision": "auto", "seed": 0,
    "early_stopping": None, "data_mode": "auto", "num_workers": "auto",
    "checkpoint_every_n_steps": 200, "symmetry_augmentation": "none",
}

_BLOCKS = ("diffusion", "optimizer", "normalization", "sampling")
_FROM_DATA = ("image_size", "in_channels", "n_fields")


def resolve_definition(definition: dict) -> dict:
    """The definition with every default filled in (a deep copy).

    Raises
    ------
    ValueError
        Another ``kind``; unknown keys in a nested block; architecture keys that come from
        the data; ``weights`` not best/last.
    """
    if definition.get("kind", MODEL_KIND) != MODEL_KIND:
        raise ValueError(f"model '{definition.get('name')}' is of kind "
                         f"{definition['kind']!r}, not {MODEL_KIND!r}")
    resolved = copy.deepcopy(DEFAULTS)
    for key, value in copy.deepcopy(definition).items():
        if key in _BLOCKS:
            unknown = sorted(set(value) - set(DEFAULTS[key]))
            if unknown:
                raise ValueError(f"model '{definition.get('name')}': unknown key(s) {unknown} "
                                 f"in '{key}' (known: {sorted(DEFAULTS[key])})")
            resolved[key].update(value)
        else:
            resolved[key] = value
    resolved["kind"] = MODEL_KIND
    clash = sorted(set(resolved["architecture"]) & set(_FROM_DATA))
    if clash:
        raise ValueError(f"model '{definition.get('name')}': architecture key(s) {clash} come "
                         "from the dataset (image size, one channel, its field grid); remove them")
    if resolved["weights"] not in ("best", "last"):
        raise ValueError(f"weights must be 'best' or 'last', got {resolved['weights']!r}")
    return resolved


def diffusion_network_spec(architecture: dict, image_size: int, n_fields: int) -> dict:
    """``{"class": "ConditionalUNet", "kwargs": {...}}`` (JSON types, stored in the model file)."""
    kwargs = {"image_size": int(image_size), "in_channels": 1, "n_fields": int(n_fields)}
    for key, value in architecture.items():
        kwargs[key] = list(value) if isinstance(value, tuple) else value
    return {"class": "ConditionalUNet", "kwargs": kwargs}


def _open_channels(path) -> dict:
    """``{"open_channels": [count per field]}`` of a P2 split file (empty when it has none)."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        if "open_channels" not in ds.variables:
            return {}
        return {"open_channels": [int(n) for n in ds["open_channels"][:]]}


def _build_network(spec: dict, name: str) -> ConditionalUNet:
    try:
        return ConditionalUNet(**spec["kwargs"])
    except TypeError as error:  # an unknown architecture key
        raise ValueError(f"model '{name}': bad architecture: {error}") from None


def train_diffusion_model(definition: dict, *, train_path, val_path, output, state_root,
                          progress: bool | None = None, threads: int | None = None,
                          log_every_n_steps: int = 50, extra_callbacks=()) -> dict:
    """Train a P2 diffusion model and write its model file.

    Parameters
    ----------
    definition : dict
        The model's config entry plus ``name`` (module docstring for the keys).
    train_path, val_path : path-like
        The P2 dataset's split files (val may be empty: then no validation and the final
        weights are kept).
    output : path-like
        The model file (written atomically at the end).
    state_root : path-like
        Directory for resumable state (a hashed subdirectory is used).
    progress : bool, optional
        Progress bar; default only when stderr is a terminal.
    threads : int, optional
        torch intra-op threads on the CPU.
    log_every_n_steps : int
    extra_callbacks : sequence of Callback
        Added to the trainer (tests use one to interrupt a run).

    Returns
    -------
    dict
        The ``training`` record stored in the model file.

    Model file content (``save_model_file``; every value a tensor or JSON type)
    ---------------------------------------------------------------------------
    ``model_name``, ``model_kind`` (``p2_diffusion``), ``network`` (``ConditionalUNet`` spec),
    ``state_dict`` (EMA weights with EMA), ``diffusion`` (schedule), ``sampling`` (defaults),
    ``image_normalization`` and ``trace_normalization`` (``to_dict`` of
    :class:`~mesoinv.training.normalization.LDOSNormalization` and
    :class:`~mesoinv.training.normalization.TraceNormalization`), ``inputs`` (the
    conditioning trace: variable, units, ``fields_T``, ``n_fields``, and the generated
    ``image_shape``), ``input_normalization`` (= the trace normalisation), ``targets`` (kind
    ``ldos_image``, variable, units, shape, padding), ``data_metadata`` (the P2 attributes of
    the training split plus ``field_range_T``, ``n_fields`` and ``open_channels``, the leads'
    open channels per field: the upper bound of a conductance given to ``mesoinv predict``),
    ``hyperparameters`` (the resolved
    definition), ``training`` (the record returned). No ``baselines``: inference needs none,
    and the evaluation computes its trace-blind baselines from the training split
    (:mod:`mesoinv.evaluation.p2_generation.evaluate`).
    """
    resolved = resolve_definition(definition)
    name = resolved.get("name", "p2_diffusion")
    if threads:
        torch.set_num_threads(max(1, min(int(threads), available_cpus())))
    pl.seed_everything(resolved["seed"], workers=True, verbose=False)
    accelerator, devices, strategy = devices_and_strategy()
    precision = resolve_precision(resolved["precision"], accelerator == "gpu")
    check_precision(precision)
    if accelerator == "cpu" and precision in ("bf16-mixed", "bf16-true"):
        log.warning("%s: %s on the CPU is slow and gains nothing; consider 32-true or auto",
                    name, precision)
    max_workers = max(0, min(8, available_cpus() // devices - 1))
    datamodule = P2DataModule(
        train_path, val_path, image_transform=resolved["normalization"]["image"],
        image_clip_sigma=resolved["normalization"]["image_clip_sigma"],
        trace_transform=resolved["normalization"]["trace"], batch_size=resolved["batch_size"],
        data_mode=resolved["data_mode"], num_workers=resolved["num_workers"],
        max_workers=max_workers, symmetry_augmentation=resolved["symmetry_augmentation"],
        augmentation_seed=resolved["seed"])
    image_normalization, trace_normalization = datamodule.fit_statistics()
    spec = diffusion_network_spec(resolved["architecture"], datamodule.image_size,
                                  datamodule.n_fields)
    network = _build_network(spec, name)
    module = DiffusionModule(network, model_name=name, optimizer=resolved["optimizer"],
                             diffusion=resolved["diffusion"],
                             condition_dropout=resolved["condition_dropout"],
                             ema_decay=resolved["ema_decay"], validation_seed=resolved["seed"])

    identity = {k: v for k, v in resolved.items() if k not in ("sampling", "evaluation_split")}
    state_dir = state_directory(state_root, identity, train_path, val_path)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "definition.json").write_text(json.dumps(resolved, indent=2, sort_keys=True))
    has_val = datamodule.val_info.n_samples > 0
    trainer, best = make_trainer(resolved, state_dir, name=name, has_val=has_val,
                                 accelerator=accelerator, devices=devices, strategy=strategy,
                                 precision=precision, progress=progress,
                                 log_every_n_steps=log_every_n_steps,
                                 extra_callbacks=extra_callbacks)
    ckpt_path = resume_checkpoint(state_dir)
    log.info("%s: %s (%s) on %d %s device(s), precision %s, %d parameters; %s", name,
             MODEL_KIND, resolved["optimizer"]["name"], devices, accelerator, precision,
             count_parameters(network),
             f"resuming from {ckpt_path}" if ckpt_path else "starting from scratch")
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise RuntimeError(f"model '{name}': training was interrupted at step "
                           f"{trainer.global_step}; rerun to resume from {state_dir}")
    if not trainer.is_global_zero:
        return {}

    ema = " (EMA)" if resolved["ema_decay"] is not None else ""
    best_weights = load_best_weights(network, best) if resolved["weights"] == "best" else None
    chosen = (best_weights or "last") + ema
    network = network.to("cpu").float()
    info = datamodule.info
    training = training_record(
        datamodule, trainer, train_path=train_path, val_path=val_path, chosen=chosen,
        seconds=seconds, ckpt_path=ckpt_path, precision=precision,
        accelerator=f"{accelerator} x{devices}", seed=resolved["seed"], state_dir=state_dir,
        optimizer=resolved["optimizer"]["name"], ema=resolved["ema_decay"] is not None,
        parameters=count_parameters(network))
    height, width = info.image_shape
    save_model_file(output, {
        "model_name": name, "model_kind": MODEL_KIND, "network": spec,
        "state_dict": {k: v.detach().clone() for k, v in network.state_dict().items()},
        "diffusion": module.diffusion.config(),
        "sampling": dict(resolved["sampling"]),
        "image_normalization": image_normalization.to_dict(),
        "trace_normalization": trace_normalization.to_dict(),
        "inputs": {"variable": "conductance", "units": "e2/h", "fields_T": datamodule.fields_T,
                   "n_fields": datamodule.n_fields, "image_shape": [height, width]},
        "input_normalization": trace_normalization.to_dict(),
        "targets": {"kind": "ldos_image", "variable": "ldos", "units": "t-1",
                    "image_shape": [height, width], "padding_sites": info.padding},
        "data_metadata": {**info.metadata, **_open_channels(train_path)},
        "hyperparameters": resolved,
        "training": training,
    })
    log.info("%s: wrote %s after %d steps (%s, %.0f s this run)", name, output,
             trainer.global_step, chosen, seconds)
    return training
