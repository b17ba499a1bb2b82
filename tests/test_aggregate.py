"""Sharding, split assignment, shard validation and merging (real netCDF files)."""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from mesoinv.config import load_config
from mesoinv.datasets import P1DatasetSpec, dataset_spec, simulate_shard
from mesoinv.datasets.aggregate import (SPLITS, ShardValidationError, content_checksum, split_of,
                                        validate_shards, write_splits)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def spec():
    return dataset_spec(load_config(ROOT / "config" / "test.yaml"), "p1_varying")


@pytest.fixture(scope="module")
def shards(spec, tmp_path_factory):
    """The dataset's 3 shards (4 + 4 + 2 samples), simulated once for the module."""
    directory = tmp_path_factory.mktemp("shards")
    paths = []
    for shard in range(spec.n_shards):
        path = directory / f"shard-{shard}.nc"
        simulate_shard(spec, spec.shard_ids(shard), path, progress=False)
        paths.append(path)
    return paths


def expected_ids(spec, paths):
    return {str(p): list(spec.shard_ids(k)) for k, p in enumerate(paths)}


def copy_shards(paths, directory):
    copies = []
    for path in paths:
        copies.append(directory / path.name)
        shutil.copy(path, copies[-1])
    return copies


def test_sharding_covers_every_id_once(spec):
    for n_samples, shard_size in [(10, 4), (72000, 500), (7, 7), (1, 3), (88000, 333)]:
        other = P1DatasetSpec.from_config("d", dict(spec.config, n_samples=n_samples,
                                                    shard_size=shard_size, kind="p1_pldos",
                                                    seed=1))
        ids = [i for k in range(other.n_shards) for i in other.shard_ids(k)]
        assert ids == list(range(n_samples))
        assert other.n_shards == -(-n_samples // shard_size)


def test_split_assignment_is_a_function_of_seed_and_id():
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    splits = [split_of(3, i, fractions) for i in range(20000)]
    counts = Counter(splits)
    for name, fraction in fractions.items():
        # binomial standard error at n = 20000 is ≤ 0.3 %; allow 5 of them
        assert abs(counts[name] / 20000 - fraction) < 0.015, counts
    # growing the dataset does not move samples; the assignment does not depend on the order
    assert [split_of(3, i, fractions) for i in range(100)] == splits[:100]
    assert [split_of(3, i, fractions) for i in reversed(range(100))] == splits[:100][::-1]
    # another seed gives another assignment
    assert [split_of(4, i, fractions) for i in range(100)] != splits[:100]
    assert {split_of(3, i, {"train": 1.0, "val": 0.0, "test": 0.0}) for i in range(200)} == {"train"}


def test_validation_passes_on_good_shards(spec, shards):
    summary = validate_shards(shards, spec, expected_ids(spec, shards))
    assert summary["samples"] == 10 and summary["shards"] == 3


def test_truncated_shard_is_named(spec, shards, tmp_path):
    copies = copy_shards(shards, tmp_path)
    data = copies[1].read_bytes()
    copies[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardValidationError, match="shard-1.nc: cannot be read") as info:
        validate_shards(copies, spec, expected_ids(spec, copies))
    assert info.value.shard == str(copies[1])


def test_shard_with_nan_is_named(spec, shards, tmp_path):
    copies = copy_shards(shards, tmp_path)
    with netCDF4.Dataset(copies[2], "a") as ds:
        pldos = ds["pldos"][1]
        pldos[0, 3, 4] = np.nan
        ds["pldos"][1] = pldos
    with pytest.raises(ShardValidationError, match=r"shard-2.nc: variable pldos has NaN/inf \(sample 9\)"):
        validate_shards(copies, spec, expected_ids(spec, copies))


def test_shard_with_other_geometry_is_named(spec, shards, tmp_path):
    copies = copy_shards(shards, tmp_path)
    with netCDF4.Dataset(copies[1], "a") as ds:
        ds.setncattr("qpc_first_y_site", np.int32(3))
    with pytest.raises(ShardValidationError, match="shard-1.nc: attribute qpc_first_y_site"):
        validate_shards(copies, spec, expected_ids(spec, copies))


def test_shard_of_other_configuration_is_named(spec, shards, tmp_path):
    copies = copy_shards(shards, tmp_path)
    with netCDF4.Dataset(copies[0], "a") as ds:
        ds.setncattr("sample_config_sha256", "0" * 64)
    with pytest.raises(ShardValidationError, match="shard-0.nc: was simulated with another"):
        validate_shards(copies, spec, expected_ids(spec, copies))


def test_missing_duplicate_and_wrong_ids_are_named(spec, shards, tmp_path):
    copies = copy_shards(shards, tmp_path)
    copies[2].unlink()
    with pytest.raises(ShardValidationError, match="shard-2.nc: is missing"):
        validate_shards(copies, spec, expected_ids(spec, copies))
    # shard 1 holding shard 0's samples: wrong ids (and duplicates across shards)
    copies = copy_shards(shards, tmp_path)
    shutil.copy(shards[0], copies[1])
    with pytest.raises(ShardValidationError, match="shard-1.nc: holds 4 samples with ids"):
        validate_shards(copies, spec, expected_ids(spec, copies))
    with pytest.raises(ShardValidationError, match="shard-1.nc: sample 0 is also in shard-0.nc"):
        validate_shards(copies, spec, {str(copies[0]): [0, 1, 2, 3], str(copies[1]): [0, 1, 2, 3],
                                       str(copies[2]): [8, 9]})


def test_splits_partition_the_samples_and_keep_bytes(spec, shards, tmp_path):
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    outputs = {name: tmp_path / f"{name}.nc" for name in SPLITS}
    ids = write_splits(shards, spec, fractions, outputs)
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(10))
    for name in SPLITS:
        assert ids[name] == sorted(ids[name])
        assert all(split_of(spec.seed, i, fractions) == name for i in ids[name])
    # every sample's bytes are those of its shard
    originals = {}
    for path in shards:
        with netCDF4.Dataset(path) as ds:
            for index, sample_id in enumerate(ds["sample_id"][:].tolist()):
                originals[sample_id] = {v: np.asarray(ds[v][index]).tobytes()
                                        for v in ("potential", "pldos", "fourier_coefficient_real",
                                                  "rms", "dopant_density")}
    for name in SPLITS:
        with netCDF4.Dataset(outputs[name]) as ds:
            assert ds.split == name
            for index, sample_id in enumerate(ds["sample_id"][:].tolist()):
                for variable, data in originals[sample_id].items():
                    assert np.asarray(ds[variable][index]).tobytes() == data
    with xr.open_dataset(outputs["train"]) as ds:
        assert ds.sizes["sample"] == len(ids["train"])
    # content checksums are reproducible and change with the content
    again = {name: tmp_path / f"again-{name}.nc" for name in SPLITS}
    write_splits(shards, spec, fractions, again)
    assert content_checksum(outputs["train"]) == content_checksum(again["train"])
    assert content_checksum(outputs["train"]) != content_checksum(outputs["val"])


def test_one_shard_on_two_mpi_ranks_equals_one_rank(spec, shards, tmp_path):
    # Real MPI (the mpich wheel's mpiexec): 2 ranks share shard 0 through sample claims.
    mpiexec = Path(sys.executable).with_name("mpiexec")
    out = tmp_path / "two-ranks.nc"
    result = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, "-m", "mesoinv", "simulate", "--config",
         str(ROOT / "config" / "test.yaml"), "--dataset", "p1_varying", "--shard", "0",
         "--expect-ranks", "2", "-o", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "computed on 2 ranks" in result.stderr
    ranks = {line.split("rank ")[1][:3] for line in result.stderr.splitlines()
             if ": sample " in line}
    assert ranks == {"0/2", "1/2"}, result.stderr  # both ranks computed samples
    with netCDF4.Dataset(out) as a, netCDF4.Dataset(shards[0]) as b:
        for name in b.variables:
            assert np.asarray(a[name][:]).tobytes() == np.asarray(b[name][:]).tobytes(), name


def test_two_task_launch_without_mpi_wiring_stops_and_writes_nothing(tmp_path):
    # Two independent processes (no mpiexec), each told it is one of 2 ranks: both must stop.
    out = tmp_path / "shard.nc"
    command = [sys.executable, "-m", "mesoinv", "simulate", "--config",
               str(ROOT / "config" / "test.yaml"), "--dataset", "p1_varying", "--ids", "0:2",
               "--expect-ranks", "2", "-o", str(out)]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 2
        assert "MPI launch error" in stderr and "world of size 1" in stderr
    assert list(tmp_path.iterdir()) == []


def test_srun_without_pmi_is_detected(tmp_path):
    # What plain `srun -n 2` gives each task: SLURM_NTASKS=2, a step id, an MPI world of size 1.
    import os
    env = dict(os.environ, SLURM_NTASKS="2", SLURM_STEP_ID="0")
    out = tmp_path / "shard.nc"
    result = subprocess.run(
        [sys.executable, "-m", "mesoinv", "simulate", "--config", str(ROOT / "config" / "test.yaml"),
         "--dataset", "p1_varying", "--ids", "0:2", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "srun --mpi=pmi2" in result.stderr
    assert list(tmp_path.iterdir()) == []
