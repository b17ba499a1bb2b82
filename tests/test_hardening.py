"""Data-side hardening: no silently wrong dataset, and one clear line instead of a traceback.

Configs that compare false or are absurdly large, duplicate YAML keys, corrupted shards
(flipped bits, finite garbage), temporary files, unwritable outputs, concurrent runs, the
recovery after a bad shard, BLAS threads of `mesoinv simulate`, and what a newcomer reads in
the figures, the report and the docs.
"""

import copy
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml

from mesoinv.config import NON_SAMPLE_KEYS, ConfigError, load_config, validate_config
from mesoinv.datasets import dataset_spec, simulate_shard
from mesoinv.datasets.aggregate import SPLITS, ShardValidationError, validate_shards, write_splits
from mesoinv.datasets.integrity import (CHECKSUM_VARIABLE, OutputError, OutputLock,
                                        sample_digest)
from mesoinv.datasets.kinds import kind_of
from mesoinv.datasets.netcdf import atomic_path
from test_config import MEDIUM_OVERLAYS, OVERLAYS

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"
MESOINV = [sys.executable, "-m", "mesoinv"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run(command, **kwargs):
    kwargs.setdefault("env", ENV)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def leftovers(directory):
    """Temporary files, probes and locks anywhere under ``directory``."""
    return [p for p in Path(directory).rglob("*")
            if re.search(r"\.(tmp|probe)-\d+$|\.lock$", p.name)]


# -- 1.–3. the configuration ------------------------------------------------------------------

@pytest.fixture
def config():
    return json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))


def _set(config, dotted, value):
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


NAN, INF = float("nan"), float("inf")
V, F, W = "datasets.p1_varying", "datasets.p1_fixed", "datasets.p2_wire"
BIG_REGION = {"lattice_constant_nm": 5.0, "length_nm": 5000.0, "width_nm": 5000.0,
              "qpc_width_nm": 100.0, "qpc_center_nm": None}  # 1000 × 1000 sites

# (changes {dotted key: value}, key the error must name, words the message must contain).
# The bad-config suite of tests/test_config.py, grown by the cases of issue 11.
HARDENING_BAD_CONFIGS = [
    # 1. numbers that compare false: NaN passes every schema bound; ±inf overflows late
    ({f"{V}.splits": {"train": NAN, "val": 0.5, "test": 0.5}}, f"{V}.splits.train", "finite"),
    ({f"{V}.splits": {"train": 0.8, "val": NAN, "test": 0.1}}, f"{V}.splits.val", "finite"),
    ({f"{V}.transport.energy_meV": NAN}, f"{V}.transport.energy_meV", "finite"),
    ({f"{V}.transport.magnetic_fields_T": [0.0, NAN]}, f"{V}.transport.magnetic_fields_T.1",
     "finite"),
    ({f"{V}.geometry.length_nm": NAN}, f"{V}.geometry.length_nm", "finite"),
    ({f"{V}.geometry.lattice_constant_nm": INF}, f"{V}.geometry.lattice_constant_nm", "finite"),
    ({f"{V}.geometry.qpc_center_nm": NAN}, f"{V}.geometry.qpc_center_nm", "finite"),
    ({f"{V}.material.relative_permittivity": NAN}, f"{V}.material.relative_permittivity",
     "finite"),
    ({f"{V}.disorder.dopant_density_cm2": [NAN, 1e12]}, f"{V}.disorder.dopant_density_cm2.0",
     "finite"),
    ({f"{V}.disorder.dopant_distance_nm": NAN}, f"{V}.disorder.dopant_distance_nm", "finite"),
    ({f"{V}.disorder.cutoff_factor": INF}, f"{V}.disorder.cutoff_factor", "finite"),
    ({f"{V}.disorder.thomas_fermi_wavevector_per_nm": -INF},
     f"{V}.disorder.thomas_fermi_wavevector_per_nm", "finite"),
    ({f"{W}.disorder.amplitude_t": NAN}, f"{W}.disorder.amplitude_t", "finite"),
    ({f"{W}.geometry.antidot_radius_sites": INF}, f"{W}.geometry.antidot_radius_sites", "finite"),
    ({f"{W}.transport.field_range_T": [0.0, INF]}, f"{W}.transport.field_range_T.1", "finite"),
    ({f"{W}.transport.energy_t": NAN}, f"{W}.transport.energy_t", "finite"),
    # ... and in range
    ({f"{V}.disorder.cutoff_factor": 1000.0}, f"{V}.disorder.cutoff_factor", "maximum"),
    ({f"{V}.material.effective_mass_kg": 1e-300}, f"{V}.material.effective_mass_kg", "minimum"),
    ({f"{W}.disorder.amplitude_t": 1e300}, f"{W}.disorder.amplitude_t", "maximum"),
    ({f"{W}.geometry.lattice_constant_nm": 1e300}, f"{W}.geometry.lattice_constant_nm",
     "maximum"),
    # 2. integers: one validator, one answer (Snakemake's range() refused these floats)
    ({f"{V}.n_samples": 6.0}, f"{V}.n_samples", "not an integer"),
    ({f"{V}.n_samples": "1e9"}, f"{V}.n_samples", "not an integer"),
    ({f"{F}.shard_size": 4.0}, f"{F}.shard_size", "not an integer"),
    ({f"{W}.n_samples": 12.0}, f"{W}.n_samples", "not an integer"),
    ({f"{V}.seed": 2**63}, f"{V}.seed", "maximum"),  # an int64 attribute, written last
    ({f"{W}.seed": 2**64}, f"{W}.seed", "maximum"),
    # ... and sizes whose cost is absurd
    ({f"{V}.n_samples": 10**9}, f"{V}.n_samples", "maximum"),
    ({f"{V}.shard_size": 10**9}, f"{V}.shard_size", "maximum"),
    ({f"{V}.n_samples": 10**7}, f"{V}.shard_size", "shard jobs"),
    ({f"{V}.geometry.lattice_constant_nm": 0.001}, f"{V}.geometry.lattice_constant_nm",
     "sites per sample"),
    ({f"{V}.geometry": BIG_REGION, f"{V}.disorder.cutoff_factor": 100.0},
     f"{V}.disorder.cutoff_factor", "Fourier modes"),
    ({f"{V}.geometry": BIG_REGION, f"{V}.n_samples": 1_000_000, f"{V}.shard_size": 1000},
     f"{V}.n_samples", "TB"),
    ({f"{V}.transport.magnetic_fields_T": [0.01 * i for i in range(101)]},
     f"{V}.transport.magnetic_fields_T", ""),
    ({f"{W}.geometry": {"width_sites": 400, "length_sites": 20, "antidot_radius_sites": 2.5}},
     f"{W}.geometry", "antidot pairs"),
    ({f"{W}.geometry": {"width_sites": 10**9, "length_sites": 20}},
     f"{W}.geometry.width_sites", "maximum"),
]


@pytest.mark.parametrize("changes,key,words", HARDENING_BAD_CONFIGS,
                         ids=[" ".join(f"{k.split('.', 1)[1]}={v!r}"[:50] for k, v in c.items())
                              for c, _, _ in HARDENING_BAD_CONFIGS])
def test_bad_config_names_the_key(config, changes, key, words):
    bad = copy.deepcopy(config)
    for dotted, value in changes.items():
        _set(bad, dotted, value)
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert info.value.key == key, str(info.value)
    assert f"'{key}'" in str(info.value)
    assert words in str(info.value)


def _duplicated(text, line, twice):
    assert text.count(line) == 1, line
    return text.replace(line, twice)


DUPLICATE_KEYS = [
    # a repeated seed: the first would silently vanish
    (lambda t: _duplicated(t, "    seed: 7\n", "    seed: 7\n    seed: 70\n"),
     "datasets.p1_varying.seed"),
    # a dataset name used twice: the whole first entry would vanish
    (lambda t: _duplicated(t, "  p2_wire:\n", "  p1_fixed:\n    kind: p1_pldos\n  p2_wire:\n"),
     "datasets.p1_fixed"),
    (lambda t: _duplicated(t, "figures:\n", "figures:\n  sample_ids: [1]\n"),
     "figures.sample_ids"),
]


@pytest.mark.parametrize("edit,key", DUPLICATE_KEYS, ids=[k for _, k in DUPLICATE_KEYS])
def test_duplicate_yaml_keys_are_errors(tmp_path, edit, key):
    path = tmp_path / "dup.yaml"
    path.write_text(edit(TEST_CONFIG.read_text()))
    with pytest.raises(ConfigError, match="given twice") as info:
        load_config(path)
    assert info.value.key == key and "line" in str(info.value)


def test_merge_keys_may_override(tmp_path):
    # `<<: *anchor` then an explicit key is YAML's way to override: not a duplicate.
    text = TEST_CONFIG.read_text().replace(
        "    geometry: *geometry\n    material: *material\n    transport: *transport\n    disorder:\n"
        "      dopant_distance_nm: [40.0, 70.0]",
        "    geometry: {<<: *geometry, length_nm: 210.0}\n    material: *material\n"
        "    transport: *transport\n    disorder:\n      dopant_distance_nm: [40.0, 70.0]", 1)
    assert "210.0" in text
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    assert load_config(path)["datasets"]["p1_varying"]["geometry"]["length_nm"] == 210.0


@pytest.mark.parametrize("case", ["float_integer", "duplicate_seed"])
def test_check_config_and_snakemake_give_one_answer(tmp_path, case):
    text = TEST_CONFIG.read_text()
    if case == "float_integer":
        text, key = _duplicated(text, "    n_samples: 10\n    seed: 8\n",
                                "    n_samples: 10.0\n    seed: 8\n"), "datasets.p1_fixed.n_samples"
    else:
        text, key = DUPLICATE_KEYS[0][0](text), DUPLICATE_KEYS[0][1]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    check = run([*MESOINV, "check-config", str(path)])
    assert check.returncode == 2 and key in check.stderr, check.stdout + check.stderr
    workdir = tmp_path / "run"
    result = run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                  "--directory", str(workdir), "--configfile", str(path), "--cores", "1",
                  "--dry-run"], cwd=ROOT)
    assert result.returncode != 0 and key in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_huge_id_list_is_refused_before_it_is_built(tmp_path):
    # 10⁹ ids as a Python list would take ~40 GB; under a 3 GB address-space limit the old
    # parser died with a MemoryError traceback.
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    result = run([*MESOINV, "simulate", "--config", str(TEST_CONFIG), "--dataset", "p1_varying",
                  "--ids", "0:1000000000", "-o", str(tmp_path / "x.nc")], preexec_fn=limit)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "1,000,000,000 ids" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- 4. shard integrity -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded_config():
    return load_config(TEST_CONFIG)


@pytest.fixture(scope="module")
def p1(loaded_config, tmp_path_factory):
    """(spec, shard of ids 0…3) of the test config's p1_varying (float64 storage)."""
    spec = dataset_spec(loaded_config, "p1_varying")
    path = tmp_path_factory.mktemp("p1") / "p1-00000.nc"
    simulate_shard(spec, spec.shard_ids(0), path, progress=False)
    return spec, path


@pytest.fixture(scope="module")
def p2(loaded_config, tmp_path_factory):
    """(spec, shard of ids 0…4) of the test config's p2_wire."""
    spec = dataset_spec(loaded_config, "p2_wire")
    path = tmp_path_factory.mktemp("p2") / "p2-00000.nc"
    simulate_shard(spec, spec.shard_ids(0), path, progress=False)
    return spec, path


def _validate(spec, path):
    return validate_shards([path], spec, {str(path): list(spec.shard_ids(0))})


def _copy(path, directory):
    copy_path = Path(directory) / path.name
    shutil.copy(path, copy_path)
    return copy_path


def _rewrite(path, index, changes, recompute_checksum=False):
    """Change variables of one sample through netCDF (valid HDF5 checksums, as a buggy or
    hand-made edit would); optionally also write a matching sample checksum."""
    with netCDF4.Dataset(path, "a") as ds:
        ds.set_auto_mask(False)
        for name, change in changes.items():
            ds[name][index] = change(np.asarray(ds[name][index]))
        if recompute_checksum:
            spec_kind = ds.getncattr("dataset_kind")
            names = [n for n, v in ds.variables.items()
                     if v.dimensions[:1] == ("sample",) and n != CHECKSUM_VARIABLE]
            assert spec_kind and names
            ds[CHECKSUM_VARIABLE][index] = sample_digest(
                {n: np.asarray(ds[n][index]) for n in names})


@pytest.mark.parametrize("which", ["p1", "p2"])
def test_shards_carry_checksums_and_validate(which, request):
    spec, path = request.getfixturevalue(which)
    kind = kind_of(spec)
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        assert ds.format_version == kind.format_version and kind.format_version.endswith("-2")
        for name, variable in ds.variables.items():
            assert variable.filters()["fletcher32"], name
        names = kind.per_sample_variables
        for index in range(len(ds.dimensions["sample"])):
            values = {n: np.asarray(ds[n][index]) for n in names}
            assert sample_digest(values) == ds[CHECKSUM_VARIABLE][index]
    summary = _validate(spec, path)
    assert summary["samples"] == len(spec.shard_ids(0))
    assert summary["sample_checksums"] == "verified"


def test_one_flipped_bit_is_caught(p1, tmp_path):
    spec, path = p1
    shard = _copy(path, tmp_path)
    with netCDF4.Dataset(shard) as ds:
        # 64 bytes from the middle of sample 2's PLDOS, as laid out in the (uncompressed) file
        pattern = np.asarray(ds["pldos"][2]).tobytes()[4000:4064]
    data = bytearray(shard.read_bytes())
    offset = data.find(pattern)
    assert offset > 0 and data.find(pattern, offset + 1) < 0
    data[offset + 8] ^= 0x01  # lowest mantissa bit of one float64: a finite, plausible value
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardValidationError, match="checksum") as info:
        _validate(spec, shard)
    assert info.value.shard == str(shard)


GARBAGE = {
    # finite garbage written through the netCDF library: HDF5's checksums are valid again
    "pldos_times_minus_1e6": ("p1", 1, {"pldos": lambda v: v * -1e6}, False,
                              "sample 1 does not match its checksum"),
    "potential_zeroed": ("p1", 3, {"potential": np.zeros_like}, False,
                         "sample 3 does not match its checksum"),
    # ... and with a matching checksum written too: the physics invariants still catch it
    "potential_zeroed_checksum_rewritten": ("p1", 0, {"potential": np.zeros_like}, True,
                                            "potential of sample 0 differs from its rebuild"),
    "negative_pldos_checksum_rewritten": ("p1", 2, {"pldos": lambda v: -v}, True,
                                          "pldos is negative (sample 2)"),
    "dopant_distance_checksum_rewritten": ("p1", 1, {"dopant_distance": lambda v: v * 0 + 7.0},
                                           True, "outside the dataset's range"),
    "ldos_negative": ("p2", 1, {"ldos": lambda v: -v}, False, "does not match its checksum"),
    "ldos_negative_checksum_rewritten": ("p2", 1, {"ldos": lambda v: -v}, True,
                                         "ldos is negative"),
    "conductance_checksum_rewritten": ("p2", 2, {"conductance": lambda v: v + 1e3}, True,
                                       "open channels"),
    "potential_redrawn_checksum_rewritten": ("p2", 0, {"potential": lambda v: v[::-1].copy()},
                                             True, "differs from its rebuild"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_finite_garbage_is_caught(case, request, tmp_path):
    which, index, changes, rewrite, message = GARBAGE[case]
    spec, path = request.getfixturevalue(which)
    shard = _copy(path, tmp_path)
    _rewrite(shard, index, changes, recompute_checksum=rewrite)
    with pytest.raises(ShardValidationError, match=re.escape(message)):
        _validate(spec, shard)


def test_split_step_checks_the_checksums_again(p1, tmp_path):
    # A shard that changes between its validation and the merge stops the merge.
    spec, path = p1
    shard = _copy(path, tmp_path)
    _validate(spec, shard)
    _rewrite(shard, 1, {"pldos": lambda v: v * (1 + 1e-6)})
    outputs = {name: tmp_path / "splits" / f"{name}.nc" for name in SPLITS}
    with pytest.raises(ShardValidationError, match="sample 1 does not match its checksum"):
        write_splits([shard], spec, {"train": 0.5, "val": 0.25, "test": 0.25}, outputs)
    assert not any(p.exists() for p in outputs.values())
    assert leftovers(tmp_path) == []


# -- 5. and 6. temporary files, unwritable outputs, concurrent runs -----------------------------

def _simulate(output, ids="0:2", dataset="p1_varying", **kwargs):
    return run([*MESOINV, "simulate", "--config", str(TEST_CONFIG), "--dataset", dataset,
                "--ids", ids, "-o", str(output), "--no-progress"], **kwargs)


def _one_line_error(result, *words):
    lines = [line for line in result.stderr.splitlines() if line.startswith("mesoinv:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    # refused before any work: no sample was computed
    assert ": sample 0 in" not in result.stderr
    return lines[0]


def test_output_that_is_a_directory(tmp_path):
    output = tmp_path / "shard.nc"
    output.mkdir()
    result = _simulate(output)
    assert result.returncode == 1
    _one_line_error(result, str(output), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.nc"]


def test_read_only_output(tmp_path):
    if os.geteuid() == 0:  # root writes through permissions: /sys refuses new files
        directory = Path("/sys/mesoinv-hardening-test")
        try:
            directory.mkdir()
        except OSError:
            pass
        else:
            directory.rmdir()
            pytest.skip("no read-only location for root here")
    else:
        directory = tmp_path / "ro"
        directory.mkdir()
        directory.chmod(0o555)
    output = directory / "shard.nc"
    result = _simulate(output)
    assert result.returncode == 1
    line = _one_line_error(result, str(output))
    assert "permission denied" in line or "read-only" in line


def test_full_disk_keeps_the_samples_and_leaves_no_temporary_file(tmp_path):
    # A file-size limit makes the shard's write fail as a full disk does (netCDF says only
    # "HDF error"); the message names the path and the cause, the samples stay for the rerun.
    code = ("from mpi4py import MPI\nimport resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (60000, 60000))\n"
            "from mesoinv.cli import main\nmain(sys.argv[1:])\n")
    output = tmp_path / "out" / "shard.nc"
    result = run([sys.executable, "-c", code, "simulate", "--config", str(TEST_CONFIG),
                  "--dataset", "p1_varying", "--ids", "0:4", "-o", str(output), "--no-progress"])
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("mesoinv:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"cannot write {output}" in lines[0] and "file-size limit" in lines[0]
    assert not output.exists() and leftovers(tmp_path) == []
    rerun = _simulate(output, ids="0:4")
    assert rerun.returncode == 0 and "4 reused" in rerun.stderr
    assert leftovers(tmp_path) == [] and not list(output.parent.glob(".*partial*"))


def test_failed_final_rename_removes_the_temporary_file(tmp_path):
    output = tmp_path / "file.nc"
    with pytest.raises(OutputError, match=f"cannot write {output}: it is a directory"):
        with atomic_path(output) as tmp:
            tmp.write_text("complete")
            output.mkdir()  # something takes the name while the file is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.nc"]


def test_temporary_files_of_killed_runs_are_removed_by_the_next(tmp_path):
    # A split (any atomic write) killed mid-write leaves .<name>.tmp-<pid>: the next write of
    # that file removes it; a live process's temporary file is left alone.
    output = tmp_path / "data-train.nc"
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, signal, sys\nfrom mesoinv.datasets.netcdf import atomic_path\n"
         "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n"
         "    os.kill(os.getpid(), signal.SIGKILL)\n", str(output)])
    assert killed.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".data-train.nc.tmp-*"))
    assert len(stale) == 1
    alive = subprocess.Popen(["sleep", "60"])
    try:
        live = tmp_path / f".data-train.nc.tmp-{alive.pid}"
        live.write_text("being written")
        with atomic_path(output) as tmp:
            tmp.write_text("done")
        assert output.read_text() == "done"
        assert not stale[0].exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def test_second_run_into_the_same_output_is_refused(tmp_path):
    output = tmp_path / "shard.nc"
    with OutputLock(output):  # what a running `mesoinv simulate` holds
        result = _simulate(output)
        assert result.returncode == 1
        _one_line_error(result, "another run holds this output", str(output))
        assert not output.exists()
    # a lock file left by a killed run does not block (the kernel released its lock)
    (tmp_path / ".shard.nc.lock").write_text("pid 1 on a node that died")
    result = _simulate(output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.exists() and leftovers(tmp_path) == []


# -- 8. the same bytes outside the workflow -----------------------------------------------------

def test_simulate_pins_blas_threads_before_numpy_loads(tmp_path):
    code = """
import ctypes, glob, os, sys
from mesoinv import cli
assert "numpy" not in sys.modules, "the command loads numpy before it can pin the threads"
cli.main(sys.argv[1:])
import numpy
libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs",
                              "libscipy_openblas64_*.so"))
threads = ctypes.CDLL(libs[0]).scipy_openblas_get_num_threads64_() if libs else 1
print("pinned", [os.environ[v] for v in cli.PINNED_THREAD_VARIABLES], threads)
"""
    output = tmp_path / "hand.nc"
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    result = run([sys.executable, "-c", code, "simulate", "--config", str(TEST_CONFIG),
                  "--dataset", "p1_varying", "--ids", "0:4", "-o", str(output), "--no-progress"],
                 env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pinned ['1', '1', '1'] 1" in result.stdout
    shard = tmp_path / "workflow.nc"  # as the workflow's rule runs it (threads exported as 1)
    assert _simulate(shard, ids="0:4").returncode == 0
    with netCDF4.Dataset(output) as a, netCDF4.Dataset(shard) as b:
        for name in b.variables:
            assert np.asarray(a[name][:]).tobytes() == np.asarray(b[name][:]).tobytes(), name


# -- 7. recovery after a bad shard (the workflow) -------------------------------------------------

@pytest.mark.slow
def test_one_command_rebuilds_a_bad_shard_and_everything_after_it(tmp_path):
    config = json.loads(json.dumps(yaml.safe_load(TEST_CONFIG.read_text())))
    config["datasets"] = {"p1_fixed": config["datasets"]["p1_fixed"]}  # 3 shards of ≤ 4
    config["models"] = {}
    config["figures"] = {"sample_ids": [0]}
    path = tmp_path / "recovery.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"

    def snakemake(*args):
        return run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                    "--directory", str(workdir), "--configfile", str(path), "--cores", "2",
                    *args], cwd=ROOT)

    assert snakemake().returncode == 0
    data = workdir / "results/datasets/p1_fixed"
    shard = data / "shards/p1_fixed-00001.nc"
    manifest = json.loads((data / "manifest.json").read_text())
    good = shard.read_bytes()
    splits_before = {s: (data / f"p1_fixed-{s}.nc").stat().st_mtime_ns for s in SPLITS}
    _rewrite(shard, 2, {"pldos": lambda v: v * 2})  # finite garbage in sample 6
    failed = snakemake("--forcerun", "validate_dataset")
    assert failed.returncode != 0
    log = (workdir / "logs/validate_dataset/p1_fixed.log").read_text()
    command = "snakemake --forcerun results/datasets/p1_fixed/shards/p1_fixed-00001.nc"
    assert "sample 6 does not match its checksum" in log and command in log
    # the command the validation names: that shard, validation, splits, summary
    recovered = snakemake(*command.split()[1:])
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert shard.read_bytes() == good
    assert json.loads((data / "manifest.json").read_text())["splits"] == manifest["splits"]
    for split, mtime in splits_before.items():
        assert (data / f"p1_fixed-{split}.nc").stat().st_mtime_ns > mtime  # no stale split
    assert json.loads((data / "validation.json").read_text())["samples"] == 10
    dry = snakemake("--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert leftovers(workdir / "results") == []


# -- figures, report, docs ----------------------------------------------------------------------

def test_p1_figure_says_its_pldos_scale_is_capped(p1):
    from mesoinv.evaluation.dataset_figures import PLDOS_PERCENTILE, p1_sample_figure

    fig = p1_sample_figure(p1[1], 1)
    colorbars = [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]
    pldos_bar = [c for c in colorbars if "PLDOS" in c.ax.get_ylabel()]
    assert len(pldos_bar) == 1 and pldos_bar[0].extend == "max"
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert f"capped at the {PLDOS_PERCENTILE:g}th percentile" in titles
    caption = (ROOT / "workflow/report/p1_sample.rst").read_text()
    assert "99.5th percentile" in caption


def test_p2_figure_labels_do_not_collide(p2):
    from mesoinv.evaluation.dataset_figures import p2_sample_figure

    fig = p2_sample_figure(p2[1], 0)
    lattice, ldos, trace = fig.axes[:3]
    assert ldos.get_ylabel() and lattice.get_ylabel() and trace.get_ylabel()
    colorbars = [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(colorbars) == 2 and all(c.orientation == "horizontal" for c in colorbars)


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_figure_ids_show_different_p2_configurations(name):
    config = load_config(ROOT / "config" / name)
    ids = config["figures"]["sample_ids"]
    for entry in config["datasets"].values():
        if entry["kind"] == "p2_magnetoconductance":
            per_configuration = entry["disorder"]["realizations"]
            assert len({i // per_configuration for i in ids}) == len(ids), ids


def test_dataset_table_is_readable(loaded_config, p1, p2, tmp_path):
    from mesoinv.evaluation.summary import (PROVENANCE_COLUMNS, dataset_summary,
                                            write_dataset_tables)

    fixed = tmp_path / "fixed.nc"  # s and N_d fixed: rms and ξ are one value
    simulate_shard(dataset_spec(loaded_config, "p1_fixed"), [0, 1], fixed, progress=False)
    table = dataset_summary([p1[1], fixed, p2[1]])
    rms = table.set_index("dataset").loc["p1_fixed", "rms (meV)"]
    assert "±" not in rms and "e-" not in rms, rms
    csv, html = tmp_path / "t.csv", tmp_path / "t.html"
    write_dataset_tables(table, csv, html)
    text = html.read_text()
    assert text.count("<table") == 2
    main = text.split("<table")[1]
    assert "packages" not in main and "config sha256" not in main
    import pandas as pd
    assert set(PROVENANCE_COLUMNS) <= set(pd.read_csv(csv).columns)
    caption = " ".join((ROOT / "workflow/report/datasets.rst").read_text().split())
    for words in ("configurations", "open channels", "G", "provenance"):
        assert words in caption


# full configs; the overlays (tests/test_config.OVERLAYS) are given after one
SHIPPED_CONFIGS = sorted(p for p in (ROOT / "config").glob("*.yaml")
                         if p.name not in OVERLAYS + MEDIUM_OVERLAYS)


def test_docs_rerun_examples_name_existing_shards():
    configs = [load_config(path) for path in SHIPPED_CONFIGS]
    for doc in (ROOT / "docs/workflow.md", ROOT / "README.md"):
        for name, shard in re.findall(r"results/datasets/(\w+)/shards/\1-(\d{5})\.nc",
                                      doc.read_text()):
            for config in configs:
                if name in config["datasets"]:
                    entry = config["datasets"][name]
                    assert int(shard) < -(-entry["n_samples"] // entry["shard_size"]), \
                        f"{doc.name}: shard {shard} of {name}"


def test_benchmarks_doc_agrees_with_its_tables_and_cites_only_the_repository():
    text = (ROOT / "docs/benchmarks.md").read_text()
    for outside in ("NOTES", "the issue", "issue:", "../shared"):
        assert outside not in text, outside
    row = re.search(r"\| `wf\.dryrun\.sharded` \|[^|]*\| ([\d.]+) \|(?:[^|]*\|){5} (PASS|MISS) \|",
                    text)
    value, status = float(row.group(1)), row.group(2)
    paragraph = text.split("**Against the targets:** the paper dry run")[1].split("\n\n")[0]
    assert f"{value:.1f} s" in paragraph and status in paragraph.split(f"{value:.1f} s")[1][:60]


def test_readme_p2_speed_up_matches_the_docs():
    readme = (ROOT / "README.md").read_text()
    claimed = re.search(r"functions, ([\d–]+×) faster than Kwant", readme).group(1)
    assert claimed in (ROOT / "docs/p2.md").read_text()


def test_definition_json_keys_are_documented_alike():
    for doc in ("docs/workflow.md", "docs/dataset-format.md"):
        line = next(line for line in (ROOT / doc).read_text().splitlines()
                    if "definition.json" in line and "n_samples" in line)
        for key in NON_SAMPLE_KEYS:
            assert f"`{key}`" in line, (doc, key)


def test_readme_first_five_minutes():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The first five minutes")[1].split("\n#")[0]
    for words in ("results/", "--report", "scratch/", "check-config"):
        assert words in section, words
    ignored = subprocess.run(["git", "check-ignore", "-q", "scratch/samples.nc"], cwd=ROOT)
    assert ignored.returncode == 0
