"""Shared pieces of the benchmark harness: result rows, timing, machine description, tables.

Nothing here imports Kwant or mesoinv, so the harness itself starts fast; each group module
imports what it measures.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Thread settings every benchmark runs under (Kwant's MUMPS is sequential; one rank per core).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Row:
    """One line of the results table.

    ``value`` is the headline number (for timings: the median wall-clock time); ``minimum``,
    ``cpu`` (median process CPU time) and ``n`` are filled for repeated timings. ``target`` is
    a human-readable bound such as ``"≥ 4×"`` and ``passed`` says whether the row meets it
    (None: no target). ``key`` is a stable identifier (tests and later comparisons use it);
    ``label`` is for people. A NaN ``value`` means "not measured" (shown as n/a).
    """

    key: str
    label: str
    value: float
    unit: str
    minimum: float | None = None
    cpu: float | None = None
    n: int | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""


@dataclass
class Timings:
    """Repeated measurements of one thing: wall-clock and process CPU seconds per repeat.

    The machines are shared: other processes steal the CPU and inflate wall-clock times, not
    this process's CPU time. Everything measured here is single-threaded (thread env = 1), so
    CPU time is the contention-robust estimate of the wall time on an idle core; the ratios
    use it.
    """

    wall: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(float(wall))
        self.cpus.append(float(cpu))

    def add_watch(self, *watches: "Stopwatch") -> None:
        """Add the sum of one or more stopwatches as one repeat."""
        self.add(sum(w.seconds for w in watches), sum(w.cpu_seconds for w in watches))

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpus)

    def row(self, key, label, note="", target="", passed=None) -> Row:
        return Row(key=key, label=label, value=self.median, unit="s", minimum=self.min,
                   cpu=self.cpu_median, n=len(self.wall), note=note, target=target,
                   passed=passed)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall) and ``sw.cpu_seconds``."""

    def __enter__(self):
        self._cpu = time.process_time()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._cpu
        return False


def ratio_row(key, label, numerator: Timings, denominator: Timings, *, target_min=None,
              target_max=None, note="") -> Row:
    """Ratio of two CPU-time medians (the wall-clock ratio goes in the note).

    PASS/MISS against ``target_min`` (≥) or ``target_max`` (≤).
    """
    value = numerator.cpu_median / denominator.cpu_median
    wall = numerator.median / denominator.median
    target, passed = "", None
    if target_min is not None:
        target, passed = f"≥ {target_min:g}×", value >= target_min
    elif target_max is not None:
        target, passed = f"≤ {target_max:g}×", value <= target_max
    note = f"wall-clock medians: {wall:.2f}×" + (f"; {note}" if note else "")
    return Row(key=key, label=label, value=value, unit="×", target=target, passed=passed,
               note=note)


# -- machine description ----------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _mem_total_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) / 2**20 if match else None


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as exc:  # noqa: BLE001 - a description, not a check
        return f"not importable ({type(exc).__name__})"
    return getattr(module, "__version__", "?")


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" (modified tracked files)" if dirty else "")


def loaded_blas_libraries() -> list[str]:
    """Resolved paths of the BLAS/LAPACK shared libraries mapped into this process.

    Call after importing what you want to inspect: kwant.linalg.mumps (through Debian's
    libmumps) links the system ``libblas.so.3``/``liblapack.so.3``, whose target the Debian
    alternatives choose (``.../blas/`` and ``.../lapack/`` are the reference implementation,
    ``.../openblas-*/`` OpenBLAS); numpy and scipy carry their own OpenBLAS.
    """
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    found = set()
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        name = os.path.basename(parts[-1]).lower()
        if name.startswith("lib") and any(tag in name for tag in ("blas", "lapack", "mkl",
                                                                  "blis")):
            found.add(os.path.realpath(parts[-1]))
    return sorted(found)


def _system_blas_kind(libraries: list[str]) -> str:
    """Which implementation the system ``libblas.so.3`` (the one MUMPS links) resolves to."""
    system = [path for path in libraries if os.path.basename(path).startswith("libblas.so")]
    if not system:
        openblas = [p for p in libraries if "openblas" in os.path.basename(p)
                    and "scipy_openblas" not in os.path.basename(p)]
        return f"OpenBLAS ({openblas[0]})" if openblas else "not found"
    path = system[0]
    if "/openblas" in path:
        kind = "OpenBLAS"
    elif "/blis" in path:
        kind = "BLIS"
    elif "/atlas" in path:
        kind = "ATLAS"
    elif "mkl" in path:
        kind = "MKL"
    elif "/blas/" in path:
        kind = "reference BLAS (netlib; slow)"
    else:
        kind = "unknown implementation"
    return f"{kind}: {path}"


def machine_description() -> list[tuple[str, str]]:
    """(name, value) pairs describing the machine and software the run used."""
    import numpy
    import scipy

    info = [
        ("date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("host CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} (usable by this process: "
                  f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})"),
    ]
    mem = _mem_total_gib()
    info.append(("RAM", f"{mem:.1f} GiB" if mem else "unknown"))
    try:
        load = os.getloadavg()
        info.append(("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load)))
    except OSError:
        pass
    info += [
        ("OS", platform.platform()),
        ("Python", sys.version.split()[0]),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("kwant", _version("kwant")),
        ("mesoinv revision", _git_revision()),
        ("thread env", ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in THREAD_ENV)),
    ]
    try:
        from kwant.linalg import mumps  # maps the libraries MUMPS links
        info.append(("MUMPS orderings available", ", ".join(mumps.possible_orderings())))
    except Exception as exc:  # noqa: BLE001
        info.append(("MUMPS", f"not importable ({type(exc).__name__}: {exc})"))
    blas = loaded_blas_libraries()
    info.append(("BLAS used by MUMPS (system libblas.so.3)", _system_blas_kind(blas)))
    info.append(("BLAS/LAPACK libraries loaded", ", ".join(blas) if blas else "none found"))
    return info


# -- output -----------------------------------------------------------------------------------

def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "—"
    if not math.isfinite(value):
        return str(value)
    if unit == "×":
        return f"{value:.2f}"
    if unit not in ("s", "rel") and float(value).is_integer():
        return f"{int(value):,}"
    if unit == "MB":
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"


TABLE_HEADER = ("| key | measurement | median / value | min | CPU median | n | unit | target "
                "| status | notes |\n"
                "|---|---|---:|---:|---:|---:|---|---|---|---|")


def table_markdown(rows: list[Row]) -> str:
    """The results as one Markdown table (one line per row, fixed columns)."""
    lines = [TABLE_HEADER]
    for row in rows:
        if math.isnan(row.value):
            status = "n/a"
        else:
            status = "" if row.passed is None else ("PASS" if row.passed else "MISS")
        cells = [f"`{row.key}`", row.label, _fmt(row.value, row.unit),
                 _fmt(row.minimum, row.unit), _fmt(row.cpu, row.unit),
                 "" if row.n is None else str(row.n), row.unit, row.target, status, row.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def machine_markdown(info: list[tuple[str, str]]) -> str:
    return "\n".join(f"- **{name}**: {value}" for name, value in info)
