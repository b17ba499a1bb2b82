"""A real single-node SLURM for the tests, started and stopped by the test session itself.

``SlurmCluster`` is a context manager: it starts a private munged, slurmctld and slurmd (Debian
12's Slurm 22.05 packages) in a temporary directory and, on exit, cancels the jobs left in its
queue, stops exactly the daemons it started and removes its directory. Nothing outside that
directory is written: no /etc/munge key, no /run/munge, no /etc/slurm, no system munged.

Layout (NOTES.md §3): one node ``localhost`` with all of this machine's CPUs and half of its
available memory, partitions ``cpu`` (default) and ``gpu``; the gpu partition's node carries a
fake ``gpu:1`` GRES (``File=/dev/null``) so GPU requests (``sbatch -p gpu --gpus=1``) can be
scheduled without a GPU. ``MpiDefault=none``: as on most clusters, MPI programs need
``srun --mpi=pmi2``.

Two test sessions on one machine do not collide: each has its own directory (state, spool,
logs, pids, its own munge key and socket, given to Slurm with ``AuthInfo=socket=``), its own
``ClusterName``, its own free ports for slurmctld and slurmd and a random first job id.

slurmd runs in a private mount namespace in which this cluster's etc/ is bind-mounted on
/etc/slurm, so that ``srun`` inside a job finds the configuration at the default path: the
Snakemake SLURM plugin's job side removes ``SLURM_CONF`` (with every ``SLURM_*`` variable)
before it runs ``srun`` or a rule's command. The real /etc/slurm is not changed.

In tests use the ``slurm_cluster`` fixture (session scope), imported into the test module::

    from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)

It skips when not root or when the Slurm/munge binaries are missing, except when the
environment variable ``CI`` is set: then it fails, because CI must run these tests.
While it lives, ``SLURM_CONF`` points at its slurm.conf in ``os.environ``, so sbatch, srun,
squeue and any snakemake started by a test talk to this cluster.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["SlurmCluster", "SlurmStartError", "slurm_cluster", "unavailable_reason"]

SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel",
                  "scontrol", "unshare", "mount")
MUNGE_BINARIES = ("munged", "munge", "unmunge")
MUNGE_USER = "munge"
DEFAULT_CONF_DIR = "/etc/slurm"  # where Debian's Slurm looks for slurm.conf without SLURM_CONF


class SlurmStartError(RuntimeError):
    """The cluster did not come up; the message carries the daemons' logs."""


def unavailable_reason() -> str | None:
    """Why a SLURM cluster cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (slurmd and munged are started by the test session)"
    missing = [name for name in SLURM_BINARIES + MUNGE_BINARIES if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing:
        return ("Slurm/munge binaries missing: " + ", ".join(missing)
                + " (Debian: apt-get install slurmctld slurmd slurm-client munge; "
                  "scripts/bootstrap.sh --with-slurm)")
    try:
        import pwd

        pwd.getpwnam(MUNGE_USER)
    except KeyError:
        return f"no '{MUNGE_USER}' user (the munge package creates it)"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(count: int) -> list[int]:
    """Ports free on this machine right now (held together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("0.0.0.0", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _meminfo_mb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"{key} not in /proc/meminfo")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"    ({path}: {error})"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"


class SlurmCluster:
    """A private single-node SLURM (slurmctld + slurmd + munged) in a temporary directory.

    Parameters
    ----------
    cpus:
        CPUs of the node; default: the CPUs this process may use (``nproc``). More than that
        oversubscribes the machine (``SlurmdParameters=config_overrides``): the tests use it
        so that a few small jobs can run side by side on a 2-core runner.
    real_memory_mb:
        Memory of the node for scheduling; default: half of MemAvailable (a value below the
        machine's memory, or slurmd would mark the node INVAL).
    start_timeout:
        Seconds to wait for the node to become idle.
    """

    def __init__(self, cpus: int | None = None, real_memory_mb: int | None = None,
                 start_timeout: float = 60.0):
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.real_memory_mb = real_memory_mb or max(1000, _meminfo_mb("MemAvailable") // 2)
        self.start_timeout = start_timeout
        # Slurm lower-cases cluster names; keep it short and unique per session.
        self.cluster_name = f"mesoinv{os.getpid()}{secrets.token_hex(3)}"
        # Job ids start at a random number: two sessions both running "job 1, step 0" would
        # share id-derived names on this host (MPICH names its /dev/shm segments after the
        # PMI job name "<jobid>.<stepid>", and the two MPI jobs hang in each other's segment).
        self.first_job_id = 1000 + secrets.randbelow(60_000_000)
        self.root: Path | None = None
        self.conf: Path | None = None
        self.ctld_port = self.slurmd_port = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._started = False

    # ----------------------------------------------------------------------------------------
    # paths
    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge-run" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """Environment for commands that should talk to this cluster (no inherited SLURM_*)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    # ----------------------------------------------------------------------------------------
    # start / stop
    def __enter__(self) -> "SlurmCluster":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        if self._started:
            raise RuntimeError("cluster already started")
        self._started = True
        try:
            self._make_directories()
            self._start_munged()
            self._write_config()
            self._start_daemons()
            self._wait_until_idle()
        except BaseException:
            self.stop()
            raise

    def _make_directories(self) -> None:
        # Short path under /tmp: the munge socket path must stay below ~108 characters.
        self.root = Path(tempfile.mkdtemp(prefix="mesoinv-slurm-", dir="/tmp"))
        self.root.chmod(0o755)  # munged (user munge) must traverse it
        for sub in ("etc", "state", "spool", "log", "run"):
            (self.root / sub).mkdir()

    def _start_munged(self) -> None:
        """A munged of our own: own key (mode 400, owner munge) and socket, run as munge."""
        import pwd

        munge = pwd.getpwnam(MUNGE_USER)
        key_dir = self.root / "munge"        # 0700: the key's directory
        run_dir = self.munge_socket.parent   # 0755: munged insists the socket dir is searchable
        for directory, mode in ((key_dir, 0o700), (run_dir, 0o755)):
            directory.mkdir()
            os.chown(directory, munge.pw_uid, munge.pw_gid)
            directory.chmod(mode)
        key = key_dir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
        log = open(self.log_dir / "munged.log", "wb")
        self._procs["munged"] = subprocess.Popen(
            [_binary("munged"), "--foreground", f"--socket={self.munge_socket}",
             f"--key-file={key}", f"--pid-file={run_dir / 'munged.pid'}",
             f"--seed-file={key_dir / 'munged.seed'}", f"--log-file={key_dir / 'munged.file.log'}"],
            user=munge.pw_uid, group=munge.pw_gid, extra_groups=[],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=run_dir)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._procs["munged"].poll() is not None:
                break
            if self.munge_socket.exists():
                check = subprocess.run(
                    f"{_binary('munge')} -n -S {self.munge_socket} | "
                    f"{_binary('unmunge')} -S {self.munge_socket}",
                    shell=True, capture_output=True, text=True)
                if check.returncode == 0:
                    return
            time.sleep(0.1)
        raise SlurmStartError("munged did not start (munge -n | unmunge failed)\n"
                              + self._daemon_logs())

    def _write_config(self) -> None:
        self.ctld_port, self.slurmd_port = _free_ports(2)
        r = self.root
        etc = r / "etc"
        (etc / "plugstack.conf").write_text("")  # no site SPANK plugins
        (etc / "gres.conf").write_text(
            "# a fake GPU: File=/dev/null gives slurmd a device to count (Count= alone gives 0)\n"
            "NodeName=localhost Name=gpu File=/dev/null\n")
        self.conf = etc / "slurm.conf"
        # More CPUs than the machine has: slurmd would mark the node INVAL without this.
        overrides = ("SlurmdParameters=config_overrides\n"
                     if self.cpus > len(os.sched_getaffinity(0)) else "")
        self.conf.write_text(f"""\
# Written by tests/slurm_cluster.py for one test session; removed at its end.
ClusterName={self.cluster_name}
SlurmctldHost=localhost
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}/slurmd-%n
SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}
SlurmdPidFile={r / 'run' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={etc / 'plugstack.conf'}
MailProg=/bin/true
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
FirstJobId={self.first_job_id}
# Finished jobs stay visible to squeue for 300 s: Snakemake's SLURM plugin polls with squeue
# (no accounting database here) and must still see COMPLETED/FAILED.
MinJobAge=300
KillWait=5
SchedulerType=sched/backfill
GresTypes=gpu
{overrides}NodeName=localhost CPUs={self.cpus} RealMemory={self.real_memory_mb} Gres=gpu:1
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")

    def _start_daemons(self) -> None:
        # slurmd runs in a private mount namespace where our etc/ is bind-mounted on
        # /etc/slurm. Jobs are its descendants, so inside them Slurm's default config path is
        # this cluster's slurm.conf. That matters: Snakemake's jobstep plugin strips every
        # SLURM_* variable (SLURM_CONF included) before it runs `srun` or the rule's command,
        # so `srun` inside a job finds its config only at the default path. Other processes
        # (and other test sessions, each with its own namespace) keep the real /etc/slurm.
        etc = self.conf.parent
        slurmd = (f"mount --bind {etc} {DEFAULT_CONF_DIR} && "
                  f"exec {_binary('slurmd')} -D -f {etc / 'slurm.conf'}")
        commands = {
            "slurmctld": [_binary("slurmctld"), "-D", "-i", "-f", str(self.conf)],
            "slurmd": [_binary("unshare"), "--mount", "--propagation", "private", "--",
                       "/bin/sh", "-c", slurmd],
        }
        if not Path(DEFAULT_CONF_DIR).is_dir():
            # The mount point must exist; Debian's slurm-client creates it. Never removed:
            # another session's slurmd may use it as its mount point.
            Path(DEFAULT_CONF_DIR).mkdir(parents=True, exist_ok=True)
        for name, command in commands.items():
            out = open(self.log_dir / f"{name}.stdout", "wb")
            self._procs[name] = subprocess.Popen(
                command, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
            out.close()

    def _wait_until_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmStartError(f"{name} exited with status {proc.returncode}\n"
                                          + self._daemon_logs())
            result = self.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False)
            state = result.stdout.strip()
            if result.returncode == 0 and re.search(r"^localhost idle$", state, re.M):
                return
            if re.search(r"inval|drain|down\b", state):
                reason = self.run(["scontrol", "show", "node", "localhost"], check=False).stdout
                raise SlurmStartError(f"node not usable: {state}\n{reason}\n"
                                      + self._daemon_logs())
            time.sleep(0.25)
        raise SlurmStartError(f"node not idle after {self.start_timeout:.0f} s "
                              f"(sinfo: {state!r})\n" + self._daemon_logs())

    def stop(self) -> None:
        """Cancel this cluster's jobs, stop the daemons it started, remove its directory."""
        if self.conf is not None and self._procs.get("slurmctld") is not None \
                and self._procs["slurmctld"].poll() is None:
            self.cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._kill_leftover_steps()
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def cancel_all_jobs(self, timeout: float = 30.0) -> None:
        """scancel every job of this cluster and wait until none is running."""
        ids = self.job_ids()
        if ids:
            self.run(["scancel", *ids], check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.run(["squeue", "-h", "-o", "%T"], check=False).stdout.split()
            if not any(s in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")
                       for s in states):
                return
            time.sleep(0.5)

    def _kill_leftover_steps(self) -> None:
        """slurmstepd daemonizes away from slurmd; end any of ours (they hold our spool dir)."""
        if self.root is None:
            return
        spool = str(self.root / "spool")
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                if not (proc_dir / "cmdline").read_bytes().startswith(b"slurmstepd"):
                    continue
                fds = [os.readlink(fd) for fd in (proc_dir / "fd").iterdir()]
            except OSError:
                continue
            if any(target.startswith(spool) for target in fds):
                try:
                    os.kill(int(proc_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # ----------------------------------------------------------------------------------------
    # helpers for tests
    def run(self, args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster; text output captured."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return subprocess.run(args, env=self.env, check=check, **kwargs)

    def job_ids(self) -> list[str]:
        return self.run(["squeue", "-h", "-o", "%i"], check=False).stdout.split()

    def sbatch(self, *options: str, script: str, cwd: Path) -> str:
        """Submit a batch script (text); return the job id."""
        path = Path(cwd) / f"job-{secrets.token_hex(4)}.sh"
        path.write_text(script if script.startswith("#!") else "#!/bin/bash\n" + script)
        result = self.run(["sbatch", "--parsable", *options, str(path)], cwd=cwd)
        return result.stdout.strip().split(";")[0]

    def job_state(self, job_id: str) -> str:
        out = self.run(["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"],
                       check=False).stdout.strip()
        return out or "UNKNOWN"

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        """Wait until the job has finished; return its final state (e.g. COMPLETED)."""
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "UNKNOWN"):
                return state
            time.sleep(0.25)
        raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s\n"
                           + self._daemon_logs())

    def submitted_job_ids(self) -> list[str]:
        """Job ids slurmctld accepted from sbatch, read from its log."""
        text = (self.log_dir / "slurmctld.log").read_text(errors="replace")
        return re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)

    def _daemon_logs(self) -> str:
        parts = []
        for name in ("munged.log", "slurmctld.stdout", "slurmctld.log", "slurmd.stdout",
                     "slurmd.log"):
            path = self.log_dir / name
            if path.exists():
                parts.append(f"--- {path}\n{_tail(path)}")
        return "\n".join(parts)

    def daemon_logs(self) -> str:
        """The tails of munged/slurmctld/slurmd logs (for assertion messages)."""
        return self._daemon_logs() if self.root is not None else "(cluster stopped)"


def require_slurm() -> None:
    """Skip (or, with CI set, fail) when no SLURM cluster can be started here."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the SLURM tests must run, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM; SLURM_CONF exported while it lives.

    The node claims at least 4 CPUs (oversubscribing a 2-core runner) so that two 2-rank MPI
    shards, or a shard and a figure, can run side by side: the tests check submission and
    wiring, not throughput.
    """
    require_slurm()
    with SlurmCluster(cpus=max(4, len(os.sched_getaffinity(0)))) as cluster:
        saved = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
