"""P1 datasets: determinism, the netCDF format, rebuilding the physics from a file alone."""

import json
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from mesoinv.cli import parse_ids
from mesoinv.config import dataset_definition, load_config
from mesoinv.datasets import (P1DatasetSpec, P1Sample, P1Simulator, SampleStore, dataset_spec,
                              draw_disorder,
                              partial_dir_for, simulate_shard)
from mesoinv.evaluation.dataset_figures import plot_p1_sample
from mesoinv.physics import QPCGeometry, make_qpc_system, pldos_kwant

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VARIABLES = ["sample_id", "potential", "pldos", "dopant_distance", "dopant_density", "rms",
                    "correlation_length", "fourier_coefficient_real", "fourier_coefficient_imag"]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config" / "test.yaml")


@pytest.fixture(scope="module")
def spec(config):
    return dataset_spec(config, "p1_varying")


@pytest.fixture(scope="module")
def full_file(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "all.nc"
    simulate_shard(spec, range(10), path, progress=False)
    return path


def raw_bytes(path, ids=None):
    """Variable bytes per sample id, read with netCDF4 (no decoding)."""
    with netCDF4.Dataset(path) as ds:
        file_ids = ds["sample_id"][:].tolist()
        out = {}
        for i, sample_id in enumerate(file_ids):
            if ids is None or sample_id in ids:
                out[sample_id] = {name: np.asarray(ds[name][i]).tobytes() for name in SAMPLE_VARIABLES}
    return out


def test_subset_equals_samples_inside_full_run(spec, full_file, tmp_path):
    # Ids 5…9 alone (and in scrambled order) give the same bytes as inside 0…9.
    subset = tmp_path / "subset.nc"
    simulate_shard(spec, [9, 5, 7, 6, 8], subset, progress=False)
    assert raw_bytes(subset) == raw_bytes(full_file, ids=set(range(5, 10)))


def test_same_bytes_in_a_fresh_process_from_the_workflow_definition(config, full_file, tmp_path):
    # The workflow path: definition.json (no n_samples/shard_size) and the CLI in a new process.
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(dataset_definition(config, "p1_varying")))
    out = tmp_path / "cli.nc"
    subprocess.run([sys.executable, "-m", "mesoinv", "simulate", "--dataset-definition",
                    str(definition), "--ids", "2,3", "-o", str(out), "--no-progress"], check=True)
    assert raw_bytes(out) == raw_bytes(full_file, ids={2, 3})
    with netCDF4.Dataset(out) as a, netCDF4.Dataset(full_file) as b:
        assert a.sample_config_sha256 == b.sample_config_sha256
        assert a.dataset_config_json == b.dataset_config_json


def test_growing_or_resharding_keeps_samples(config, spec):
    grown = dict(config["datasets"]["p1_varying"], n_samples=1000, shard_size=3)
    other = P1DatasetSpec.from_config("p1_varying", grown)
    for sample_id in (0, 4, 9):
        s1, n1, c1 = draw_disorder(spec, sample_id)
        s2, n2, c2 = draw_disorder(other, sample_id)
        assert (s1, n1) == (s2, n2) and np.array_equal(c1, c2)
    assert other.config_hash == spec.config_hash
    assert list(other.shard_ids(1)) == [3, 4, 5]
    assert list(spec.shard_ids(2)) == [8, 9]  # the last shard is shorter
    with pytest.raises(ValueError, match="shards 0"):
        spec.shard_ids(3)


def test_samples_differ_and_parameters_are_in_range(full_file, spec):
    with xr.open_dataset(full_file) as ds:
        s = ds["dopant_distance"].values
        n_d = ds["dopant_density"].values
        assert len(np.unique(s)) == 10
        assert np.all((40 <= s) & (s <= 70)) and np.all((0.6e12 <= n_d) & (n_d <= 1.5e12))
        potentials = ds["potential"].values.reshape(10, -1)
        assert np.linalg.matrix_rank(potentials) == 10


def test_netcdf_layout_units_and_attributes(full_file, spec):
    with xr.open_dataset(full_file) as ds:
        assert dict(ds.sizes) == {"sample": 10, "field": 2, "x": 40, "y": 30,
                                  "mode": len(spec.modes)}
        assert ds["pldos"].dims == ("sample", "field", "x", "y")
        assert ds["potential"].dims == ("sample", "x", "y")
        assert ds["fourier_coefficient_real"].dims == ("sample", "mode")
        for name, var in ds.variables.items():
            assert "units" in var.attrs and "long_name" in var.attrs, name
        assert ds["potential"].attrs["units"] == "meV"
        assert ds["dopant_density"].attrs["units"] == "cm-2"
        assert ds["qx"].attrs["units"] == "nm-1"
        assert ds["x"].attrs["units"] == "nm"
        assert list(ds["field"].values) == [0.0, 0.5]
        assert list(ds["qpc_open_modes"].values)[0] == 3
        for key in ("lattice_constant_nm", "hopping_meV", "energy_meV", "nx_sites", "ny_sites",
                    "qpc_first_y_site", "qpc_width_sites", "seed", "code_version",
                    "sample_config_sha256", "package_versions", "format_version"):
            assert key in ds.attrs, key
        assert ds.attrs["seed"] == 7
        assert json.loads(ds.attrs["package_versions"])["kwant"] == "1.5.0"
        assert ds["sample_id"].values.tolist() == list(range(10))


def test_file_alone_rebuilds_the_physics(full_file):
    # Rebuild the Kwant system from the global attributes only, solve with plain Kwant on the
    # stored potential, and compare with the stored PLDOS (float64 storage in the test config).
    with xr.open_dataset(full_file) as ds:
        a = float(ds.attrs["lattice_constant_nm"])
        geometry = QPCGeometry(lattice_constant_nm=a, nx=int(ds.attrs["nx_sites"]),
                               ny=int(ds.attrs["ny_sites"]),
                               qpc_width=int(ds.attrs["qpc_width_sites"]),
                               qpc_first_y=int(ds.attrs["qpc_first_y_site"]))
        fsyst = make_qpc_system(geometry)
        sample = ds.isel(sample=4)
        potential = sample["potential"].values
        for channel in range(ds.sizes["field"]):
            reference = pldos_kwant(fsyst, potential, energy_meV=float(ds.attrs["energy_meV"]),
                                    hopping_meV=float(ds.attrs["hopping_meV"]),
                                    flux_per_plaquette=float(ds["flux_per_plaquette"][channel]))
            stored = sample["pldos"].values[channel]
            assert np.max(np.abs(stored - reference)) <= 1e-9 * np.max(reference)


def test_stored_coefficients_give_the_stored_potential(full_file):
    # Eq. (1) written out independently from the stored q-vectors and coefficients.
    from scipy import constants
    with xr.open_dataset(full_file) as ds:
        x, y = ds["x"].values, ds["y"].values
        qx, qy = ds["qx"].values, ds["qy"].values
        q = np.hypot(qx, qy)
        L = float(ds.attrs["length_nm"])
        W = float(ds.attrs["width_nm"])
        eps = float(ds.attrs["relative_permittivity"])
        q_tf = float(ds.attrs["thomas_fermi_wavevector_per_nm"])
        prefactor = constants.e / (2 * eps * constants.epsilon_0) * 1e3 * 1e9  # meV nm
        for i in (0, 7):
            sample = ds.isel(sample=i)
            s = float(sample["dopant_distance"])
            c = sample["fourier_coefficient_real"].values + 1j * sample["fourier_coefficient_imag"].values
            # coefficients beyond the sample's own cutoff are stored as zero
            assert np.all(c[q >= 3.5 / s] == 0) and np.any(c != 0)
            kernel = np.exp(-q * s) / (q + q_tf)
            phase = np.exp(-1j * (qx[None, None, :] * x[:, None, None] + qy[None, None, :] * y[None, :, None]))
            v = -prefactor / (L * W) * 2 * np.real(np.sum(kernel * c * phase, axis=-1))
            assert np.allclose(sample["potential"].values, v, rtol=0, atol=1e-10 * np.abs(v).max())


def test_failed_sample_fails_the_shard_and_a_rerun_resumes(spec, full_file, tmp_path,
                                                          monkeypatch):
    calls = []
    original = P1Simulator.simulate

    def flaky(self, sample_id):
        calls.append(sample_id)
        if sample_id == 2:
            raise FloatingPointError("injected solver failure")
        return original(self, sample_id)

    monkeypatch.setattr(P1Simulator, "simulate", flaky)
    out = tmp_path / "shard.nc"
    with pytest.raises(RuntimeError, match="sample 2 failed twice: FloatingPointError"):
        simulate_shard(spec, range(4), out, progress=False)
    assert calls == [0, 1, 2, 2]  # retried once, then the job fails naming the sample
    assert not out.exists()
    partial = partial_dir_for(out, spec)
    assert sorted(p.name for p in partial.iterdir()) == ["sample-000000000.npz",
                                                        "sample-000000001.npz"]
    # The rerun computes only what is missing and gives the uninterrupted bytes.
    monkeypatch.setattr(P1Simulator, "simulate", original)
    counts = simulate_shard(spec, range(4), out, progress=False)
    assert counts == {"computed": 2, "reused": 2, "ranks": 1, "failed": {}}
    assert raw_bytes(out) == raw_bytes(full_file, ids={0, 1, 2, 3})
    assert not partial.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["shard.nc"]


def test_truncated_partial_sample_is_recomputed(spec, full_file, tmp_path):
    out = tmp_path / "shard.nc"
    store = SampleStore(partial_dir_for(out, spec), P1Sample)
    store.directory.mkdir(parents=True)
    store.path(1).write_bytes(b"PK\x03\x04 truncated")
    counts = simulate_shard(spec, [0, 1], out, progress=False)
    assert counts["computed"] == 2 and counts["reused"] == 0
    assert raw_bytes(out) == raw_bytes(full_file, ids={0, 1})


def test_ids_outside_dataset_are_rejected(spec, tmp_path):
    with pytest.raises(ValueError, match="0…9"):
        simulate_shard(spec, [3, 10], tmp_path / "x.nc", progress=False)
    with pytest.raises(ValueError, match="duplicate"):
        simulate_shard(spec, [3, 3], tmp_path / "x.nc", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_parse_ids():
    assert parse_ids("0:3") == [0, 1, 2]
    assert parse_ids("7") == [7]
    assert parse_ids("1,4,9") == [1, 4, 9]
    assert parse_ids("0:2,10,20:22") == [0, 1, 10, 20, 21]
    for bad in ("", "3:1", "a", "1,1"):
        with pytest.raises(Exception):
            parse_ids(bad)


def test_sample_figure(full_file, tmp_path):
    out = plot_p1_sample(full_file, 3, tmp_path / "fig" / "sample.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="sample 42"):
        plot_p1_sample(full_file, 42, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_skip_then_fail_mode_recomputes_recorded_failures(spec, full_file, tmp_path, monkeypatch):
    # A run in "skip" mode is killed after recording a failure; the rerun in "fail" mode must
    # retry that sample (and include it), not silently keep the old record.
    out = tmp_path / "shard.nc"
    store = SampleStore(partial_dir_for(out, spec), P1Sample)
    store.save_failure(1, "recorded by an earlier run")
    counts = simulate_shard(spec, [0, 1], out, progress=False, on_failure="fail")
    assert counts["failed"] == {} and counts["computed"] == 2
    assert raw_bytes(out) == raw_bytes(full_file, ids={0, 1})
    # in "skip" mode the record stands: the sample is not retried and is left out
    store.save_failure(1, "recorded by an earlier run")
    counts = simulate_shard(spec, [0, 1], out, progress=False, on_failure="skip")
    assert counts["failed"] == {1: "recorded by an earlier run"} and counts["computed"] == 1
    with netCDF4.Dataset(out) as ds:
        assert ds["sample_id"][:].tolist() == [0]
        assert json.loads(ds.failed_samples)[0]["sample_id"] == 1
