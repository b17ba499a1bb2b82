"""P2 inference and evaluation: generated LDOS files from dataset and CSV traces (seeded,
checked against the training grid and device), and the evaluation's fixed set of files.

The data are the test config's P2 wire (16 × 20 sites, r = 2.5, 20 × 20 images, 6 fields),
simulated in about a second; the model is a tiny diffusion U-Net trained for two steps (the
file format matters here, not the accuracy). Setup copied from tests/test_p2_learning.py.
"""

import dataclasses
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch

from mesoinv.config import load_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.datasets.aggregate import SPLITS, validate_shards, write_splits
from mesoinv.inference.antidot_detector import read_geometry
from mesoinv.evaluation.p2_generation.placement_baseline import (
    MLP_OPTIONS, PlacementBaselineOptions, fit_placement_baseline, predict_placements,
    swap_invariant_mse)
from mesoinv.evaluation.p2_generation.baselines import (k_nearest_training_traces,
                                                        nearest_training_traces,
                                                        standardise_traces)
from mesoinv.evaluation.p2_generation.evaluate import OUTPUT_FILES, evaluate_diffusion_model
from mesoinv.evaluation.p2_generation.metrics import METRICS_COLUMNS
from mesoinv.evaluation.p2_generation.positions import (DEFAULT_TOLERANCE, consensus_draw,
                                                        ldos_scale, match_positions,
                                                        most_frequent_placement,
                                                        pixel_correlation)
from mesoinv.models.p2_placement import TraceMLPRegressor
from mesoinv.inference.p2_format import GENERATED_FORMAT_VERSION, read_generated, write_generated
from mesoinv.inference.p2_generate import (generate_from_csv, generate_from_dataset,
                                           generate_images, load_diffusion_model,
                                           resolve_sampling)
from mesoinv.training.model_file import IncompatibleDataError, file_sha256
from mesoinv.training.p2_readers import (load_ldos, mean_ldos_image, read_placements,
                                          read_traces)
from mesoinv.training.train_p2 import train_diffusion_model

ROOT = Path(__file__).resolve().parents[1]

ARCHITECTURE = {"base_channels": 8, "channel_mults": [1, 2, 2], "groups": 4,
                "linear_attention_heads": 2, "linear_attention_head_dim": 8,
                "attention_heads": 4, "attention_head_dim": 8, "trace_token_dim": 16,
                "trace_layers": 1, "trace_heads": 4, "condition_channels": 4}


pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """Train/val/test split files (by configuration) of the test config's P2 wire, grown to
    12 configurations × 3 realisations."""
    spec = dataclasses.replace(dataset_spec(load_config(ROOT / "config" / "test.yaml"),
                                            "p2_wire"), n_samples=36)
    directory = tmp_path_factory.mktemp("p2_generate")
    shard = directory / "all.nc"
    simulate_shard(spec, range(spec.n_samples), shard, progress=False)
    validate_shards([shard], spec, {str(shard): list(range(spec.n_samples))})
    outputs = {name: directory / f"p2-{name}.nc" for name in SPLITS}
    write_splits([shard], spec, {"train": 0.5, "val": 0.25, "test": 0.25}, outputs)
    with netCDF4.Dataset(outputs["val"]) as ds:
        assert ds.dimensions["sample"].size >= 3
    return outputs


@pytest.fixture(scope="module")
def model_path(splits, tmp_path_factory):
    """A tiny p2_diffusion model file (two Adam steps; T = 100, DDIM 4 steps, 2 draws)."""
    directory = tmp_path_factory.mktemp("p2_model")
    definition = {"name": "p2_tiny", "kind": "p2_diffusion", "dataset": "p2_wire",
                  "architecture": ARCHITECTURE, "diffusion": {"num_timesteps": 100},
                  "optimizer": {"name": "adam", "learning_rate": 3e-3},
                  "sampling": {"sampler": "ddim", "steps": 4, "samples_per_trace": 2,
                               "guidance_scale": 1.5, "seed": 0},
                  "batch_size": 6, "max_epochs": 1, "max_steps": 2, "data_mode": "ram",
                  "num_workers": 0, "seed": 1, "precision": "32-true"}
    path = directory / "model.pt"
    train_diffusion_model(definition, train_path=splits["train"], val_path=splits["val"],
                          output=path, state_root=directory / "state", progress=False)
    return path


def _read(path, name):
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds[name][:])


def _write_csv(path, fields, columns: dict, fmt="%.17g"):
    table = {"field_T": [fmt % f for f in fields]}
    table.update({name: [fmt % v for v in values] for name, values in columns.items()})
    pd.DataFrame(table).to_csv(path, index=False)
    return path


# --- generation ------------------------------------------------------------------------------
def test_seeded_generation_is_reproducible_with_units_and_truth(splits, model_path, tmp_path):
    val = splits["val"]
    first = generate_from_dataset(model_path, val, tmp_path / "a.nc", seed=3,
                                  figure=tmp_path / "a.png")
    second = generate_from_dataset(model_path, val, tmp_path / "b.nc", seed=3)
    a, b = _read(first, "generated_ldos"), _read(second, "generated_ldos")
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    other = generate_from_dataset(model_path, val, tmp_path / "c.nc", seed=4)
    assert not np.array_equal(_read(other, "generated_ldos"), a)
    assert (tmp_path / "a.png").stat().st_size > 0

    n = len(read_traces(val))
    with netCDF4.Dataset(first) as ds:
        assert ds.format_version == GENERATED_FORMAT_VERSION
        assert ds["generated_ldos"].dimensions == ("trace", "draw", "image_x", "y")
        assert ds["generated_ldos"].shape == (n, 2, 20, 20)     # model default: 2 draws
        assert ds["antidot_x"].shape == ds["antidot_y"].shape == (n, 2, 2)
        assert ds["generated_ldos_mean"].shape == ds["generated_ldos_std"].shape == (n, 20, 20)
        for name, units in {"generated_ldos": "t-1", "generated_ldos_mean": "t-1",
                            "generated_ldos_std": "t-1", "ldos_true": "t-1", "field": "T",
                            "conductance": "e2/h", "image_x": "1", "y": "1",
                            "antidot_x": "1", "antidot_x_true": "1", "sample_id": "1"}.items():
            assert ds[name].units == units, name
            assert ds[name].long_name
        for variable in ds.variables.values():
            assert hasattr(variable, "units") and hasattr(variable, "long_name"), variable.name
        assert (ds.sampler, int(ds.steps), int(ds.seed)) == ("ddim", 4, 3)
        assert float(ds.guidance_scale) == 1.5 and int(ds.samples_per_trace) == 2
        assert "classifier-free" in ds.guidance_mapping
        assert ds.model_name == "p2_tiny" and ds.model_kind == "p2_diffusion"
        assert ds.model_file_sha256 == file_sha256(model_path)
        assert ds.split == "val" and ds.input_kind == "dataset" and int(ds.has_truth) == 1
        assert ds.input_file == str(val) and ds.code_version and ds.command is not None
        np.testing.assert_array_equal(ds["image_x"][:], np.arange(20) - 2 - 7.5)
        np.testing.assert_array_equal(ds["sample_id"][:], _read(val, "sample_id"))
        np.testing.assert_allclose(ds["conductance"][:], read_traces(val))
        np.testing.assert_allclose(ds["ldos_true"][:], load_ldos(val), rtol=1e-6)
        truth = np.stack([ds["antidot_x_true"][:], ds["antidot_y_true"][:]], axis=-1)
        np.testing.assert_array_equal(truth, read_placements(val))
        mean = np.asarray(ds["generated_ldos_mean"][:])
        std = np.asarray(ds["generated_ldos_std"][:])
    assert np.all(a[:, :, :2] == 0.0) and np.all(a[:, :, -2:] == 0.0)    # padding columns
    np.testing.assert_allclose(mean, a.astype(np.float64).mean(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, a.astype(np.float64).std(1), rtol=1e-4, atol=1e-6)

    # a trace's images depend only on its own id and the seed, not on its neighbours (up to
    # the rounding of a batched network call: its noise is drawn from its own generator)
    last = int(_read(val, "sample_id")[-1])
    alone = generate_from_dataset(model_path, val, tmp_path / "one.nc", seed=3, ids=[last])
    np.testing.assert_allclose(_read(alone, "generated_ldos")[0], a[-1], rtol=1e-4,
                               atol=1e-6 * float(a.max()))
    # other options: DDPM runs all T = 100 steps; three draws; no guidance. Its traces are
    # generated together (one network call per step), each from its own generator, so the
    # last trace's draws equal those it gets alone, noise of every step included.
    first = int(_read(val, "sample_id")[0])
    options = dict(sampler="ddpm", samples_per_trace=3, guidance_scale=1.0)
    ddpm = generate_from_dataset(model_path, val, tmp_path / "ddpm.nc", ids=[first, last],
                                 **options)
    ddpm_alone = generate_from_dataset(model_path, val, tmp_path / "ddpm1.nc", ids=[last],
                                       **options)
    with netCDF4.Dataset(ddpm) as ds:
        assert ds.sampler == "ddpm" and int(ds.steps) == 100 and float(ds.guidance_scale) == 1
        assert ds["generated_ldos"].shape == (2, 3, 20, 20)
    np.testing.assert_allclose(_read(ddpm, "generated_ldos")[1],
                               _read(ddpm_alone, "generated_ldos")[0], rtol=1e-4,
                               atol=1e-6 * float(a.max()))
    # one trace at a time (batch_images below 2 draws): the same images, bit for bit
    model = load_diffusion_model(model_path)
    traces = read_traces(val)
    ids = _read(val, "sample_id")
    options = resolve_sampling(model, seed=3)
    single = generate_images(model, traces[-2:], ids[-2:], options, batch_images=1)
    again = generate_images(model, traces[-2:], ids[-2:], options, batch_images=1)
    assert single.tobytes() == again.tobytes()
    np.testing.assert_allclose(single[-1], a[-1], rtol=1e-4, atol=1e-6 * float(a.max()))
    with pytest.raises(ValueError, match="DDPM runs all 100 steps"):
        generate_from_dataset(model_path, val, tmp_path / "bad.nc", sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="not in"):
        generate_from_dataset(model_path, val, tmp_path / "bad.nc", ids=[10_000])
    assert not (tmp_path / "bad.nc").exists()


def test_csv_on_the_training_grid_works(splits, model_path, tmp_path):
    fields = load_diffusion_model(model_path).inputs["fields_T"]
    traces = read_traces(splits["val"])
    one = _write_csv(tmp_path / "one.csv", fields, {"conductance_e2_h": traces[0]})
    path = generate_from_csv(model_path, one, tmp_path / "one.nc", samples_per_trace=1,
                             figure=tmp_path / "one.png")
    with netCDF4.Dataset(path) as ds:
        assert ds["generated_ldos"].shape == (1, 1, 20, 20)
        assert ds.input_kind == "csv" and int(ds.has_truth) == 0 and "CSV" in ds.unchecked
        assert "ldos_true" not in ds.variables and "antidot_x_true" not in ds.variables
        assert list(ds["trace_name"][:]) == ["conductance_e2_h"]
        np.testing.assert_allclose(ds["conductance"][0], traces[0], rtol=1e-15)
    assert (tmp_path / "one.png").stat().st_size > 0
    several = _write_csv(tmp_path / "several.csv", fields,
                         {"wire A": traces[0], "wire B": traces[1], "wire C": traces[2]})
    path = generate_from_csv(model_path, several, tmp_path / "several.nc", ids=[0, 2])
    with netCDF4.Dataset(path) as ds:
        assert ds["generated_ldos"].shape == (2, 2, 20, 20)
        assert list(ds["trace_name"][:]) == ["wire A", "wire C"]
        np.testing.assert_array_equal(ds["sample_id"][:], [0, 2])


def test_csv_on_another_field_grid_or_length_is_refused(splits, model_path, tmp_path):
    fields = np.asarray(load_diffusion_model(model_path).inputs["fields_T"])
    trace = read_traces(splits["val"])[0]
    output = tmp_path / "out.nc"
    cases = {
        "shifted": (_write_csv(tmp_path / "shifted.csv", fields + 0.5,
                               {"conductance_e2_h": trace}), "field grid differs"),
        "shorter": (_write_csv(tmp_path / "shorter.csv", fields[:-1],
                               {"conductance_e2_h": trace[:-1]}), "5 field points"),
        # 1 % of the grid spacing off: beyond the rounding tolerance (10⁻³ of the spacing)
        "1 % of a spacing off": (_write_csv(tmp_path / "off.csv",
                                            fields + 0.01 * (fields[1] - fields[0]),
                                            {"conductance_e2_h": trace}), "field grid differs"),
    }
    for name, (csv, message) in cases.items():
        with pytest.raises(IncompatibleDataError, match=message):
            generate_from_csv(model_path, csv, output, figure=tmp_path / "out.png")
        assert not output.exists() and not (tmp_path / "out.png").exists(), name
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("B,G\n0,1\n")
    with pytest.raises(ValueError, match="field_T"):
        generate_from_csv(model_path, bad_header, output)
    text = tmp_path / "text.csv"
    text.write_text("field_T,conductance_e2_h\n0,abc\n")
    with pytest.raises(ValueError, match="number"):
        generate_from_csv(model_path, text, output)
    assert not output.exists()


def test_dataset_of_another_device_or_grid_is_refused(splits, model_path, tmp_path):
    energy = tmp_path / "energy.nc"
    shutil.copy(splits["val"], energy)
    with netCDF4.Dataset(energy, "a") as ds:
        ds.energy_t = 0.5
    with pytest.raises(IncompatibleDataError, match="energy_t = 0.5 t"):
        generate_from_dataset(model_path, energy, tmp_path / "out.nc",
                              figure=tmp_path / "out.png")
    grid = tmp_path / "grid.nc"
    shutil.copy(splits["val"], grid)
    with netCDF4.Dataset(grid, "a") as ds:
        ds["field"][:] = np.asarray(ds["field"][:]) * 1.5
    with pytest.raises(IncompatibleDataError, match="field grid"):
        generate_from_dataset(model_path, grid, tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists() and not (tmp_path / "out.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["energy.nc", "grid.nc"]


# --- evaluation ------------------------------------------------------------------------------
def test_evaluation_of_the_true_images_scores_one(splits, model_path, tmp_path):
    """The truth fed as the 'generated' images: strict accuracy 1, error 0, correlation 1."""
    val = splits["val"]
    model = load_diffusion_model(model_path)
    options = resolve_sampling(model)
    truth = load_ldos(val)
    generated = write_generated(
        tmp_path / "truth.nc", model, model_path, sample_ids=_read(val, "sample_id"),
        traces=read_traces(val), fields_T=model.inputs["fields_T"],
        generated=np.repeat(truth[:, None], options.samples_per_trace, axis=1),
        options=options, input_file=str(val), input_kind="dataset", split="val",
        true_ldos=truth, true_placements=read_placements(val))
    np.testing.assert_array_equal(read_generated(generated).found,
                                  np.repeat(read_placements(val)[:, None], 2, axis=1))
    paths = evaluate_diffusion_model(generated, tmp_path / "evaluation", model_path=model_path,
                                     dataset_path=val, train_path=splits["train"],
                                     snapshot_sample=1, score_points=12)
    assert set(paths) == set(OUTPUT_FILES)
    for key, name in OUTPUT_FILES.items():
        assert paths[key] == tmp_path / "evaluation" / name
        assert paths[key].stat().st_size > 0, name
    metrics = pd.read_csv(paths["metrics"])
    assert list(metrics.columns) == METRICS_COLUMNS
    assert len(metrics) == 18
    assert set(metrics["predictor"]) == {"model", "nearest_training_trace",
                                         "direct_placement_model", "direct_placement_mlp",
                                         "unconditional", "most_frequent_placement"}
    assert set(metrics["criterion"]) == {"strict", "mirrors", "classes"}
    rows = metrics[metrics["predictor"] == "model"].set_index("criterion")
    assert rows.loc["strict", "accuracy"] == 1.0
    assert (rows["accuracy"] == 1.0).all() and (rows["oracle_any_draw_correct"] == 1.0).all()
    assert (rows["mean_position_error_sites"] == 0.0).all()
    assert rows.loc["strict", "accuracy_std_over_draws"] == 0.0
    assert rows.loc["strict", "pixel_correlation_mean"] == pytest.approx(1.0, abs=1e-6)
    assert rows.loc["strict", "ldos_mean_ratio"] == pytest.approx(1.0, rel=1e-12)
    assert rows.loc["strict", "ldos_mse_per_t2"] == 0.0
    assert (rows["n_traces"] == len(truth)).all() and (rows["samples_per_trace"] == 2).all()
    assert rows.loc["strict", "sampler"] == "ddim" and rows.loc["strict", "steps"] == 4
    assert rows.loc["strict", "model"] == "p2_tiny" and rows.loc["strict", "split"] == "val"
    # 95 % intervals: Wilson at accuracy 1 (n traces) and a zero-width error interval
    n = len(truth)
    assert (rows["accuracy_ci_high"] == 1.0).all()
    assert rows.loc["strict", "accuracy_ci_low"] == pytest.approx(n / (n + 1.959963984540054 ** 2))
    assert (rows["mean_position_error_sites_ci_high"] == 0.0).all()
    for column in ("accuracy", "mean_position_error_sites", "pixel_correlation_mean"):
        inside = ((metrics[f"{column}_ci_low"] <= metrics[column] + 1e-12)
                  & (metrics[column] <= metrics[f"{column}_ci_high"] + 1e-12))
        assert inside[metrics[column].notna()].all(), column
    lookup = metrics[metrics["predictor"] == "nearest_training_trace"].set_index("criterion")
    assert (lookup["samples_per_trace"] == 1).all() and lookup["sampler"].isna().all()
    # intervals over placements: the realisations of one configuration resampled together;
    # the model (always right) minus the lookup on the same traces
    configurations = _read(val, "configuration_id")
    assert (metrics["n_configurations"] == len(np.unique(configurations))).all()
    assert (rows["accuracy_cluster_ci_low"] == 1.0).all()
    assert (rows["accuracy_minus_lookup"] == 1.0 - lookup["accuracy"]).all()
    assert (rows["accuracy_minus_lookup_ci_low"] <= rows["accuracy_minus_lookup"] + 1e-12).all()
    assert lookup["accuracy_minus_lookup"].isna().all()
    assert ((lookup["accuracy_cluster_ci_low"] <= lookup["accuracy"] + 1e-12)
            & (lookup["accuracy"] <= lookup["accuracy_cluster_ci_high"] + 1e-12)).all()
    assert lookup.loc["strict", "accuracy"] <= lookup.loc["classes", "accuracy"]
    blind = metrics[metrics["predictor"] == "unconditional"].set_index("criterion")
    assert (blind["guidance_scale"] == 0.0).all() and (blind["samples_per_trace"] == 2).all()
    constant = metrics[metrics["predictor"] == "most_frequent_placement"]
    assert (constant["samples_per_trace"] == 1).all()
    # the constant placement's strict accuracy is the fraction of traces it matches
    strict_constant = match_positions(
        np.broadcast_to(most_frequent_placement(read_placements(splits["train"])),
                        read_placements(val).shape), read_placements(val)).correct.mean()
    assert constant.set_index("criterion").loc["strict", "accuracy"] == pytest.approx(
        strict_constant)
    for predictor in ("unconditional", "most_frequent_placement"):
        part = metrics[metrics["predictor"] == predictor].set_index("criterion")["accuracy"]
        assert part["strict"] <= part["mirrors"] <= part["classes"]
    assert metrics["baseline"].str.len().min() > 0

    # model files store no baselines: without the training split the evaluation asks for it,
    # before anything is written
    assert "baselines" not in torch.load(model_path, weights_only=True)
    with pytest.raises(ValueError, match="--train"):
        evaluate_diffusion_model(generated, tmp_path / "refused", model_path=model_path,
                                 dataset_path=val, score_points=4)
    assert not (tmp_path / "refused").exists()

    # an older model file's own baselines give the same constant placement here
    older = tmp_path / "older.pt"
    content = torch.load(model_path, weights_only=True)
    train = splits["train"]
    content["baselines"] = {
        "most_frequent_placement": most_frequent_placement(read_placements(train)).tolist(),
        "most_frequent_placement_tolerance_sites": DEFAULT_TOLERANCE,
        "training_mean_ldos": mean_ldos_image(train).tolist()}
    torch.save(content, older)
    older_generated = write_generated(
        tmp_path / "truth_older.nc", model, older, sample_ids=_read(val, "sample_id"),
        traces=read_traces(val), fields_T=model.inputs["fields_T"],
        generated=np.repeat(truth[:, None], options.samples_per_trace, axis=1),
        options=options, input_file=str(val), input_kind="dataset", split="val",
        true_ldos=truth, true_placements=read_placements(val))
    again = evaluate_diffusion_model(older_generated, tmp_path / "again", model_path=older,
                                     dataset_path=val, score_points=4,
                                     unconditional_draws=1)
    metrics2 = pd.read_csv(again["metrics"])
    assert (metrics2[metrics2["predictor"] == "unconditional"]["samples_per_trace"] == 1).all()
    pd.testing.assert_series_equal(
        metrics2[metrics2["predictor"] == "model"]["accuracy"].reset_index(drop=True),
        rows["accuracy"].reset_index(drop=True), check_names=False)
    stored = metrics2[metrics2["predictor"] == "most_frequent_placement"]
    for column in ("accuracy", "mean_position_error_sites", "pixel_correlation_mean"):
        np.testing.assert_array_equal(stored[column].to_numpy(), constant[column].to_numpy())


def test_consensus_of_draws_outvotes_a_wrong_draw(splits, model_path, tmp_path):
    """Three 'draws' per trace, the first another trace's true image and two the trace's own:
    the per-draw accuracy counts the wrong draw, the consensus does not; the lookup gets the
    same number of candidates (k = 3 nearest training traces)."""
    val = splits["val"]
    model = load_diffusion_model(model_path)
    options = dataclasses.replace(resolve_sampling(model), samples_per_trace=3)
    truth = load_ldos(val)
    placements = read_placements(val)
    wrong = np.roll(truth, 1, axis=0)
    generated = write_generated(
        tmp_path / "votes.nc", model, model_path, sample_ids=_read(val, "sample_id"),
        traces=read_traces(val), fields_T=model.inputs["fields_T"],
        generated=np.stack([wrong, truth, truth], axis=1), options=options,
        input_file=str(val), input_kind="dataset", split="val", true_ldos=truth,
        true_placements=placements)
    paths = evaluate_diffusion_model(generated, tmp_path / "evaluation", model_path=model_path,
                                     dataset_path=val, train_path=splits["train"],
                                     score_points=4)
    metrics = pd.read_csv(paths["metrics"]).set_index(["predictor", "criterion"])
    wrong_correct = match_positions(np.roll(placements, 1, axis=0), placements).correct
    assert not wrong_correct.all()          # the rolled images are wrong somewhere
    assert metrics.loc[("model", "strict"), "accuracy"] == pytest.approx(
        (wrong_correct.mean() + 2) / 3)
    assert metrics.loc[("model_consensus", "strict"), "accuracy"] == 1.0
    assert metrics.loc[("model_consensus", "strict"), "samples_per_trace"] == 3
    lookup = metrics.loc["nearest_traces_consensus"]
    assert (lookup["samples_per_trace"] == 3).all() and len(lookup) == 3
    assert lookup.loc["strict", "accuracy"] <= lookup.loc["classes", "accuracy"]
    # the trace-blind baseline keeps its default two draws
    assert (metrics.loc["unconditional", "samples_per_trace"] == 2).all()


def test_evaluation_refuses_a_file_without_truth(splits, model_path, tmp_path):
    fields = load_diffusion_model(model_path).inputs["fields_T"]
    csv = _write_csv(tmp_path / "t.csv", fields,
                     {"conductance_e2_h": read_traces(splits["val"])[0]})
    generated = generate_from_csv(model_path, csv, tmp_path / "g.nc", samples_per_trace=1)
    with pytest.raises(ValueError, match="no truth.*ldos_true"):
        evaluate_diffusion_model(generated, tmp_path / "evaluation", model_path=model_path,
                                 dataset_path=splits["val"])
    assert not (tmp_path / "evaluation").exists()
    # a generated file of another dataset is refused as well, before anything is written
    test_file = generate_from_dataset(model_path, splits["test"], tmp_path / "test.nc",
                                      samples_per_trace=1)
    with pytest.raises(ValueError, match="not in"):
        evaluate_diffusion_model(test_file, tmp_path / "evaluation", model_path=model_path,
                                 dataset_path=splits["val"])
    assert not (tmp_path / "evaluation").exists()


def test_nearest_trace_lookup_finds_a_duplicate_and_breaks_ties_first():
    """1-NN on a toy set whose answer is known: a duplicated trace is found at distance 0;
    equal distances go to the first training row; standardisation uses training statistics."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 7)) * np.arange(1, 8)  # very different spreads per field
    queries = np.stack([train[13], train[4] + 1e-9, (train[2] + train[3]) / 2])
    rows, distances = nearest_training_traces(train, queries)
    assert rows[0] == 13 and distances[0] == pytest.approx(0.0, abs=1e-6)
    assert rows[1] == 4
    # a tie: two identical training traces, the first one wins
    tied = np.concatenate([train, train[[5]]])
    tied_rows, _ = nearest_training_traces(tied, train[[5]])
    assert tied_rows[0] == 5
    # standardised per field with the training mean/std: scaling one field changes nothing
    scaled = train.copy()
    scaled[:, 6] *= 1000
    scaled_queries = queries.copy()
    scaled_queries[:, 6] *= 1000
    np.testing.assert_array_equal(nearest_training_traces(scaled, scaled_queries)[0], rows)
    z_train, z = standardise_traces(train, queries)
    np.testing.assert_allclose(z_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z_train.std(0), 1, atol=1e-12)
    brute = np.argmin(((z[:, None, :] - z_train[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(rows, brute)
    # k nearest: nearest first, the brute-force order, the duplicate tie kept in file order
    k_rows, k_distances = k_nearest_training_traces(tied, train[[5]], 3)
    assert k_rows[0, :2].tolist() == [5, 20] and k_distances[0, :2] == pytest.approx([0, 0])
    brute_k = np.argsort(((z[:, None, :] - z_train[None]) ** 2).sum(-1), axis=1)[:, :4]
    k_rows, k_distances = k_nearest_training_traces(train, queries, 4)
    np.testing.assert_array_equal(k_rows[:2], brute_k[:2])
    # the midpoint of rows 2 and 3 has both as nearest, at the same distance up to rounding
    assert set(k_rows[2, :2]) == {2, 3} and k_distances[2, 0] == pytest.approx(k_distances[2, 1])
    assert np.all(np.diff(k_distances, axis=1) >= 0)
    with pytest.raises(ValueError, match="neighbours"):
        k_nearest_training_traces(train, queries, 21)


def test_direct_placement_loss_is_swap_invariant_and_the_baseline_learns(splits):
    """Swapping the two true (or predicted) centres leaves the loss unchanged; a few training
    steps on the test data lower it; predictions come back in sites, inside the wire."""
    torch.manual_seed(0)
    predicted = torch.rand(5, 2, 2)
    true = torch.rand(5, 2, 2)
    loss = swap_invariant_mse(predicted, true)
    # equal up to the summation order of float32
    torch.testing.assert_close(swap_invariant_mse(predicted, true.flip(1)), loss,
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(swap_invariant_mse(predicted.flip(1), true), loss,
                               rtol=1e-6, atol=0)
    assert swap_invariant_mse(true.flip(1), true) == 0.0
    manual = torch.minimum(((predicted - true) ** 2).mean((1, 2)),
                           ((predicted - true.flip(1)) ** 2).mean((1, 2))).mean()
    assert torch.allclose(loss, manual)

    geometry, _, _ = read_geometry(splits["train"])
    short = fit_placement_baseline(splits["train"], geometry,
                                   PlacementBaselineOptions(steps=1, seed=3))
    longer = fit_placement_baseline(splits["train"], geometry,
                                    PlacementBaselineOptions(steps=150, seed=3))
    assert longer.final_loss < short.final_loss
    again = fit_placement_baseline(splits["train"], geometry,
                                   PlacementBaselineOptions(steps=150, seed=3))
    assert again.final_loss == longer.final_loss  # seeded
    centres = predict_placements(longer, read_traces(splits["val"]))
    assert centres.shape == (len(read_traces(splits["val"])), 2, 2)
    assert np.all(np.isfinite(centres))


def test_mlp_direct_baseline_learns_and_its_steps_follow_the_training_split(splits):
    """The MLP regressor trains (loss falls, seeded), answers in sites; its step count is 300
    passes over the training split within [2,000, 10,000] steps."""
    assert MLP_OPTIONS.encoder == "mlp" and MLP_OPTIONS.weight_decay > 0 and MLP_OPTIONS.cosine
    assert MLP_OPTIONS.n_steps(10) == 2000            # floor
    assert MLP_OPTIONS.n_steps(2058) == 9647          # ceil(300 · 2058 / 64)
    assert MLP_OPTIONS.n_steps(100_000) == 10_000     # cap
    assert PlacementBaselineOptions(steps=7).n_steps(10 ** 6) == 7  # no epochs: fixed steps
    with pytest.raises(ValueError, match="encoder"):
        PlacementBaselineOptions(encoder="cnn")
    geometry, _, _ = read_geometry(splits["train"])
    options = dataclasses.replace(MLP_OPTIONS, steps=1, epochs=None, seed=3)
    short = fit_placement_baseline(splits["train"], geometry, options)
    longer = fit_placement_baseline(splits["train"], geometry,
                                    dataclasses.replace(options, steps=150))
    assert isinstance(longer.network, TraceMLPRegressor)
    assert longer.final_loss < short.final_loss
    again = fit_placement_baseline(splits["train"], geometry,
                                   dataclasses.replace(options, steps=150))
    assert again.final_loss == longer.final_loss
    centres = predict_placements(longer, read_traces(splits["val"]))
    assert centres.shape == (len(read_traces(splits["val"])), 2, 2)
    assert np.all(np.isfinite(centres))


def test_ldos_scale_sees_what_the_correlation_ignores():
    """An image twice as bright correlates perfectly but has mean ratio 2 and the MSE of the
    truth's own mean square; the padding columns are left out."""
    rng = np.random.default_rng(1)
    true = rng.random((3, 8, 5))
    true[:, :2] = 0.0
    true[:, -2:] = 0.0
    ratio, mse = ldos_scale(2 * true[:, None], true, padding=2)
    np.testing.assert_allclose(ratio, 2.0)
    np.testing.assert_allclose(mse[:, 0], (true[:, 2:-2] ** 2).mean(axis=(1, 2)))
    assert pixel_correlation(2 * true[:, None], true, padding=2) == pytest.approx(1.0)


def test_consensus_draw_takes_the_majority_and_never_a_missing_antidot():
    """Hand-made draws: the placement two of three draws agree on wins (whatever the order of
    the antidots); a draw with a missing antidot loses to any complete one; with no majority
    the least spread draw wins, then the first."""
    a = np.array([[3.0, 4.0], [10.0, 12.0]])
    b = np.array([[7.0, 2.0], [15.0, 20.0]])
    near_a = a + [[0.5, -0.5], [1.0, 0.0]]            # within 1.5 sites of a: agrees with a
    nan = np.full((2, 2), np.nan)
    half = np.array([[3.0, 4.0], [np.nan, np.nan]])   # one antidot not found
    found = np.stack([
        [b, a[::-1], near_a],        # a (swapped) and near_a agree (2 votes each); near_a is
                                     # nearer b (8.94 vs 9.43 sites) → draw 2
        [half, nan, b],              # only draw 2 is complete
        [nan, nan, nan],             # none complete → the first
        [a, b, a + [[0.0, 1.0], [0.0, 1.0]]],   # a and its 1-site shift agree; the shift is
                                                # nearer b (8.60 vs 9.43) → draw 2
        [a, b + 30, b],              # no agreement: summed larger matched distances
    ])                               # a 9.43 + 51.7, b+30 51.7 + 42.4, b 9.43 + 42.4 → b
    choice = consensus_draw(found)
    np.testing.assert_array_equal(choice, [2, 2, 0, 2, 2])
    # votes come before distances: the midpoint of a and b is nearer everything (summed
    # distance 13.47 sites, against 13.48 and 14.86 for the two that agree) but agrees with
    # nothing
    assert consensus_draw(np.stack([[(a + b) / 2, a, a + 0.5, b]]))[0] in (1, 2)
    # an exact tie (one vote each, the same distance) goes to the first draw
    assert consensus_draw(np.stack([[a + [[0.0, 3.0], [0.0, 3.0]], a]]))[0] == 0
    # spread decides between single votes: the draw in the middle of three far-apart ones
    middle = np.stack([[a, a + 10, a + 4]])
    assert consensus_draw(middle)[0] == 2
    with pytest.raises(ValueError, match=r"\(n, k, 2, 2\)"):
        consensus_draw(found[0])
