"""Benchmark group "p1_pldos": the QPC partial LDOS of P1, fast path against its references.

Rows (keys are stable; docs/benchmarks.md explains each):

* ``p1.config.*``   the problem: sites, QPC modes, samples.
* ``p1.setup.*``    one-time costs: build + finalize the Kwant system, PLDOSSolver set-up.
* ``p1.a.fast``     PLDOSSolver(...)(V) per sample (set-up excluded).
* ``p1.b.kwant``    pldos_kwant (kwant.wave_function) on an already finalized system.
* ``p1.c.rebuild``  make_qpc_system + pldos_kwant per sample (a naive per-sample script).
* ``p1.d.*``        bare MUMPS on the same matrix (analysis reused, same ordering as (a)):
                    numeric factorization alone (the floor), and factorization + solve.
* ``p1.e.<order>``  the fast path with each MUMPS ordering.
* ``p1.f.*``        peak RSS (VmHWM) of fresh processes: bare import; PLDOSSolver + 3 samples;
                    the Kwant path.
* ``p1.ratio.*``    ratios of medians with the issue's targets.
* ``p1.check.*``    the fast path's PLDOS against Kwant's for the timed samples.

(a), (b), (c) and (d) are interleaved sample by sample, so load from other processes on the
machine hits all of them alike; (e) interleaves the orderings the same way.

Run as a script only as the memory worker: ``python p1_pldos.py --memory-worker MODE QUICK``.
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    from .common import REPO_ROOT, Row, Stopwatch, Timings, ratio_row
except ImportError:  # run as a script (memory worker)
    from common import REPO_ROOT, Row, Stopwatch, Timings, ratio_row

#: The orderings the issue asks about, in the order they are reported.
ORDERINGS = ("amd", "amf", "pord", "metis", "scotch", "qamd")

#: Targets from the issue.
TARGET_KWANT_OVER_FAST = 4.0
TARGET_FAST_OVER_FACTOR = 1.3
TARGET_PEAK_RSS_MB = 500.0
TARGET_MAX_REL_DIFF = 1e-8


@dataclass(frozen=True)
class Config:
    """Problem size and repeat counts of one run."""

    length_nm: float
    width_nm: float
    qpc_width_nm: float
    n_main: int      # timed samples of (a), (b), (d)
    n_rebuild: int   # timed samples of (c), interleaved with the first ones of (a)
    n_order: int     # timed samples per ordering in (e)
    lattice_constant_nm: float = 5.0
    energy_meV: float = 5.6
    dopant_distance_nm: float = 50.0
    dopant_density_cm2: float = 1e12
    seed: int = 20240601
    memory_samples: int = 3


#: Paper scale: 256 × 192 = 49,152 sites, 3 QPC modes. About 1.5 min on the 2-core machine.
PAPER = Config(length_nm=1280, width_nm=960, qpc_width_nm=100, n_main=9, n_rebuild=3, n_order=5)
#: --quick: 32 × 24 sites, 1–2 repeats, seconds.
QUICK = Config(length_nm=160, width_nm=120, qpc_width_nm=100, n_main=2, n_rebuild=1, n_order=1)


def _progress(message: str) -> None:
    print(f"[p1_pldos] {message}", file=sys.stderr, flush=True)


def _problem(cfg: Config):
    """Geometry, hopping, and a function drawing seeded potentials (meV, shape (nx, ny))."""
    import numpy as np

    from mesoinv.physics.disorder import (RemoteDopantDisorder, draw_fourier_coefficients,
                                          fourier_modes)
    from mesoinv.physics.materials import GAAS, hopping_meV
    from mesoinv.physics.qpc import QPCGeometry

    geometry = QPCGeometry.from_nm(cfg.lattice_constant_nm, cfg.length_nm, cfg.width_nm,
                                   cfg.qpc_width_nm)
    t = hopping_meV(cfg.lattice_constant_nm, GAAS.effective_mass_kg)
    disorder = RemoteDopantDisorder(cfg.dopant_distance_nm, cfg.dopant_density_cm2, GAAS)
    modes = fourier_modes(geometry.length_nm, geometry.width_nm, disorder.cutoff_per_nm)
    sigma = disorder.coefficient_sigma(geometry.length_nm, geometry.width_nm)
    rng = np.random.default_rng(cfg.seed)

    def potentials(count):
        return [disorder.potential_meV(modes, draw_fourier_coefficients(rng, len(modes), sigma),
                                       geometry.x_nm, geometry.y_nm)
                for _ in range(count)]

    return geometry, t, potentials


class _BareMumps:
    """Kwant's scattering matrix for each sample, and a MUMPS context analysed once on V = 0.

    Built from Kwant's own linear system (not from PLDOSSolver's internals), so the floor is
    measured independently of the code under test.
    """

    def __init__(self, fsyst, potentials, *, energy_meV, hopping_meV, ordering):
        import numpy as np
        import scipy.sparse as sp
        from kwant.linalg import mumps
        from kwant.solvers.mumps import default_solver

        def system(potential):
            params = dict(potential_meV=potential, hopping_meV=hopping_meV,
                          flux_per_plaquette=0.0)
            linsys, _ = default_solver._make_linear_sys(fsyst, [0], energy_meV, params=params)
            lhs = sp.coo_matrix(linsys.lhs.tocsr())  # sums duplicate entries
            rhs = linsys.rhs[0]
            rhs = np.asfortranarray(rhs.toarray() if sp.issparse(rhs) else rhs, dtype=complex)
            return lhs, rhs

        base, self.rhs = system(np.zeros_like(potentials[0]))
        self.matrices = []
        for potential in potentials:
            lhs, _ = system(potential)
            if not (np.array_equal(lhs.row, base.row) and np.array_equal(lhs.col, base.col)):
                raise AssertionError("a sample's matrix has another sparsity pattern than V = 0")
            self.matrices.append(lhs)
        self.ordering = ordering
        self.context = mumps.MUMPSContext()
        self.context.analyze(base, ordering=ordering)

    def factor(self, index):
        self.context.factor(self.matrices[index], ordering=self.ordering, reuse_analysis=True)

    def solve(self):
        return self.context.solve(self.rhs)


class _BareSymmetricMumps:
    """The LDLᵀ floor of the B = 0 fast path, built independently of PLDOSSolver's code.

    The region matrix M = E - H(V) - Σ_qpc - Σ_drain (Kwant's Hamiltonian and lead
    self-energies), upper triangle, MUMPS sym = 2, analysis once on V = 0, then the numeric
    factorization alone is timed per sample.
    """

    def __init__(self, fsyst, potentials, *, energy_meV, hopping_meV, ordering):
        import numpy as np
        import scipy.sparse as sp
        from kwant.linalg import _mumps, mumps

        def upper(potential):
            params = dict(potential_meV=potential, hopping_meV=hopping_meV,
                          flux_per_plaquette=0.0)
            h = fsyst.hamiltonian_submatrix(params=params, sparse=True).tocsr()
            m = energy_meV * sp.identity(h.shape[0], dtype=complex, format="csr") - h
            for lead, interface in enumerate(fsyst.lead_interfaces):
                sigma = np.asarray(fsyst.leads[lead].selfenergy(energy_meV, params=params))
                r, c = np.meshgrid(interface, interface, indexing="ij")
                m = m - sp.csr_matrix((sigma.ravel(), (r.ravel(), c.ravel())), shape=m.shape)
            u = sp.triu(m, format="coo")
            u.sum_duplicates()
            return u

        base = upper(np.zeros_like(potentials[0]))
        self.row = np.asfortranarray(base.row.astype(_mumps.int_dtype) + 1)
        self.col = np.asfortranarray(base.col.astype(_mumps.int_dtype) + 1)
        self.data = np.asfortranarray(base.data.astype(complex))
        self.samples = []
        for potential in potentials:
            u = upper(potential)
            if not (np.array_equal(u.row, base.row) and np.array_equal(u.col, base.col)):
                raise AssertionError("a sample's matrix has another sparsity pattern than V = 0")
            self.samples.append(u.data.astype(complex))
        self.instance = _mumps.zmumps(False, 2)
        self.instance.set_assembled_matrix(base.shape[0], self.row, self.col, self.data)
        self.instance.icntl[7] = mumps.orderings[ordering]
        self.instance.job = 1
        self.instance.call()

    def factor(self, index):
        self.data[:] = self.samples[index]
        self.instance.job = 2
        self.instance.call()
        if self.instance.infog[1] < 0:
            raise RuntimeError(f"MUMPS error {self.instance.infog[1]}")


def _analysis_note(fsyst, energy_meV, hopping_meV, shape, ordering) -> str:
    """MUMPS's own estimates for an ordering (public API: analyze on the V = 0 matrix)."""
    import numpy as np
    import scipy.sparse as sp
    from kwant.linalg import mumps
    from kwant.solvers.mumps import default_solver

    params = dict(potential_meV=np.zeros(shape), hopping_meV=hopping_meV, flux_per_plaquette=0.0)
    linsys, _ = default_solver._make_linear_sys(fsyst, [0], energy_meV, params=params)
    context = mumps.MUMPSContext()
    context.analyze(sp.coo_matrix(linsys.lhs.tocsr()), ordering=ordering)
    stats = context.analysis_stats
    return (f"MUMPS estimate: {stats.est_flops:.2e} flops, {stats.est_nonzeros / 1e6:.2f} M "
            f"factor entries, {stats.est_mem_incore} MB (ordering used: {stats.ordering})")


def _memory_rows(cfg: Config, quick: bool) -> list[Row]:
    """(f): peak RSS of fresh processes, each reporting its own ru_maxrss."""
    rows = []
    specs = [
        ("baseline", "p1.f.baseline_rss", "peak RSS: bare `python` + import numpy, kwant, "
         "mesoinv.physics.pldos", None),
        ("solver", "p1.f.solver_peak_rss", f"peak RSS: build system + PLDOSSolver + "
         f"{cfg.memory_samples} samples", TARGET_PEAK_RSS_MB),
        ("kwant", "p1.f.kwant_peak_rss", f"peak RSS: build system + {cfg.memory_samples} × "
         "pldos_kwant (for comparison)", None),
    ]
    baseline = None
    for mode, key, label, limit in specs:
        _progress(f"(f) memory worker: {mode}")
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-worker", mode,
             "1" if quick else "0"],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"memory worker {mode} failed:\n{result.stderr}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        value = report["maxrss_MB"]
        note = report.get("note", "")
        if mode == "baseline":
            baseline = value
        elif baseline is not None:
            note = (note + "; " if note else "") + f"{value - baseline:.0f} MB above the baseline"
        target, passed = ("", None) if limit is None else (f"≤ {limit:g} MB", value <= limit)
        rows.append(Row(key=key, label=label, value=value, unit="MB", target=target,
                        passed=passed, note=note))
    return rows


def _memory_worker(mode: str, quick: bool) -> None:
    """Runs in a fresh process; prints one JSON line with its peak RSS in MB (1e6 bytes)."""
    import numpy as np  # noqa: F401

    import kwant  # noqa: F401
    from mesoinv.physics import pldos
    from mesoinv.physics.qpc import make_qpc_system

    cfg = QUICK if quick else PAPER
    note = ""
    if mode != "baseline":
        geometry, t, potentials = _problem(cfg)
        fsyst = make_qpc_system(geometry)
        samples = potentials(cfg.memory_samples)
        if mode == "solver":
            solver = pldos.PLDOSSolver(fsyst, (geometry.nx, geometry.ny),
                                       energy_meV=cfg.energy_meV, hopping_meV=t)
            for potential in samples:
                solver(potential)
            note = f"ordering {_default_ordering()}"
        elif mode == "kwant":
            for potential in samples:
                pldos.pldos_kwant(fsyst, potential, energy_meV=cfg.energy_meV, hopping_meV=t)
        else:
            raise ValueError(mode)
    print(json.dumps({"mode": mode, "maxrss_MB": _peak_rss_bytes() / 1e6, "note": note}))


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process since its exec, in bytes.

    VmHWM of /proc/self/status, not getrusage's ru_maxrss: Linux carries ru_maxrss across
    execve, so a worker started by a large parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _kwant_ordering() -> str:
    """The ordering kwant.wave_function's MUMPS solver uses ('kwant_decides' resolved)."""
    from kwant.solvers.mumps import default_solver

    return default_solver.ordering


def _default_ordering() -> str:
    from mesoinv.physics.pldos import PLDOSSolver

    return inspect.signature(PLDOSSolver).parameters["ordering"].default


def run(quick: bool = False) -> list[Row]:
    """All P1 rows. ``quick``: tiny geometry, 1–2 repeats."""
    import numpy as np
    from kwant.linalg import mumps

    from mesoinv.physics.pldos import PLDOSSolver, pldos_kwant
    from mesoinv.physics.qpc import make_qpc_system

    cfg = QUICK if quick else PAPER
    geometry, t, draw = _problem(cfg)
    shape = (geometry.nx, geometry.ny)
    energy = cfg.energy_meV
    ordering = _default_ordering()
    rows: list[Row] = []

    # Sample 0 warms every path up (first factorization allocates; first Kwant call caches);
    # samples 1..n are timed. Each timed sample is a different potential.
    n_potentials = 1 + max(cfg.n_main, cfg.n_order)
    potentials = draw(n_potentials)

    _progress(f"{geometry.nx}×{geometry.ny} sites: build + finalize")
    with Stopwatch() as build:
        fsyst = make_qpc_system(geometry)
    with Stopwatch() as setup:
        solver = PLDOSSolver(fsyst, shape, energy_meV=energy, hopping_meV=t)

    rows += [
        Row("p1.config.sites", f"scattering-region sites ({geometry.nx} × {geometry.ny}, "
            f"a = {cfg.lattice_constant_nm:g} nm)", geometry.nx * geometry.ny, "sites"),
        Row("p1.config.modes", f"open QPC modes at E = {energy:g} meV, t = {t:.2f} meV",
            solver.n_modes, "modes"),
        Row("p1.config.rms", f"potential rms (s = {cfg.dopant_distance_nm:g} nm, "
            f"N_d = {cfg.dopant_density_cm2:g} cm⁻²), mean over samples",
            float(np.mean([p.std() for p in potentials])), "meV"),
        Row("p1.setup.build", "one-time: make_qpc_system (build + finalize)", build.seconds,
            "s", cpu=build.cpu_seconds, n=1),
        Row("p1.setup.solver", f"one-time: PLDOSSolver set-up (ordering {ordering})",
            setup.seconds, "s", cpu=setup.cpu_seconds, n=1),
    ]

    _progress("(d) preparing Kwant's matrix of each sample")
    bare = _BareMumps(fsyst, potentials, energy_meV=energy, hopping_meV=t, ordering=ordering)
    bare_ldlt = _BareSymmetricMumps(fsyst, potentials, energy_meV=energy, hopping_meV=t,
                                    ordering=ordering)

    fast, kwant_path, rebuild, rebuild_build = Timings(), Timings(), Timings(), Timings()
    factor, factor_call, factor_solve, overhead = Timings(), Timings(), Timings(), Timings()
    factor_ldlt = Timings()
    max_rel_diff = 0.0
    for index in range(cfg.n_main + 1):
        timed = index > 0
        potential = potentials[index]
        _progress(f"(a,b,c,d) sample {index}{'' if timed else ' (warm-up)'}")
        with Stopwatch() as sw_fast:
            image = solver(potential)
        with Stopwatch() as sw_kwant:
            reference = pldos_kwant(fsyst, potential, energy_meV=energy, hopping_meV=t)
        with Stopwatch() as sw_factor:
            bare.factor(index)
        with Stopwatch() as sw_solve:
            bare.solve()
        with Stopwatch() as sw_ldlt:
            bare_ldlt.factor(index)
        if timed and index <= cfg.n_rebuild:
            with Stopwatch() as sw_build:
                fresh = make_qpc_system(geometry)
            with Stopwatch() as sw_wave:
                pldos_kwant(fresh, potential, energy_meV=energy, hopping_meV=t)
            rebuild.add_watch(sw_build, sw_wave)
            rebuild_build.add_watch(sw_build)
            del fresh
        max_rel_diff = max(max_rel_diff,
                           float(np.max(np.abs(image[0] - reference)) / np.max(np.abs(reference))))
        if timed:
            fast.add_watch(sw_fast)
            kwant_path.add_watch(sw_kwant)
            factor.add_watch(sw_factor)
            factor_ldlt.add_watch(sw_ldlt)
            # MUMPS's own process-time clock around its factorization call (no wrapper).
            factor_call.add(bare.context.factor_stats.time, bare.context.factor_stats.time)
            factor_solve.add_watch(sw_factor, sw_solve)
            overhead.add(sw_fast.seconds - sw_factor.seconds - sw_solve.seconds,
                         sw_fast.cpu_seconds - sw_factor.cpu_seconds - sw_solve.cpu_seconds)

    rows += [
        fast.row("p1.a.fast", "(a) fast path: PLDOSSolver(...)(V)", note=f"ordering {ordering}"),
        kwant_path.row("p1.b.kwant", "(b) pldos_kwant: kwant.wave_function, system finalized once",
                       note=f"Kwant's own ordering choice ({_kwant_ordering()})"),
        rebuild.row("p1.c.rebuild", "(c) rebuild: make_qpc_system + pldos_kwant",
                    note=f"of which build + finalize: median {rebuild_build.median:.2f} s "
                         f"(CPU {rebuild_build.cpu_median:.2f} s)"),
        factor.row("p1.d.factor", "(d) bare MUMPS LU of Kwant's bordered system (reuse_analysis)",
                   note=f"ordering {ordering}; the floor of the LU path (B ≠ 0 channels)"),
        factor_ldlt.row("p1.d.factor_ldlt", "(d') bare MUMPS LDLᵀ of the region matrix "
                        "(sym = 2, reuse_analysis)",
                        note=f"ordering {ordering}; the floor of the B = 0 fast path"),
        factor_call.row("p1.d.factor_call", "(d) the same, MUMPS's own clock around its call",
                        note="process time; without Kwant's Python wrapper"),
        factor_solve.row("p1.d.factor_solve", "(d) bare MUMPS factorization + solve (dense rhs)",
                         note=f"{solver.n_modes} right-hand sides"),
        overhead.row("p1.a.overhead", "(a) − (d factor + solve), same sample",
                     note="Python-side work of the fast path (difference: any sign)"),
        ratio_row("p1.ratio.b_over_a", "(b) / (a): fast path speed-up over Kwant", kwant_path,
                  fast, target_min=TARGET_KWANT_OVER_FAST),
        ratio_row("p1.ratio.c_over_a", "(c) / (a): speed-up over rebuilding per sample",
                  rebuild, fast),
        ratio_row("p1.ratio.a_over_d", "(a) / (d') factor-only: distance from the floor", fast,
                  factor_ldlt, target_max=TARGET_FAST_OVER_FACTOR,
                  note="floor: the LDLᵀ factorization the B = 0 fast path performs"),
        ratio_row("p1.ratio.a_over_d_lu", "(a) / (d) LU factor-only", fast, factor),
        ratio_row("p1.ratio.a_over_d_solve", "(a) / (d factor + solve)", fast, factor_solve),
        Row("p1.check.max_rel_diff", "max |(a) − (b)| / max |(b)| over all samples",
            max_rel_diff, "rel", target=f"≤ {TARGET_MAX_REL_DIFF:g}",
            passed=max_rel_diff <= TARGET_MAX_REL_DIFF),
    ]
    del bare, bare_ldlt

    # (e) orderings, interleaved.
    available = mumps.possible_orderings()
    solvers, setups, notes = {}, {}, {}
    for name in ORDERINGS:
        if name not in available:
            continue
        _progress(f"(e) set-up with ordering {name}")
        try:
            notes[name] = _analysis_note(fsyst, energy, t, shape, name)
            with Stopwatch() as sw:
                solvers[name] = PLDOSSolver(fsyst, shape, energy_meV=energy, hopping_meV=t,
                                            ordering=name)
            setups[name] = sw.seconds
            solvers[name](potentials[0])  # warm-up
        except Exception as exc:  # noqa: BLE001 - report, don't stop the run
            solvers.pop(name, None)
            notes[name] = f"failed: {type(exc).__name__}: {exc}"
    by_order = {name: Timings() for name in solvers}
    for index in range(1, cfg.n_order + 1):
        _progress(f"(e) sample {index}")
        for name, ordering_solver in solvers.items():
            with Stopwatch() as sw:
                ordering_solver(potentials[index])
            by_order[name].add_watch(sw)
    best = min(by_order, key=lambda name: by_order[name].cpu_median) if by_order else None
    for name in ORDERINGS:
        key, label = f"p1.e.{name}", f"(e) fast path, ordering {name}"
        if name in by_order:
            note = f"set-up {setups[name]:.2f} s; {notes[name]}"
            if name == best:
                note = "fastest; " + note
            rows.append(by_order[name].row(key, label, note=note))
        else:
            reason = notes.get(name, "not in this MUMPS build (MUMPS would silently fall back "
                                     "to another ordering)")
            rows.append(Row(key, label, math.nan, "s", note=reason))
    del solvers

    rows += _memory_rows(cfg, quick)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-worker":
        sys.path.insert(0, str(REPO_ROOT / "src"))
        _memory_worker(sys.argv[2], sys.argv[3] == "1")
    else:
        sys.exit("usage: python benchmarks/run.py [--quick] (this file is the memory worker)")
