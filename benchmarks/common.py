"""Shared pieces of the benchmark harness: result rows, timing, machine description, tables,
and the pieces the "training" group's three model families share (step clock, steady-state
timing, Lightning vs plain-loop runs, P1 split files, throughput/overhead/paired-ratio rows).

Nothing here imports Kwant, torch or mesoinv at module level, so the harness itself starts
fast; each function imports what it measures.
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


# -- rows of the training group ---------------------------------------------------------------

#: Lightning's overhead per step over the plain loop: target (%).
TARGET_OVERHEAD_PERCENT = 5.0


def rate_row(key, label, per_unit: Timings, count: int, unit: str, note="") -> Row:
    """Throughput from a per-step (or per-map) timing: value = count / wall median, CPU column
    = count / CPU median."""
    return Row(key, label, count / per_unit.median, unit, cpu=count / per_unit.cpu_median,
               n=len(per_unit.wall), note=note)


def overhead_row(key, label, lightning: Timings, plain: Timings, paired, target=True) -> Row:
    """Overhead in %: 100 × (median over repeats of the per-repeat CPU-time ratio − 1).

    Each repeat runs both loops back to back (order alternating), so the per-repeat ratio
    cancels the drift of the machine's load between repeats; the note has the ratio of the
    CPU medians, of the wall-clock medians, and the difference in ms.
    """
    value = 100.0 * (statistics.median(paired) - 1.0)
    of_medians = 100.0 * (lightning.cpu_median / plain.cpu_median - 1.0)
    wall = 100.0 * (lightning.median / plain.median - 1.0)
    diff_ms = 1e3 * (lightning.cpu_median - plain.cpu_median)
    note = (f"median of {len(paired)} per-repeat CPU ratios (range "
            f"{100 * (min(paired) - 1):+.1f} … {100 * (max(paired) - 1):+.1f} %); ratio of CPU "
            f"medians {of_medians:+.1f} %, of wall-clock medians {wall:+.1f} %; "
            f"{diff_ms:+.1f} ms per step")
    return Row(key, label, value, "%",
               target=f"≤ {TARGET_OVERHEAD_PERCENT:g} %" if target else "",
               passed=(value <= TARGET_OVERHEAD_PERCENT) if target else None, note=note)


def paired_ratio_row(key, label, numerator: Timings, denominator: Timings, paired,
                     note="") -> Row:
    """Ratio (×): the median of the per-repeat CPU-time ratios; the note has their range and
    the ratios of the CPU and wall-clock medians."""
    value = statistics.median(paired)
    text = (f"median of {len(paired)} per-repeat CPU ratios (range {min(paired):.2f} … "
            f"{max(paired):.2f}); ratio of CPU medians "
            f"{numerator.cpu_median / denominator.cpu_median:.2f}, of wall-clock medians "
            f"{numerator.median / denominator.median:.2f}")
    return Row(key, label, value, "×", note=text + (f"; {note}" if note else ""))


# -- training group: progress, steady-state step timing ---------------------------------------

def progress(message: str) -> None:
    """A progress line of the training group on stderr."""
    print(f"[training] {message}", file=sys.stderr, flush=True)


def steady_state(stamps, warmup, timed):
    """(wall, cpu) seconds per step between the end of step ``warmup`` and ``warmup + timed``.

    ``stamps``: (perf_counter, process_time) at the end of every step, in seconds.
    """
    (w0, c0), (w1, c1) = stamps[warmup - 1], stamps[warmup + timed - 1]
    return (w1 - w0) / timed, (c1 - c0) / timed


def step_clock():
    """A Lightning callback that reads the wall and CPU clocks (s) and the loss at the end of
    every training step (``.stamps``, ``.losses``)."""
    import pytorch_lightning as pl

    class StepClock(pl.Callback):
        """Wall and CPU clock and the loss at the end of every training step."""

        def __init__(self):
            self.stamps, self.losses = [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(outputs["loss"].item())
            self.stamps.append((time.perf_counter(), time.process_time()))

    return StepClock()


def timed_trainer(n_steps: int, clock):
    """A bare CPU ``pl.Trainer`` of ``n_steps`` steps (one epoch at most) with ``clock`` as its
    only callback: logger, checkpoints, progress bar, model summary, sanity and validation
    steps off; fp32, deterministic."""
    import pytorch_lightning as pl

    return pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=n_steps,
                      max_epochs=1, callbacks=[clock], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, deterministic=True)


def state_copy(network) -> dict:
    """A detached copy of ``network``'s state dict (initial weights every run restarts from)."""
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


# -- training group: the P1 models' data, networks and loops ----------------------------------

#: The config every P1 training row takes its model entries from (the demo's).
MODEL_CONFIG = "config/config.yaml"

#: Train-loader modes of the (c) rows: (row name, ImageDataModule data_mode, workers).
LOADER_MODES = (("stream0", "stream", 0), ("stream1", "stream", 1), ("ram", "ram", 0),
                ("device", "device", 0))


@dataclass(frozen=True)
class P1Config:
    """Problem size and repeat counts of one part of a P1 training run."""

    config_file: str     # P1 dataset spec (geometry, fields) from this config's p1_varying
    n_unique: int        # distinct simulated samples, repeated to fill the split
    batch_size: int
    warmup_steps: int    # W: untimed steps at the start of every training run
    timed_steps: int     # T: timed steps after warm-up (train split = (W + T) batches)
    n_repeats: int       # interleaved repeats of every path
    n_predict: int       # maps per predict repeat
    loader_modes: tuple = tuple(name for name, _, _ in LOADER_MODES)
    train_model: bool = True
    fixed_cost: bool = True  # also time both loops with a one-layer network
    potential_models: bool = False  # also the P1 potential models (training_p1_potential)
    potential_batch: int | None = None  # their batch size (None: each model's config entry)
    seed: int = 1


def write_splits(cfg: P1Config, directory: Path, dataset: str = "p1_varying",
                 batch_size: int | None = None, prefix: str = "bench"):
    """Train and val files in the P1 split format of ``cfg.config_file``'s ``dataset``
    (every stored variable: PLDOS, potential, coefficients, modes, parameters); the train
    split holds (W + T) batches of ``batch_size`` (default ``cfg.batch_size``). Returns
    (train, val, spec)."""
    from dataclasses import replace

    from mesoinv.config import load_config
    from mesoinv.datasets import P1Simulator, dataset_spec
    from mesoinv.datasets.netcdf import write_p1_netcdf

    spec = dataset_spec(load_config(REPO_ROOT / cfg.config_file), dataset)
    simulator = P1Simulator(spec)
    unique = [simulator.simulate(i) for i in range(cfg.n_unique)]

    def repeated(n, first_id):
        for k in range(n):
            yield replace(unique[k % len(unique)], sample_id=first_id + k)

    batch_size = batch_size or cfg.batch_size
    n_train = (cfg.warmup_steps + cfg.timed_steps) * batch_size
    n_val = max(batch_size, cfg.n_unique)
    train = directory / f"{prefix}-train.nc"
    val = directory / f"{prefix}-val.nc"
    meta = simulator.file_metadata()
    write_p1_netcdf(train, spec, _Sized(repeated(n_train, 0), n_train), **meta,
                    extra_attributes={"split": "train"})
    write_p1_netcdf(val, spec, _Sized(repeated(n_val, n_train), n_val), **meta,
                    extra_attributes={"split": "val"})
    return train, val, spec


class _Sized:
    """A lazy iterable with a length (write_p1_netcdf needs ``len``)."""

    def __init__(self, iterable, n):
        self.iterable, self.n = iterable, n

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.iterable)


def model_definition(batch_size: int | None, name: str) -> dict:
    """The MODEL_CONFIG entry of model ``name`` (batch ``batch_size``; None: the entry's own),
    one epoch, ram mode, no workers."""
    from mesoinv.config import load_config

    definition = dict(load_config(REPO_ROOT / MODEL_CONFIG)["models"][name], name=name)
    batch_size = batch_size or definition["batch_size"]
    definition.update(batch_size=batch_size, max_epochs=1, max_steps=None, data_mode="ram",
                      num_workers=0)
    return definition


def p1_datamodule(train, val, definition, data_mode, num_workers=0, mirror=False):
    """The model's ``ImageDataModule`` on the splits ``train``/``val``, set up for fitting."""
    from mesoinv.training.p1_data import ImageDataModule
    from mesoinv.training.train_p1 import target_set

    inputs = definition["inputs"]
    module = ImageDataModule(train, val, targets=target_set(definition),
                             fields_T=inputs["fields_T"], transform=inputs["transform"],
                             batch_size=definition["batch_size"], data_mode=data_mode,
                             num_workers=num_workers, mirror_augmentation=mirror,
                             variable=inputs["variable"], max_workers=num_workers)
    module.setup("fit")
    return module


def p1_network(definition, datamodule):
    """The model kind's network, built from its spec as ``train_model`` builds it."""
    from mesoinv.training.model_file import network_from_spec

    return network_from_spec(p1_network_spec(definition, datamodule))


def p1_network_spec(definition, datamodule) -> dict:
    """The network spec ``train_model`` writes for this definition and data."""
    from mesoinv.training.train_p1 import network_spec

    return network_spec(definition["kind"], definition["architecture"],
                        datamodule.info.image_shape, len(datamodule.field_indices),
                        datamodule.target_set.n_outputs)


def p1_model_file(path, network, datamodule, definition):
    """A model file as ``train_model`` writes it (targets, baselines), with these weights;
    written to ``path`` and read back."""
    from mesoinv.training.model_file import load_model_file, save_model_file
    from mesoinv.training.targets import training_mean_potential

    info = datamodule.info
    spec = p1_network_spec(definition, datamodule)
    inputs = definition["inputs"]
    targets = datamodule.target_set
    baselines = {}
    if targets.kind in ("fourier_coefficients", "potential"):
        baselines["training_mean_potential_meV"] = \
            training_mean_potential(datamodule.train_path).tolist()
    save_model_file(path, {
        "model_name": definition["name"], "model_kind": definition["kind"], "network": spec,
        "state_dict": state_copy(network),
        "inputs": {"variable": inputs["variable"], "fields_T": datamodule.fields_T,
                   "image_shape": list(info.image_shape), "transform": inputs["transform"]},
        "input_normalization": datamodule.normalization.to_dict(),
        "targets": targets.to_dict(), "baselines": baselines,
        "data_metadata": dict(info.metadata), "hyperparameters": definition,
        "training": {"dataset": "benchmark", "n_train": info.n_samples,
                     "n_val": datamodule.val_info.n_samples},
    })
    return load_model_file(path)


def lightning_run(cfg: P1Config, datamodule, network, initial_state, definition):
    """``Trainer.fit(RegressionModule(network))`` from ``initial_state``, ram mode: steady-state
    (wall, cpu) seconds per step and the loss of every step."""
    import torch

    from mesoinv.training.p1_module import RegressionModule

    network.load_state_dict(initial_state)
    module = RegressionModule(network, model_name=definition["name"],
                              optimizer=definition["optimizer"])
    clock = step_clock()
    trainer = timed_trainer(cfg.warmup_steps + cfg.timed_steps, clock)
    torch.manual_seed(cfg.seed)            # the sampler's permutation: same as the plain loop
    trainer.fit(module, datamodule=datamodule)
    return steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), clock.losses


def plain_run(cfg: P1Config, datamodule, network, initial_state, definition):
    """The plain loop (zero_grad, forward, MSE, backward, optimizer step) on the same
    DataLoader from ``initial_state``: steady-state (wall, cpu) seconds per step and the loss
    of every step."""
    import torch

    from mesoinv.training.optimizers import make_optimizer

    network.load_state_dict(initial_state)
    network.train()
    optimizer = make_optimizer(network.parameters(), definition["optimizer"]["name"],
                               definition["optimizer"]["learning_rate"],
                               definition["optimizer"].get("weight_decay", 0.0))
    loss_fn = torch.nn.MSELoss()
    loader = datamodule.train_dataloader()
    n_steps = cfg.warmup_steps + cfg.timed_steps
    stamps, losses = [], []
    torch.manual_seed(cfg.seed)
    for step, (inputs, targets) in enumerate(loader):
        if step == n_steps:
            break
        optimizer.zero_grad()
        loss = loss_fn(network(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        stamps.append((time.perf_counter(), time.process_time()))
    return steady_state(stamps, cfg.warmup_steps, cfg.timed_steps), losses


class LoopComparison:
    """Lightning (``lightning_run``) vs the plain loop (``plain_run``) on one network, repeat
    by repeat: their Timings, the per-repeat CPU ratio Lightning / plain (``paired``) and the
    per-repeat max |loss Lightning − loss plain| (``loss_diffs``)."""

    def __init__(self):
        self.lightning, self.plain = Timings(), Timings()
        self.paired: list[float] = []
        self.loss_diffs: list[float] = []

    def measure(self, cfg: P1Config, datamodule, network, initial_state, definition,
                order) -> float:
        """Run both loops back to back in ``order`` (names "lightning", "plain") and record
        them; returns the plain loop's CPU seconds per step."""
        results = {}
        for which in order:
            runner = lightning_run if which == "lightning" else plain_run
            results[which] = runner(cfg, datamodule, network, initial_state, definition)
        (wall_l, cpu_l), losses_l = results["lightning"]
        (wall_p, cpu_p), losses_p = results["plain"]
        self.lightning.add(wall_l, cpu_l)
        self.plain.add(wall_p, cpu_p)
        self.paired.append(cpu_l / cpu_p)
        self.loss_diffs.append(max(abs(a - b) for a, b in zip(losses_l, losses_p))
                               if len(losses_l) == len(losses_p) else float("inf"))
        return cpu_p


def alternating(repeat: int, first: str, second: str) -> tuple[str, str]:
    """(first, second) in even repeats, (second, first) in odd ones: a trend in the machine's
    load favours neither."""
    return (first, second) if repeat % 2 == 0 else (second, first)
