"""P1 Sec. IV models on the test config: the Fourier-coefficient CNN and the encoder-decoder.

Behaviour, not accuracy: each trains a few CPU steps and its loss falls; the coefficient →
potential rebuild of the model path is the simulator's Eq. (1); statistics come from the
training split; padding and cropping are exact; the mirror of the targets matches the mirror
of the input; `mesoinv predict` writes V(x, y) in meV on the dataset's grid."""

import json
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mesoinv.config import ConfigError, load_config, validate_config
from mesoinv.datasets.p1 import P1DatasetSpec, P1Simulator
from mesoinv.models import EncoderDecoder
from mesoinv.models.encoder_decoder import padding_for
from mesoinv.physics.disorder import (RemoteDopantDisorder, draw_fourier_coefficients,
                                      fourier_modes, mirror_y_coefficients)
from mesoinv.physics.materials import Material
from mesoinv.training.p1_data import ImageDataModule
from mesoinv.training.model_file import IncompatibleDataError, load_model_file
from mesoinv.training.targets import FourierTargets, PotentialTargets
from mesoinv.training.train_p1 import train_model

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """The test config's p1_fixed splits (s = 50 nm, 40 × 30 sites), by the real workflow."""
    workdir = tmp_path_factory.mktemp("fixed")
    base = "results/datasets/p1_fixed/p1_fixed"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(TEST_CONFIG), "--cores", "2",
               f"{base}-train.nc", f"{base}-val.nc", f"{base}-test.nc"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return {split: workdir / f"{base}-{split}.nc" for split in ("train", "val", "test")}


def definition(name, **changes):
    return {**load_config(TEST_CONFIG)["models"][name], "name": name, **changes}


def train(tmp_path, splits, name, **changes):
    output = tmp_path / name / "model.pt"
    record = train_model(definition(name, **changes), train_path=splits["train"],
                         val_path=splits["val"], output=output, state_root=tmp_path / "state",
                         progress=False)
    return output, record


def stored(path, name):
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return np.asarray(ds[name][:], dtype=np.float64)


def training_mse(network, model, split):
    """MSE of the normalised targets over a split, network in eval mode."""
    dm = ImageDataModule(split, split, targets=model.target_set,
                         fields_T=model.inputs["fields_T"], transform=model.inputs["transform"])
    dm.fit_statistics()  # same split as in training: the same statistics
    dm.setup()
    images, targets = dm._datasets["train"].tensors
    with torch.no_grad():
        return float(torch.mean((network.eval()(images) - targets) ** 2))


@pytest.mark.parametrize("name, architecture", [
    ("p1_fourier", {"conv_channels": [8, 16, 16], "first_kernel_size": 5, "kernel_size": 3,
                    "dense_units": 64}),
    ("p1_potential", {"encoder_channels": [8, 8, 16], "convs_per_block": 2, "kernel_size": 3}),
])
def test_each_potential_model_trains_and_its_loss_falls(name, architecture, splits, tmp_path):
    output, record = train(tmp_path, splits, name, max_steps=40, max_epochs=1000,
                           architecture=architecture, data_mode="ram",
                           inputs={**definition(name)["inputs"], "mirror_augmentation": False},
                           optimizer={"name": "adam", "learning_rate": 3e-3,
                                      "weight_decay": 0.0})
    model = load_model_file(output)
    assert record["global_step"] == 40
    pl.seed_everything(definition(name)["seed"], verbose=False)
    untrained = model.build_network().__class__(**model.network["kwargs"])
    last = torch.load(Path(record["state_dir"]) / "checkpoints" / "last.ckpt",
                      weights_only=True)["state_dict"]
    trained = model.build_network()
    trained.load_state_dict({k.removeprefix("network."): v for k, v in last.items()})
    before = training_mse(untrained, model, splits["train"])
    after = training_mse(trained, model, splits["train"])
    assert after < 0.7 * before, (before, after)


def test_fourier_rebuild_through_the_model_path_is_the_simulators_potential(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_fourier", max_steps=1)
    targets = load_model_file(output).target_set
    assert targets.n_outputs == 2 * len(stored(splits["test"], "qx"))
    truth = targets.truth(splits["test"])  # (samples, 2 N) true coefficients
    rebuilt = targets.potential_meV(truth)
    # Against the stored float32 potential: float32 precision.
    potential = stored(splits["test"], "potential")
    scale = np.max(np.abs(potential))
    assert np.max(np.abs(rebuilt - potential)) < 1e-6 * scale
    # Against the simulator itself in float64: the same Eq. (1) implementation.
    with netCDF4.Dataset(splits["test"]) as ds:
        spec = P1DatasetSpec.from_config(ds.dataset_name, json.loads(ds.dataset_config_json))
        ids = np.asarray(ds["sample_id"][:])
    simulator = P1Simulator(spec)
    for row, sample_id in enumerate(ids):
        *_, exact = simulator.potential(int(sample_id))
        assert np.allclose(rebuilt[row], exact, rtol=0, atol=1e-12 * scale)


def test_statistics_come_from_the_training_split_only(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_potential", max_steps=1)
    model = load_model_file(output)
    train_v = stored(splits["train"], "potential")
    every_v = np.concatenate([stored(splits[s], "potential") for s in ("train", "val", "test")])
    assert model.targets["minimum_meV"] == train_v.min()
    assert model.targets["maximum_meV"] == train_v.max()
    assert (every_v.min(), every_v.max()) != (train_v.min(), train_v.max())
    # Input min-max (A2) from the training maps.
    pldos = stored(splits["train"], "pldos")[:, :1]
    assert np.allclose(np.ravel(model.input_normalization["shift"]), pldos.min(), rtol=1e-12)
    assert np.allclose(np.ravel(model.input_normalization["scale"]),
                       pldos.max() - pldos.min(), rtol=1e-12)
    # The training-mean potential (baseline) is that of the training split.
    assert np.allclose(model.baselines["training_mean_potential_meV"], train_v.mean(axis=0),
                       rtol=1e-12, atol=1e-15)
    # Fourier targets: per-component mean and std of the training coefficients.
    fourier, _ = train(tmp_path, splits, "p1_fourier", max_steps=1)
    coefficients = np.concatenate([stored(splits["train"], "fourier_coefficient_real"),
                                   stored(splits["train"], "fourier_coefficient_imag")], axis=1)
    targets = load_model_file(fourier).targets
    assert np.allclose(targets["mean"], coefficients.mean(axis=0), rtol=1e-12)
    assert np.allclose(targets["std"], coefficients.std(axis=0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(64, 48), (40, 30), (13, 7), (1, 9), (17, 16)])
def test_padding_and_cropping_round_trip_for_any_size(shape):
    network = EncoderDecoder(shape, encoder_channels=(2, 2, 2), convs_per_block=1)
    image = torch.randn(2, 1, *shape)
    padded = network.pad(image)
    assert all(s % 8 == 0 for s in padded.shape[-2:])
    assert torch.equal(network.crop(padded, shape), image)
    # The padding is zeros around the map, split evenly (extra site at the far side).
    (x0, x1), (y0, y1) = padding_for(shape[0], 8), padding_for(shape[1], 8)
    assert x1 - x0 in (0, 1) and y1 - y0 in (0, 1)
    assert float(padded.abs().sum()) == pytest.approx(float(image.abs().sum()), rel=1e-6)
    assert network(image).shape == (2, 1, *shape)


def test_mirror_of_the_coefficients_is_the_mirror_of_the_potential():
    material = Material(relative_permittivity=12.9, effective_mass_kg=5.74e-32)
    disorder = RemoteDopantDisorder(dopant_distance_nm=40.0, dopant_density_cm2=1e12,
                                    material=material)
    modes = fourier_modes(200.0, 150.0, disorder.cutoff_per_nm)
    x_nm, y_nm = np.arange(40) * 5.0, np.arange(30) * 5.0
    c = draw_fourier_coefficients(np.random.default_rng(1), len(modes), 30.0)
    v = disorder.potential_meV(modes, c, x_nm, y_nm)
    mirrored = disorder.potential_meV(modes, mirror_y_coefficients(modes, c, y_nm[-1]),
                                      x_nm, y_nm)
    assert np.allclose(mirrored, v[:, ::-1], rtol=0, atol=1e-12 * np.abs(v).max())
    # Applying the mirror twice is the identity.
    twice = mirror_y_coefficients(modes, mirror_y_coefficients(modes, c, y_nm[-1]), y_nm[-1])
    assert np.allclose(twice, c, rtol=1e-13)


def test_augmentation_mirrors_input_and_targets_together(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_fourier", max_steps=1)
    fourier = load_model_file(output).target_set
    for targets in (fourier, PotentialTargets()):
        dm = ImageDataModule(splits["train"], splits["val"], targets=targets, fields_T=[0.0],
                             transform="standardize", batch_size=64, mirror_augmentation=True)
        dm.fit_statistics()
        dm.setup()
        images, truth = dm._datasets["train"].tensors
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
        trainer.state.fn, trainer.training = "fit", True
        dm.trainer = trainer
        torch.manual_seed(0)
        out_images, out_targets = dm.on_after_batch_transfer((images, truth), 0)
        flipped = torch.tensor([not torch.equal(a, b) for a, b in zip(out_images, images)])
        assert 0 < int(flipped.sum()) < len(images)
        for k in range(len(images)):
            if not flipped[k]:
                assert torch.equal(out_targets[k], truth[k])
                continue
            assert torch.equal(out_images[k], images[k].flip(-1))
            if isinstance(targets, PotentialTargets):
                assert torch.equal(out_targets[k], truth[k].flip(-1))
            else:
                # Standardised coefficients of the mirrored map = mirror of the coefficients.
                physical = targets.invert(out_targets[k].double().numpy()[None])[0]
                v = targets.potential_meV(physical)
                v_truth = targets.potential_meV(targets.invert(truth[k].double().numpy()[None])[0])
                assert np.allclose(v, v_truth[:, ::-1], atol=1e-5 * np.abs(v_truth).max())


def test_predict_writes_the_potential_on_the_dataset_grid_in_meV(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_potential", max_steps=2)
    result = subprocess.run([sys.executable, "-m", "mesoinv", "predict", str(output),
                             str(splits["test"]), "-o", str(tmp_path / "pred.nc"),
                             "--figure", str(tmp_path / "pred.png")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with netCDF4.Dataset(tmp_path / "pred.nc") as ds, netCDF4.Dataset(splits["test"]) as data:
        assert ds.format_version == "mesoinv-potential-predictions-1"
        assert ds["potential"].units == "meV" and ds["x"].units == "nm"
        assert np.array_equal(ds["x"][:], data["x"][:]) and np.array_equal(ds["y"][:], data["y"][:])
        assert ds["potential"].shape == data["potential"].shape
        assert np.array_equal(ds["potential_true"][:], np.asarray(data["potential"][:], float))
        assert np.array_equal(ds["sample_id"][:], data["sample_id"][:])
    assert (tmp_path / "pred.png").stat().st_size > 10_000
    # A bare array: the grid from the given lattice constant.
    maps = stored(splits["test"], "pldos")[:2, :1]
    np.save(tmp_path / "maps.npy", maps)
    result = subprocess.run([sys.executable, "-m", "mesoinv", "predict", str(output),
                             str(tmp_path / "maps.npy"), "-o", str(tmp_path / "npy.nc"),
                             "--lattice-constant-nm", "5", "--energy-meV", "5.6",
                             "--fields-T", "0"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with netCDF4.Dataset(tmp_path / "npy.nc") as ds:
        assert np.allclose(ds["x"][:], np.arange(40) * 5.0)
        assert "potential_true" not in ds.variables
        with netCDF4.Dataset(tmp_path / "pred.nc") as same:
            assert np.array_equal(ds["potential"][:], same["potential"][:2])


def test_fourier_model_refuses_another_dopant_distance(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_fourier", max_steps=1)
    model = load_model_file(output)
    with pytest.raises(IncompatibleDataError, match="dopant distance"):
        model.check_data(image_shape=(40, 30), fields_T=[0.0],
                         metadata={"dopant_distance_range_nm": [40.0, 70.0]}, source="x.nc")
    config = load_config(TEST_CONFIG)
    config["models"]["p1_fourier"]["dataset"] = "p1_varying"
    with pytest.raises(ConfigError, match="models.p1_fourier.dataset"):
        validate_config(config)
    assert isinstance(model.target_set, FourierTargets)


def test_potential_models_refuse_another_disorder_ensemble(splits, tmp_path):
    output, _ = train(tmp_path, splits, "p1_potential", max_steps=1)
    model = load_model_file(output)
    for metadata, message in (({"dopant_density_range_cm2": [1e12, 1.5e12]}, "outside"),
                              ({"thomas_fermi_wavevector_per_nm": 0.1}, "thomas_fermi"),
                              ({"cutoff_factor": 3.0}, "cutoff_factor"),
                              ({"relative_permittivity": 13.1}, "relative_permittivity")):
        with pytest.raises(IncompatibleDataError, match=message):
            model.check_data(image_shape=(40, 30), fields_T=[0.0], metadata=metadata,
                             source="other.nc")
    # The ram-mode loader fills float32 rows one sample at a time: the same numbers.
    targets = model.target_set
    assert np.array_equal(targets.load(splits["train"]),
                          targets.normalize_image(targets.truth(splits["train"])))


@pytest.mark.parametrize("name, change, key", [
    ("p1_fourier", {"batch_size": 1}, "models.p1_fourier.batch_size"),
    ("p1_fourier", {"architecture": {"first_kernel_size": 4}},
     "models.p1_fourier.architecture.first_kernel_size"),
    ("p1_potential", {"architecture": {"kernel_size": 2}},
     "models.p1_potential.architecture.kernel_size"),
    ("p2_ldos", {"architecture": {"channel_mults": [1, 2, 2], "base_channels": 8}}, None),
])
def test_config_refuses_networks_that_cannot_run(name, change, key):
    config = load_config(TEST_CONFIG)
    config["models"][name].update(change)
    if key is None:  # a valid change
        validate_config(config)
        config["datasets"]["p2_wire"]["splits"] = {"train": 0.75, "val": 0.0, "test": 0.25}
        key = "models.p2_ldos.dataset"
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config)
