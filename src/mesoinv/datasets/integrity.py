"""Per-sample checksums, physics invariants, and safe output files.

* :func:`sample_digest` — blake2b-64 over the *stored* values of one sample (every per-sample
  variable, in its storage dtype). Computed when the sample is computed (kept in its partial
  ``.npz``), written to the shard's ``sample_checksum`` variable, checked again by the
  validation and while the splits are merged. Independent of the HDF5 layout, so finite garbage
  written later through the netCDF library (which HDF5's own fletcher32 checksums would not see)
  is caught, as is a flipped bit on disk (which fletcher32 catches first).
* :func:`check_p1_physics`, :func:`check_p2_physics` — cheap invariants of the stored numbers:
  densities ≥ 0, parameters inside the dataset's ranges, conductance ≤ the open channels, and
  for a few samples per file the stored potential equals its rebuild from the stored random
  numbers (P1 Eq. (1) from the coefficients; P2 the seeded draw).
* :func:`check_writable`, :class:`OutputLock`, :func:`remove_stale_temporaries` — an output that
  cannot be written is refused before any sample is computed, with one line naming the path and
  the cause; two runs into one output are refused; temporary files of dead processes go away.
* :func:`check_outputs` — the outputs of a command (``predict``, ``simulate``, ``evaluate``),
  before any work: never one of its inputs, never an existing file unless ``--force``, each
  writable.
* :func:`check_samples` — the same invariants and checksums the validation applies, on the
  samples of a dataset-format file that a model is about to be applied to (``mesoinv
  predict``); :func:`first_negative` and :func:`conductance_outside` for bare arrays.
"""

import errno
import fcntl
import hashlib
import os
import resource
import shutil
import socket
from pathlib import Path

import numpy as np

__all__ = ["CHECKSUM_VARIABLE", "sample_digest", "check_p1_physics", "check_p2_physics",
           "OutputError", "OutputBusyError", "OutputExistsError", "InputDataError",
           "check_writable", "check_outputs", "same_file", "describe_io_error", "OutputLock",
           "remove_stale_temporaries", "check_samples", "first_negative",
           "conductance_outside", "conductance_bound_text", "DENSITY_VARIABLES"]

#: The per-sample checksum variable of every dataset file (format versions ≥ 2).
CHECKSUM_VARIABLE = "sample_checksum"

#: Samples per file whose potential is rebuilt from its random numbers by the validation.
REBUILT_SAMPLES_PER_FILE = 3


def sample_digest(values: dict) -> np.uint64:
    """blake2b (8 bytes, little-endian) over ``{variable: stored value}`` of one sample.

    Each variable contributes its name, dtype, shape and raw bytes, in sorted name order, so
    a value read back from a file (in its storage dtype) gives the digest it was written with.
    """
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(values):
        array = np.ascontiguousarray(values[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return np.uint64(int.from_bytes(digest.digest(), "little"))


# -- physics invariants ------------------------------------------------------------------------

def _rebuilt_positions(n: int) -> list[int]:
    return sorted({0, n // 2, n - 1}) if n else []


def _close(stored, rebuilt, what):
    stored = np.asarray(stored, dtype=float)
    rebuilt = np.asarray(rebuilt, dtype=float)
    scale = max(float(np.max(np.abs(rebuilt), initial=0.0)), 1e-300)
    difference = float(np.max(np.abs(stored - rebuilt), initial=0.0))
    # float32 storage rounds to 6e-8 relative; anything beyond 1e-5 is not round-off.
    if difference > 1e-5 * scale:
        return (f"{what} differs from its rebuild by {difference:.3g} (max |value| "
                f"{scale:.3g}): the stored numbers are not those of the simulation")
    return None


def check_p1_physics(spec, block: dict, ids: list, first: bool = True) -> str | None:
    """Invariants of a block of P1 samples ``{variable: array over samples}``.

    Returns the first problem as a message naming the sample, or None. The potential rebuild
    (Eq. (1) from the stored coefficients, s and N_d) runs for the first, middle and last sample
    of the block when ``first`` (the validation passes whole files as blocks of 64 and rebuilds
    a few samples per file).
    """
    pldos = block["pldos"]
    negative = np.flatnonzero((pldos < 0).reshape(len(ids), -1).any(axis=1))
    if len(negative):
        return f"variable pldos is negative (sample {ids[negative[0]]}): a density is ≥ 0"
    for name, (low, high) in (("dopant_distance", spec.dopant_distance_range_nm),
                              ("dopant_density", spec.dopant_density_range_cm2)):
        values = np.asarray(block[name], dtype=float)
        outside = np.flatnonzero((values < low * (1 - 1e-12)) | (values > high * (1 + 1e-12)))
        if len(outside):
            return (f"variable {name} = {values[outside[0]]:g} (sample {ids[outside[0]]}) is "
                    f"outside the dataset's range [{low:g}, {high:g}]")
    if not first:
        return None
    modes = spec.modes
    g = spec.geometry
    for position in _rebuilt_positions(len(ids)):
        disorder = spec.disorder(float(block["dopant_distance"][position]),
                                 float(block["dopant_density"][position]))
        coefficients = (np.asarray(block["fourier_coefficient_real"][position], dtype=float)
                        + 1j * np.asarray(block["fourier_coefficient_imag"][position],
                                          dtype=float))
        rebuilt = disorder.potential_meV(modes, coefficients, g.x_nm, g.y_nm)
        problem = _close(block["potential"][position], rebuilt,
                         f"the potential of sample {ids[position]}")
        if problem:
            return problem + " (P1 Eq. (1) from its stored coefficients)"
    return None


def check_p2_physics(spec, block: dict, ids: list, first: bool = True,
                     open_channels=None) -> str | None:
    """Invariants of a block of P2 samples (see :func:`check_p1_physics`): LDOS ≥ 0,
    0 ≤ G(B) ≤ open channels, and the seeded potential and antidot class of a few samples."""
    from ..physics.nanowire import random_potential
    from .base import sample_rng

    ldos = block["ldos"]
    negative = np.flatnonzero((ldos < 0).reshape(len(ids), -1).any(axis=1))
    if len(negative):
        return f"variable ldos is negative (sample {ids[negative[0]]}): a density is ≥ 0"
    conductance = np.asarray(block["conductance"], dtype=float)
    limit = (np.asarray(open_channels, dtype=float) if open_channels is not None
             else np.full(conductance.shape[-1], np.inf))
    bad = np.flatnonzero(((conductance < -1e-9) | (conductance > limit + 1e-6)).any(axis=1))
    if len(bad):
        return (f"variable conductance of sample {ids[bad[0]]} leaves [0, open channels] "
                f"(min {conductance[bad[0]].min():g}, max {conductance[bad[0]].max():g} e²/h)")
    if not first:
        return None
    store = np.dtype(spec.storage_dtype)
    for position in _rebuilt_positions(len(ids)):
        sample_id = int(ids[position])
        configuration, realization = spec.configuration_of(sample_id)
        if (int(block["configuration_id"][position]) != configuration
                or int(block["potential_realization"][position]) != realization):
            return (f"sample {sample_id} is stored as configuration "
                    f"{int(block['configuration_id'][position])}, realisation "
                    f"{int(block['potential_realization'][position])}; its id gives "
                    f"{configuration}, {realization}")
        centres = np.asarray(spec.classes.representatives[configuration], dtype=float)
        stored_centres = np.stack([block["antidot_x"][position], block["antidot_y"][position]],
                                  axis=-1)
        if not np.array_equal(stored_centres, centres):
            return f"the antidot centres of sample {sample_id} are not those of its class"
        rebuilt = random_potential(sample_rng(spec.seed, sample_id), spec.geometry,
                                   spec.potential_amplitude_t).astype(store)
        problem = _close(block["potential"][position], rebuilt,
                         f"the potential of sample {sample_id}")
        if problem:
            return problem + " (its seeded draw)"
    return None


# -- inputs of a model ------------------------------------------------------------------------

#: Per-sample variables that are densities of states (≥ 0).
DENSITY_VARIABLES = ("pldos", "ldos")

#: Tolerances of the conductance bounds, e²/h (as in :func:`check_p2_physics`).
CONDUCTANCE_TOLERANCE = (1e-9, 1e-6)


def first_negative(values):
    """(index tuple, value) of the first negative element of ``values``, or None."""
    values = np.asarray(values)
    flat = np.flatnonzero(values < 0)
    if not len(flat):
        return None
    index = np.unravel_index(flat[0], values.shape)
    return tuple(int(i) for i in index), float(values[index])


def conductance_outside(traces, open_channels=None):
    """(trace, field index, value) of the first conductance outside [0, open channels]
    (e²/h, per field; tolerances :data:`CONDUCTANCE_TOLERANCE`), or None. ``traces`` is
    (n, fields); ``open_channels`` a count per field, one count, or None (no upper bound)."""
    traces = np.asarray(traces, dtype=np.float64)
    traces = traces.reshape(len(traces), -1) if traces.ndim else traces.reshape(1, 1)
    limit = (np.broadcast_to(np.asarray(open_channels, dtype=np.float64), traces.shape[-1:])
             if open_channels is not None else np.full(traces.shape[-1], np.inf))
    low, high = CONDUCTANCE_TOLERANCE
    bad = np.argwhere((traces < -low) | (traces > limit + high))
    if not len(bad):
        return None
    row, column = (int(i) for i in bad[0])
    return row, column, float(traces[row, column])


def conductance_bound_text(open_channels, column) -> str:
    """How a conductance outside its bounds is described (:func:`conductance_outside`)."""
    if open_channels is None:
        return "is negative (a conductance is ≥ 0)"
    counts = np.atleast_1d(np.asarray(open_channels, dtype=np.float64))
    n = counts[column] if counts.size > 1 else counts[0]
    return f"is outside [0, {n:g}] (0 to the leads' {n:g} open channels)"


def _where(dimensions, index) -> str:
    return ", ".join(f"{d} {i}" for d, i in zip(dimensions, index))


def check_samples(path, positions=None) -> int:
    """Check the samples a model is about to read, as the validation checks a shard.

    For the rows ``positions`` (default every row) of a dataset-format netCDF file (P1 or P2):
    every floating-point per-sample value finite, the densities (:data:`DENSITY_VARIABLES`)
    ≥ 0, the conductance inside [0, open channels] (the file's ``open_channels`` per field),
    and each sample's stored values equal to its ``sample_checksum`` (when the file has one:
    format versions ≥ 2). Reads 64 samples at a time.

    Returns
    -------
    int
        The number of samples whose checksum was verified (0 for a file without checksums).

    Raises
    ------
    InputDataError
        ``<path>: sample <id>: …`` naming the variable, the value and where it is.
    """
    import netCDF4

    from .kinds import KINDS

    path = Path(path)
    verified = 0
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
        kind = KINDS.get(ds.getncattr("dataset_kind")) if "dataset_kind" in ds.ncattrs() else None
        names = (list(kind.per_sample_variables) if kind is not None
                 and all(n in ds.variables for n in kind.per_sample_variables) else
                 [n for n, v in ds.variables.items()
                  if v.dimensions[:1] == ("sample",) and n != CHECKSUM_VARIABLE])
        checksums = (np.asarray(ds[CHECKSUM_VARIABLE][:]) if CHECKSUM_VARIABLE in ds.variables
                     else None)
        open_channels = (np.asarray(ds["open_channels"][:], dtype=np.float64)
                         if "open_channels" in ds.variables else None)
        fields = np.asarray(ds["field"][:], dtype=np.float64) if "field" in ds.variables \
            else None
        rows = sorted({int(p) for p in (range(len(ids)) if positions is None else positions)})
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            index = (slice(chunk[0], chunk[-1] + 1) if chunk[-1] - chunk[0] + 1 == len(chunk)
                     else chunk)
            block = {name: np.asarray(ds[name][index]) for name in names}
            for row, position in enumerate(chunk):
                sample = int(ids[position])
                for name in names:
                    value = block[name][row]
                    dimensions = ds[name].dimensions[1:]
                    if np.asarray(value).dtype.kind == "f":
                        bad = np.argwhere(~np.isfinite(np.atleast_1d(value)))
                        if len(bad):
                            where = _where(dimensions, bad[0])
                            shown = np.atleast_1d(value)[tuple(bad[0])]
                            raise InputDataError(
                                f"{path}: sample {sample}: {name} = {shown} "
                                f"{'at ' + where + ' ' if where else ''}is not finite")
                    if name in DENSITY_VARIABLES:
                        negative = first_negative(value)
                        if negative is not None:
                            raise InputDataError(
                                f"{path}: sample {sample}: {name} = {negative[1]:.6g} at "
                                f"{_where(dimensions, negative[0])} is negative (a density of "
                                "states is ≥ 0)")
                    if name == "conductance":
                        outside = conductance_outside(value[None], open_channels)
                        if outside is not None:
                            _, column, shown = outside
                            field = f"B = {fields[column]:g} T" if fields is not None \
                                else f"field {column}"
                            raise InputDataError(
                                f"{path}: sample {sample}: conductance = {shown:.6g} e²/h at "
                                f"{field} {conductance_bound_text(open_channels, column)}")
                if checksums is not None:
                    if sample_digest({name: block[name][row] for name in names}) \
                            != checksums[position]:
                        raise InputDataError(
                            f"{path}: sample {sample} does not match its checksum "
                            f"({CHECKSUM_VARIABLE}): its stored numbers changed after it was "
                            "computed (a corrupt or edited file; validation would refuse it)")
                    verified += 1
    return verified


# -- outputs -----------------------------------------------------------------------------------

class OutputError(RuntimeError):
    """An output cannot be written; the message names the path and the cause (one line)."""


class OutputBusyError(RuntimeError):
    """Another run holds the output (see :class:`OutputLock`)."""


class OutputExistsError(OutputError):
    """An output exists and ``--force`` was not given, or it is one of the command's inputs."""


class InputDataError(ValueError):
    """Input samples fail an invariant or their checksum; the message names sample and value."""


def describe_io_error(error, directory) -> str:
    """The cause of a failed write in words: errno, or what the file system says.

    netCDF reports a full disk or a file-size limit only as "NetCDF: HDF error"; the free space
    and the process's file-size limit tell which.
    """
    code = getattr(error, "errno", None)
    causes = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
              errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.EISDIR: "it is a directory",
              errno.EFBIG: "file too large (file-size limit)", errno.ENOTDIR:
              "a parent is not a directory"}
    text = causes.get(code) or str(getattr(error, "strerror", None) or error) or type(error).__name__
    notes = []
    # Guess at a full disk only when the error itself does not say what happened (netCDF's
    # "HDF error", EIO): a read-only file system also reports no free space.
    if code not in causes:
        try:
            stat = os.statvfs(directory)
            free = stat.f_bavail * stat.f_frsize
        except OSError:
            free = None
        if free is not None and free < 16 * 2**20:
            notes.append(f"disk full? {free / 2**20:.1f} MiB free")
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and code != errno.EFBIG:
        notes.append(f"file-size limit (ulimit -f) {soft:,} bytes")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def check_writable(path) -> None:
    """Refuse an output that cannot be written, before any work: a directory in its place, a
    parent that cannot be created, a read-only or unwritable directory.

    Raises
    ------
    OutputError
        ``cannot write <path>: <cause>``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory (remove it or choose "
                          "another output path)")
    blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"cannot write {path}: a parent is not a directory ({blocker} is a "
                          "file)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.probe-{os.getpid()}")
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        probe.unlink()
    except OSError as error:
        where = path.parent if path.parent.exists() else path.parent.parent
        raise OutputError(f"cannot write {path}: {describe_io_error(error, where)}") from None


def same_file(a, b) -> bool:
    """Whether two paths name one file: the same inode when both exist (links included),
    else the same absolute path after resolving symbolic links."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve(strict=False) == b.resolve(strict=False)


def check_outputs(outputs, *, inputs=(), force: bool = False) -> None:
    """Refuse a command's outputs before it does any work.

    Parameters
    ----------
    outputs : sequence of path-like or None
        Every file the command will write (None entries are skipped).
    inputs : sequence of (str, path-like or None)
        What the command reads, as (description, path): ``("model file", model_path)``.
    force : bool
        ``--force``: existing outputs may be replaced (inputs never).

    Raises
    ------
    OutputExistsError
        An output is one of the inputs (always refused), two outputs are one file, or an
        output exists and ``force`` is false.
    OutputError
        An output cannot be written (:func:`check_writable`).
    """
    outputs = [Path(p) for p in outputs if p is not None]
    inputs = [(what, Path(p)) for what, p in inputs if p is not None]
    for position, path in enumerate(outputs):
        for what, source in inputs:
            if same_file(path, source):
                raise OutputExistsError(
                    f"refusing to write {path}: it is the {what} {source} (an output never "
                    "replaces an input, not even with --force; choose another output path)")
        for other in outputs[:position]:
            if same_file(path, other):
                raise OutputExistsError(f"refusing to write {path} twice: two outputs of the "
                                        "command name the same file")
        if path.is_dir():
            check_writable(path)  # "it is a directory"
        if (path.exists() or path.is_symlink()) and not force:
            raise OutputExistsError(f"refusing to overwrite existing {path} (give --force to "
                                    "replace it)")
        check_writable(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory, pattern: str) -> list[Path]:
    """Remove ``directory/pattern`` files (or staging directories) named ``…tmp-<pid>`` whose
    process is gone (a killed job, a full disk): they are never renamed into place, and nothing
    else would remove them."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.glob(pattern):
        pid = path.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


class OutputLock:
    """Exclusive lock of one output file for one run (``.<name>.lock`` beside it, flock).

    The kernel releases the lock when its process dies, so a killed run never blocks the
    next one. The lock file is removed on release; a run that opened it meanwhile notices that
    the inode it locked is no longer the path's and opens it again.
    """

    def __init__(self, output):
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}.lock")
        self.fd = None

    def acquire(self) -> "OutputLock":
        """Take the lock; a lock file that cannot be created or written (full disk, read-only
        file system) is an :class:`OutputError` naming it, and leaves no lock file behind."""
        try:
            return self._acquire()
        except OSError as error:
            where = self.path.parent if self.path.parent.exists() else self.path.parent.parent
            raise OutputError(f"cannot create the lock file {self.path} of {self.output}: "
                              f"{describe_io_error(error, where)}") from None

    def _acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputBusyError(
                    f"another run holds this output: {self.output} (lock {self.path}, held by "
                    f"{holder}); wait for it to finish or stop it, then rerun") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it meanwhile: lock the new file
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError:
            # we hold the lock: the file is ours to remove (as release does)
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
