"""Train one P1 network (parameter CNN, Fourier CNN, encoder-decoder) from its config entry:
data, network, the shared Lightning trainer (:mod:`.trainer`), model file.

Resumable state, checkpoints and preemption: see :mod:`.trainer`.
"""

import json
import logging
import time

import pytorch_lightning as pl
import torch

from .model_file import network_from_spec, save_model_file
from .p1_data import ImageDataModule
from .optimizers import count_parameters
from .p1_module import RegressionModule
from .targets import FourierTargets, PotentialTargets, ScalarTargets, training_mean_potential
from .trainer import (available_cpus, devices_and_strategy, load_best_weights, make_trainer,
                      resolve_precision, resume_checkpoint, state_directory, training_record)

__all__ = ["train_model", "network_spec", "target_set"]

log = logging.getLogger("mesoinv.training")


#: Kinds trained with channels_last memory order on the CPU: those measured ≥ 1.3× faster with
#: losses equal to rounding (docs/benchmarks.md, training.speed): the Fourier CNN (1.45-1.51×)
#: and, on an idle machine, the encoder-decoder (1.36×; 1.24-1.29× on a loaded one); not the
#: parameter CNN (1.22× idle, 1.26-1.30× loaded) nor P2's U-Net (≈ 1.0×).
CHANNELS_LAST_KINDS = ("p1_fourier_cnn", "p1_encoder_decoder")


def network_spec(kind: str, architecture: dict, image_shape, in_channels: int,
                 n_outputs: int) -> dict:
    """``{"class", "kwargs"}`` of the network of a model kind (stored in the model file)."""
    shape = {"image_shape": list(image_shape), "in_channels": in_channels}
    if kind == "p1_parameter_cnn":
        return {"class": "ParameterCNN",
                "kwargs": {**shape, "n_outputs": n_outputs,
                           "conv_channels": list(architecture["conv_channels"]),
                           "kernel_size": architecture["kernel_size"],
                           "dense_units": list(architecture["dense_units"])}}
    if kind == "p1_fourier_cnn":
        return {"class": "FourierCNN",
                "kwargs": {**shape, "n_outputs": n_outputs,
                           "conv_channels": list(architecture["conv_channels"]),
                           "first_kernel_size": architecture["first_kernel_size"],
                           "kernel_size": architecture["kernel_size"],
                           "dense_units": architecture["dense_units"]}}
    if kind == "p1_encoder_decoder":
        return {"class": "EncoderDecoder",
                "kwargs": {**shape, "encoder_channels": list(architecture["encoder_channels"]),
                           "convs_per_block": architecture["convs_per_block"],
                           "kernel_size": architecture["kernel_size"]}}
    raise ValueError(f"unknown model kind {kind!r}")


def target_set(definition: dict):
    """The (unfitted) target object of a model kind (:mod:`.targets`)."""
    kind = definition["kind"]
    if kind == "p1_parameter_cnn":
        return ScalarTargets(definition["targets"])
    if kind == "p1_fourier_cnn":
        return FourierTargets()
    if kind == "p1_encoder_decoder":
        return PotentialTargets()
    raise ValueError(f"unknown model kind {kind!r}")


def train_model(definition: dict, *, train_path, val_path, output, state_root,
                progress: bool | None = None, threads: int | None = None,
                log_every_n_steps: int = 50, extra_callbacks=()) -> dict:
    """Train a model and write its model file.

    Parameters
    ----------
    definition : dict
        The model's validated config entry plus ``name`` (written by the workflow to
        ``results/models/<name>/definition.json``).
    train_path, val_path : path-like
        The dataset's split files.
    output : path-like
        The model file (written atomically at the end; see :mod:`.model_file`).
    state_root : path-like
        Directory for resumable state (a hashed subdirectory is used, see module docstring).
    progress : bool, optional
        Progress bar; default: only when stderr is a terminal (plain log lines otherwise).
    threads : int, optional
        torch intra-op threads on the CPU (the rule's ``threads``).
    extra_callbacks : sequence of Callback
        Added to the trainer (tests use one to interrupt a run).

    Returns
    -------
    dict
        The ``training`` record stored in the model file.
    """
    name, kind = definition["name"], definition["kind"]
    if threads:
        torch.set_num_threads(max(1, min(int(threads), available_cpus())))
    pl.seed_everything(definition["seed"], workers=True, verbose=False)
    accelerator, devices, strategy = devices_and_strategy()
    precision = resolve_precision(definition["precision"], accelerator == "gpu")
    if accelerator == "cpu" and precision in ("16-mixed", "bf16-mixed"):
        log.warning("%s: %s on the CPU is slow and gains nothing; consider 32-true or auto",
                    name, precision)
    max_workers = max(0, min(8, available_cpus() // devices - 1))
    inputs = definition["inputs"]
    datamodule = ImageDataModule(
        train_path, val_path, targets=target_set(definition), fields_T=inputs["fields_T"],
        transform=inputs["transform"], batch_size=definition["batch_size"],
        data_mode=definition["data_mode"], num_workers=definition["num_workers"],
        mirror_augmentation=inputs["mirror_augmentation"], variable=inputs["variable"],
        max_workers=max_workers, train_subset=definition.get("train_subset"))
    normalization, targets = datamodule.fit_statistics()
    spec = network_spec(kind, definition["architecture"], datamodule.info.image_shape,
                        len(datamodule.field_indices), targets.n_outputs)
    network = network_from_spec(spec)
    module = RegressionModule(network, model_name=name, optimizer=definition["optimizer"],
                              channels_last=(kind in CHANNELS_LAST_KINDS
                                             and accelerator == "cpu"))

    state_dir = state_directory(state_root, definition, train_path, val_path)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "definition.json").write_text(json.dumps(definition, indent=2, sort_keys=True))
    has_val = datamodule.val_info.n_samples > 0
    trainer, best = make_trainer(definition, state_dir, name=name, has_val=has_val,
                                 accelerator=accelerator, devices=devices, strategy=strategy,
                                 precision=precision, progress=progress,
                                 log_every_n_steps=log_every_n_steps,
                                 extra_callbacks=extra_callbacks)
    ckpt_path = resume_checkpoint(state_dir)
    log.info("%s: %s on %d %s device(s), precision %s, %d parameters; %s", name, kind, devices,
             accelerator, precision, count_parameters(network),
             f"resuming from {ckpt_path}" if ckpt_path else "starting from scratch")
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise RuntimeError(f"model '{name}': training was interrupted at step "
                           f"{trainer.global_step}; rerun to resume from {state_dir}")
    if not trainer.is_global_zero:
        return {}

    chosen = load_best_weights(network, best) or "last"
    network = network.to("cpu").float()
    info = datamodule.info
    training = training_record(
        datamodule, trainer, train_path=train_path, val_path=val_path, chosen=chosen,
        seconds=seconds, ckpt_path=ckpt_path, precision=precision,
        accelerator=f"{accelerator} x{devices}", seed=definition["seed"], state_dir=state_dir,
        n_train=datamodule.n_train, train_subset=datamodule.train_subset)
    metadata = dict(info.metadata)
    baselines = {}
    if targets.kind in ("fourier_coefficients", "potential"):
        # The evaluation's "training mean" baseline: the pixelwise mean training potential.
        baselines["training_mean_potential_meV"] = training_mean_potential(
            train_path, datamodule.train_positions).tolist()
    save_model_file(output, {
        "model_name": name, "model_kind": kind, "network": spec,
        "state_dict": {k: v.detach().clone() for k, v in network.state_dict().items()},
        "inputs": {"variable": inputs["variable"], "fields_T": datamodule.fields_T,
                   "image_shape": list(info.image_shape), "transform": inputs["transform"]},
        "input_normalization": normalization.to_dict(),
        "targets": targets.to_dict(), "baselines": baselines,
        "data_metadata": metadata, "hyperparameters": definition, "training": training,
    })
    log.info("%s: wrote %s after %d steps (%s, %.0f s this run)", name, output,
             trainer.global_step, chosen, seconds)
    return training
