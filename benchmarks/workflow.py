"""Benchmark group "workflow": the cost of the Snakemake DAG, and MPI ranks inside a shard.

Rows (keys are stable; docs/benchmarks.md explains each):

* ``wf.dryrun.sharded``     ``snakemake -n`` of config/paper.yaml (320 shard jobs): wall time and
                            peak RSS of the Snakemake process.
* ``wf.dryrun.per_sample``  the same workflow with one job per sample (``shard_size: 1``) for
                            ``n_per_sample`` samples — the design this replaces.
* ``wf.mpi.rank1/.rank2``   one shard at paper scale simulated by ``mesoinv simulate`` on 1 and on
                            2 MPI ranks (wall time of the whole command, set-up included).
* ``wf.mpi.speedup``        rank1 / rank2, and whether both shard files hold the same bytes.
* ``wf.mpi.speedup_per_sample``  the same from the difference of two shard sizes: the
                            per-sample throughput, set-up (≈ 4 s per rank) excluded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .common import REPO_ROOT, Row

TARGET_DRYRUN_S = 5.0
TARGET_DRYRUN_MB = 300.0
TARGET_MPI_SPEEDUP = 1.8

_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, code)
"""


def _measure(command, cwd=REPO_ROOT):
    """Wall seconds and peak RSS (MB) of a command, from a fresh parent (ru_maxrss of children)."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                         text=True, cwd=cwd, check=True).stdout.split()
    wall, rss, code = float(out[0]), float(out[1]), int(out[2])
    if code != 0:
        raise RuntimeError(f"{command} failed with {code}")
    return wall, rss


def _dry_run(config_path, workdir):
    return _measure([sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
                     "--directory", str(workdir), "--configfile", str(config_path), "-n",
                     "--quiet", "all"])


def _paper_config():
    return json.loads(json.dumps(yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())))


def _same_bytes(a, b) -> bool:
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(a) as x, netCDF4.Dataset(b) as y:
        return all(np.asarray(x[v][:]).tobytes() == np.asarray(y[v][:]).tobytes()
                   for v in y.variables)


def run(quick: bool) -> list[Row]:
    rows = []
    n_per_sample = 200 if quick else 10_000
    shard_samples = 4 if quick else 128
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paper = _paper_config()
        n_paper = sum(d["n_samples"] for d in paper["datasets"].values())
        jobs = sum(-(-d["n_samples"] // d["shard_size"]) for d in paper["datasets"].values())
        if quick:  # a small sharded config; the numbers mean nothing
            for entry in paper["datasets"].values():
                entry.update(n_samples=400, shard_size=100)
            n_paper, jobs = 800, 8
        path = tmp / "paper.yaml"
        path.write_text(yaml.safe_dump(paper))
        wall, rss = _dry_run(path, tmp / "sharded")
        rows.append(Row("wf.dryrun.sharded", f"snakemake -n, {n_paper:,} samples in {jobs} shard "
                                             "jobs (config/paper.yaml)", wall, "s",
                        target=f"< {TARGET_DRYRUN_S:g} s", passed=wall < TARGET_DRYRUN_S))
        rows.append(Row("wf.dryrun.sharded_rss", "peak RSS of that dry run", rss, "MB",
                        target=f"< {TARGET_DRYRUN_MB:g} MB", passed=rss < TARGET_DRYRUN_MB))

        per_sample = _paper_config()
        entry = per_sample["datasets"]["p1_fixed"]
        entry.update(n_samples=n_per_sample, shard_size=1)
        per_sample["datasets"] = {"p1_fixed": entry}
        per_sample["figures"] = {"sample_ids": [0]}
        per_sample["models"] = {}  # they train on p1_varying, left out here
        path = tmp / "per_sample.yaml"
        path.write_text(yaml.safe_dump(per_sample))
        wall_ps, rss_ps = _dry_run(path, tmp / "per_sample")
        scaled = wall_ps * n_paper / n_per_sample
        rows.append(Row("wf.dryrun.per_sample", f"snakemake -n, one job per sample, "
                                                f"{n_per_sample:,} samples", wall_ps, "s",
                        note=f"≈ {wall_ps / n_per_sample * 1e3:.1f} ms per job; linear "
                             f"extrapolation to {n_paper:,} samples ≈ {scaled:.0f} s "
                             "(an earlier run on this machine: 121 s and ≈ 1 GB "
                             "at 72,000 jobs)"))
        rows.append(Row("wf.dryrun.per_sample_rss", "peak RSS of that dry run", rss_ps, "MB"))

        # One shard at paper scale on 1 and 2 ranks (2 cores here).
        mpi = paper if not quick else _paper_config()
        definition = {k: v for k, v in mpi["datasets"]["p1_fixed"].items()
                      if k not in ("n_samples", "shard_size", "splits", "on_sample_failure")}
        definition["name"] = "p1_fixed"
        if quick:
            definition["geometry"] = dict(definition["geometry"], length_nm=200.0, width_nm=150.0)
        definition_path = tmp / "definition.json"
        definition_path.write_text(json.dumps(definition))
        mpiexec = str(Path(sys.executable).with_name("mpiexec"))
        small = max(2, shard_samples // 4)
        walls = {}
        outputs = {}
        for ranks in (1, 2):
            for count in (small, shard_samples):
                out = tmp / f"rank{ranks}-{count}.nc"
                command = [sys.executable, "-m", "mesoinv", "simulate", "--dataset-definition",
                           str(definition_path), "--ids", f"0:{count}", "--no-progress",
                           "--expect-ranks", str(ranks), "-o", str(out)]
                if ranks > 1:
                    command = [mpiexec, "-n", str(ranks), *command]
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                walls[ranks, count] = time.perf_counter() - start
                outputs[ranks, count] = out
        one, two = walls[1, shard_samples], walls[2, shard_samples]
        same = _same_bytes(outputs[1, shard_samples], outputs[2, shard_samples])
        # Set-up (imports, Kwant system, solver) is paid once per rank, in parallel: the
        # difference between two shard sizes isolates the per-sample throughput.
        marginal = ((walls[1, shard_samples] - walls[1, small])
                    / (walls[2, shard_samples] - walls[2, small]))
        rows.append(Row("wf.mpi.rank1", f"one shard of {shard_samples} samples, 1 rank "
                                        "(whole command, set-up included)", one, "s", n=1))
        rows.append(Row("wf.mpi.rank2", "the same shard, 2 MPI ranks (mpiexec)", two, "s", n=1))
        rows.append(Row("wf.mpi.speedup", "speed-up of 2 ranks over 1, whole command", one / two,
                        "×", target=f"≥ {TARGET_MPI_SPEEDUP:g}×",
                        passed=one / two >= TARGET_MPI_SPEEDUP,
                        note=f"shard files byte-identical: {'yes' if same else 'NO'}"))
        rows.append(Row("wf.mpi.speedup_per_sample", f"speed-up of 2 ranks per sample "
                                                     f"(shards of {shard_samples} minus "
                                                     f"{small}: set-up excluded)", marginal, "×",
                        note="what a 500-sample production shard approaches"))
    return rows
