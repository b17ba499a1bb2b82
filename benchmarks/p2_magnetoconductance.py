"""Benchmark group "p2_magnetoconductance": G(B) traces of the P2 nanowire, fast path vs Kwant.

All timings are per field point (one value of B) unless a row says otherwise; the ratios use
CPU-time medians (benchmarks/common.py). Rows (keys are stable):

* ``p2.config.*``  the problem: sites, fields, open channels.
* ``p2.a.fast``    rgf.transmission, default transfer_steps, lead self-energies precomputed
                   (production: they depend only on (W, E, field grid), not on the sample).
* ``p2.a.rgf``     the same with transfer_steps=1 (plain RGF: one 50×50 inverse per row).
* ``p2.a.cold``    (a) + the lead batch of (c): one trace computed from nothing.
* ``p2.b.kwant``   conductance_kwant (kwant.smatrix(...).transmission(1, 0)) on the same
                   finalized system, for a subset of the trace's fields in each repeat.
* ``p2.c.leads_batch``  rgf.lead_self_energies for the whole trace, per field per lead.
* ``p2.c.leads_kwant``  kwant's ``lead.selfenergy``, per field per lead.
* ``p2.d.floor_inv``    the issue's floor: 60 × (numpy.linalg.inv on a stack of 50×50 + one
                        50×50 product), per field.
* ``p2.d.floor_lapack`` 60 × (LAPACK getrf + getri per 50×50 matrix): the kernel the plain
                        RGF sweep uses, per field.
* ``p2.e.*``       the LDOS image at B = 0: rgf.ldos vs kwant.ldos, per image.
* ``p2.ratio.*``   ratios with the issue's targets; ``p2.check.*`` the fast path against Kwant.

Fast and Kwant timings are interleaved repeat by repeat, so machine load hits both alike.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

try:
    from .common import Row, Stopwatch, Timings, ratio_row
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import Row, Stopwatch, Timings, ratio_row

#: Targets from the issue.
TARGET_KWANT_OVER_FAST = 20.0
TARGET_MAX_ABS_DIFF = 1e-9


@dataclass(frozen=True)
class Config:
    """Problem size and repeat counts of one run."""

    width: int
    length: int
    radius: float
    centres: tuple
    n_fields: int
    max_flux: float          # φ range [0, max_flux]
    n_repeats: int           # timed traces of the fast path (each: all fields)
    kwant_per_repeat: int    # Kwant fields per repeat (interleaved subsets of the trace)
    n_lead_kwant: int        # fields for Kwant's lead.selfenergy
    energy: float = 0.95
    amplitude: float = 0.2
    seed: int = 20240602


#: P2 scale: 50 × 60 sites, two r = 5 antidots, a 100-point trace. ~1 min on the 2-core box.
PAPER = Config(width=50, length=60, radius=5.0, centres=((15, 20), (33, 40)), n_fields=100,
               max_flux=0.01, n_repeats=5, kwant_per_repeat=10, n_lead_kwant=4)
#: --quick: 20 × 24 sites, 10 fields, 1 repeat: seconds.
QUICK = Config(width=20, length=24, radius=3.0, centres=((6, 7), (13, 16)), n_fields=10,
               max_flux=0.02, n_repeats=1, kwant_per_repeat=3, n_lead_kwant=1)


def _progress(message: str) -> None:
    print(f"[p2_magnetoconductance] {message}", file=sys.stderr, flush=True)


def _floor_timings(width, n_rows, n_stack, repeats, rng):
    """Per-field floors: n_rows × (stacked np.linalg.inv + product) and n_rows × getrf/getri."""
    import numpy as np
    from scipy.linalg import lapack

    def matrices():
        a = rng.normal(size=(n_stack, width, width)) + 1j * rng.normal(size=(n_stack, width,
                                                                            width))
        return a + 4 * width * np.eye(width)   # well conditioned, like E - H - Σ

    numpy_floor, lapack_floor = Timings(), Timings()
    for _ in range(repeats):
        stacks = [matrices() for _ in range(n_rows)]
        other = matrices()
        with Stopwatch() as sw:
            for a in stacks:
                np.linalg.inv(a) @ other
        numpy_floor.add(sw.seconds / n_stack, sw.cpu_seconds / n_stack)
        with Stopwatch() as sw:
            for a in stacks:
                for j in range(n_stack):
                    lu, piv, _ = lapack.zgetrf(a[j].T, overwrite_a=1)
                    lapack.zgetri(lu, piv, overwrite_lu=1)
        lapack_floor.add(sw.seconds / n_stack, sw.cpu_seconds / n_stack)
    return numpy_floor, lapack_floor


def run(quick: bool = False) -> list[Row]:
    """All P2 rows. ``quick``: a small wire and a short trace."""
    import kwant
    import numpy as np

    from mesoinv.physics import rgf
    from mesoinv.physics.nanowire import (NanowireGeometry, conductance_kwant, ldos_kwant,
                                          make_nanowire_system, present_mask,
                                          random_potential)

    cfg = QUICK if quick else PAPER
    geometry = NanowireGeometry(width_sites=cfg.width, length_sites=cfg.length,
                                antidot_radius=cfg.radius)
    rng = np.random.default_rng(cfg.seed)
    potential = random_potential(rng, geometry, cfg.amplitude)
    fluxes = np.linspace(0.0, cfg.max_flux, cfg.n_fields)
    present = present_mask(geometry, cfg.centres)
    rows: list[Row] = []

    _progress(f"{cfg.width}×{cfg.length} sites, {cfg.n_fields} fields: Kwant system")
    with Stopwatch() as build:
        fsyst = make_nanowire_system(geometry, cfg.centres)

    # Warm-up of every path (first calls allocate and import).
    leads = rgf.lead_self_energies(cfg.width, fluxes, energy=cfg.energy)
    rgf.transmission(present, potential, leads.select(slice(0, 2)))
    conductance_kwant(fsyst, fluxes[:1], energy=cfg.energy, potential=potential)

    fast, plain, kwant_t, lead_batch = Timings(), Timings(), Timings(), Timings()
    max_diff = 0.0
    n_compared = 0
    stride = max(1, cfg.n_fields // cfg.kwant_per_repeat)
    for repeat in range(cfg.n_repeats):
        _progress(f"repeat {repeat + 1}/{cfg.n_repeats}")
        with Stopwatch() as sw_leads:
            leads = rgf.lead_self_energies(cfg.width, fluxes, energy=cfg.energy)
        lead_batch.add(sw_leads.seconds / cfg.n_fields / 2, sw_leads.cpu_seconds / cfg.n_fields
                       / 2)
        with Stopwatch() as sw_fast:
            g_fast = rgf.transmission(present, potential, leads)
        fast.add(sw_fast.seconds / cfg.n_fields, sw_fast.cpu_seconds / cfg.n_fields)
        with Stopwatch() as sw_plain:
            g_plain = rgf.transmission(present, potential, leads, transfer_steps=1)
        plain.add(sw_plain.seconds / cfg.n_fields, sw_plain.cpu_seconds / cfg.n_fields)
        subset = np.arange(repeat % stride, cfg.n_fields, stride)[:cfg.kwant_per_repeat]
        with Stopwatch() as sw_kwant:
            g_kwant = conductance_kwant(fsyst, fluxes[subset], energy=cfg.energy,
                                        potential=potential)
        kwant_t.add(sw_kwant.seconds / len(subset), sw_kwant.cpu_seconds / len(subset))
        max_diff = max(max_diff, float(np.max(np.abs(g_fast[subset] - g_kwant))),
                       float(np.max(np.abs(g_plain[subset] - g_kwant))))
        n_compared += len(subset)

    cold = Timings()
    for a, b in zip(zip(fast.wall, fast.cpus), zip(lead_batch.wall, lead_batch.cpus)):
        cold.add(a[0] + 2 * b[0], a[1] + 2 * b[1])

    _progress("Kwant lead.selfenergy")
    lead_kwant = Timings()
    for phi in fluxes[np.linspace(0, cfg.n_fields - 1, cfg.n_lead_kwant).astype(int)]:
        params = dict(potential=potential, flux_per_plaquette=float(phi))
        for lead in fsyst.leads:
            with Stopwatch() as sw:
                lead.selfenergy(cfg.energy, params=params)
            lead_kwant.add_watch(sw)

    _progress("floors")
    numpy_floor, lapack_floor = _floor_timings(cfg.width, cfg.length, min(16, cfg.n_fields),
                                               3 if quick else 5, rng)

    _progress("LDOS at B = 0")
    leads0 = rgf.lead_self_energies(cfg.width, [0.0], energy=cfg.energy)
    ldos_fast, ldos_ref = Timings(), Timings()
    ldos_diff = 0.0
    for _ in range(cfg.n_repeats):
        with Stopwatch() as sw:
            image = rgf.ldos(present, potential, leads0)[0]
        ldos_fast.add_watch(sw)
        with Stopwatch() as sw:
            reference = ldos_kwant(fsyst, geometry, energy=cfg.energy, potential=potential)
        ldos_ref.add_watch(sw)
        ldos_diff = max(ldos_diff, float(np.max(np.abs(image - reference))
                                         / np.max(np.abs(reference))))

    channels = leads.n_open
    rows += [
        Row("p2.config.sites", f"scattering-region sites ({cfg.width} × {cfg.length} minus two "
            f"r = {cfg.radius:g} antidots)", int(present.sum()), "sites"),
        Row("p2.config.fields", f"field points per trace (φ = 0 … {cfg.max_flux:g})",
            cfg.n_fields, "fields"),
        Row("p2.config.channels", f"open channels at E = {cfg.energy:g} t, max over the trace",
            int(channels.max()), "modes", note=f"min {int(channels.min())}"),
        Row("p2.setup.build", "one-time: make_nanowire_system (build + finalize)",
            build.seconds, "s", cpu=build.cpu_seconds, n=1),
        fast.row("p2.a.fast", "(a) rgf.transmission per field (leads precomputed)",
                 note=f"transfer_steps = {rgf.TRANSFER_STEPS}; {cfg.n_fields} fields per call"),
        plain.row("p2.a.rgf", "(a') the same, transfer_steps = 1 (plain RGF)",
                  note="one inverse per row"),
        cold.row("p2.a.cold", "(a) + lead batch (c): a trace from nothing, per field"),
        kwant_t.row("p2.b.kwant", "(b) kwant.smatrix(...).transmission(1, 0) per field",
                    note=f"{cfg.kwant_per_repeat} fields of the trace per repeat"),
        lead_batch.row("p2.c.leads_batch", "(c) rgf.lead_self_energies, per field per lead",
                       note="both leads from one Schur decomposition; time / fields / 2"),
        lead_kwant.row("p2.c.leads_kwant", "(c') Kwant lead.selfenergy, per field per lead"),
        numpy_floor.row("p2.d.floor_inv", f"(d) floor: {cfg.length} × (numpy.linalg.inv on a "
                        f"stack of {cfg.width}×{cfg.width} + one product), per field",
                        note="the reference floor (docs/benchmarks.md)"),
        lapack_floor.row("p2.d.floor_lapack", f"(d') {cfg.length} × LAPACK getrf+getri per "
                         f"{cfg.width}×{cfg.width}, per field", note="the plain RGF's kernel"),
        ldos_fast.row("p2.e.ldos_fast", "(e) rgf.ldos at B = 0, per image"),
        ldos_ref.row("p2.e.ldos_kwant", "(e') kwant.ldos at B = 0, per image"),
        ratio_row("p2.ratio.b_over_a", "(b) / (a): speed-up over kwant.smatrix per field",
                  kwant_t, fast, target_min=TARGET_KWANT_OVER_FAST),
        ratio_row("p2.ratio.b_over_a_rgf", "(b) / (a'): plain RGF over kwant.smatrix", kwant_t,
                  plain),
        ratio_row("p2.ratio.b_over_cold", "(b) / cold: including the lead batch", kwant_t,
                  cold),
        ratio_row("p2.ratio.a_over_floor", "(a) / (d): distance from the reference floor", fast,
                  numpy_floor),
        ratio_row("p2.ratio.a_rgf_over_floor_lapack", "(a') / (d'): plain RGF over its kernel",
                  plain, lapack_floor),
        ratio_row("p2.ratio.leads", "(c') / (c): lead self-energies, Kwant over batch",
                  lead_kwant, lead_batch),
        ratio_row("p2.ratio.ldos", "(e') / (e): LDOS speed-up", ldos_ref, ldos_fast),
        Row("p2.check.max_abs_diff", f"max |G_fast - G_kwant| (e²/h) over {n_compared} "
            "field points, (a) and (a')", max_diff, "e²/h",
            target=f"≤ {TARGET_MAX_ABS_DIFF:g}", passed=max_diff <= TARGET_MAX_ABS_DIFF),
        Row("p2.check.ldos_rel_diff", "max |LDOS_fast - LDOS_kwant| / max LDOS", ldos_diff,
            "rel", target="≤ 1e-9", passed=ldos_diff <= 1e-9),
    ]
    del kwant
    return rows
