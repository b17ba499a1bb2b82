"""P2 datasets: determinism, configurations, split by configuration, rebuild with plain Kwant."""

import copy
import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from mesoinv.config import ConfigError, load_config, validate_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.datasets.aggregate import SPLITS, validate_shards, write_splits
from mesoinv.datasets.kinds import spec_from_entry
from mesoinv.evaluation.dataset_figures import plot_sample
from mesoinv.physics.antidots import canonical_pair
from mesoinv.physics.nanowire import (NanowireGeometry, conductance_kwant, ldos_kwant,
                                      make_nanowire_system, pad_image)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config" / "test.yaml")


@pytest.fixture(scope="module")
def spec(config):
    return dataset_spec(config, "p2_wire")


@pytest.fixture(scope="module")
def full_file(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("p2") / "all.nc"
    simulate_shard(spec, range(spec.n_samples), path, progress=False)
    return path


def sample_bytes(path, ids=None):
    with netCDF4.Dataset(path) as ds:
        out = {}
        for index, sample_id in enumerate(ds["sample_id"][:].tolist()):
            if ids is None or sample_id in ids:
                out[sample_id] = {name: np.asarray(v[index]).tobytes()
                                  for name, v in ds.variables.items() if "sample" in v.dimensions}
    return out


def test_sample_ids_enumerate_configurations_and_realisations(spec):
    seen = [spec.configuration_of(i) for i in range(spec.n_samples)]
    assert [r for _, r in seen] == [0, 1, 2] * 4  # realizations = 3, consecutive ids
    configurations = [c for c, _ in seen]
    assert configurations[::3] == list(spec.configuration_order[:4])
    assert len(set(configurations)) == 4
    # every representative is canonical (the dataset uses one member per class)
    for c in set(configurations):
        representative = spec.classes.representatives[c]
        assert np.array_equal(canonical_pair(spec.geometry, representative), representative)
    # the order is a seeded permutation of all classes, fixed by the seed
    assert sorted(spec.configuration_order) == list(range(spec.n_configurations))
    with pytest.raises(ValueError, match="classes"):
        spec.configuration_of(spec.n_configurations * spec.realizations)


def test_subset_equals_full_run(spec, full_file, tmp_path):
    subset = tmp_path / "subset.nc"
    simulate_shard(spec, [7, 5, 6], subset, progress=False)
    assert sample_bytes(subset) == sample_bytes(full_file, ids={5, 6, 7})


def test_file_matches_plain_kwant(spec, full_file):
    # Rebuild the device from the file's attributes and compare with kwant.smatrix / kwant.ldos.
    with xr.open_dataset(full_file) as ds:
        geometry = NanowireGeometry(int(ds.attrs["width_sites"]), int(ds.attrs["length_sites"]),
                                    float(ds.attrs["antidot_radius_sites"]))
        energy = float(ds.attrs["energy_t"])
        pad = int(ds.attrs["ldos_padding_sites"])
        for index in (0, 4):
            sample = ds.isel(sample=index)
            centres = np.stack([sample["antidot_x"].values, sample["antidot_y"].values], axis=-1)
            fsyst = make_nanowire_system(geometry, centres)
            potential = sample["potential"].values
            reference = conductance_kwant(fsyst, ds["flux_per_plaquette"].values, energy=energy,
                                          potential=potential)
            assert np.max(np.abs(sample["conductance"].values - reference)) <= 1e-9
            image = ldos_kwant(fsyst, geometry, energy=energy, potential=potential)
            image = pad_image(image, geometry.width_sites + 2 * pad)
            assert np.allclose(sample["ldos"].values, image, rtol=0, atol=1e-9 * image.max())


def test_potential_realisations_differ_and_are_reproducible(spec, full_file):
    with xr.open_dataset(full_file) as ds:
        potentials = ds["potential"].values.reshape(ds.sizes["sample"], -1)
        assert np.linalg.matrix_rank(potentials) == ds.sizes["sample"]
        amplitude = float(ds.attrs["potential_amplitude_t"])
        assert np.all(np.abs(potentials) <= amplitude / 2)


def test_splits_keep_configurations_together(spec, full_file, tmp_path):
    outputs = {name: tmp_path / f"{name}.nc" for name in SPLITS}
    validate_shards([full_file], spec, {str(full_file): list(range(spec.n_samples))})
    ids = write_splits([full_file], spec, {"train": 0.5, "val": 0.25, "test": 0.25}, outputs)
    assert sorted(sum(ids.values(), [])) == list(range(spec.n_samples))
    split_of_configuration = {}
    for name in SPLITS:
        with netCDF4.Dataset(outputs[name]) as ds:
            for c in ds["configuration_id"][:].tolist():
                assert split_of_configuration.setdefault(c, name) == name


def test_split_by_realization_puts_realisations_of_one_placement_in_several_splits(
        config, spec, full_file, tmp_path):
    """``split_by: realization``: each sample is its own unit, the samples (and so the shards)
    are unchanged, and a placement's realisations end up in more than one split."""
    entry = copy.deepcopy(config["datasets"]["p2_wire"])
    entry["split_by"] = "realization"
    by_sample = spec_from_entry("p2_wire", entry)
    assert by_sample.config_hash == spec.config_hash      # same samples, same shards
    assert [by_sample.split_unit(i) for i in range(spec.n_samples)] == list(range(spec.n_samples))
    outputs = {name: tmp_path / f"{name}.nc" for name in SPLITS}
    validate_shards([full_file], by_sample, {str(full_file): list(range(spec.n_samples))})
    write_splits([full_file], by_sample, {"train": 0.5, "val": 0.25, "test": 0.25}, outputs)
    splits_of_configuration = {}
    for name in SPLITS:
        with netCDF4.Dataset(outputs[name]) as ds:
            assert ds.getncattr("split_unit") == "realization"
            for c in ds["configuration_id"][:].tolist():
                splits_of_configuration.setdefault(c, set()).add(name)
    assert max(len(s) for s in splits_of_configuration.values()) > 1


def test_netcdf_layout(spec, full_file):
    with xr.open_dataset(full_file) as ds:
        assert ds["conductance"].dims == ("sample", "field")
        assert ds["ldos"].dims == ("sample", "image_x", "y")
        assert ds.sizes["image_x"] == spec.geometry.width_sites + 2 * spec.ldos_padding_sites
        assert ds["conductance"].attrs["units"] == "e2/h"
        assert ds["field"].attrs["units"] == "T"
        for name, variable in ds.variables.items():
            assert "units" in variable.attrs and "long_name" in variable.attrs, name
        assert json.loads(ds.attrs["failed_samples"]) == []
        # antidot sites and padding columns are zero in the LDOS image
        assert np.all(ds["ldos"].values[:, :spec.ldos_padding_sites, :] == 0)


def test_figure(full_file, tmp_path):
    out = plot_sample(full_file, 4, tmp_path / "p2.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_too_many_samples_is_a_config_error(config):
    bad = json.loads(json.dumps(config))
    bad["datasets"]["p2_wire"]["n_samples"] = 10**7
    with pytest.raises(ConfigError, match="datasets.p2_wire.n_samples.*antidot classes"):
        validate_config(bad)
    bad = json.loads(json.dumps(config))
    bad["datasets"]["p2_wire"]["transport"]["field_range_T"] = [2.0, 1.0]
    with pytest.raises(ConfigError, match="datasets.p2_wire.transport.field_range_T"):
        validate_config(bad)
    bad = json.loads(json.dumps(config))
    bad["datasets"]["p2_wire"]["geometry"]["radius"] = 3
    with pytest.raises(ConfigError, match="datasets.p2_wire.geometry.radius.*unknown key"):
        validate_config(bad)
