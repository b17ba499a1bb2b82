"""The learning stage on the test config: tiny CNNs for a few CPU steps (behaviour, not
accuracy), the model file, `mesoinv predict`, kill-and-resume, data modes, and the mirror
symmetry behind the augmentation checked with the simulator itself."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mesoinv.config import ConfigError, load_config, validate_config
from mesoinv.inference.p1_predict import predict_dataset
from mesoinv.training.p1_data import ImageDataModule, iter_images, read_targets
from mesoinv.training.model_file import load_model_file
from mesoinv.training.optimizers import NonFiniteLossError
from mesoinv.training.p1_module import RegressionModule
from mesoinv.training.normalization import ImageNormalization
from mesoinv.training.model_file import network_from_spec
from mesoinv.training.train_p1 import CHANNELS_LAST_KINDS, network_spec, train_model
from mesoinv.training.trainer import training_metrics

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"
MESOINV = [sys.executable, "-m", "mesoinv"]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """The test config's p1_varying splits, made by the real workflow (seconds)."""
    workdir = tmp_path_factory.mktemp("splits")
    base = "results/datasets/p1_varying/p1_varying"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(TEST_CONFIG), "--cores", "2",
               f"{base}-train.nc", f"{base}-val.nc", f"{base}-test.nc"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return {split: workdir / f"{base}-{split}.nc" for split in ("train", "val", "test")}


def definition(name="p1_s_nd", **changes):
    entry = {**load_config(TEST_CONFIG)["models"][name], "name": name}
    for key, value in changes.items():
        entry[key] = value
    return entry


def train(tmp_path, splits, name="p1_s_nd", **changes):
    output = tmp_path / name / "model.pt"
    record = train_model(definition(name, **changes), train_path=splits["train"],
                         val_path=splits["val"], output=output, state_root=tmp_path / "state",
                         progress=False)
    return output, record


def training_mse(network, datamodule):
    """MSE of standardised targets over the whole training split."""
    images = torch.stack([torch.from_numpy(datamodule.normalization(image)) for image in
                          iter_images(datamodule.train_path, datamodule.field_indices)])
    targets = torch.from_numpy(datamodule.target_standardization(
        read_targets(datamodule.train_path, datamodule.targets)))
    with torch.no_grad():
        return float(torch.mean((network(images) - targets) ** 2))


@pytest.mark.parametrize("name", ["p1_s_nd", "p1_rms_xi"])
def test_each_model_trains_and_its_training_loss_falls(name, splits, tmp_path):
    # Wide enough to fit 8 samples in a few dozen steps (the config's 4-filter net needs
    # ~100 full-batch steps to leave the mean; this one leaves its plateau after ~40).
    output, record = train(tmp_path, splits, name, max_steps=80, max_epochs=1000,
                           architecture={"conv_channels": [16, 16, 16], "kernel_size": 3,
                                         "dense_units": [64, 32]},
                           optimizer={"name": "adam", "learning_rate": 3e-3,
                                      "weight_decay": 0.0})
    model = load_model_file(output)
    assert record["global_step"] == model.training["global_step"] == 80
    dm = ImageDataModule(splits["train"], splits["val"], targets=model.targets["names"],
                         fields_T=model.inputs["fields_T"], transform=model.inputs["transform"])
    dm.fit_statistics()
    torch.manual_seed(definition(name)["seed"])
    pl.seed_everything(definition(name)["seed"], verbose=False)
    untrained = model.build_network().__class__(**model.network["kwargs"])
    pl.seed_everything(definition(name)["seed"], verbose=False)
    # The final weights are the last ones (best on val may be earlier): compare with the last
    # checkpoint's weights to test the optimisation itself.
    last = torch.load(Path(record["state_dir"]) / "checkpoints" / "last.ckpt",
                      weights_only=True)["state_dict"]
    trained = model.build_network()
    trained.load_state_dict({k.removeprefix("network."): v for k, v in last.items()})
    before, after = training_mse(untrained, dm), training_mse(trained, dm)
    assert after < 0.7 * before, (before, after)
    # Loss curve and metrics are part of the outputs.
    table = training_metrics(record["state_dir"])
    assert table["train_loss_step"].notna().sum() > 0


def test_model_file_round_trip_gives_identical_predictions(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=4)
    model = load_model_file(output)
    first = predict_dataset(output, splits["test"], tmp_path / "a.nc")
    # Save the loaded content again and reload: the same bytes of predictions.
    torch.save(model.content, tmp_path / "copy.pt")
    second = predict_dataset(tmp_path / "copy.pt", splits["test"], tmp_path / "b.nc")
    with netCDF4.Dataset(first) as a, netCDF4.Dataset(second) as b:
        for name in model.targets["names"]:
            assert np.asarray(a[name][:]).tobytes() == np.asarray(b[name][:]).tobytes()
    # What inference needs is in the file: statistics, hyperparameters, physics, units.
    assert model.targets["units"] == ["nm", "cm-2"]
    assert model.data_metadata["lattice_constant_nm"] == 5.0
    assert model.data_metadata["energy_meV"] == 5.6
    assert model.inputs["fields_T"] == [0.0]
    assert model.hyperparameters["batch_size"] == 4
    assert model.training["n_train"] > 0


def test_normalisation_statistics_come_from_the_training_split_only(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=2)
    model = load_model_file(output)
    images = np.stack(list(iter_images(splits["train"], [0])))
    assert np.allclose(model.input_normalization["shift"], images.mean(), rtol=1e-12)
    assert np.allclose(model.input_normalization["scale"], images.std(), rtol=1e-9)
    targets = read_targets(splits["train"], model.targets["names"])
    assert np.allclose(model.targets["mean"], targets.mean(axis=0), rtol=1e-12)
    assert np.allclose(model.targets["std"], targets.std(axis=0), rtol=1e-12)
    # Statistics of train + val + test differ: the others were not used.
    everything = np.concatenate([read_targets(splits[s], model.targets["names"])
                                 for s in ("train", "val", "test")])
    assert not np.allclose(model.targets["mean"], everything.mean(axis=0), rtol=1e-6)


def run_cli(*args, cwd=None):
    return subprocess.run([*MESOINV, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_predict_on_stored_samples_equals_the_evaluation(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=4)
    everything = predict_dataset(output, splits["test"], tmp_path / "evaluation.nc")
    with netCDF4.Dataset(everything) as ds:
        ids = np.asarray(ds["sample_id"][:])
    chosen = ids[::-1][:2]  # a subset, in another order
    result = run_cli("predict", output, splits["test"], "--ids", ",".join(map(str, chosen)),
                     "-o", tmp_path / "subset.nc", "--figure", tmp_path / "subset.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "subset.png").stat().st_size > 0
    with netCDF4.Dataset(everything) as full, netCDF4.Dataset(tmp_path / "subset.nc") as sub:
        assert list(sub["sample_id"][:]) == list(chosen)
        where = [int(np.flatnonzero(ids == i)[0]) for i in chosen]
        for name in json.loads(full.targets):
            assert sub[name].units == full[name].units
            assert np.asarray(full[name][:])[where].tobytes() == np.asarray(sub[name][:]).tobytes()
            assert f"{name}_true" in sub.variables


def test_predict_npy_maps(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=2)
    maps = np.stack([image for image in iter_images(splits["test"], [0])])
    np.save(tmp_path / "maps.npy", maps)
    result = run_cli("predict", output, tmp_path / "maps.npy", "--lattice-constant-nm", 5,
                     "--energy-meV", 5.6, "--fields-T", 0, "-o", tmp_path / "p.nc")
    assert result.returncode == 0, result.stderr
    reference = predict_dataset(output, splits["test"], tmp_path / "ref.nc")
    with netCDF4.Dataset(reference) as ref, netCDF4.Dataset(tmp_path / "p.nc") as new:
        assert np.asarray(ref["dopant_distance"][:]).tobytes() == \
            np.asarray(new["dopant_distance"][:]).tobytes()
        assert new["dopant_density"].units == "cm-2"


def test_bad_input_to_predict_gets_its_error_and_writes_nothing(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=2)
    image = next(iter_images(splits["test"], [0]))
    np.save(tmp_path / "good.npy", image)
    np.save(tmp_path / "small.npy", image[:, :-2])
    out = tmp_path / "out.nc"
    physics = ["--lattice-constant-nm", 5, "--energy-meV", 5.6, "--fields-T", 0]
    other_version = load_model_file(output).content
    other_version["format_version"] = "mesoinv-model-0"
    torch.save(other_version, tmp_path / "old.pt")
    (tmp_path / "garbage.pt").write_text("not a model")
    cases = {
        "shape": (["predict", output, tmp_path / "small.npy", *physics], "map shape"),
        "lattice": (["predict", output, tmp_path / "good.npy", "--lattice-constant-nm", 4,
                     "--energy-meV", 5.6, "--fields-T", 0], "lattice_constant_nm = 4.0 nm"),
        "energy": (["predict", output, tmp_path / "good.npy", "--lattice-constant-nm", 5,
                    "--energy-meV", 7, "--fields-T", 0], "energy_meV = 7.0 meV"),
        "field": (["predict", output, tmp_path / "good.npy", "--lattice-constant-nm", 5,
                   "--energy-meV", 5.6, "--fields-T", 0.5], "field(s) [0.0] T missing"),
        "missing input": (["predict", output, tmp_path / "nope.nc"], "does not exist"),
        "missing model": (["predict", tmp_path / "nope.pt", splits["test"]], "does not exist"),
        "format version": (["predict", tmp_path / "old.pt", splits["test"]], "mesoinv-model-0"),
        "not a model": (["predict", tmp_path / "garbage.pt", splits["test"]],
                        "not a mesoinv model file"),
        "missing physics": (["predict", output, tmp_path / "good.npy"], "--lattice-constant-nm"),
    }
    for case, (args, message) in cases.items():
        result = run_cli(*args, "-o", out)
        assert result.returncode == 2, (case, result.stderr)
        assert message in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr, case
        assert not out.exists(), case
        assert not list(tmp_path.glob(".out.nc.tmp-*")), case


def test_dataset_of_another_geometry_is_refused(splits, tmp_path):
    output, _ = train(tmp_path, splits, max_steps=2)
    copy = tmp_path / "other.nc"
    copy.write_bytes(Path(splits["test"]).read_bytes())
    with netCDF4.Dataset(copy, "a") as ds:
        ds.energy_meV = 8.0
        ds.qpc_first_y_site = np.int32(ds.qpc_first_y_site + 1)
    result = run_cli("predict", output, copy, "-o", tmp_path / "p.nc")
    assert result.returncode == 2
    assert "energy_meV = 8.0 meV" in result.stderr and "qpc_first_y_site" in result.stderr


def test_killed_training_resumes_and_continues_the_step_count(splits, tmp_path):
    entry = definition(max_steps=60, max_epochs=1000, checkpoint_every_n_steps=2)
    (tmp_path / "definition.json").write_text(json.dumps(entry))
    args = [*MESOINV, "train", "--definition", tmp_path / "definition.json",
            "--train", splits["train"], "--val", splits["val"], "--state-dir",
            tmp_path / "state", "-o", tmp_path / "model.pt", "--threads", "1", "--no-progress"]
    process = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    # Kill once a checkpoint and the first run's loss log are on disk (on a loaded machine
    # the log can reach the disk a moment after the checkpoint).
    while not (list((tmp_path / "state").glob("*/checkpoints/last.ckpt"))
               and list((tmp_path / "state").glob("*/logs/version_0/metrics.csv"))):
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "model.pt").exists()  # nothing that looks complete
    last = next((tmp_path / "state").glob("*/checkpoints/last.ckpt"))
    step_at_kill = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step_at_kill < 60
    result = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    model = load_model_file(tmp_path / "model.pt")
    assert model.training["global_step"] == 60
    assert model.training["resumed_from"].endswith("last.ckpt")
    assert f"resuming from {last}" in result.stderr
    # Adam's moments were restored, not restarted: its own step counter spans both runs.
    final = torch.load(Path(model.training["state_dir"]) / "checkpoints" / "last.ckpt",
                       weights_only=True)
    adam_steps = {float(state["step"]) for state in
                  final["optimizer_states"][0]["state"].values()}
    assert final["global_step"] == 60 and adam_steps == {60.0}
    table = training_metrics(model.training["state_dir"])
    assert table["run"].nunique() == 2
    assert table.loc[table["run"] == 1, "step"].min() >= step_at_kill - 1


def test_changed_hyperparameter_never_resumes_stale_state(splits, tmp_path):
    _, first = train(tmp_path, splits, max_steps=4)
    _, second = train(tmp_path, splits, max_steps=4, batch_size=2)
    assert first["state_dir"] != second["state_dir"]
    assert second["resumed_from"] == ""


def test_non_finite_loss_stops_naming_model_and_step(splits):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            return x.mean(dim=(1, 2, 3))[:, None].repeat(1, 2) * self.scale * float("nan")

    dm = ImageDataModule(splits["train"], splits["val"], targets=["rms", "correlation_length"],
                         batch_size=4)
    module = RegressionModule(Broken(), model_name="broken_model",
                              optimizer={"name": "adam", "learning_rate": 1e-3})
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(NonFiniteLossError, match=r"model 'broken_model'.*global step 0"):
        trainer.fit(module, datamodule=dm)


def test_cosine_schedule_follows_its_formula_step_by_step(splits):
    # Oracle: lr_k = lr0 (1 + cos(pi k / K)) / 2 at optimizer step k, K the planned steps
    # (2 epochs of the training split in batches of 4), computed here by hand.
    class RecordLearningRate(pl.Callback):
        def __init__(self):
            self.rates = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    dm = ImageDataModule(splits["train"], splits["val"], targets=["rms", "correlation_length"],
                         batch_size=4)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    lr0 = 3e-3
    module = RegressionModule(network, model_name="cosine",
                              optimizer={"name": "adam", "learning_rate": lr0,
                                         "schedule": "cosine"})
    recorder = RecordLearningRate()
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    n_train = len(netCDF4.Dataset(splits["train"]).dimensions["sample"])
    planned = 2 * -(-n_train // 4)
    expected = [lr0 * (1 + np.cos(np.pi * k / planned)) / 2 for k in range(planned)]
    assert len(recorder.rates) == planned
    np.testing.assert_allclose(recorder.rates, expected, rtol=1e-12, atol=1e-15)
    # Without a schedule (the default) the rate stays where the config put it.
    constant = RegressionModule(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2)),
                                model_name="constant",
                                optimizer={"name": "adam", "learning_rate": lr0})
    recorder = RecordLearningRate()
    pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
               num_sanity_val_steps=0).fit(constant, datamodule=dm)
    assert recorder.rates == [lr0] * 3


def test_data_modes_give_the_same_batches(splits):
    batches = {}
    for mode in ("stream", "ram", "device"):
        dm = ImageDataModule(splits["train"], splits["val"], targets=["rms"], batch_size=3,
                             data_mode=mode, num_workers=1 if mode == "stream" else 0,
                             max_workers=1)
        dm.setup("fit")
        assert dm.data_mode == mode
        dm.trainer = Training()
        batch = next(iter(dm._loader("train", shuffle=False)))
        batches[mode] = dm.on_after_batch_transfer(batch, 0)
    for mode in ("ram", "device"):
        for a, b in zip(batches["stream"], batches[mode]):
            assert torch.equal(a, b), mode


class Training:
    """Stands in for the trainer's state in a data-module hook called outside fit()."""

    training = True


def test_mirror_symmetry_of_the_simulator_and_the_augmentation(splits):
    """y → −y: the PLDOS of the mirrored potential is the mirrored PLDOS (centred QPC, B = 0),
    computed by the simulator, not assumed; the augmentation applies exactly that flip."""
    from mesoinv.physics import PLDOSSolver, hopping_meV, make_qpc_system
    from mesoinv.physics.qpc import QPCGeometry

    with netCDF4.Dataset(splits["train"]) as ds:
        potential = np.asarray(ds["potential"][0], dtype=np.float64)
        a, energy = float(ds.lattice_constant_nm), float(ds.energy_meV)
        geometry = QPCGeometry.from_nm(lattice_constant_nm=a, length_nm=float(ds.length_nm),
                                       width_nm=float(ds.width_nm),
                                       qpc_width_nm=float(ds.qpc_width_sites) * a)
        mass = float(ds.effective_mass_kg)
    assert 2 * geometry.qpc_first_y + geometry.qpc_width == geometry.ny  # centred
    solver = PLDOSSolver(make_qpc_system(geometry), potential.shape, energy_meV=energy,
                         hopping_meV=hopping_meV(a, mass))
    pldos = solver(potential)[0]
    mirrored = solver(potential[:, ::-1].copy())[0]
    assert np.allclose(mirrored, pldos[:, ::-1], rtol=1e-9, atol=1e-12 * pldos.max())
    assert not np.allclose(pldos, pldos[:, ::-1], rtol=1e-3)  # the sample itself is not symmetric

    dm = ImageDataModule(splits["train"], splits["val"], targets=["rms"], batch_size=64,
                         data_mode="ram", mirror_augmentation=True)
    dm.setup("fit")
    dm.trainer = Training()
    images, targets = next(iter(dm._loader("train", shuffle=False)))
    torch.manual_seed(0)
    out_images, out_targets = dm.on_after_batch_transfer((images, targets), 0)
    flipped = [bool(torch.equal(o, i.flip(-1))) and not torch.equal(o, i)
               for o, i in zip(out_images, images)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out_images, images)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped)
    assert torch.equal(out_targets, targets)  # ensemble parameters: invariant


def config_with_model(**model):
    config = json.loads(json.dumps(__import__("yaml").safe_load(TEST_CONFIG.read_text())))
    config["models"] = {"m": {"kind": "p1_parameter_cnn", "dataset": "p1_varying",
                              "targets": ["rms"], **model}}
    return config


@pytest.mark.parametrize("model, key, message", [
    ({"learning_rat": 1}, "models.m.learning_rat", "unknown key"),
    ({"dataset": "nope"}, "models.m.dataset", "no dataset 'nope'"),
    ({"dataset": "p2_wire"}, "models.m.dataset", "p1_pldos"),
    ({"targets": ["potential"]}, "models.m.targets.0", "is not one of"),
    ({"inputs": {"fields_T": [1.0]}}, "models.m.inputs.fields_T", "not among the fields"),
    ({"inputs": {"mirror_augmentation": True}}, "models.m.inputs.mirror_augmentation",
     "only at B = 0"),
    ({"inputs": {"transform": "zscore"}}, "models.m.inputs.transform", "is not one of"),
    ({"optimizer": {"learning_rate": -1}}, "models.m.optimizer.learning_rate", "less than or equal"),
    ({"architecture": {"conv_channels": [4, 4]}}, "models.m.architecture.conv_channels", "short"),
    ({"precision": "8-bit"}, "models.m.precision", "is not one of"),
    ({"optimizer": {"schedule": "linear"}}, "models.m.optimizer.schedule", "is not one of"),
])
def test_bad_model_config_names_the_key(model, key, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config_with_model(**model))
    assert error.value.key == key, str(error.value)
    assert message in str(error.value)


def test_mirror_augmentation_refused_for_an_off_centre_qpc():
    config = config_with_model(inputs={"fields_T": [0.0], "mirror_augmentation": True})
    validate_config(config)  # centred and B = 0: accepted
    config["datasets"]["p1_varying"]["geometry"]["qpc_center_nm"] = 60.0
    with pytest.raises(ConfigError, match="not centred"):
        validate_config(config)


def test_image_normalisation_round_trip():
    rng = np.random.default_rng(0)
    images = [rng.random((2, 8, 8)) for _ in range(5)]
    for kind in ("standardize", "standardize_per_pixel", "log_standardize", "minmax"):
        norm = ImageNormalization.fit(kind, images)
        again = ImageNormalization.from_dict(norm.to_dict())
        assert np.array_equal(norm(images[0]), again(images[0]))
    stacked = np.stack(images)
    norm = ImageNormalization.fit("standardize", images)
    out = np.stack([norm(i) for i in images]).astype(np.float64)
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-6)
    assert stacked.shape == (5, 2, 8, 8)


@pytest.mark.parametrize("kind", ["p1_parameter_cnn", "p1_fourier_cnn", "p1_encoder_decoder"])
def test_channels_last_changes_the_speed_not_the_loss(kind):
    """The same weights and batch in NCHW and in channels_last memory order: the same loss and
    gradients to float32 rounding (the memory order only changes the convolutions' summation
    order), so switching it on for CHANNELS_LAST_KINDS changes no result beyond rounding."""
    config = validate_config(load_config(TEST_CONFIG))
    name = {"p1_parameter_cnn": "p1_s_nd", "p1_fourier_cnn": "p1_fourier",
            "p1_encoder_decoder": "p1_potential"}[kind]
    definition = config["models"][name]
    assert definition["kind"] == kind
    image_shape = (24, 32)
    outputs = 2 if kind == "p1_parameter_cnn" else (1 if kind == "p1_encoder_decoder" else 6)
    spec = network_spec(kind, definition["architecture"], image_shape, 1, outputs)
    torch.manual_seed(0)
    reference = network_from_spec(spec)
    inputs = torch.randn(4, 1, *image_shape)
    targets = reference(inputs).detach() + 0.1 * torch.randn_like(reference(inputs))
    losses, gradients = [], []
    for channels_last in (False, True):
        network = network_from_spec(spec)
        network.load_state_dict(reference.state_dict())
        module = RegressionModule(network, model_name=name, optimizer=definition["optimizer"],
                                  channels_last=channels_last)
        loss = module._loss((inputs, targets))
        loss.backward()
        losses.append(loss.item())
        gradients.append(torch.cat([p.grad.flatten() for p in network.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-4, atol=1e-6)
    assert "p1_parameter_cnn" not in CHANNELS_LAST_KINDS
