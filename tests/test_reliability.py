"""Learning-side reliability (issue 20): corrupt checkpoints recover, predictions never silently
NaN, outputs never overwrite inputs, and every failure is one line naming its path.

1. checkpoints are written atomically; a truncated, empty or random-bytes checkpoint is moved
   aside with a warning naming it and the fallback, and the killed-and-corrupted run finishes
   on rerun (P1 and P2);
2. inference inputs are validated like datasets (finite, densities ≥ 0, conductance inside
   [0, open channels], netCDF samples equal to their checksums); a non-finite prediction is an
   error, never a file;
3. predict, simulate and evaluate refuse an existing output without --force and an input
   always;
4. every output is checked before any computation; the outputs of a command appear together or
   not at all;
5. lock-file and read-only errors name their path; torch's advice is never passed on; the docs
   say how to unlock a killed workflow.

Data: the test config's P1 and P2 datasets, simulated in seconds; models: tiny, a few steps.
"""

import dataclasses
import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from mesoinv import cli
from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.datasets import integrity
from mesoinv.datasets.aggregate import SPLITS, validate_shards, write_splits
from mesoinv.datasets.integrity import (OutputError, OutputLock, check_samples,
                                        describe_io_error)
from mesoinv.inference import p1_predict, p2_generate
from mesoinv.training import trainer as trainer_module
from mesoinv.training.model_file import load_model_file
from mesoinv.training.train_p1 import train_model
from mesoinv.training.train_p2 import train_diffusion_model
from mesoinv.training.trainer import AtomicCheckpointIO, resume_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"
FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}

P2_ARCHITECTURE = {"base_channels": 8, "channel_mults": [1, 2, 2], "groups": 4,
                   "linear_attention_heads": 2, "linear_attention_head_dim": 8,
                   "attention_heads": 4, "attention_head_dim": 8, "trace_token_dim": 16,
                   "trace_layers": 1, "trace_heads": 4, "condition_channels": 4}


pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


def _splits(name, n_samples, directory):
    spec = dataclasses.replace(dataset_spec(load_config(TEST_CONFIG), name), n_samples=n_samples)
    shard = directory / "all.nc"
    simulate_shard(spec, range(n_samples), shard, progress=False)
    validate_shards([shard], spec, {str(shard): list(range(n_samples))})
    outputs = {split: directory / f"{name}-{split}.nc" for split in SPLITS}
    write_splits([shard], spec, FRACTIONS, outputs)
    for split in ("val", "test"):
        with netCDF4.Dataset(outputs[split]) as ds:
            assert ds.dimensions["sample"].size >= 2, split
    return outputs


@pytest.fixture(scope="module")
def p1_splits(tmp_path_factory):
    return _splits("p1_varying", 16, tmp_path_factory.mktemp("p1"))


@pytest.fixture(scope="module")
def p2_splits(tmp_path_factory):
    return _splits("p2_wire", 36, tmp_path_factory.mktemp("p2"))


def p1_definition(**changes):
    entry = {**load_config(TEST_CONFIG)["models"]["p1_s_nd"], "name": "p1_s_nd"}
    entry.update(changes)
    return entry


def p2_definition(**changes):
    entry = {"name": "p2_tiny", "kind": "p2_diffusion", "dataset": "p2_wire",
             "architecture": P2_ARCHITECTURE, "diffusion": {"num_timesteps": 20},
             "optimizer": {"name": "sam", "learning_rate": 3e-3},
             "sampling": {"sampler": "ddim", "steps": 3, "samples_per_trace": 2, "seed": 0},
             "batch_size": 6, "max_epochs": 1000, "max_steps": 2, "checkpoint_every_n_steps": 2,
             "data_mode": "ram", "num_workers": 0, "seed": 1, "precision": "32-true"}
    entry.update(changes)
    return entry


@pytest.fixture(scope="module")
def p1_model(p1_splits, tmp_path_factory):
    directory = tmp_path_factory.mktemp("p1_model")
    train_model(p1_definition(max_steps=2), train_path=p1_splits["train"],
                val_path=p1_splits["val"], output=directory / "model.pt",
                state_root=directory / "state", progress=False)
    return directory / "model.pt"


@pytest.fixture(scope="module")
def p2_model(p2_splits, tmp_path_factory):
    directory = tmp_path_factory.mktemp("p2_model")
    train_diffusion_model(p2_definition(optimizer={"name": "adam", "learning_rate": 3e-3}),
                          train_path=p2_splits["train"], val_path=p2_splits["val"],
                          output=directory / "model.pt", state_root=directory / "state",
                          progress=False)
    return directory / "model.pt"


def run_cli(capsys, *args):
    """`mesoinv <args>` in this process: (exit status, stderr)."""
    capsys.readouterr()
    try:
        cli.main([str(a) for a in args])
        status = 0
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def one_line(stderr, *words):
    lines = [line for line in stderr.splitlines() if line.startswith("mesoinv:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def leftovers(directory):
    """Temporary and lock files anywhere under ``directory``."""
    return sorted(str(p) for p in Path(directory).rglob(".*")
                  if ".tmp-" in p.name or p.name.endswith(".lock") or ".probe-" in p.name)


# -- 1. checkpoints -------------------------------------------------------------------------------

def _corrupt(path, how):
    data = Path(path).read_bytes()
    if how == "truncated":
        Path(path).write_bytes(data[:len(data) // 2])
    elif how == "zero-byte":
        Path(path).write_bytes(b"")
    elif how == "random bytes":
        Path(path).write_bytes(np.random.default_rng(0).bytes(len(data)))
    else:
        raise ValueError(how)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 2}

    def dies_mid_write(obj, f, *args, **kwargs):   # a job killed (or a disk full) mid-write
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OutputError, match=f"cannot write {path}: no space left"):
        io.save_checkpoint({"global_step": 4}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"global_step": 2}  # the previous one stays
    assert leftovers(tmp_path) == []


def _fake_checkpoint(path, step, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"network.w": torch.ones(2)}, "global_step": step, "epoch": 0,
                "optimizer_states": [], "loops": {}}, path)
    os.utime(path, ns=(mtime, mtime))


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "random bytes"])
def test_resume_verifies_every_candidate_and_moves_corrupt_ones_aside(how, tmp_path, caplog):
    hpc, last = tmp_path / "hpc_ckpt_1.ckpt", tmp_path / "checkpoints" / "last.ckpt"
    best = tmp_path / "checkpoints" / "best.ckpt"
    _fake_checkpoint(best, 2, 1_000_000_000_000_000_000)
    _fake_checkpoint(last, 6, 1_000_000_000_300_000_000)
    _fake_checkpoint(hpc, 5, 1_000_000_000_200_000_000)
    assert resume_checkpoint(tmp_path) == last  # newest first

    _corrupt(last, how)
    os.utime(last, ns=(1_000_000_000_300_000_000,) * 2)
    with caplog.at_level(logging.WARNING, logger="mesoinv.training"):
        assert resume_checkpoint(tmp_path) == hpc  # the next newest
    message = caplog.text
    assert f"checkpoint {last} is corrupt" in message and f"resuming from {hpc} instead" in message
    assert "weights_only" not in message
    assert not last.exists() and len(list((tmp_path / "corrupt").glob("last.ckpt.*"))) == 1

    _corrupt(hpc, how)
    _corrupt(best, how)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mesoinv.training"):
        assert resume_checkpoint(tmp_path) is None  # nothing usable: start over, no crash
    assert f"checkpoint {hpc} is corrupt" in caplog.text
    assert f"checkpoint {best} is corrupt" in caplog.text
    assert "training starts over from step 0" in caplog.text
    assert not list(tmp_path.glob("hpc_ckpt_*.ckpt"))  # out of Lightning's hpc auto-resume
    assert len(list((tmp_path / "corrupt").iterdir())) == 3


def test_resume_prefers_the_latest_step_and_last_over_best_at_equal_steps(tmp_path):
    last, best = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "best.ckpt"
    _fake_checkpoint(last, 4, 1_000_000_000_000_000_000)
    _fake_checkpoint(best, 4, 1_000_000_000_300_000_000)  # saved after it, at validation end
    assert resume_checkpoint(tmp_path) == last
    _fake_checkpoint(best, 5, 1_000_000_000_000_000_000)  # validation after the last save
    assert resume_checkpoint(tmp_path) == best


def test_checkpoint_with_a_bad_step_or_missing_keys_is_not_resumed(tmp_path):
    last = tmp_path / "checkpoints" / "last.ckpt"
    _fake_checkpoint(last, 4, 1_000_000_000_000_000_000)
    content = torch.load(last, weights_only=True)
    content["global_step"] = float("nan")
    torch.save(content, last)
    assert "not a step count" in trainer_module.checkpoint_problem(last)
    del content["loops"]
    content["global_step"] = 3
    torch.save(content, last)
    assert "lacks loops" in trainer_module.checkpoint_problem(last)
    content["loops"] = {}
    content["state_dict"]["network.w"] = torch.tensor([1.0, float("nan")])
    torch.save(content, last)
    assert "non-finite weights" in trainer_module.checkpoint_problem(last)
    assert resume_checkpoint(tmp_path) is None


class _Interrupt(Exception):
    pass


class _StopAt(Callback):
    """Raise at the start of the batch after ``step`` (its checkpoint is written by then)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise _Interrupt(trainer.global_step)


# (what is corrupted, how): the last checkpoint alone falls back on best; both start over.
CORRUPTIONS = [("last", "truncated"), ("last", "zero-byte"), ("last and best", "random bytes")]


@pytest.mark.parametrize("which,how", CORRUPTIONS)
@pytest.mark.parametrize("paper", ["P1", "P2"])
def test_killed_and_corrupted_training_finishes_on_rerun(paper, which, how, p1_splits,
                                                         p2_splits, tmp_path, caplog):
    if paper == "P1":
        train, splits = train_model, p1_splits
        definition = p1_definition(max_steps=8, max_epochs=1000, checkpoint_every_n_steps=2)
    else:
        train, splits = train_diffusion_model, p2_splits
        definition = p2_definition(max_steps=8)
    paths = {"train_path": splits["train"], "val_path": splits["val"],
             "output": tmp_path / "model.pt", "state_root": tmp_path / "state",
             "progress": False}
    with pytest.raises(_Interrupt):
        train(definition, **paths, extra_callbacks=[_StopAt(4)])
    state = next((tmp_path / "state").iterdir())
    last, best = state / "checkpoints" / "last.ckpt", state / "checkpoints" / "best.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4 and best.is_file()
    for name in which.split(" and "):
        _corrupt(state / "checkpoints" / f"{name}.ckpt", how)

    with caplog.at_level(logging.INFO, logger="mesoinv.training"):
        record = train(definition, **paths)  # the first rerun finishes
    assert record["global_step"] == 8
    assert load_model_file(tmp_path / "model.pt").training["global_step"] == 8
    assert f"checkpoint {last} is corrupt" in caplog.text
    if which == "last":
        assert f"resuming from {best} instead" in caplog.text
        assert record["resumed_from"] == str(best)
    else:
        assert f"checkpoint {best} is corrupt" in caplog.text
        assert "training starts over from step 0" in caplog.text
        assert record["resumed_from"] == ""
    assert "weights_only" not in caplog.text
    assert len(list((state / "corrupt").iterdir())) == len(which.split(" and "))
    assert torch.load(last, weights_only=True)["global_step"] == 8
    assert leftovers(tmp_path) == []


class _SaveHpcAt(Callback):
    """Save an hpc checkpoint after ``step`` as Lightning's SLURM requeue handler does
    (``trainer.save_checkpoint(hpc_save_path(default_root_dir))``)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            connector = trainer._checkpoint_connector
            trainer.save_checkpoint(connector.hpc_save_path(trainer.default_root_dir))


def test_hpc_checkpoint_is_atomic_and_the_fallback_when_the_others_are_corrupt(
        p1_splits, tmp_path, caplog, monkeypatch):
    definition = p1_definition(max_steps=8, max_epochs=1000, checkpoint_every_n_steps=2)
    paths = {"train_path": p1_splits["train"], "val_path": p1_splits["val"],
             "output": tmp_path / "model.pt", "state_root": tmp_path / "state",
             "progress": False}
    saved = []
    original = AtomicCheckpointIO.save_checkpoint

    def recording(self, checkpoint, path, storage_options=None):
        saved.append(Path(path).name)
        return original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording)
    with pytest.raises(_Interrupt):
        train_model(definition, **paths, extra_callbacks=[_SaveHpcAt(3), _StopAt(4)])
    assert {"hpc_ckpt_1.ckpt", "last.ckpt", "best.ckpt"} <= set(saved)  # every kind, atomic
    state = next((tmp_path / "state").iterdir())
    hpc = state / "hpc_ckpt_1.ckpt"
    assert torch.load(hpc, weights_only=True)["global_step"] == 3
    for name in ("last", "best"):
        _corrupt(state / "checkpoints" / f"{name}.ckpt", "truncated")
    with caplog.at_level(logging.INFO, logger="mesoinv.training"):
        record = train_model(definition, **paths)
    assert record["resumed_from"] == str(hpc) and record["global_step"] == 8
    assert f"resuming from {hpc} instead" in caplog.text
    assert leftovers(tmp_path) == []


# -- 2. inference inputs ------------------------------------------------------------------------

def _copy(source, target):
    shutil.copyfile(source, target)
    return target


def _edit(path, variable, position, change):
    """Change one stored value of sample row ``position`` (as a corrupt or edited copy)."""
    with netCDF4.Dataset(path, "a") as ds:
        ds.set_auto_maskandscale(False)
        values = np.asarray(ds[variable][position])
        flat = values.reshape(-1).copy()
        flat[len(flat) // 3] = change(flat[len(flat) // 3])
        ds[variable][position] = flat.reshape(values.shape)
    with netCDF4.Dataset(path) as ds:
        return int(ds["sample_id"][position])


def test_npy_map_with_a_negative_pixel_is_refused(p1_model, p1_splits, tmp_path, capsys):
    with netCDF4.Dataset(p1_splits["test"]) as ds:
        maps = np.asarray(ds["pldos"][:2, :1], dtype=np.float64)
    maps[1, 0, 3, 4] = -1.0
    np.save(tmp_path / "maps.npy", maps)
    out = tmp_path / "p.nc"
    status, err = run_cli(capsys, "predict", p1_model, tmp_path / "maps.npy",
                          "--lattice-constant-nm", 5, "--energy-meV", 5.6, "--fields-T", 0,
                          "-o", out)
    assert status == 2
    one_line(err, "maps.npy", "map 1, channel 0", "site (3, 4)", "PLDOS = -1", "negative")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("change,words", [
    (lambda v: v * -1e6, ["is negative"]),
    (lambda v: v * 1.5 + 1e-3, ["does not match its checksum", "sample_checksum"]),
    (lambda v: np.nan, ["is not finite"]),
])
def test_netcdf_maps_are_validated_like_a_dataset(change, words, p1_model, p1_splits, tmp_path,
                                                  capsys):
    copy = _copy(p1_splits["test"], tmp_path / "test-copy.nc")
    sample = _edit(copy, "pldos", 1, change)
    out = tmp_path / "p.nc"
    status, err = run_cli(capsys, "predict", p1_model, copy, "-o", out)
    assert status == 2
    one_line(err, copy, f"sample {sample}", *words)
    assert not out.exists() and leftovers(tmp_path) == []
    # the untouched samples still predict (--ids of the others)
    with netCDF4.Dataset(copy) as ds:
        others = [int(i) for i in ds["sample_id"][:] if int(i) != sample]
    status, err = run_cli(capsys, "predict", p1_model, copy, "--ids",
                          ",".join(map(str, others)), "-o", out)
    assert status == 0, err


def test_validated_samples_of_a_split_pass(p1_splits, p2_splits):
    assert check_samples(p1_splits["test"]) > 0
    assert check_samples(p2_splits["val"]) > 0


def _write_csv(path, fields, columns):
    table = {"field_T": [f"{f:.17g}" for f in fields]}
    table.update({name: [f"{v:.17g}" for v in values] for name, values in columns.items()})
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def test_csv_conductance_outside_its_bounds_is_refused(p2_model, p2_splits, tmp_path, capsys):
    model = load_model_file(p2_model)
    fields = model.inputs["fields_T"]
    with netCDF4.Dataset(p2_splits["val"]) as ds:
        trace = np.asarray(ds["conductance"][0], dtype=np.float64)
        channels = np.asarray(ds["open_channels"][:])
    assert model.data_metadata["open_channels"] == channels.tolist()
    out = tmp_path / "g.nc"
    negative = trace.copy()
    negative[2] = -0.5
    too_many = trace.copy()
    too_many[4] = channels[4] + 1.0
    for values, words in ((negative, ["trace 'bad'", "conductance = -0.5", "B = "]),
                          (too_many, ["trace 'bad'", f"{channels[4] + 1:g} e²/h",
                                      f"outside [0, {channels[4]}]"])):
        csv = _write_csv(tmp_path / "traces.csv", fields, {"good": trace, "bad": values})
        status, err = run_cli(capsys, "predict", p2_model, csv, "-o", out)
        assert status == 2
        one_line(err, csv, *words)
        assert not out.exists()


def test_netcdf_trace_outside_its_bounds_is_refused(p2_model, p2_splits, tmp_path, capsys):
    copy = _copy(p2_splits["val"], tmp_path / "val-copy.nc")
    sample = _edit(copy, "conductance", 0, lambda v: v * -1e6)
    out = tmp_path / "g.nc"
    status, err = run_cli(capsys, "predict", p2_model, copy, "-o", out)
    assert status == 2
    one_line(err, copy, f"sample {sample}", "conductance", "outside [0,")
    assert not out.exists() and leftovers(tmp_path) == []


def _nan_model(model_path, target):
    content = load_model_file(model_path).content
    content["state_dict"] = {k: (torch.full_like(v, float("nan")) if v.is_floating_point()
                                 else v) for k, v in content["state_dict"].items()}
    torch.save(content, target)
    return target


@pytest.mark.parametrize("paper", ["P1", "P2"])
def test_non_finite_prediction_is_an_error_not_a_file(paper, p1_model, p2_model, p1_splits,
                                                      p2_splits, tmp_path, capsys):
    model = _nan_model(p1_model if paper == "P1" else p2_model, tmp_path / "nan.pt")
    data = p1_splits["test"] if paper == "P1" else p2_splits["val"]
    out, figure = tmp_path / "p.nc", tmp_path / "p.png"
    status, err = run_cli(capsys, "predict", model, data, "-o", out, "--figure", figure)
    assert status == 1
    one_line(err, "model", "non-finite prediction", "sample", "nothing was written")
    assert not out.exists() and not figure.exists() and leftovers(tmp_path) == []


# -- 3. outputs never overwrite inputs, nor existing files without --force ------------------------

def test_predict_refuses_existing_output_and_inputs(p1_model, p1_splits, tmp_path, capsys):
    data = _copy(p1_splits["test"], tmp_path / "test.nc")
    model = _copy(p1_model, tmp_path / "model.pt")
    before = {p: p.read_bytes() for p in (data, model)}
    for target, what in ((data, "input file"), (model, "model file")):
        for force in ([], ["--force"]):
            status, err = run_cli(capsys, "predict", model, data, "-o", target, *force)
            assert status == 1
            one_line(err, f"refusing to write {target}", what)
            status, err = run_cli(capsys, "predict", model, data, "-o", tmp_path / "p.nc",
                                  "--figure", target, *force)
            assert status == 1
            one_line(err, f"refusing to write {target}", what)
    assert {p: p.read_bytes() for p in (data, model)} == before
    assert not (tmp_path / "p.nc").exists()

    existing = tmp_path / "existing.nc"
    existing.write_text("keep me")
    status, err = run_cli(capsys, "predict", model, data, "-o", existing)
    assert status == 1
    one_line(err, f"refusing to overwrite existing {existing}", "--force")
    assert existing.read_text() == "keep me"
    status, err = run_cli(capsys, "predict", model, data, "-o", existing, "--force")
    assert status == 0, err
    with netCDF4.Dataset(existing) as ds:
        assert ds.format_version == "mesoinv-predictions-1"
    assert leftovers(tmp_path) == []


def _simulate(*args):
    result = subprocess.run([sys.executable, "-m", "mesoinv", "simulate", "--config",
                             str(TEST_CONFIG), "--dataset", "p1_varying", "--ids", "0:1",
                             "--no-progress", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr


def test_simulate_refuses_an_existing_output(tmp_path):
    existing = tmp_path / "existing.nc"
    existing.write_text("keep me")
    status, err = _simulate("-o", existing)
    assert status == 1
    one_line(err, f"refusing to overwrite existing {existing}", "--force")
    assert existing.read_text() == "keep me"
    status, err = _simulate("-o", TEST_CONFIG, "--force")
    assert status == 1
    one_line(err, f"refusing to write {TEST_CONFIG}", "config file")
    status, err = _simulate("-o", existing, "--force")
    assert status == 0, err
    with netCDF4.Dataset(existing) as ds:
        assert list(ds["sample_id"][:]) == [0]
    assert leftovers(tmp_path) == []


def test_evaluate_refuses_existing_files_and_writes_all_or_nothing(p1_model, p1_splits,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    predictions = p1_predict.predict_dataset(p1_model, p1_splits["test"], tmp_path / "p.nc")
    directory = tmp_path / "evaluation"
    directory.mkdir()
    (directory / "metrics.csv").write_text("keep me")
    status, err = run_cli(capsys, "evaluate", predictions, "--dataset", p1_splits["test"],
                          "--output-dir", directory)
    assert status == 1
    one_line(err, f"refusing to overwrite existing {directory / 'metrics.csv'}", "--force")
    assert sorted(p.name for p in directory.iterdir()) == ["metrics.csv"]
    # an output that is an input: refused even with --force
    status, err = run_cli(capsys, "evaluate", predictions, "--output-dir", tmp_path,
                          "--dataset", tmp_path / "metrics.csv", "--force")
    assert status == 1
    one_line(err, "refusing to write", "dataset file")

    # a figure that fails after the tables were written: nothing appears
    from mesoinv.evaluation.p1_parameters import evaluate as module

    def broken(*args, **kwargs):
        raise RuntimeError("the figure failed")

    monkeypatch.setattr(module, "plot_error_histograms", broken)
    status, err = run_cli(capsys, "evaluate", predictions, "--dataset", p1_splits["test"],
                          "--output-dir", directory, "--force")
    assert status == 1 and "the figure failed" in err
    assert sorted(p.name for p in directory.iterdir()) == ["metrics.csv"]
    assert (directory / "metrics.csv").read_text() == "keep me"
    monkeypatch.undo()
    status, err = run_cli(capsys, "evaluate", predictions, "--dataset", p1_splits["test"],
                          "--output-dir", directory, "--force")
    assert status == 0, err
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        cli.PARAMETER_EVALUATION_FILES.values())
    assert (directory / "metrics.csv").read_text() != "keep me"
    assert leftovers(tmp_path) == []


# -- 4. outputs checked before any computation; all or nothing ----------------------------------

def test_unwritable_output_is_found_before_generation(p2_model, p2_splits, tmp_path, capsys,
                                                      monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("generation ran before the outputs were checked")

    monkeypatch.setattr(p2_generate, "generate_images", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for outputs in ((blocker / "g.nc",), (tmp_path / "g.nc", "--figure", blocker / "g.png")):
        status, err = run_cli(capsys, "predict", p2_model, p2_splits["val"], "--sampler",
                              "ddpm", "-o", *outputs)
        assert status == 1
        one_line(err, f"cannot write {blocker}/g.", "a parent is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("paper", ["P1", "P2"])
def test_failing_figure_leaves_no_predictions_file(paper, p1_model, p2_model, p1_splits,
                                                   p2_splits, tmp_path, capsys, monkeypatch):
    import mesoinv.inference.p1_figures as p1_figures
    import mesoinv.inference.p2_figures as p2_figures

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    module, name = ((p1_figures, "plot_parameter_prediction") if paper == "P1"
                    else (p2_figures, "plot_generated"))
    monkeypatch.setattr(module, name, broken)
    model, data = (p1_model, p1_splits["test"]) if paper == "P1" else (p2_model, p2_splits["val"])
    out, figure = tmp_path / "p.nc", tmp_path / "p.png"
    status, err = run_cli(capsys, "predict", model, data, "-o", out, "--figure", figure)
    assert status == 1
    assert not out.exists() and not figure.exists() and leftovers(tmp_path) == []
    one_line(err, "cannot write", "no space left")
    monkeypatch.undo()
    status, err = run_cli(capsys, "predict", model, data, "-o", out, "--figure", figure)
    assert status == 0, err
    assert out.stat().st_size > 0 and figure.stat().st_size > 0
    assert leftovers(tmp_path) == []


# -- 5. errors ----------------------------------------------------------------------------------

def test_full_disk_while_writing_the_lock_file_names_it_and_leaves_none(tmp_path, monkeypatch):
    output = tmp_path / "out.nc"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(integrity.os, "write", full)
    with pytest.raises(OutputError) as caught:
        OutputLock(output).acquire()
    monkeypatch.undo()
    message = str(caught.value)
    assert str(tmp_path / ".out.nc.lock") in message and "no space left" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_system_is_not_called_a_full_disk(tmp_path, monkeypatch):
    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(integrity.os, "statvfs", lambda path: Full())
    text = describe_io_error(OSError(errno.EROFS, "Read-only file system"), tmp_path)
    assert text == "read-only file system"
    # a cause netCDF does not name ("HDF error") on a disk without space: the guess stays
    assert "disk full?" in describe_io_error(RuntimeError("NetCDF: HDF error"), tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(integrity.os, "open", read_only)
    with pytest.raises(OutputError) as caught:
        integrity.check_writable(tmp_path / "out.nc")
    assert str(caught.value) == f"cannot write {tmp_path / 'out.nc'}: read-only file system"


def test_random_bytes_model_file_gets_no_torch_advice(p1_splits, tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(np.random.default_rng(1).bytes(4096))
    status, err = run_cli(capsys, "predict", model, p1_splits["test"], "-o", tmp_path / "p.nc")
    assert status == 2
    line = one_line(err, model, "not a mesoinv model file")
    assert "weights_only" not in err and "trusted source" not in err, line
    torch.save(torch.nn.Linear(2, 2), model)  # pickled objects: refused, never unpickled
    status, err = run_cli(capsys, "predict", model, p1_splits["test"], "-o", tmp_path / "p.nc")
    assert status == 2 and "weights_only" not in err
    one_line(err, "not a mesoinv model file", "Python objects")


def test_docs_explain_the_unlock_after_a_killed_run():
    text = (ROOT / "docs" / "workflow.md").read_text()
    assert "snakemake --unlock" in text and "LockException" in text
    assert "--rerun-incomplete" in text
    assert "corrupt" in text and "--force" in text
    models = (ROOT / "docs" / "models.md").read_text()
    assert "--force" in models and "sample_checksum" in models
