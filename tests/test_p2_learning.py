"""P2 learning pieces: the antidot detector and accuracy criteria, the P2 data module and its
normalisations, and a tiny end-to-end diffusion training with SAM that resumes.

The data are the test config's P2 wire (16 × 20 sites, r = 2.5, 20 × 20 images), simulated
with the project's own code in about a second; the demo dataset's files are used too when
present. Networks are tiny (8/16 channels); behaviour, not accuracy.
"""

import dataclasses
import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.datasets.aggregate import SPLITS, validate_shards, write_splits
from mesoinv.evaluation.p2_generation.positions import (evaluate_positions, match_positions,
                                                        most_frequent_placement,
                                                        pixel_correlation, placement_image,
                                                        symmetric_placements)
from mesoinv.inference.antidot_detector import AntidotDetector, disk_offsets, read_geometry
from mesoinv.models.gaussian_diffusion import GaussianDiffusion
from mesoinv.models.p2_unet import ConditionalUNet
from mesoinv.physics.antidots import (MIRRORS, antidot_sites, class_members, is_valid_pair,
                                     mirror_pair)
from mesoinv.physics.nanowire import pad_image, present_mask, random_potential
from mesoinv.physics.rgf import lead_self_energies, ldos
from mesoinv.training import model_file
from mesoinv.training.normalization import LDOSNormalization, TraceNormalization
from mesoinv.training.p2_data import P2DataModule
from mesoinv.training.p2_readers import iter_ldos, load_ldos, read_placements, read_traces
from mesoinv.training.p2_symmetry import MirrorAugmentation, draw_mirrors, mirror_images
from mesoinv.training.train_p2 import resolve_definition, train_diffusion_model

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "results" / "datasets" / "p2_wire"

ARCHITECTURE = {"base_channels": 8, "channel_mults": [1, 2, 2], "groups": 4,
                "linear_attention_heads": 2, "linear_attention_head_dim": 8,
                "attention_heads": 4, "attention_head_dim": 8, "trace_token_dim": 16,
                "trace_layers": 1, "trace_heads": 4, "condition_channels": 4}


pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


@pytest.fixture(scope="module")
def spec():
    """The test config's P2 wire, grown to 12 configurations × 3 realisations."""
    return dataclasses.replace(dataset_spec(load_config(ROOT / "config" / "test.yaml"),
                                            "p2_wire"), n_samples=36)


@pytest.fixture(scope="module")
def splits(spec, tmp_path_factory):
    """Train/val/test split files (by configuration) of the simulated dataset."""
    directory = tmp_path_factory.mktemp("p2_learning")
    shard = directory / "all.nc"
    simulate_shard(spec, range(spec.n_samples), shard, progress=False)
    validate_shards([shard], spec, {str(shard): list(range(spec.n_samples))})
    outputs = {name: directory / f"p2-{name}.nc" for name in SPLITS}
    write_splits([shard], spec, {"train": 0.5, "val": 0.25, "test": 0.25}, outputs)
    for name in ("train", "val"):
        with netCDF4.Dataset(outputs[name]) as ds:
            assert ds.dimensions["sample"].size >= 3, name
    return outputs


def simulated_image(spec, pair, seed=0):
    """The padded B = 0 LDOS image of one placement with a random potential."""
    geometry = spec.geometry
    potential = random_potential(np.random.default_rng(seed), geometry,
                                 spec.potential_amplitude_t)
    leads = lead_self_energies(geometry.width_sites, [0.0], energy=spec.energy_t)
    image = ldos(present_mask(geometry, pair), potential, leads)[0]
    return pad_image(image, geometry.width_sites + 2 * spec.ldos_padding_sites)


# --- the detector ----------------------------------------------------------------------------
def test_disk_template_is_the_dataset_rule():
    for radius in (2.5, 5.0):
        for centre in [(6, 7), (6.5, 7), (6, 7.5), (6.5, 7.5)]:
            parity = (int(2 * centre[0]) % 2, int(2 * centre[1]) % 2)
            ours = disk_offsets(radius, *parity) + np.floor(centre).astype(int)
            assert set(map(tuple, ours.tolist())) == set(
                map(tuple, antidot_sites(centre, radius).tolist()))


@pytest.mark.parametrize("grid", ["half", "sites"])
def test_detector_recovers_every_class_representative(spec, grid):
    """Every symmetry class of the test lattice (385), each with its own random potential."""
    representatives = spec.classes.representatives
    images = np.stack([simulated_image(spec, pair, seed) for seed, pair in
                       enumerate(representatives)])
    detector = AntidotDetector(spec.geometry, spec.constraints, spec.ldos_padding_sites,
                               grid=grid)
    found = detector.detect(images)
    np.testing.assert_array_equal(found.centres, representatives)
    assert np.all(found.depth == 0.0)


def test_detector_recovers_every_image_of_the_simulated_splits(splits):
    for name, path in splits.items():
        with netCDF4.Dataset(path) as ds:
            if ds.dimensions["sample"].size == 0:
                continue
        detector = AntidotDetector.from_file(path)
        found = detector.detect(load_ldos(path))
        np.testing.assert_array_equal(found.centres, read_placements(path), err_msg=name)


@pytest.mark.parametrize("dataset", ["p2_wire", "p2_fingerprints"])
def test_detector_recovers_every_image_of_the_demo_dataset(dataset):
    folder = DEMO.parent / dataset
    if not (folder / f"{dataset}-train.nc").is_file():
        pytest.skip(f"demo dataset results/datasets/{dataset} not built")
    for name in SPLITS:
        path = folder / f"{dataset}-{name}.nc"
        found = AntidotDetector.from_file(path).detect(load_ldos(path))
        np.testing.assert_array_equal(found.centres, read_placements(path), err_msg=name)


def test_detector_on_a_mirrored_image_and_the_criteria(spec):
    """A simulated image of the truth's x-mirror: the detector finds the mirror, strict counts
    it wrong, modulo the symmetries right."""
    geometry, constraints = spec.geometry, spec.constraints
    W, L = geometry.shape
    truth = next(p for p in spec.classes.representatives
                 if not np.allclose(np.sort(W - 1 - p[:, 0]), np.sort(p[:, 0])))
    mirrored = truth.copy()
    mirrored[:, 0] = W - 1 - mirrored[:, 0]
    image = simulated_image(spec, mirrored, seed=3)
    found = AntidotDetector(geometry, constraints, spec.ldos_padding_sites).detect(image[None])
    assert match_positions(found.centres, mirrored[None], 0.0).correct.all()
    result = evaluate_positions(found.centres, truth[None], geometry, constraints)
    assert not result.strict.correct[0]
    assert result.mirrors.correct[0] and result.classes.correct[0]
    assert result.mirrors.error[0] == 0.0


def test_matching_and_accuracy_on_hand_made_cases(spec):
    geometry, constraints = spec.geometry, spec.constraints
    W, L = geometry.shape
    truth = np.array([[3.0, 5.0], [9.0, 12.0]])
    assert is_valid_pair(geometry, truth, constraints)
    swapped = truth[::-1]
    shifted = truth + [[1.0, 0.0], [0.0, -1.0]]                 # one site each: within 1.5
    far = truth + [[2.0, 0.0], [0.0, 0.0]]                      # one antidot 2 sites off
    x_mirror = truth.copy()
    x_mirror[:, 0] = W - 1 - x_mirror[:, 0]
    y_mirror = truth.copy()
    y_mirror[:, 1] = L - 1 - y_mirror[:, 1]
    translated = truth + [[0.0, 3.0], [0.0, 3.0]]               # same class, not a mirror
    assert is_valid_pair(geometry, translated, constraints)
    found = np.stack([truth, swapped, shifted, far, x_mirror, y_mirror, translated])
    result = evaluate_positions(found, np.repeat(truth[None], len(found), 0), geometry,
                                constraints)
    assert result.strict.correct.tolist() == [True, True, True, False, False, False, False]
    assert result.mirrors.correct.tolist() == [True, True, True, False, True, True, False]
    assert result.classes.correct.tolist() == [True, True, True, False, True, True, True]
    np.testing.assert_allclose(result.strict.error[:4], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(result.strict.distances[3], [2.0, 0.0])
    # the distances follow the truth's order whatever the found order
    np.testing.assert_allclose(result.strict.distances[2], [1.0, 1.0])
    assert np.all(result.strict.error >= result.mirrors.error - 1e-12)
    assert np.all(result.mirrors.error >= result.classes.error - 1e-12)
    np.testing.assert_array_equal(result.classes.matched_truth[6], translated)
    # a tighter tolerance
    tight = evaluate_positions(found, np.repeat(truth[None], len(found), 0), geometry,
                               constraints, tolerance=0.5)
    assert tight.strict.correct.tolist()[:3] == [True, True, False]
    summary = result.summary()
    assert summary["accuracy_strict"] == pytest.approx(3 / 7)
    assert summary["accuracy_classes"] == pytest.approx(6 / 7)
    json.dumps(summary)
    # several draws per trace: (n, k, 2, 2) against (n, 2, 2)
    draws = np.stack([found[:4], found[3:7]])                    # 2 traces × 4 draws
    spread = evaluate_positions(draws, np.stack([truth, truth]), geometry, constraints)
    assert spread.strict.correct.shape == (2, 4)
    assert spread.strict.correct.tolist() == [[True, True, True, False],
                                              [False, False, False, False]]
    summary = spread.summary()
    assert summary["draws_per_trace"] == 4
    assert summary["any_draw_correct_strict"] == 0.5
    assert summary["any_draw_correct_mirrors"] == 1.0


def test_symmetric_placements(spec):
    geometry, constraints = spec.geometry, spec.constraints
    truth = spec.classes.representatives[7]
    mirrors = symmetric_placements(truth, geometry, constraints, "mirrors")
    assert mirrors.shape == (4, 2, 2)
    np.testing.assert_array_equal(mirrors[0], truth)
    members = class_members(geometry, truth, constraints)
    classes = symmetric_placements(truth, geometry, constraints, "classes")
    assert len(classes) == len(members) + 1
    # every mirror image is a member of the class, up to the order of the two centres
    keys = {tuple(sorted(map(tuple, m.tolist()))) for m in members}
    for image in mirrors:
        assert tuple(sorted(map(tuple, image.tolist()))) in keys


def test_pixel_correlation_leaves_the_padding_out():
    rng = np.random.default_rng(0)
    true = np.zeros((2, 8, 5))
    true[:, 2:6] = rng.random((2, 4, 5))
    np.testing.assert_allclose(pixel_correlation(true, true, padding=2), [1.0, 1.0])
    np.testing.assert_allclose(pixel_correlation(-true, true, padding=2), [-1.0, -1.0])
    noisy = true.copy()
    noisy[:, :2] = 5.0                     # garbage in the padding does not count
    np.testing.assert_allclose(pixel_correlation(noisy, true, padding=2), [1.0, 1.0])
    draws = np.stack([true, true + 0.1 * rng.random(true.shape)], axis=1)
    assert pixel_correlation(draws, true, padding=2).shape == (2, 2)


def test_trace_blind_baselines(spec, splits):
    placements = read_placements(splits["train"])
    best = most_frequent_placement(placements)
    counts = match_positions(np.broadcast_to(best, placements.shape), placements).correct.sum()
    for candidate in np.unique(placements, axis=0):
        other = match_positions(np.broadcast_to(candidate, placements.shape), placements)
        assert other.correct.sum() <= counts
    mean = load_ldos(splits["train"]).mean(axis=0)
    image = placement_image(best, mean, spec.geometry.antidot_radius, spec.ldos_padding_sites)
    found = AntidotDetector.from_file(splits["train"]).detect(image[None])
    np.testing.assert_array_equal(found.centres[0], best)
    # the baseline goes through the same evaluation as generated images
    truth = read_placements(splits["val"])
    geometry, constraints, _ = read_geometry(splits["val"])
    baseline = evaluate_positions(np.broadcast_to(best, truth.shape), truth, geometry,
                                  constraints)
    # by hand: of the two pairings of the antidots take the one with the smaller total
    # distance; a trace is correct when both of its distances are within 1.5 sites
    def correct(found, true):
        direct = np.linalg.norm(found - true, axis=-1)
        swapped = np.linalg.norm(found - true[::-1], axis=-1)
        distances = direct if direct.sum() <= swapped.sum() else swapped
        return bool(np.all(distances <= 1.5))

    expected = np.mean([correct(best, t) for t in truth])
    assert baseline.summary()["accuracy_strict"] == pytest.approx(expected)


# --- normalisations and the data module ------------------------------------------------------
def test_normalisation_statistics_come_from_the_training_split_only(splits):
    module = P2DataModule(splits["train"], splits["val"], batch_size=4, data_mode="ram")
    images, traces = module.fit_statistics()
    train_images = load_ldos(splits["train"])
    train_traces = read_traces(splits["train"])
    assert images.scale == pytest.approx(train_images.max(), rel=1e-15)
    np.testing.assert_allclose(traces.mean, train_traces.mean(0), rtol=1e-14)
    np.testing.assert_allclose(traces.std, train_traces.std(0), rtol=1e-14)
    val_traces = read_traces(splits["val"])
    assert not np.allclose(traces.mean, val_traces.mean(0))
    # ... and are what the model sees
    module.setup()
    image, trace = next(iter(module.train_dataloader()))
    assert image.dtype == torch.float32 and trace.dtype == torch.float32
    assert image.shape[1:] == (1, 20, 20) and trace.shape[1:] == (6,)
    stacked = torch.cat([b[0] for b in module.train_dataloader()])
    assert float(stacked.max()) == pytest.approx(1.0, abs=1e-6)
    # the log transform's offset is the training mean over the wire's pixels
    log_norm = LDOSNormalization.fit("log", iter_ldos(splits["train"]), 2)
    assert log_norm.offset == pytest.approx(train_images[:, 2:18].mean(), rel=1e-12)
    glob = TraceNormalization.fit("global", train_traces)
    assert glob.mean[0] == pytest.approx(train_traces.mean()) and len(set(glob.std)) == 1


@pytest.mark.parametrize("kind", ["linear", "log", "standardize"])
def test_image_normalisation_round_trip_and_padding(splits, kind):
    norm = LDOSNormalization.fit(kind, iter_ldos(splits["train"]), 2)
    images = load_ldos(splits["val"])
    mapped = norm(images, dtype=np.float64)
    # zeros (padding columns and antidot sites) share one value: −1, or −c/σ (standardize)
    zero, top = norm.bounds(1.0)
    assert (zero, top) == ((-1.0, 1.0) if kind != "standardize" else
                           (pytest.approx(-norm.offset / norm.std),
                            pytest.approx((norm.scale - norm.offset) / norm.std)))
    assert np.all(mapped[:, :2] == zero) and np.all(mapped[:, -2:] == zero)
    assert np.all(mapped[images == 0] == zero)
    assert mapped.max() <= top + 0.5      # val images may exceed the training maximum a bit
    if kind == "standardize":             # unit variance over the training wire pixels
        train = norm(load_ldos(splits["train"])[:, 2:-2], dtype=np.float64)
        assert train.mean() == pytest.approx(0.0, abs=1e-12)
        assert train.std() == pytest.approx(1.0, rel=1e-12)
    back = norm.inverse(mapped)
    np.testing.assert_allclose(back, images, rtol=1e-12, atol=1e-15)
    assert np.all(back[images == 0] == 0.0)
    # padding is set to exactly 0 on the way back, whatever the network put there
    noisy = mapped + 0.01
    assert np.all(norm.inverse(noisy)[:, :2] == 0.0)
    assert np.any(norm.inverse(noisy, zero_padding=False)[:, :2] != 0.0)
    # float32 network inputs round trip to float32 precision; tensors are accepted
    back32 = norm.inverse(torch.from_numpy(norm(images)))
    np.testing.assert_allclose(back32, images, rtol=2e-6, atol=2e-7 * norm.scale)
    # plain-list dict, weights_only-safe, same mapping after a reload
    data = json.loads(json.dumps(norm.to_dict()))
    again = LDOSNormalization.from_dict(data)
    np.testing.assert_array_equal(again(images), norm(images))


def test_image_outlier_clipping_by_hand():
    # Ten 4 × 2 images (padding 1, so wire pixels are the middle two rows): LDOS 1 everywhere
    # but one pixel of 101 (a single-site resonance) and one antidot site of 0 in image 0.
    images = np.ones((10, 4, 2))
    images[:, 0] = images[:, -1] = 0.0
    images[0, 1, 0] = 101.0
    images[0, 2, 1] = 0.0
    wire = images[:, 1:3].ravel()                     # 40 pixels
    mean1, std1 = wire.mean(), wire.std()             # by hand: (101 + 38)/40 = 3.475
    assert mean1 == pytest.approx(139 / 40)
    u = mean1 + 3.0 * std1
    clipped = np.minimum(wire, u)
    norm = LDOSNormalization.fit("standardize", list(images), 1, clip_sigma=3.0)
    assert norm.clip_ldos == pytest.approx(u, rel=1e-12)
    assert norm.offset == pytest.approx(clipped.mean(), rel=1e-12)
    assert norm.std == pytest.approx(clipped.std(), rel=1e-12)
    assert norm.scale == pytest.approx(u, rel=1e-12)  # the clipped maximum
    plain = LDOSNormalization.fit("standardize", list(images), 1)
    assert plain.clip_ldos is None and plain.std == pytest.approx(std1)
    assert norm.std < plain.std / 2                   # the spike no longer sets the scale
    mapped = norm(images, dtype=np.float64)
    assert mapped[0, 1, 0] == pytest.approx((u - norm.offset) / norm.std)
    # every other pixel is transformed exactly as without clipping (same statistics)
    ordinary = images <= u
    np.testing.assert_allclose(mapped[ordinary], (images[ordinary] - norm.offset) / norm.std,
                               rtol=1e-14)
    assert np.all(mapped[images == 0] == -norm.offset / norm.std)
    # the clip level travels with the model file
    again = LDOSNormalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again(images), norm(images))
    assert LDOSNormalization.from_dict({**plain.to_dict(), "clip_ldos": None}).clip_ldos is None
    # clipping reads the images twice: a one-shot iterator is refused, a callable is not
    with pytest.raises(ValueError, match="twice"):
        LDOSNormalization.fit("standardize", iter(images), 1, clip_sigma=3.0)
    again = LDOSNormalization.fit("linear", lambda: iter(images), 1, clip_sigma=3.0)
    assert again.scale == pytest.approx(u) and again.clip_ldos == pytest.approx(u)
    with pytest.raises(ValueError, match="clip_sigma"):
        LDOSNormalization.fit("standardize", list(images), 1, clip_sigma=0.0)


@pytest.mark.parametrize("kind", ["per_field", "global"])
def test_trace_normalisation_round_trip(splits, tmp_path, kind):
    traces = read_traces(splits["train"])
    norm = TraceNormalization.fit(kind, traces)
    mapped = norm(traces, dtype=np.float64)
    if kind == "per_field":
        np.testing.assert_allclose(mapped.mean(0), 0.0, atol=1e-12)
        np.testing.assert_allclose(mapped.std(0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(norm.inverse(mapped), traces, rtol=1e-14)
    torch.save(norm.to_dict(), tmp_path / "n.pt")
    again = TraceNormalization.from_dict(torch.load(tmp_path / "n.pt", weights_only=True))
    np.testing.assert_array_equal(again(traces), norm(traces))
    with pytest.raises(ValueError, match="field values"):
        norm(traces[:, :-1])


def test_stream_and_ram_give_the_same_batches(splits):
    batches = {}
    for mode in ("ram", "stream"):
        module = P2DataModule(splits["train"], splits["val"], batch_size=5, data_mode=mode)
        module.setup()
        batches[mode] = [tuple(b) for b in module.val_dataloader()]
    for (a_image, a_trace), (b_image, b_trace) in zip(batches["ram"], batches["stream"]):
        torch.testing.assert_close(a_image, b_image, rtol=0, atol=0)
        torch.testing.assert_close(a_trace, b_trace, rtol=0, atol=0)


# --- training end to end ---------------------------------------------------------------------
class _Interrupt(Exception):
    pass


class _StopAt(Callback):
    """Raise at the start of the batch after ``step`` (its checkpoint is written by then)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise _Interrupt(trainer.global_step)


class _InitialWeights(Callback):
    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.network.state_dict().items()}


def tiny_definition(**changes):
    entry = {"name": "p2_tiny", "kind": "p2_diffusion", "dataset": "p2_wire",
             "architecture": ARCHITECTURE, "diffusion": {"num_timesteps": 100},
             "optimizer": {"name": "sam", "learning_rate": 3e-3, "rho": 0.05},
             "sampling": {"sampler": "ddim", "steps": 5}, "batch_size": 6, "max_epochs": 1000,
             "max_steps": 30, "checkpoint_every_n_steps": 3, "data_mode": "ram",
             "num_workers": 0, "seed": 1, "precision": "32-true"}
    entry.update(changes)
    return entry


def fixed_loss(network, diffusion, images, traces):
    generator = torch.Generator().manual_seed(123)
    losses = []
    with torch.no_grad():
        for _ in range(4):
            t, noise, _ = diffusion.draw_training_inputs(images, 0.0, generator)
            losses.append(float(diffusion.loss(network, images, traces, t=t, noise=noise)))
    return float(np.mean(losses))


def test_sam_training_loss_falls_resumes_and_writes_a_model_file(splits, tmp_path,
                                                                 monkeypatch):
    definition = tiny_definition()
    paths = {"train_path": splits["train"], "val_path": splits["val"],
             "output": tmp_path / "model.pt", "state_root": tmp_path / "state",
             "progress": False}
    initial = _InitialWeights()
    with pytest.raises(_Interrupt):
        train_diffusion_model(definition, **paths, extra_callbacks=[_StopAt(6), initial])
    assert not (tmp_path / "model.pt").exists()
    last = next((tmp_path / "state").glob("*/checkpoints/last.ckpt"))
    step_at_stop = torch.load(last, weights_only=True)["global_step"]
    assert step_at_stop == 6

    record = train_diffusion_model(definition, **paths)
    assert record["resumed_from"].endswith("last.ckpt")
    assert record["global_step"] == 30
    final = torch.load(last, weights_only=True)
    assert final["global_step"] == 30
    # SAM's state is Adam's: its step counter spans both runs (moments restored, not reset)
    assert {float(s["step"]) for s in final["optimizer_states"][0]["state"].values()} == {30.0}

    monkeypatch.setitem(model_file.NETWORKS, "ConditionalUNet", ConditionalUNet)
    model = model_file.load_model_file(tmp_path / "model.pt")
    content = model.content
    assert content["model_kind"] == "p2_diffusion"
    assert content["network"]["class"] == "ConditionalUNet"
    assert content["network"]["kwargs"]["image_size"] == 20
    assert content["network"]["kwargs"]["n_fields"] == 6
    assert content["inputs"]["n_fields"] == 6 and len(content["inputs"]["fields_T"]) == 6
    assert content["diffusion"] == {"num_timesteps": 100, "beta_start": 1e-4, "beta_end": 0.02,
                                    "prediction": "epsilon"}
    assert content["sampling"]["steps"] == 5 and content["sampling"]["sampler"] == "ddim"
    assert content["data_metadata"]["antidot_radius_sites"] == 2.5
    assert content["data_metadata"]["ldos_padding_sites"] == 2
    assert content["hyperparameters"] == resolve_definition(definition)
    images_norm = LDOSNormalization.from_dict(content["image_normalization"])
    trace_norm = TraceNormalization.from_dict(content["trace_normalization"])
    assert images_norm.scale == pytest.approx(load_ldos(splits["train"]).max())

    # the loss on the training images fell from the initial weights
    network = model.build_network()
    diffusion = GaussianDiffusion(**content["diffusion"])
    images = torch.from_numpy(images_norm(load_ldos(splits["train"])))[:, None]
    traces = torch.from_numpy(trace_norm(read_traces(splits["train"])))
    fresh = ConditionalUNet(**content["network"]["kwargs"])
    fresh.load_state_dict(initial.state)
    before = fixed_loss(fresh.eval(), diffusion, images, traces)
    after = fixed_loss(network, diffusion, images, traces)
    assert after < 0.7 * before, (before, after)

    # generation → inverse normalisation → detector → evaluation runs end to end
    val_traces = torch.from_numpy(trace_norm(read_traces(splits["val"])))
    generated = diffusion.sample(network, val_traces, (len(val_traces), 1, 20, 20),
                                 sampler="ddim", steps=5,
                                 generator=torch.Generator().manual_seed(0))
    ldos_images = images_norm.inverse(generated[:, 0])
    assert np.all(ldos_images[:, :2] == 0.0)
    found = AntidotDetector.from_metadata(content["data_metadata"]).detect(ldos_images)
    geometry, constraints, _ = read_geometry(splits["val"])
    result = evaluate_positions(found.centres, read_placements(splits["val"]), geometry,
                                constraints)
    assert set(result.summary()) >= {"accuracy_strict", "accuracy_mirrors", "accuracy_classes"}

    # other sampling defaults do not change training: the finished state is reused
    changed = tiny_definition(sampling={"sampler": "ddpm", "steps": None})
    again = train_diffusion_model(changed, **paths)
    assert again["state_dir"] == record["state_dir"] and again["global_step"] == 30
    assert again["resumed_from"].endswith("last.ckpt")
    assert model_file.load_model_file(tmp_path / "model.pt").content["sampling"]["sampler"] \
        == "ddpm"


def test_ema_weights_go_into_the_model_file(splits, tmp_path):
    definition = tiny_definition(optimizer={"name": "adam", "learning_rate": 3e-3},
                                 ema_decay=0.9, max_steps=6, weights="last")
    train_diffusion_model(definition, train_path=splits["train"], val_path=splits["val"],
                          output=tmp_path / "model.pt", state_root=tmp_path / "state",
                          progress=False)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    last = torch.load(next((tmp_path / "state").glob("*/checkpoints/last.ckpt")),
                      weights_only=True)
    assert last["global_step"] == 6
    averaged = {k.removeprefix("network."): v for k, v in last["state_dict"].items()}
    raw = {k.removeprefix("network."): v for k, v in last["current_model_state"].items()}
    name = "init_conv.weight"
    torch.testing.assert_close(saved[name], averaged[name])
    assert not torch.equal(saved[name], raw[name])


def test_bad_definitions_are_refused(splits, tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        resolve_definition(tiny_definition(sampling={"stepz": 3}))
    with pytest.raises(ValueError, match="come from the dataset"):
        resolve_definition(tiny_definition(architecture={**ARCHITECTURE, "n_fields": 6}))
    with pytest.raises(ValueError, match="16-mixed"):
        train_diffusion_model(tiny_definition(precision="16-mixed"), train_path=splits["train"],
                              val_path=splits["val"], output=tmp_path / "m.pt",
                              state_root=tmp_path / "s", progress=False)


# --- mirror augmentation ---------------------------------------------------------------------
def test_mirror_augmentation_maps_image_and_placement_together_and_keeps_the_trace(spec):
    """The oracle is the physics: the LDOS of the mirrored placement under the mirrored
    potential, computed independently, is the flipped image, and the detector finds the
    mirrored centres in it; the trace is returned untouched."""
    geometry, constraints, p = spec.geometry, spec.constraints, spec.ldos_padding_sites
    W, L = geometry.shape
    truth = next(q for q in spec.classes.representatives
                 if not np.allclose(np.sort(W - 1 - q[:, 0]), np.sort(q[:, 0])))
    potential = random_potential(np.random.default_rng(7), geometry, spec.potential_amplitude_t)
    leads = lead_self_energies(W, [0.0], energy=spec.energy_t)
    image = pad_image(ldos(present_mask(geometry, truth), potential, leads)[0], W + 2 * p)
    images = torch.from_numpy(np.stack([image] * 4)[:, None])
    flags_x = torch.tensor([mx for mx, _ in MIRRORS])
    flags_y = torch.tensor([my for _, my in MIRRORS])
    mirrored = mirror_images(images, flags_x, flags_y)[:, 0].numpy()
    detector = AntidotDetector(geometry, constraints, p)
    for row, (mx, my) in enumerate(MIRRORS):
        placement = mirror_pair(truth, (W, L), mx, my)
        pot = potential[::-1] if mx else potential
        pot = pot[:, ::-1] if my else pot
        direct = pad_image(ldos(present_mask(geometry, placement), np.ascontiguousarray(pot),
                                leads)[0], W + 2 * p)
        np.testing.assert_allclose(mirrored[row], direct, rtol=1e-9, atol=1e-12)
        found = detector.detect(mirrored[row][None])
        assert match_positions(found.centres, placement[None], 0.0).correct.all(), (mx, my)
    np.testing.assert_array_equal(mirrored[0], image)           # identity first

    traces = torch.randn(4, 6)
    out_images, out_traces = MirrorAugmentation(seed=3)(images, traces, step=11)
    assert out_traces is traces
    x, y = draw_mirrors(4, 3, 11)
    torch.testing.assert_close(out_images, mirror_images(images, x, y), rtol=0, atol=0)


def test_mirror_draws_are_seeded_by_step_and_cover_the_group():
    a = draw_mirrors(64, seed=5, step=9)
    b = draw_mirrors(64, seed=5, step=9)
    c = draw_mirrors(64, seed=5, step=10)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    seen = {(bool(x), bool(y)) for x, y in zip(*a)}
    assert seen == set(MIRRORS)


def test_data_module_mirrors_training_batches_only(splits, tmp_path):
    """Augmented training images are mirror images of the stored ones with the same traces;
    validation batches are never changed; a tiny training run with mirrors completes."""
    plain = P2DataModule(splits["train"], splits["val"], batch_size=64, data_mode="ram")
    plain.setup()
    module = P2DataModule(splits["train"], splits["val"], batch_size=64, data_mode="ram",
                          symmetry_augmentation="mirrors", augmentation_seed=2)
    module.setup()

    class _Trainer:
        training, global_step = True, 4

    module.trainer = _Trainer()
    images, traces = plain.train_dataloader().dataset.tensors
    out_images, out_traces = module.on_after_batch_transfer((images, traces), 0)
    assert torch.equal(out_traces, traces)
    x, y = draw_mirrors(len(images), 2, 4)
    assert torch.equal(out_images, mirror_images(images, x, y))
    assert not torch.equal(out_images, images)
    _Trainer.training = False
    val_images, val_traces = module.on_after_batch_transfer((images, traces), 0)
    assert val_images is images
    with pytest.raises(ValueError, match="symmetry_augmentation"):
        P2DataModule(splits["train"], splits["val"], symmetry_augmentation="translations")

    record = train_diffusion_model(
        tiny_definition(optimizer={"name": "adam", "learning_rate": 3e-3}, max_steps=4,
                        symmetry_augmentation="mirrors"),
        train_path=splits["train"], val_path=splits["val"], output=tmp_path / "model.pt",
        state_root=tmp_path / "state", progress=False)
    assert record["global_step"] == 4
    content = model_file.load_model_file(tmp_path / "model.pt").content
    assert content["hyperparameters"]["symmetry_augmentation"] == "mirrors"
