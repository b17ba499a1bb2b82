"""Training under SLURM through profiles/slurm: the GPU partition, and Lightning's requeue.

A real single-node SLURM (tests/slurm_cluster.py; root and Debian's slurm packages, skipped
without them unless CI is set) runs the workflow with the cluster profile, whose train_model
block sends training to the ``gpu`` partition with one GPU (a fake ``gpu:1`` GRES here, so
torch finds no CUDA and trains on the CPU) and ``--signal=SIGURG@90``.

1. ``config/test.yaml``, target ``results/models/p1_s_nd/model.pt`` (simulations included):
   slurmctld's record of the training job shows partition gpu and one GPU, and the model
   trained on the CPU with Lightning's SLURM environment active.
2. Requeue mid-training, in the same working directory with a copy of the config whose model
   trains for more epochs: once the training has written ``checkpoints/last.ckpt``, SIGURG is
   sent the way SLURM's warning signal is (``scancel --signal=URG <job>``: every process of
   the job's steps, not the batch shell, exactly the set ``sbatch --signal=SIGURG@90``
   addresses). Lightning saves ``hpc_ckpt_1.ckpt`` and runs ``scontrol requeue``; the job
   keeps its id, is restarted by SLURM and resumes from the newest checkpoint (that one, or a
   ``last.ckpt`` written before SLURM's SIGTERM stopped the first attempt), and Snakemake
   (which submitted it once, ``retries: 0``) sees it complete. The step counter continues. The
   training process is held with SIGSTOP from its first checkpoint until SIGURG is pending
   in it, so the signal lands mid-training however fast the machine trains.

SLURM makes a requeued job wait ``cred_expire`` seconds before it may start again (AuthInfo,
default 120 s; measured here: BeginTime = requeue + 120 s). This module therefore starts its
own cluster, identical to the session fixture's but with ``cred_expire=5`` and a scheduling
pass every 2 s, so that the module stays under 4 minutes.
"""

import json
import math
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from slurm_cluster import SlurmCluster, require_slurm
from test_slurm import ROOT, SLURM_OVERRIDES, SNAKEMAKE

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MODEL = "p1_s_nd"
TARGET = f"results/models/{MODEL}/model.pt"
# Seconds a requeued job waits before it may start again (slurm.conf AuthInfo cred_expire;
# Slurm's default is 120 s, which alone would double this module's time).
CRED_EXPIRE_S = 5
# Epochs of the requeue run (2 steps each): the training is paused at its first checkpoint
# (step 2) to receive the signal, and the rest runs after the restart (about 1 s on an idle
# runner, up to a minute on a loaded one).
REQUEUE_EPOCHS = 40
# The profile's train_model block, scaled to the small test node (profile: 8 CPUs, 32 GB).
TEST_NODE_RESOURCES = {"cpus_per_gpu": 2, "mem_mb": 1000}


class ShortRequeueCluster(SlurmCluster):
    """The session fixture's cluster, with a requeued job restarted within seconds:
    ``AuthInfo=...,cred_expire=CRED_EXPIRE_S`` (the wait before a requeued job is eligible)
    and a scheduling pass every 2 s (``sched_interval``, default 60 s; backfill every 30 s):
    without it the eligible job waited up to 25 s more."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.conf.read_text()
        text, count = re.subn(r"^(AuthInfo=\S+)$", rf"\1,cred_expire={CRED_EXPIRE_S}", text,
                              flags=re.M)
        assert count == 1, "no AuthInfo line in the cluster's slurm.conf"
        assert "SchedulerParameters" not in text
        self.conf.write_text(text + "SchedulerParameters=sched_interval=2\n")


@pytest.fixture(scope="module")
def cluster():
    require_slurm()
    with ShortRequeueCluster(cpus=max(4, len(os.sched_getaffinity(0)))) as running:
        yield running


def profile_training_resources() -> dict:
    """profiles/slurm's set-resources block of train_model."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "profile.yaml").read_text())
    return dict(profile["set-resources"]["train_model"])


def training_overrides() -> list:
    """tests/test_slurm.py's overrides plus the profile's train_model block (scaled to the
    node). Command-line --set-resources replaces the profile's block wholesale, so the
    training entries join test_slurm's --set-resources list."""
    resources = {**profile_training_resources(), **TEST_NODE_RESOURCES}
    entries = [f"train_model:{key}={json.dumps(value)}" for key, value in resources.items()]
    args = list(SLURM_OVERRIDES)
    end = args.index("--set-resources") + 1
    while end < len(args) and not args[end].startswith("--"):
        end += 1
    return args[:end] + entries + args[end:]


def workflow_command(workdir, configfile):
    return [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), "--profile", str(ROOT / "profiles" / "slurm"),
            *training_overrides(), "--slurm-keep-successful-logs", TARGET]


def scontrol_job(cluster, job_id) -> dict:
    """slurmctld's record of a job (kept MinJobAge = 300 s after it ends); {} if gone."""
    out = cluster.run(["scontrol", "show", "job", "-o", "-d", job_id], check=False).stdout
    return dict(re.findall(r"([\w/:]+)=(\S*)", out))


def train_submissions(log) -> list:
    """SLURM job ids Snakemake submitted for train_model, from its log."""
    return re.findall(r"submitted with SLURM jobid (\d+) \(log: [^)]*rule_train_model/", log)


def slurm_time(value) -> float:
    return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))


def load_model(workdir) -> dict:
    return torch.load(Path(workdir) / TARGET, map_location="cpu", weights_only=True)


def failure(log, cluster, workdir, extra=""):
    slurm_logs = sorted((Path(workdir) / ".snakemake" / "slurm_logs").rglob("*.log"))
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                      for p in slurm_logs[-2:])
    train_log = Path(workdir) / "logs" / "train" / f"{MODEL}.log"
    if train_log.exists():
        tails += f"\n--- {train_log}\n{train_log.read_text(errors='replace')[-3000:]}"
    return (f"{extra}\n--- snakemake output (tail)\n{log[-5000:]}\n{tails}\n--- daemons\n"
            f"{cluster.daemon_logs()}")


@dataclass
class GpuRun:
    workdir: Path
    returncode: int
    seconds: float
    log: str
    job_id: str | None
    job: dict


@pytest.fixture(scope="module")
def gpu_run(cluster, tmp_path_factory):
    """config/test.yaml on the cluster with profiles/slurm, up to the model of p1_s_nd."""
    workdir = tmp_path_factory.mktemp("slurm-training")
    command = workflow_command(workdir, ROOT / "config" / "test.yaml")
    start = time.monotonic()
    try:
        result = subprocess.run(command, cwd=workdir, env=cluster.env, capture_output=True,
                                text=True, timeout=300)
        returncode, log = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as error:
        returncode, log = -1, f"timed out after 300 s\n{error.stdout or ''}{error.stderr or ''}"
    seconds = time.monotonic() - start
    ids = train_submissions(log)
    job = scontrol_job(cluster, ids[0]) if ids else {}
    if job.get("StartTime", "Unknown") != "Unknown":
        print(f"\n[gpu run] workflow {seconds:.0f} s; training job {ids[0]}: submission -> "
              f"start on {job.get('Partition')} "
              f"{slurm_time(job['StartTime']) - slurm_time(job['SubmitTime']):.0f} s, ran "
              f"{slurm_time(job['EndTime']) - slurm_time(job['StartTime']):.0f} s")
    return GpuRun(workdir, returncode, seconds, log, ids[0] if ids else None, job)


def test_training_job_runs_on_the_gpu_partition_with_one_gpu(gpu_run, cluster):
    run = gpu_run
    assert run.returncode == 0, failure(run.log, cluster, run.workdir, "workflow failed")
    ids = train_submissions(run.log)
    assert len(ids) == 1, failure(run.log, cluster, run.workdir, f"train submissions: {ids}")
    assert run.job_id in cluster.submitted_job_ids()

    # slurmctld's record: partition gpu, one GPU requested and allocated, the CPUs per GPU
    # of the profile's block (scaled to the node), and no restart.
    job = run.job
    assert job["Partition"] == "gpu", job
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "0", job
    assert job["TresPerJob"] == "gres:gpu:1", job
    assert job["JOB_GRES"] == "gpu:1", job
    assert job["CpusPerTres"] == f"gres:gpu:{TEST_NODE_RESOURCES['cpus_per_gpu']}", job
    assert job["NumCPUs"] == str(TEST_NODE_RESOURCES["cpus_per_gpu"]), job
    assert job["Comment"] == f"rule_train_model_wildcards_{MODEL}", job

    # Inside the job: Lightning saw no CUDA device (the GPU is fake) and trained on the CPU,
    # with its SLURM environment (auto-requeue handlers) active.
    train_log = (run.workdir / "logs" / "train" / f"{MODEL}.log").read_text()
    assert "GPU available: False, used: False" in train_log, train_log
    assert "SLURM auto-requeueing enabled" in train_log, train_log
    training = load_model(run.workdir)["training"]
    assert training["accelerator"] == "cpu x1", training
    assert training["resumed_from"] == "", training
    assert training["global_step"] > 0
    for name in ("training_metrics.csv", "loss_curve.png"):
        assert (run.workdir / "results" / "models" / MODEL / name).is_file(), name


@dataclass
class RequeueRun:
    workdir: Path
    returncode: int
    log: str
    job_id: str | None = None
    state_dir: Path | None = None
    train_env: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)   # name -> monotonic seconds since start
    states: list = field(default_factory=list)   # (seconds, JobState, Restarts, EligibleTime)
    job: dict = field(default_factory=dict)
    # resumable checkpoints left by the first attempt: {name: (mtime_ns, global_step)}
    checkpoints: dict = field(default_factory=dict)
    error: str = ""


def _training_state_dir(workdir, epochs):
    """The state directory whose definition.json has max_epochs == epochs, if any."""
    for definition in (workdir / "results" / "training" / MODEL).glob("*/definition.json"):
        try:
            if json.loads(definition.read_text())["max_epochs"] == epochs:
                return definition.parent
        except (OSError, ValueError, KeyError):
            pass
    return None


def _training_process(workdir):
    """(pid, environment) of the running `mesoinv train` started in workdir (by the SLURM
    job), or (None, {})."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if len(argv) < 3 or not argv[1].endswith(b"mesoinv") or argv[2] != b"train":
                continue
            if Path(os.readlink(proc / "cwd")) != Path(workdir).resolve():
                continue
            pairs = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)
        return int(proc.name), env
    return None, {}


def _checkpoints(state_dir) -> dict:
    """{relative path: (mtime_ns, global_step)} of the checkpoints train.py may resume from."""
    paths = [*state_dir.glob("hpc_ckpt_*.ckpt"), state_dir / "checkpoints" / "last.ckpt"]
    return {str(p.relative_to(state_dir)): (p.stat().st_mtime_ns, torch.load(
                p, map_location="cpu", weights_only=True)["global_step"])
            for p in paths if p.is_file()}


def _signal_pending(pid, signum) -> bool:
    """Whether signum is pending for the (stopped) process pid."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        raise RuntimeError("the paused training process is gone") from None
    masks = re.findall(r"^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$", status, re.M)
    return any(int(mask, 16) & (1 << (signum - 1)) for mask in masks)


def _stopped(pid, timeout=2.0) -> bool:
    """Wait until pid is in state T (stopped); False if it is gone or does not stop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if re.search(r"^State:\s+T", Path(f"/proc/{pid}/status").read_text(), re.M):
                return True
        except OSError:
            return False
        time.sleep(0.005)
    return False


@pytest.fixture(scope="module")
def requeue_run(gpu_run, cluster):
    """The model retrained for REQUEUE_EPOCHS in gpu_run's directory, with the requeue signal
    sent to its SLURM job once training is underway.

    SLURM delivers the signal (``scancel --signal=URG``). To be sure it lands during training
    whatever the machine's speed (an idle runner trains the whole model in about a second),
    the training process is paused (SIGSTOP) as soon as its first checkpoint exists, and
    continued (SIGCONT) once SIGURG is pending in it: the handler then runs at that point.
    """
    workdir = gpu_run.workdir
    if gpu_run.returncode != 0:
        pytest.skip("the GPU-partition run failed (see its test)")
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["models"][MODEL]["max_epochs"] = REQUEUE_EPOCHS
    configfile = workdir / "requeue.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    out_path = workdir / "requeue.out"
    run = RequeueRun(workdir, -1, "")
    start = time.monotonic()

    def now():
        return time.monotonic() - start

    with open(out_path, "w") as out:
        proc = subprocess.Popen(workflow_command(workdir, configfile), cwd=workdir,
                                env=cluster.env, stdout=out, stderr=subprocess.STDOUT)
    pid = None
    try:
        deadline = start + 240
        # 1. Submitted; the training process found; paused at its first checkpoint.
        while time.monotonic() < deadline and proc.poll() is None:
            if run.job_id is None:
                ids = train_submissions(out_path.read_text())
                if ids:
                    run.job_id, run.events["submitted"] = ids[0], now()
            if run.state_dir is None:
                run.state_dir = _training_state_dir(workdir, REQUEUE_EPOCHS)
            if run.state_dir is not None and pid is None:
                pid, run.train_env = _training_process(workdir)
            if pid is not None and (run.state_dir / "checkpoints" / "last.ckpt").exists():
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    run.error = "the training process ended before it could be paused"
                run.events["first checkpoint, training paused"] = now()
                break
            time.sleep(0.01 if pid else 0.1)
        else:
            run.error = "no training checkpoint before the workflow ended or timed out"
        if not run.error and not _stopped(pid):
            run.error = "the training process ended before it could be paused"
        if not run.error and run.job_id is None:
            run.error = "no SLURM submission of train_model in Snakemake's output"
        # 2. The requeue signal, as SLURM sends it (all processes of the job's steps).
        if not run.error:
            cluster.run(["scancel", "--signal=URG", run.job_id])
            run.events["signal sent"] = now()
            while not _signal_pending(pid, signal.SIGURG):
                if time.monotonic() > start + 60 + run.events["signal sent"]:
                    raise RuntimeError("SIGURG from SLURM did not reach the training process")
                time.sleep(0.01)
            run.events["signal pending in the training process"] = now()
            os.kill(pid, signal.SIGCONT)
            run.events["training continued"] = now()
            last = None
            while time.monotonic() < deadline and proc.poll() is None:
                if ("hpc checkpoint" not in run.events
                        and list(run.state_dir.glob("hpc_ckpt_*.ckpt"))):
                    run.events["hpc checkpoint"] = now()
                job = scontrol_job(cluster, run.job_id)
                current = (job.get("JobState"), job.get("Restarts"), job.get("EligibleTime"))
                if current != last and current[0] is not None:
                    run.states.append((now(), *current))
                    last = current
                if current[:2] == ("PENDING", "1") and not run.checkpoints:
                    run.checkpoints = _checkpoints(run.state_dir)  # first attempt is over
                time.sleep(0.25)
        if proc.poll() is None:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
        run.events["workflow finished"] = now()
    except (subprocess.TimeoutExpired, RuntimeError) as error:
        run.error = run.error or str(error) or "the workflow did not finish in 240 s"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGCONT)  # never leave it stopped
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()  # the cluster cancels its jobs at the end of the module
            proc.wait()
    run.returncode = proc.returncode
    run.log = out_path.read_text()
    if run.job_id is not None:
        run.job = scontrol_job(cluster, run.job_id)
    _print_requeue_timings(run)
    return run


def _print_requeue_timings(run):
    events = run.events
    lines = [f"[requeue run] {name} at {t:.1f} s" for name, t in events.items()]
    lines += [f"[requeue run] left by the first attempt: {name} (global step {step})"
              for name, (_, step) in sorted(run.checkpoints.items(), key=lambda kv: kv[1])]
    lines += [f"[requeue run]   job {run.job_id} {state} (Restarts={restarts}, "
              f"EligibleTime={eligible}) at {t:.1f} s"
              for t, state, restarts, eligible in run.states]
    job = run.job
    if job.get("SubmitTime") and job.get("StartTime", "Unknown") != "Unknown":
        # After a requeue SubmitTime is the requeue time and StartTime the restart.
        lines.append(f"[requeue run] requeue -> restart "
                     f"{slurm_time(job['StartTime']) - slurm_time(job['SubmitTime']):.0f} s "
                     f"(cred_expire={CRED_EXPIRE_S}), restarted run "
                     f"{slurm_time(job['EndTime']) - slurm_time(job['StartTime']):.0f} s")
    print("\n" + "\n".join(lines))


def test_training_process_sees_the_gpu_allocation(requeue_run, cluster):
    run = requeue_run
    assert not run.error and run.train_env, failure(run.log, cluster, run.workdir, run.error)
    env = run.train_env
    # The training process itself (in the job step the plugin starts with srun) got the GPU
    # and the CPUs of the allocation, and the SLURM variables Lightning's environment reads.
    assert env.get("CUDA_VISIBLE_DEVICES") == "0", env
    assert env.get("SLURM_JOB_ID") == run.job_id, env
    assert env.get("SLURM_STEP_ID") == "0", env
    assert env.get("SLURM_JOB_PARTITION") == "gpu", env
    assert env.get("SLURM_CPUS_ON_NODE") == str(TEST_NODE_RESOURCES["cpus_per_gpu"]), env


def test_requeue_signal_resumes_training_in_the_same_job(requeue_run, cluster):
    run = requeue_run
    assert not run.error, failure(run.log, cluster, run.workdir, run.error)
    assert run.returncode == 0, failure(run.log, cluster, run.workdir, "workflow failed")

    # One submission: Snakemake neither resubmitted nor retried; SLURM restarted the job.
    assert train_submissions(run.log) == [run.job_id], train_submissions(run.log)
    assert run.job["JobState"] == "COMPLETED" and run.job["Restarts"] == "1", run.job
    assert run.job["Partition"] == "gpu", run.job
    seen = [(state, restarts) for _, state, restarts, _ in run.states]
    assert ("PENDING", "1") in seen and ("RUNNING", "1") in seen, run.states
    assert seen.index(("PENDING", "1")) < seen.index(("RUNNING", "1")), run.states

    # Lightning's handler saved the hpc checkpoint on the signal, mid-training.
    hpc = sorted(run.state_dir.glob("hpc_ckpt_*.ckpt"))
    assert [p.name for p in hpc] == ["hpc_ckpt_1.ckpt"], hpc
    assert run.events["hpc checkpoint"] - run.events["training continued"] < 10, run.events
    model = load_model(run.workdir)
    training = model["training"]
    batch_size = model["hyperparameters"]["batch_size"]
    full_run_steps = REQUEUE_EPOCHS * math.ceil(training["n_train"] / batch_size)
    assert "hpc_ckpt_1.ckpt" in run.checkpoints, run.checkpoints
    hpc_step = run.checkpoints["hpc_ckpt_1.ckpt"][1]
    assert 0 < hpc_step < full_run_steps, run.checkpoints

    # The restarted job resumed from the newest checkpoint of the first attempt (train.py's
    # rule): the hpc checkpoint, unless the training wrote checkpoints/last.ckpt between the
    # signal and SLURM's SIGTERM (Lightning keeps training until then) - more progress, not
    # less. The step counter continued from it to the full run's count.
    newest = max(run.checkpoints, key=lambda name: run.checkpoints[name][0])
    print(f"\n[requeue run] resumed from {training['resumed_from']}, "
          f"{training['global_step']} steps in all")
    assert Path(training["state_dir"]).name == run.state_dir.name, training
    resumed = Path(training["resumed_from"])
    assert resumed.parts[-len(Path(newest).parts):] == Path(newest).parts, (training, newest)
    assert run.checkpoints[newest][1] >= hpc_step, run.checkpoints
    assert training["global_step"] == full_run_steps, (training["global_step"], full_run_steps)
    assert training["epochs"] == REQUEUE_EPOCHS, training
    train_log = (run.workdir / "logs" / "train" / f"{MODEL}.log").read_text()
    assert re.search(rf"resuming from \S*{re.escape(newest)}", train_log), train_log
    # Two attempts logged (Lightning's CSV logger: version_0 before, version_1 after).
    versions = sorted(p.name for p in (run.state_dir / "logs").glob("version_*"))
    assert versions == ["version_0", "version_1"], versions
