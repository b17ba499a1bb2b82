"""The Lightning trainer shared by every model kind (P1 networks and P2's diffusion model).

Device and precision choice, the hashed directory of resumable state, which checkpoint a
rerun resumes from, checkpoint and early-stopping callbacks, the best-weight reload, the
``training`` record of a model file, and the loss curve written beside it.

Resumable state lives in ``<state_dir>/<hash>/`` (checkpoints, CSV logs, SLURM hpc
checkpoints), outside the workflow's declared outputs, because Snakemake deletes declared
outputs before it reruns a job (NOTES §7). The hash covers the model's config entry and the
content checksums of the train and val splits, so a changed hyperparameter or dataset never
resumes from stale state.

Checkpoints are written atomically (:class:`AtomicCheckpointIO`: a temporary file, flushed to
the disk, renamed into place), so a job killed while saving leaves the previous checkpoint.
On start (:func:`resume_checkpoint`) every candidate — ``hpc_ckpt_*.ckpt`` (written by
Lightning when SLURM sends the requeue signal), ``checkpoints/last.ckpt`` (every
``checkpoint_every_n_steps``) and ``checkpoints/best.ckpt`` — is verified (it loads, holds
the keys Lightning restores, a step count ≥ 0 and finite weights); a corrupt one (a node that
died mid-write on a file system that does not honour the rename, a truncated copy) is moved to
``<state_dir>/corrupt/`` with a warning naming it, and the usable one with the most recent
training state is resumed (highest global step; at equal steps hpc, last, best, then the
newest file), the global step continuing from it. With none usable the run starts over,
with a warning: never a crash on every rerun.

Preemption has one owner: Lightning. Under SLURM it saves an hpc checkpoint and requeues the
job on SIGURG (``--signal=SIGURG@90`` in profiles/slurm; SIGUSR1 would kill the job-side
Snakemake); the rule has ``retries: 0``.
"""

import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.plugins.io import TorchCheckpointIO

from .. import __version__
from ..datasets.netcdf import atomic_path, code_version, package_versions
from .loss_curve import plot_loss_curve
from .model_file import load_model_file, torch_load_problem

__all__ = ["make_trainer", "load_best_weights", "training_record", "available_cpus",
           "resolve_precision", "devices_and_strategy", "resume_checkpoint", "state_directory",
           "PlainProgressLog", "training_metrics", "write_training_outputs",
           "AtomicCheckpointIO", "checkpoint_problem", "CHECKPOINT_KEYS"]

log = logging.getLogger("mesoinv.training")


def available_cpus() -> int:
    """CPUs this process may use: the SLURM allocation on the node, else the affinity mask."""
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("SLURM_CPUS_ON_NODE"):
        return int(os.environ["SLURM_CPUS_ON_NODE"])
    return len(os.sched_getaffinity(0))


def resolve_precision(requested: str, on_gpu: bool) -> str:
    """``auto`` → ``bf16-mixed`` on a GPU that supports it, ``32-true`` otherwise."""
    if requested != "auto":
        return requested
    if on_gpu and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def devices_and_strategy():
    """(accelerator, devices, strategy) from what the job can see.

    Several GPUs → DDP over all of them. Under SLURM, DDP needs one task per GPU launched
    by ``srun`` (NOTES §7: sbatch alone hangs at initialisation); a mismatch stops here.
    """
    gpus = torch.cuda.device_count()
    if gpus == 0:
        return "cpu", 1, "auto"
    if gpus == 1:
        return "gpu", 1, "auto"
    tasks = os.environ.get("SLURM_NTASKS")
    if os.environ.get("SLURM_JOB_ID") and tasks is not None and int(tasks) != gpus:
        raise RuntimeError(f"the job sees {gpus} GPUs but SLURM_NTASKS={tasks}: DDP under "
                           "SLURM needs one task per GPU (set tasks equal to gpu in the "
                           "profile's train_model block), or request one GPU")
    return "gpu", gpus, "ddp"


def state_directory(state_root, definition: dict, train_path, val_path) -> Path:
    """``<state_root>/<sha256[:16]>`` of (config entry, train and val split content)."""
    identity = {"definition": definition,
                "splits": [_split_identity(train_path), _split_identity(val_path)]}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return Path(state_root) / hashlib.sha256(text.encode()).hexdigest()[:16]


def _split_identity(path) -> str:
    """The split's content checksum from the dataset's manifest, else its size and mtime."""
    path = Path(path)
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text())["splits"].values():
            if Path(entry["file"]).name == path.name:
                return entry["content_sha256"]
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


#: Keys of a Lightning checkpoint that a resume restores (a checkpoint lacking one is corrupt).
CHECKPOINT_KEYS = ("state_dict", "global_step", "epoch", "optimizer_states", "loops")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic: ``torch.save`` to ``.<name>.tmp-<pid>`` beside
    the checkpoint, flushed to the disk, renamed over it
    (:class:`mesoinv.datasets.netcdf.atomic_path`, as shards and splits are written). Every
    checkpoint goes through it: ``last``, ``best`` and SLURM's ``hpc_ckpt_*``. A failed write
    (full disk) leaves the previous checkpoint and is one
    :class:`~mesoinv.datasets.integrity.OutputError` naming the path."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        with atomic_path(path, fsync=True) as tmp:
            torch.save(checkpoint, tmp)


def checkpoint_problem(path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None: it must load (``weights_only``), hold
    :data:`CHECKPOINT_KEYS`, a step count ≥ 0 and finite floating-point weights.

    Raises FileNotFoundError when the file is gone (another rank moved it)."""
    return _inspect_checkpoint(path)[0]


def _inspect_checkpoint(path) -> tuple:
    """(problem or None, global step or None) of a checkpoint (:func:`checkpoint_problem`)."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated, empty, random bytes: any error of the reader
        return f"cannot be loaded: {torch_load_problem(error, path)}", None
    if not isinstance(content, dict):
        return "is not a checkpoint (not a dictionary)", None
    missing = [key for key in CHECKPOINT_KEYS if key not in content]
    if missing:
        return f"lacks {', '.join(missing)}", None
    step = content["global_step"]
    if isinstance(step, torch.Tensor) and step.numel() == 1:
        step = step.item()
    if (isinstance(step, bool) or not isinstance(step, (int, float))
            or not math.isfinite(step) or step < 0 or step != int(step)):
        return f"has global_step {step!r}, not a step count", None
    if not isinstance(content["state_dict"], dict):
        return "has no state_dict of weights", None
    for name, value in content["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and not bool(torch.isfinite(value).all()):
            return f"has non-finite weights ({name})", None
    return None, int(step)


def _move_aside(path: Path, state_dir: Path) -> Path | None:
    """Move a corrupt checkpoint to ``<state_dir>/corrupt/`` (out of Lightning's sight: it
    looks for hpc checkpoints in ``state_dir`` itself); the destination, or None when the file
    was gone already (another rank moved it)."""
    folder = state_dir / "corrupt"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    destination = folder / f"{path.name}.{stamp}"
    counter = 1
    while destination.exists():
        destination = folder / f"{path.name}.{stamp}-{counter}"
        counter += 1
    try:
        os.replace(path, destination)
    except FileNotFoundError:
        return None
    return destination


def resume_checkpoint(state_dir) -> Path | None:
    """The checkpoint a (re)run resumes from: the newest usable one, or None.

    Candidates: ``hpc_ckpt_*.ckpt``, ``checkpoints/last.ckpt``, ``checkpoints/best.ckpt``.
    Each is verified (:func:`checkpoint_problem`); a corrupt one is moved to
    ``<state_dir>/corrupt/`` with a warning naming it and the checkpoint used instead (or that
    the run starts over). Every candidate is verified, not only the chosen one: a corrupt
    ``best.ckpt`` would otherwise stop the run when its weights are loaded at the end. Of the
    usable ones the most recent training state wins: the highest global step, then hpc, last,
    best in that order (``last`` before a ``best`` saved at the same step), then the newest
    file (mtime).
    """
    state_dir = Path(state_dir)
    order = {"hpc": 0, "last": 1, "best": 2}
    candidates = [(p, "hpc") for p in state_dir.glob("hpc_ckpt_*.ckpt")]
    for name in ("last", "best"):
        path = state_dir / "checkpoints" / f"{name}.ckpt"
        if path.is_file():
            candidates.append((path, name))

    usable, corrupt = [], []
    for path, kind in candidates:
        try:
            mtime = path.stat().st_mtime_ns
            problem, step = _inspect_checkpoint(path)
        except FileNotFoundError:
            continue
        if problem is None:
            usable.append(((-step, order[kind], -mtime), path))
            continue
        destination = _move_aside(path, state_dir)
        if destination is not None:
            corrupt.append((path, problem, destination))
    chosen = min(usable)[1] if usable else None
    fallback = (f"resuming from {chosen} instead" if chosen is not None else
                f"no usable checkpoint is left in {state_dir}: training starts over from step 0")
    for path, problem, destination in corrupt:
        log.warning("checkpoint %s is corrupt (%s); moved it to %s; %s", path, problem,
                    destination, fallback)
    return chosen


class PlainProgressLog(Callback):
    """One log line every ``every_n_steps`` and per epoch, for logs under Snakemake/SLURM."""

    def __init__(self, model_name: str, every_n_steps: int = 50):
        self.model_name = model_name
        self.every_n_steps = every_n_steps
        self._start = None
        self._samples = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += len(batch[1]) if isinstance(batch, (tuple, list)) else len(batch)
        if trainer.global_step % self.every_n_steps == 0 and trainer.is_global_zero:
            loss = trainer.callback_metrics.get("train_loss_step")
            rate = self._samples / max(time.perf_counter() - self._start, 1e-9)
            log.info("%s: epoch %d step %d train_loss %.5g (%.0f samples/s)", self.model_name,
                     trainer.current_epoch, trainer.global_step,
                     float("nan") if loss is None else float(loss), rate)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("val_loss")
        log.info("%s: epoch %d step %d val_loss %.5g", self.model_name, trainer.current_epoch,
                 trainer.global_step, float("nan") if loss is None else float(loss))


def make_trainer(definition: dict, state_dir, *, name: str, has_val: bool, accelerator,
                 devices, strategy, precision, progress, log_every_n_steps: int,
                 extra_callbacks=()):
    """The Lightning trainer of every model kind, and its best-``val_loss`` checkpoint callback.

    Checkpoints in ``<state_dir>/checkpoints`` (``last`` every ``checkpoint_every_n_steps``,
    ``best`` when there is a validation split), written atomically
    (:class:`AtomicCheckpointIO`), early stopping when configured and a
    validation split exists, plain log lines off a terminal, CSV logs flushed as often as
    checkpoints (a killed run keeps its curve), and Lightning's SLURM environment with SIGURG
    as the requeue signal when it runs under SLURM (module docstring).

    Returns
    -------
    (pl.Trainer, ModelCheckpoint or None)
    """
    checkpoints = Path(state_dir) / "checkpoints"
    every = definition["checkpoint_every_n_steps"]
    callbacks = [ModelCheckpoint(dirpath=checkpoints, filename="step-{step}", save_top_k=0,
                                 save_last=True, every_n_train_steps=every,
                                 enable_version_counter=False)]
    best = None
    if has_val:
        best = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="val_loss",
                               mode="min", save_top_k=1, enable_version_counter=False)
        callbacks.append(best)
    stopping = definition["early_stopping"]
    if stopping is not None and has_val:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min",
                                       patience=stopping["patience"],
                                       min_delta=stopping.get("min_delta", 0.0)))
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        callbacks.append(PlainProgressLog(name, log_every_n_steps))
    callbacks.extend(extra_callbacks)
    plugins = [AtomicCheckpointIO()]
    # Lightning's own test (SLURM_NTASKS set, job name not bash/interactive), with our signal.
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGURG))
    max_steps = definition["max_steps"] if definition["max_steps"] is not None else -1
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, precision=precision,
        max_epochs=definition["max_epochs"], max_steps=max_steps, callbacks=callbacks,
        logger=CSVLogger(state_dir, name="logs", flush_logs_every_n_steps=every),
        default_root_dir=state_dir, plugins=plugins, enable_progress_bar=progress,
        log_every_n_steps=min(log_every_n_steps, 50), deterministic=accelerator == "cpu",
        num_sanity_val_steps=0, enable_model_summary=False)
    return trainer, best


def load_best_weights(network, best) -> str | None:
    """Load the best-``val_loss`` checkpoint's network weights into ``network``; returns
    "best val_loss … (step …)", or None when there is no such checkpoint (keep the last)."""
    path = Path(best.best_model_path) if best is not None and best.best_model_path else None
    if path is None or not path.is_file():
        return None
    problem = checkpoint_problem(path)
    if problem is not None:
        log.warning("best checkpoint %s %s; the model file keeps the last weights", path,
                    problem)
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict({k.removeprefix("network."): v
                             for k, v in checkpoint["state_dict"].items()
                             if k.startswith("network.")})
    # The score is None when the callback's state was not restored (e.g. the run resumed
    # into a moved state directory and stopped at once); the weights are still the best's.
    score = best.best_model_score
    value = f"{float(score):.6g}" if score is not None else "(score not restored)"
    return f"best val_loss {value} (step {checkpoint['global_step']})"


def training_record(datamodule, trainer, *, train_path, val_path, chosen, seconds, ckpt_path,
                    precision, accelerator, seed, state_dir, **extra) -> dict:
    """The ``training`` entry of a model file: data, steps, chosen weights, versions, command."""
    info = datamodule.info
    return {
        "dataset": info.metadata.get("dataset_name", Path(train_path).name),
        "train_file": str(train_path), "val_file": str(val_path),
        "n_train": info.n_samples, "n_val": datamodule.val_info.n_samples,
        "train_split_identity": _split_identity(train_path),
        "val_split_identity": _split_identity(val_path),
        "global_step": int(trainer.global_step), "epochs": int(trainer.current_epoch),
        "weights": chosen, "seconds_this_run": seconds, "resumed_from": str(ckpt_path or ""),
        "data_mode": datamodule.data_mode, "precision": precision,
        "accelerator": accelerator, "seed": seed, **extra,
        "code_version": code_version(), "mesoinv_version": __version__,
        "torch_version": str(torch.__version__), "lightning_version": str(pl.__version__),
        "package_versions": package_versions(), "state_dir": str(state_dir),
        "command": " ".join(sys.argv),
    }


def training_metrics(state_dir) -> "pandas.DataFrame":  # noqa: F821
    """All CSV-logger metrics of a state directory (every run, resumed ones included), one row
    per (step, metric set), later runs winning on repeated steps."""
    import pandas as pd

    frames = []
    for path in sorted(Path(state_dir).glob("logs/version_*/metrics.csv"),
                       key=lambda p: int(p.parent.name.split("_")[1])):
        frame = pd.read_csv(path)
        frame["run"] = int(path.parent.name.split("_")[1])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["step", "epoch", "run"])
    return pd.concat(frames, ignore_index=True)


def write_training_outputs(model_path, metrics_csv, loss_png):
    """The loss-curve PNG and the merged metrics CSV of a trained model (workflow outputs)."""
    model = load_model_file(model_path)
    table = training_metrics(model.training["state_dir"])
    with atomic_path(metrics_csv) as tmp:
        table.to_csv(tmp, index=False)
    plot_loss_curve(table, loss_png, title=f"{model.model_name} ({model.model_kind}), "
                                           f"{model.training['n_train']} training samples",
                    model_kind=model.model_kind)
