"""The workflow on a real (single-node) SLURM through profiles/slurm, compared with a local run.

The cluster comes from tests/slurm_cluster.py (root and Debian's slurm packages; skipped
without them unless CI is set). One module-scoped fixture runs the workflow twice on
config/test.yaml, side by side: on SLURM with the cluster profile and locally with
``--cores 2``. The tests then check that the jobs went through sbatch, that the MPI shards
ran with 2 wired ranks, and that every file under results/datasets is identical.
"""

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml

from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PYTHON = sys.executable

# Overrides of profiles/slurm for this one-node test cluster, each for a reason:
SLURM_OVERRIDES = [
    # No accounting database here: sacct cannot answer, squeue can (MinJobAge=300).
    "--slurm-status-command", "squeue",
    # Poll after 2 s instead of 40 s (the plugin then backs off by 10 s per empty poll).
    "--slurm-init-seconds-before-status-checks", "2",
    # A failure should fail the test, not be resubmitted (the profile retries once).
    "--retries", "0",
    # Command-line resources replace the profile's blocks wholesale, so the partition is
    # repeated; 500 MB jobs fit the small test node.
    "--default-resources", "slurm_partition=cpu", "mem_mb=500",
    # The shard rule as in the profile (srun --mpi=pmi2, 1 CPU per rank), with 2 ranks
    # instead of 4 and less memory, so two shards fit the node at once.
    "--set-resources", "simulate_p1_shard:mpi='srun --mpi=pmi2'", "simulate_p1_shard:tasks=2",
    "simulate_p1_shard:cpus_per_task=1", "simulate_p1_shard:mem_mb_per_cpu=500",
    "simulate_p2_shard:mpi='srun --mpi=pmi2'", "simulate_p2_shard:tasks=2",
    "simulate_p2_shard:cpus_per_task=1", "simulate_p2_shard:mem_mb_per_cpu=500",
]


def workflow_command(workdir, *args, config=ROOT / "config" / "test.yaml"):
    return [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def data_only_config(directory) -> Path:
    """config/test.yaml without its models: the training jobs on SLURM (GPU partition,
    requeue) are tests/test_slurm_training.py's; here the data side is compared."""
    config = json.loads(json.dumps(yaml.safe_load((ROOT / "config" / "test.yaml").read_text())))
    config["models"] = {}
    path = Path(directory) / "data-only.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Run:
    command: list
    workdir: Path
    returncode: int
    seconds: float
    log: str

    def failure(self, extra=""):
        return (f"`{' '.join(self.command)}` exited {self.returncode} after {self.seconds:.0f} s"
                f"\n--- output (tail)\n{self.log[-6000:]}\n{extra}")


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):  # noqa: F811  (fixture imported above)
    """(local run, SLURM run) of config/test.yaml, started together."""
    local_dir = tmp_path_factory.mktemp("local")
    slurm_dir = tmp_path_factory.mktemp("slurm")
    config = data_only_config(tmp_path_factory.mktemp("config"))
    local_cmd = workflow_command(local_dir, "--cores", "2", config=config)
    slurm_cmd = workflow_command(slurm_dir, "--profile", str(ROOT / "profiles" / "slurm"),
                                 *SLURM_OVERRIDES, config=config)
    local_env = {k: v for k, v in slurm_cluster.env.items() if k != "SLURM_CONF"}
    logs = {name: open(directory / f"{name}.out", "w+")
            for name, directory in (("local", local_dir), ("slurm", slurm_dir))}
    start = time.monotonic()
    # The local run fills the cores while SLURM jobs wait in the plugin's polling interval.
    local = subprocess.Popen(local_cmd, cwd=local_dir, env=local_env, stdout=logs["local"],
                             stderr=subprocess.STDOUT)
    slurm = subprocess.Popen(slurm_cmd, cwd=slurm_dir, env=slurm_cluster.env,
                             stdout=logs["slurm"], stderr=subprocess.STDOUT)
    procs = {"local": (local, local_cmd, local_dir), "slurm": (slurm, slurm_cmd, slurm_dir)}
    results = {}
    while len(results) < len(procs):
        for name, (proc, cmd, directory) in procs.items():
            if name in results:
                continue
            timed_out = time.monotonic() - start > 420
            if proc.poll() is None and not timed_out:
                continue
            if proc.poll() is None:
                proc.kill()  # ends the SLURM run's snakemake; the cluster cancels its jobs
                proc.wait()
            logs[name].seek(0)
            results[name] = Run(cmd, directory, proc.returncode, time.monotonic() - start,
                                logs[name].read())
            logs[name].close()
        time.sleep(0.5)
    print(f"\nlocal run {results['local'].seconds:.0f} s, SLURM run "
          f"{results['slurm'].seconds:.0f} s (started together)")
    return results["local"], results["slurm"]


def dataset_files(workdir):
    base = workdir / "results" / "datasets"
    return sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())


def netcdf_variables(path):
    """{variable: (dtype, shape, raw bytes)} read without masking or scaling."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        out = {}

        def collect(group, prefix=""):
            for name, var in group.variables.items():
                data = np.asarray(var[...])
                out[prefix + name] = (str(data.dtype), data.shape, data.tobytes())
            for name, sub in group.groups.items():
                collect(sub, f"{prefix}{name}/")

        collect(ds)
    return out


def slurm_failure_details(run, cluster):
    logs = sorted((run.workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs[-3:])
    return f"{tails}\n--- daemons\n{cluster.daemon_logs()}"


def test_workflow_under_slurm_equals_local_run(runs, slurm_cluster):  # noqa: F811
    local, slurm = runs
    assert local.returncode == 0, local.failure()
    assert slurm.returncode == 0, slurm.failure(slurm_failure_details(slurm, slurm_cluster))

    # The jobs went through sbatch: the plugin's submissions are the ones slurmctld accepted.
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)",
                                slurm.log))
    assert submitted, slurm.failure("no SLURM submissions in the log")
    accepted = set(slurm_cluster.submitted_job_ids())
    assert set(submitted.values()) <= accepted, (submitted, accepted)

    # Same files, and every shard and split file of the local run exists after SLURM.
    local_files, slurm_files = dataset_files(local.workdir), dataset_files(slurm.workdir)
    netcdf = [p for p in local_files if p.suffix == ".nc"]
    assert any("shards" in p.parts for p in netcdf) and any("shards" not in p.parts
                                                           for p in netcdf), local_files
    assert slurm_files == local_files

    # One SLURM job per shard (every shard simulated on the cluster, none locally).
    shard_jobs = re.findall(r"rule_simulate_p[12]_shard/\w+/\d+\.log", slurm.log)
    assert len(shard_jobs) == sum("shards" in p.parts for p in netcdf), shard_jobs

    # Sample for sample, bit for bit.
    base_local = local.workdir / "results" / "datasets"
    base_slurm = slurm.workdir / "results" / "datasets"
    for relative in netcdf:
        expected = netcdf_variables(base_local / relative)
        actual = netcdf_variables(base_slurm / relative)
        assert expected.keys() == actual.keys(), relative
        for name, (dtype, shape, data) in expected.items():
            assert actual[name][:2] == (dtype, shape), (relative, name)
            assert actual[name][2] == data, f"{relative}: variable {name} differs"


def shard_jobs_in_queue(cluster):
    """scontrol's records of this cluster's shard jobs (kept MinJobAge = 300 s)."""
    text = cluster.run(["scontrol", "show", "job", "-o"], check=False).stdout
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines()
            if re.search(r"Comment=rule_simulate_p[12]_shard", line)]


def test_mpi_shards_ran_with_two_wired_ranks(runs, slurm_cluster):  # noqa: F811
    local, slurm = runs
    assert slurm.returncode == 0, slurm.failure()
    jobs = shard_jobs_in_queue(slurm_cluster)
    assert jobs, "no shard job in scontrol's records"
    for job in jobs:
        assert job["NumTasks"] == "2" and job["JobState"] == "COMPLETED", job
    # Each shard's log (mesoinv simulate) names its rank and the world size: 2, never 1.
    logs = sorted((slurm.workdir / "logs" / "simulate").rglob("*.log"))
    assert len(logs) == len(jobs)
    seen = set()
    for path in logs:
        text = path.read_text()
        worlds = {int(n) for n in re.findall(r"rank \d+(?: of |/)(\d+)", text)}
        assert worlds == {2}, f"{path}: world sizes {worlds}\n{text}"
        seen |= {int(r) for r in re.findall(r"rank (\d+)(?: of |/)2", text)}
    assert seen == {0, 1}, seen


MPI_PROBE = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
             "print('rank', c.Get_rank(), 'of', c.Get_size(), flush=True)")


def test_srun_wires_mpi_only_with_pmi2(slurm_cluster, tmp_path):  # noqa: F811
    """The trap (NOTES.md §3): with MpiDefault=none, `srun -n 2` starts two unwired copies
    (each `rank 0 of 1`, each would do the whole shard); `srun --mpi=pmi2 -n 2` wires them."""
    script = (f"echo '# pmi2'; srun --mpi=pmi2 -n 2 {PYTHON} -c \"{MPI_PROBE}\"\n"
              f"echo '# plain'; srun -n 2 {PYTHON} -c \"{MPI_PROBE}\"\n")
    job = slurm_cluster.sbatch("-n", "2", "--mem-per-cpu", "300", "-o", "out.txt",
                               script=script, cwd=tmp_path)
    state = slurm_cluster.wait(job, timeout=90)
    out = (tmp_path / "out.txt").read_text()
    assert state == "COMPLETED", out
    pmi2, plain = out.split("# plain")
    assert sorted(re.findall(r"rank \d+ of \d+", pmi2)) == ["rank 0 of 2", "rank 1 of 2"], out
    assert re.findall(r"rank \d+ of \d+", plain) == ["rank 0 of 1"] * 2, out


def test_gpu_partition_hands_out_the_fake_gpu(slurm_cluster, tmp_path):  # noqa: F811
    """What profiles/slurm's training block asks for (-p gpu --gpus=1) is schedulable."""
    job = slurm_cluster.sbatch("-p", "gpu", "--gpus=1", "--mem", "100", "-o", "out.txt",
                               script="echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\n",
                               cwd=tmp_path)
    assert slurm_cluster.wait(job, timeout=60) == "COMPLETED"
    assert "CUDA_VISIBLE_DEVICES=0" in (tmp_path / "out.txt").read_text()
