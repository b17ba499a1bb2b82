"""Simulating a shard of sample ids with MPI ranks, resumably.

One shard job = one process group. The ranks share the shard's samples dynamically: each
claims the next unclaimed sample (an exclusive file creation, see :class:`_SampleClaims`), so a
rank that gets cheap samples takes more of them. Each finished sample is saved at once, atomically, as a small ``.npz`` file in
the shard's *partial directory*; when all are done rank 0 streams them, sorted by id, into the
shard's netCDF file (atomically) and removes the partial directory.

A killed job leaves its partial directory behind (it is not a declared Snakemake output, so
Snakemake does not delete it); the rerun computes only the missing samples. The directory name
carries the dataset's sample-config hash, so samples of a changed configuration are never
mixed in. Since a sample is a pure function of (seed, id, config), the shard is byte-identical
whatever the number of ranks, the order in which samples finished, or interruptions.

Without MPI (a single process) the same code runs without claims.

Rank 0 holds an exclusive lock of the output (:class:`~.integrity.OutputLock`) for the whole
run: a second run into the same output stops at once ("another run holds this output"). Before
any sample is computed the output is checked for writability (:func:`~.integrity.check_writable`),
so a read-only directory or a directory in the output's place fails in seconds, not after the
work. Each saved sample carries its checksum (:func:`~.integrity.sample_digest` of its stored
values); a partial sample that no longer matches it is recomputed.
"""

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .integrity import (OutputError, OutputLock, check_writable, describe_io_error,
                        remove_stale_temporaries, sample_digest)
from .kinds import kind_of

__all__ = ["simulate_shard", "SampleStore", "MPIWiringError", "mpi_world", "partial_dir_for"]

log = logging.getLogger(__name__)


class MPIWiringError(RuntimeError):
    """The job was launched for several MPI ranks but the ranks are not connected."""


def mpi_world(expect_ranks: int | None = None):
    """The MPI communicator of this process, checked against the launch.

    Parameters
    ----------
    expect_ranks : int, optional
        Ranks the job was launched with (the rule's ``tasks``). If given, the MPI world must have
        exactly this size. Independently, a process launched by SLURM with ``SLURM_NTASKS`` > 1
        that sees a world of size 1 was started without a PMI plugin (plain ``srun -n``): every
        task would compute the whole shard, so this is an error too.

    Raises
    ------
    MPIWiringError
        With the fix in the message.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    size = comm.Get_size()
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", os.environ.get("SLURM_NPROCS", "1")) or 1)
    launched_by_srun = "SLURM_STEP_ID" in os.environ or "SLURM_STEPID" in os.environ
    if expect_ranks is not None and size != expect_ranks:
        raise MPIWiringError(
            f"launched for {expect_ranks} MPI ranks but this process sees an MPI world of size "
            f"{size}: the ranks are not wired together and each would compute the whole shard. "
            "Launch with `mpiexec -n N` or `srun --mpi=pmi2 -n N` (see `srun --mpi=list`).")
    if size == 1 and slurm_tasks > 1 and launched_by_srun:
        raise MPIWiringError(
            f"SLURM started {slurm_tasks} tasks but this one sees an MPI world of size 1 (srun "
            "without a PMI plugin?). Use `srun --mpi=pmi2` (or pmix) so the tasks form one world.")
    return comm


def partial_dir_for(output, spec) -> Path:
    """Where the samples of the shard ``output`` are kept until the shard is complete."""
    output = Path(output)
    return output.with_name(f".{output.stem}.partial-{spec.config_hash[:16]}")


class SampleStore:
    """Finished samples of one shard, one atomically written ``.npz`` file each.

    Parameters
    ----------
    directory : path-like
    sample_class : type
        The kind's sample dataclass; its fields are saved one array each.
    """

    #: Name of the checksum entry in a sample's ``.npz`` (not a field of the sample).
    CHECKSUM_KEY = "_sample_checksum"

    def __init__(self, directory, sample_class, digest=None):
        self.directory = Path(directory)
        self.sample_class = sample_class
        self.digest = digest  # sample -> np.uint64 of its stored values, or None

    def path(self, sample_id: int) -> Path:
        return self.directory / f"sample-{sample_id:09d}.npz"

    def _write(self, final: Path, write) -> None:
        """``write(handle)`` into a temporary file renamed to ``final``; on any failure the
        temporary file is removed and an I/O error names the path and the cause."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise OutputError(f"cannot write {final}: "
                                  f"{describe_io_error(error, self.directory)}") from error
            raise

    def save(self, sample) -> None:
        """Write one sample (and its checksum); it appears under its final name only once
        complete."""
        extra = {} if self.digest is None else {self.CHECKSUM_KEY: self.digest(sample)}
        self._write(self.path(sample.sample_id),
                    lambda handle: np.savez(handle, **dataclasses.asdict(sample), **extra))

    def load(self, sample_id: int):
        """The saved sample; ValueError if it no longer matches its checksum."""
        with np.load(self.path(sample_id)) as data:
            fields = {name: (data[name].item() if data[name].ndim == 0 else data[name])
                      for name in data.files}
        stored = fields.pop(self.CHECKSUM_KEY, None)
        sample = self.sample_class(**fields)
        if self.digest is not None and stored is not None and self.digest(sample) != stored:
            raise ValueError(f"{self.path(sample_id)} does not match its checksum")
        return sample

    def finished(self, sample_ids) -> set[int]:
        """Ids whose file exists and reads back whole; unreadable files are removed, and so
        are temporary files of dead processes."""
        remove_stale_temporaries(self.directory, ".*.tmp-*")
        done = set()
        for sample_id in sample_ids:
            path = self.path(sample_id)
            if not path.exists():
                continue
            try:
                if self.load(sample_id).sample_id != sample_id:
                    raise ValueError("wrong sample id inside")
            except Exception as error:  # a truncated or foreign file: recompute it
                log.warning("discarding unreadable partial sample %s (%s)", path, error)
                path.unlink(missing_ok=True)
                continue
            done.add(sample_id)
        return done

    def failure_path(self, sample_id: int) -> Path:
        return self.directory / f"failed-{sample_id:09d}.json"

    def save_failure(self, sample_id: int, reason: str) -> None:
        """Record a sample that failed twice (``on_failure="skip"``), atomically."""
        text = json.dumps({"sample_id": int(sample_id), "reason": reason}).encode()
        self._write(self.failure_path(sample_id), lambda handle: handle.write(text))

    def failures(self, sample_ids) -> dict[int, str]:
        """{id: reason} of the recorded failures among ``sample_ids``."""
        out = {}
        for sample_id in sample_ids:
            path = self.failure_path(sample_id)
            if path.exists():
                out[sample_id] = json.loads(path.read_text())["reason"]
        return out

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _LazySamples:
    """Samples read from a store one at a time, in id order (bounded memory when writing)."""

    def __init__(self, store: SampleStore, sample_ids):
        self.store, self.sample_ids = store, list(sample_ids)

    def __len__(self):
        return len(self.sample_ids)

    def __iter__(self):
        for sample_id in self.sample_ids:
            yield self.store.load(sample_id)


class _SampleClaims:
    """Dynamic work sharing: a rank takes the next sample nobody has claimed yet.

    A claim is the exclusive creation (``O_CREAT | O_EXCL``, atomic on POSIX and NFSv3+
    filesystems) of a file named after the sample in a directory private to this run (a token
    from rank 0), inside the shard's partial directory, which all ranks share anyway. A rank
    that draws cheap samples simply claims more of them. Unlike an MPI one-sided counter, a
    claim needs no progress from the other ranks: measured with MPICH, a fetch-and-add on
    rank 0's window waited until rank 0 left its current MUMPS factorization, and two ranks ran
    only 1.3× faster than one. Claims of a killed run sit in another token's directory and are
    ignored; the partial directory (claims included) is removed when the shard is written.
    """

    def __init__(self, comm, directory: Path, n_items: int):
        self.size = comm.Get_size()
        self.n_items = n_items
        self.position = 0
        if self.size > 1:
            token = comm.bcast(os.urandom(8).hex() if comm.Get_rank() == 0 else None, root=0)
            self.directory = directory / f".claims-{token}"
            if comm.Get_rank() == 0:
                self.directory.mkdir(parents=True, exist_ok=True)
            comm.Barrier()

    def next(self) -> int:
        """Index of the next item this rank owns, or ``n_items`` when none is left."""
        while self.position < self.n_items:
            index = self.position
            self.position += 1
            if self.size == 1:
                return index
            try:
                os.close(os.open(self.directory / f"{index:09d}",
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return index
        return self.n_items


#: Fault injection for tests of the failure handling, for every dataset kind: a comma-separated
#: list of sample ids whose simulation raises FloatingPointError at every attempt, as a solver
#: failure would.
FAULT_INJECTION_VARIABLE = "MESOINV_INJECT_SAMPLE_FAILURES"


def _injected_failures() -> set[int]:
    text = os.environ.get(FAULT_INJECTION_VARIABLE, "")
    return {int(part) for part in text.split(",") if part.strip()}


def _simulate(simulator, sample_id, injected):
    if sample_id in injected:
        raise FloatingPointError(f"injected failure ({FAULT_INJECTION_VARIABLE})")
    return simulator.simulate(sample_id)


def _simulate_with_retry(simulator, sample_id, injected=frozenset()):
    """One retry: a transient failure (e.g. a MUMPS memory error) should not lose a job."""
    try:
        return _simulate(simulator, sample_id, injected)
    except Exception as first:
        log.warning("sample %d failed (%s: %s); retrying once", sample_id,
                    type(first).__name__, first)
        try:
            return _simulate(simulator, sample_id, injected)
        except Exception as second:
            raise RuntimeError(f"sample {sample_id} failed twice: "
                               f"{type(second).__name__}: {second}") from second


def simulate_shard(spec, sample_ids, output, *, comm=None, progress=True,
                   partial_dir=None, on_failure="fail"):
    """Simulate ``sample_ids`` on all ranks of ``comm`` and write one netCDF file (rank 0).

    Parameters
    ----------
    spec : dataset spec of any kind (:mod:`mesoinv.datasets.kinds`)
    sample_ids : iterable of int
        Distinct ids; written sorted.
    output : path-like
        The shard file; it appears only when complete.
    comm : mpi4py communicator, optional
        All ranks must call this function with the same arguments. None: a single process.
    progress : bool
        Progress bar on rank 0 (counts that rank's samples when there are several ranks).
    partial_dir : path-like, optional
        Directory of finished samples; default :func:`partial_dir_for`.
    on_failure : {"fail", "skip"}
        A sample that fails twice (solver error, non-finite result) either fails the job with its
        id and the reason ("fail"), or is recorded and left out of the shard ("skip"); the shard's
        ``failed_samples`` attribute lists it, and the validation and the report show it.

    Returns
    -------
    dict
        On rank 0: ``{"computed": n, "reused": m, "ranks": size, "failed": {id: reason}}``.
    """
    if on_failure not in ("fail", "skip"):
        raise ValueError(f"on_failure must be 'fail' or 'skip', not {on_failure!r}")
    ids = sorted(int(i) for i in sample_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate sample ids")
    if ids and ids[0] < 0:
        raise ValueError(f"sample ids are non-negative, got {ids[0]}")
    if ids and spec.n_samples is not None and ids[-1] >= spec.n_samples:
        raise ValueError(f"sample ids must lie in 0…{spec.n_samples - 1} for dataset "
                         f"'{spec.name}', got {ids[0]}…{ids[-1]}")
    limit = getattr(spec, "max_samples", None)  # a definition has no n_samples; P2 has a limit
    if ids and limit is not None and ids[-1] >= limit:
        raise ValueError(f"dataset '{spec.name}' has samples 0…{limit - 1} only, got "
                         f"{ids[0]}…{ids[-1]}")
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_SELF
    rank, size = comm.Get_rank(), comm.Get_size()
    output = Path(output)
    kind = kind_of(spec)
    # Before any work: the output must be writable and no other run may hold it.
    lock, problem = None, None
    if rank == 0:
        try:
            check_writable(output)
            lock = OutputLock(output).acquire()
        except RuntimeError as error:  # OutputError, OutputBusyError
            problem = error
    problem = comm.bcast(problem, root=0)
    if problem is not None:
        problem.raised_on_all_ranks = True  # every rank stops: no MPI abort needed
        raise problem
    try:
        return _simulate_locked(spec, ids, output, comm, kind, progress=progress,
                                partial_dir=partial_dir, on_failure=on_failure)
    finally:
        if lock is not None:
            lock.release()


def _simulate_locked(spec, ids, output, comm, kind, *, progress, partial_dir, on_failure):
    """:func:`simulate_shard` once the output is known writable and locked by rank 0."""
    rank, size = comm.Get_rank(), comm.Get_size()
    store = SampleStore(partial_dir if partial_dir is not None else partial_dir_for(output, spec),
                        kind.sample_class,
                        digest=lambda sample: sample_digest(kind.stored_values(spec, sample)))

    todo = None
    if rank == 0:
        done = store.finished(ids)
        done |= set(store.failures(ids)) if on_failure == "skip" else set()
        todo = [i for i in ids if i not in done]
        if done:
            log.info("resuming: %d of %d samples already done in %s", len(done), len(ids),
                     store.directory)
    todo = comm.bcast(todo, root=0)
    reused = len(ids) - len(todo)

    simulator = kind.simulator_class(spec)
    injected = _injected_failures()
    claims = _SampleClaims(comm, store.directory, len(todo))
    computed = 0
    bar = tqdm(total=len(todo), desc=f"{spec.name} rank {rank}/{size}", unit="sample",
               disable=not (progress and rank == 0), file=sys.stderr)
    try:
        while True:
            index = claims.next()
            if index >= len(todo):
                break
            sample_id = todo[index]
            started = time.perf_counter()
            try:
                sample = _simulate_with_retry(simulator, sample_id, injected)
            except RuntimeError as error:
                if on_failure == "fail":
                    raise
                log.warning("sample %d left out of the shard (on_failure=skip): %s",
                            sample_id, error)
                store.save_failure(sample_id, str(error))
            else:
                store.save(sample)  # an I/O error here stops the job (OutputError)
                # A failure recorded by an earlier run in "skip" mode no longer holds.
                store.failure_path(sample_id).unlink(missing_ok=True)
            computed += 1
            bar.update()
            log.info("rank %d of %d: sample %d in %.3f s", rank, size, sample_id,
                     time.perf_counter() - started)
    finally:
        bar.close()
    comm.Barrier()
    computed_all = comm.reduce(computed, root=0)
    result = None
    if rank == 0:
        failed = store.failures(ids)
        kept = [i for i in ids if i not in failed]
        failed_json = json.dumps([{"sample_id": i, "reason": failed[i]} for i in sorted(failed)])
        try:
            kind.write(output, spec, _LazySamples(store, kept),
                       extra_attributes={"failed_samples": failed_json},
                       **simulator.file_metadata())
        except OutputError as error:  # e.g. a full disk: the computed samples are not lost
            raise OutputError(f"{error}; the finished samples stay in {store.directory} and a "
                              "rerun reuses them") from error
        store.remove()
        log.info("wrote %s: %d samples (%d computed by %d ranks, %d reused, %d failed and left "
                 "out)", output, len(kept), computed_all, size, reused, len(failed))
        result = {"computed": computed_all, "reused": reused, "ranks": size, "failed": failed}
    comm.Barrier()
    return result
