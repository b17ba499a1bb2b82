"""Configuration validation: every bad value stops with its key named, before any output."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mesoinv.config import (ConfigError, check_config_file, dataset_definition, load_config,
                            sample_config_hash, validate_config)

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"


@pytest.fixture
def config():
    # JSON round trip: YAML anchors make datasets share sub-dicts; tests edit one at a time.
    return json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))


#: Overlays, given after a full config (`--configfile config/config.yaml config/seeds.yaml`).
OVERLAYS = ("seeds.yaml", "sweeps-demo.yaml")
#: Overlays of the medium config that change its datasets (issue 16's experiments), given after
#: it: `--configfile config/medium.yaml config/medium-p2-….yaml`.
MEDIUM_OVERLAYS = ("medium-p2-wire20x24.yaml", "medium-p2-wire20x24-realisations12.yaml",
                   "medium-p1-sweeps.yaml", "medium-p1-regions.yaml")


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "config").glob("*.yaml")
                                        if p.name not in OVERLAYS + MEDIUM_OVERLAYS),
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config["datasets"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_shipped_overlays_are_valid_on_the_demo_config(name):
    check_config_file(ROOT / "config" / name)
    overlay = yaml.safe_load((ROOT / "config" / name).read_text())
    assert "datasets" not in overlay
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert validate_config({**demo, **overlay})["datasets"]


@pytest.mark.parametrize("name", [n for n in MEDIUM_OVERLAYS if "-p2-" in n])
def test_medium_overlays_are_valid_merged_as_snakemake_merges(name):
    """Merged into config/medium.yaml key by key (Snakemake's recursive update of several
    --configfile), each gives a valid config whose p2_placements holds every placement class
    × its realisations."""
    from snakemake.utils import update_config

    from mesoinv.datasets import dataset_spec

    merged = yaml.safe_load((ROOT / "config" / "medium.yaml").read_text())
    update_config(merged, yaml.safe_load((ROOT / "config" / name).read_text()))
    spec = dataset_spec(validate_config(merged), "p2_placements")
    assert spec.n_samples == spec.max_samples


def test_medium_sweep_overlay_expands_into_its_points():
    """config/medium-p1-sweeps.yaml after config/medium.yaml: a 2 × 2 grid (input transform ×
    schedule) on a 4,000-map subset and a 5-size learning curve, every point an ordinary
    p1_rms_xi entry."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((ROOT / "config" / "medium.yaml").read_text())
    update_config(merged, yaml.safe_load((ROOT / "config" / "medium-p1-sweeps.yaml").read_text()))
    models = validate_config(merged)["models"]
    grid = {name: m for name, m in models.items() if name.startswith("medium_rms_xi_recipe_")}
    assert sorted((m["inputs"]["transform"], m["optimizer"]["schedule"])
                  for m in grid.values()) == [
        ("log_standardize", "constant"), ("log_standardize", "cosine"),
        ("standardize", "constant"), ("standardize", "cosine")]
    assert all(m["train_subset"]["n_samples"] == 4000 and m["early_stopping"] is None
               and m["max_epochs"] == 20 for m in grid.values())
    curve = {name: m for name, m in models.items() if name.startswith("medium_rms_xi_samples_n")}
    assert sorted(m["train_subset"]["n_samples"] for m in curve.values()) == [
        1000, 2000, 4000, 8000, 16000]
    # The learning curve takes the grid's chosen recipe (validation), 12 epochs at every size.
    assert all((m["inputs"]["transform"], m["optimizer"]["schedule"], m["max_epochs"],
                m["early_stopping"]) == ("log_standardize", "cosine", 12, None)
               for m in curve.values())
    assert all(m["dataset"] == "p1_varying" and m["targets"] == ["rms", "correlation_length"]
               for m in [*grid.values(), *curve.values()])


def test_medium_region_overlay_expands_into_one_point_per_region():
    """config/medium-p1-regions.yaml after config/medium.yaml: the same recipe on 1,000 and
    2,000 maps of each of three regions (320 × 240, 640 × 480 and 1280 × 960 nm), which differ from
    medium's p1_varying in their geometry (and seed) alone."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((ROOT / "config" / "medium.yaml").read_text())
    update_config(merged, yaml.safe_load(
        (ROOT / "config" / "medium-p1-regions.yaml").read_text()))
    config = validate_config(merged)
    points = {name: m for name, m in config["models"].items()
              if name.startswith("medium_rms_xi_regions_")}
    assert sorted(points) == [f"medium_rms_xi_regions_{d}_n{n}"
                              for d in ("p1_region1280", "p1_region320", "p1_varying")
                              for n in (1000, 2000)]
    assert all(m["train_subset"] in ({"n_samples": 1000, "seed": 0},
                                     {"n_samples": 2000, "seed": 0})
               and m["inputs"]["transform"] == "log_standardize" for m in points.values())
    areas = sorted({config["datasets"][m["dataset"]]["geometry"]["length_nm"]
                    * config["datasets"][m["dataset"]]["geometry"]["width_nm"]
                    for m in points.values()})
    assert areas == [320 * 240, 640 * 480, 1280 * 960]
    medium = config["datasets"]["p1_varying"]
    for name in ("p1_region320", "p1_region1280"):
        region = config["datasets"][name]
        assert region["n_samples"] * region["splits"]["train"] > 2000
        for key in ("material", "transport", "disorder", "solver", "kind", "storage_dtype"):
            assert region[key] == medium[key], (name, key)
        assert {k: v for k, v in region["geometry"].items()
                if k not in ("length_nm", "width_nm")} == {
            k: v for k, v in medium["geometry"].items() if k not in ("length_nm", "width_nm")}


def test_defaults_are_filled(config):
    validated = validate_config(config)
    fixed = validated["datasets"]["p1_fixed"]
    assert fixed["storage_dtype"] == "float32"
    assert fixed["shard_size"] == 4
    assert fixed["transport"]["magnetic_fields_T"] == [0.0]
    assert fixed["disorder"]["cutoff_factor"] == 3.5
    assert fixed["solver"]["ordering"] == "pord"
    # validation does not modify its argument
    assert "storage_dtype" not in config["datasets"]["p1_fixed"]


def test_yaml11_exponent_floats_are_numbers():
    # PyYAML reads 1.0e12 (no exponent sign) as a string; the config treats it as a number.
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    assert isinstance(raw["datasets"]["p1_fixed"]["disorder"]["dopant_density_cm2"], str)
    validated = validate_config(raw)
    assert validated["datasets"]["p1_fixed"]["disorder"]["dopant_density_cm2"] == 1e12


def _set(config, dotted, value):
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

# (dotted key to change, new value, key the error must name, words the message must contain)
BAD_CONFIGS = [
    ("models.p2_ldos.evaluation_split", "train", "models.p2_ldos.evaluation_split", ""),
    ("datasets.p2_wire.split_by", "sample", "datasets.p2_wire.split_by", ""),
    ("datasets.p1_varying.disorder.dopant_density_cm2", [-1e12, 1e12],
     "datasets.p1_varying.disorder.dopant_density_cm2", "outside"),
    ("datasets.p1_varying.disorder.dopant_distance_nm", [40.0, 900.0],
     "datasets.p1_varying.disorder.dopant_distance_nm", "outside"),
    ("datasets.p1_varying.disorder.dopant_distance_nm", [70.0, 40.0],
     "datasets.p1_varying.disorder.dopant_distance_nm", "min > max"),
    ("datasets.p1_varying.disorder.dopant_distance_nm", [40.0, 50.0, 60.0],
     "datasets.p1_varying.disorder.dopant_distance_nm", ""),
    ("datasets.p1_varying.n_samples", -5, "datasets.p1_varying.n_samples", "minimum"),
    ("datasets.p1_varying.n_samples", "many", "datasets.p1_varying.n_samples", "integer"),
    ("datasets.p1_varying.seed", 1.5, "datasets.p1_varying.seed", "integer"),
    ("datasets.p1_varying.shard_size", 0, "datasets.p1_varying.shard_size", "minimum"),
    ("datasets.p1_varying.kind", "p3_unknown", "datasets.p1_varying.kind", "p1_pldos"),
    ("datasets.p1_varying.geometry.length_nm", 202.5, "datasets.p1_varying.geometry.length_nm",
     "whole number"),
    ("datasets.p1_varying.geometry.qpc_width_nm", 300.0,
     "datasets.p1_varying.geometry.qpc_width_nm", "qpc_width"),
    ("datasets.p1_varying.geometry.qpc_center_nm", 140.0,
     "datasets.p1_varying.geometry.qpc_center_nm", "QPC"),
    ("datasets.p1_varying.geometry.lattice_constant_nm", _DELETE,
     "datasets.p1_varying.geometry", "lattice_constant_nm"),
    ("datasets.p1_varying.geometry.lattice_nm", 5.0,
     "datasets.p1_varying.geometry.lattice_nm", "unknown key"),
    ("datasets.p1_varying.transport.energy_meV", 0.0,
     "datasets.p1_varying.transport.energy_meV", ""),
    ("datasets.p1_varying.transport.energy_meV", 200.0,
     "datasets.p1_varying.transport.energy_meV", "band centre"),
    ("datasets.p1_varying.transport.magnetic_fields_T", [], 
     "datasets.p1_varying.transport.magnetic_fields_T", ""),
    ("datasets.p1_varying.storage_dtype", "float16", "datasets.p1_varying.storage_dtype", ""),
    ("datasets.p1_varying.solver", {"ordering": "fastest"}, "datasets.p1_varying.solver.ordering", ""),
    ("datasets.p1_varying.material.effective_mass_kg", "0.067",
     "datasets.p1_varying.material.effective_mass_kg", ""),
    ("figures.sample_ids", [0, 99], "figures.sample_ids", "does not exist"),
    ("datasets.bad-name", {}, "datasets", ""),
    ("typo_top_level", 1, "typo_top_level", "unknown key"),
    ("datasets.p1_fixed.seed", 7, "datasets.p1_fixed.seed", "also the seed of dataset 'p1_varying'"),
    ("datasets.p1_fixed.splits", {"train": 0.95, "val": 0.05, "test": 0.0},
     "datasets.p1_fixed.splits.val", "less than one sample"),
    ("datasets.p1_varying.splits", {"train": 0.8, "val": 0.1, "test": 0.2},
     "datasets.p1_varying.splits", "add up to"),
    ("datasets.p1_varying.splits", {"train": 0.0, "val": 0.5, "test": 0.5},
     "datasets.p1_varying.splits.train", "cannot be empty"),
    ("datasets.p1_varying.transport.magnetic_fields_T", [0.0, 0.5, 0.0],
     "datasets.p1_varying.transport.magnetic_fields_T", "duplicates"),
    ("datasets.p1_varying.transport.energy_meV", 0.5,
     "datasets.p1_varying.transport.energy_meV", "below the first channel"),
    ("datasets.p1_varying.disorder.dopant_distance_nm", [40.0, 400.0],
     "datasets.p1_varying.disorder.dopant_distance_nm", "potential would be zero"),
    ("datasets.p1_varying.on_sample_failure", "ignore", "datasets.p1_varying.on_sample_failure", ""),
]


@pytest.mark.parametrize("dotted,value,key,words", BAD_CONFIGS,
                         ids=[f"{c[0]}={c[1]!r}"[:60] for c in BAD_CONFIGS])
def test_bad_config_names_the_key(config, dotted, value, key, words):
    bad = copy.deepcopy(config)
    _set(bad, dotted, value)
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert info.value.key == key, str(info.value)
    assert f"'{key}'" in str(info.value)
    assert words in str(info.value)


def test_diffusion_evaluation_split_must_exist(config):
    bad = copy.deepcopy(config)
    bad["datasets"]["p2_wire"]["splits"] = {"train": 0.6, "val": 0.4, "test": 0.0}
    bad["models"]["p2_ldos"]["evaluation_split"] = "test"
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert info.value.key == "models.p2_ldos.evaluation_split"
    assert "no test split" in str(info.value)
    bad["models"]["p2_ldos"]["evaluation_split"] = "val"      # P2's two-way split is fine
    validate_config(bad)


def test_split_by_does_not_change_the_samples(config):
    """split_by only regroups samples into splits: the definition the shards depend on, and
    so every shard, stay the same."""
    validated = validate_config(config)
    regrouped = copy.deepcopy(config)
    regrouped["datasets"]["p2_wire"]["split_by"] = "realization"
    regrouped = validate_config(regrouped)
    assert validated["datasets"]["p2_wire"]["split_by"] == "configuration"
    assert (dataset_definition(validated, "p2_wire")
            == dataset_definition(regrouped, "p2_wire"))
    assert (sample_config_hash(validated["datasets"]["p2_wire"])
            == sample_config_hash(regrouped["datasets"]["p2_wire"]))


def test_dataset_definition_excludes_sharding(config):
    validated = validate_config(config)
    definition = dataset_definition(validated, "p1_varying")
    assert "n_samples" not in definition and "shard_size" not in definition
    assert definition["name"] == "p1_varying"
    grown = copy.deepcopy(config)
    grown["datasets"]["p1_varying"]["n_samples"] = 1000
    grown["datasets"]["p1_varying"]["shard_size"] = 7
    grown = validate_config(grown)
    assert dataset_definition(grown, "p1_varying") == definition
    assert (sample_config_hash(grown["datasets"]["p1_varying"])
            == sample_config_hash(validated["datasets"]["p1_varying"]))
    changed = copy.deepcopy(config)
    changed["datasets"]["p1_varying"]["seed"] = 11
    assert (sample_config_hash(validate_config(changed)["datasets"]["p1_varying"])
            != sample_config_hash(validated["datasets"]["p1_varying"]))
    with pytest.raises(ConfigError, match="no such dataset"):
        dataset_definition(validated, "nope")


def test_cli_rejects_bad_config_and_writes_nothing(tmp_path, config):
    bad = copy.deepcopy(config)
    bad["datasets"]["p1_varying"]["disorder"]["dopant_density_cm2"] = [-1.0, 2.0]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    out = tmp_path / "out" / "samples.nc"
    result = subprocess.run(
        [sys.executable, "-m", "mesoinv", "simulate", "--config", str(path), "--dataset",
         "p1_varying", "--ids", "0:2", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "datasets.p1_varying.disorder.dopant_density_cm2" in result.stderr
    assert not out.parent.exists()


def test_snakemake_rejects_bad_config_before_any_output(tmp_path, config):
    bad = copy.deepcopy(config)
    bad["datasets"]["p1_fixed"]["geometry"]["width_nm"] = 151.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(path), "--cores", "1"],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert "datasets.p1_fixed.geometry.width_nm" in result.stdout + result.stderr
    assert not (workdir / "results").exists()
