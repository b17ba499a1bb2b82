"""The fast RGF path (mesoinv.physics.rgf) against plain Kwant, point by point.

Real Kwant (MUMPS), seeded. The requirement: |G_fast - G_kwant| ≤ 1e-9 e²/h on every field
point (measured: ≤ ~1e-12). Most systems are small; one test runs the P2 size (50 × 60, two
r = 5 antidots) at a few fields.
"""

import numpy as np
import pytest

from mesoinv.physics import rgf
from mesoinv.physics.nanowire import (DEFAULT_ENERGY, NanowireGeometry, conductance_kwant,
                                      ldos_kwant, make_nanowire_system, present_mask,
                                      random_potential, site_indices)

TOL = 1e-9
#: Zero, small and large fields of both signs (0.3 flux quanta per plaquette leaves 0–2
#: channels: the Hofstadter regime).
FLUXES = np.array([0.0, 0.004, -0.004, 0.021, -0.057, 0.13, -0.3])

SMALL = NanowireGeometry(width_sites=16, length_sites=20, antidot_radius=3.0)


def _compare(geometry, centres, potential, fluxes=FLUXES, energy=DEFAULT_ENERGY, **kwargs):
    """Max |fast - Kwant| over the fields, and the Kwant trace."""
    fsyst = make_nanowire_system(geometry, centres)
    leads = rgf.lead_self_energies(geometry.width_sites, fluxes, energy=energy)
    fast = rgf.transmission(present_mask(geometry, centres), potential, leads, **kwargs)
    reference = conductance_kwant(fsyst, fluxes, energy=energy, potential=potential)
    return float(np.max(np.abs(fast - reference))), reference


# ---------------------------------------------------------------------------------------------
# Lead self-energies
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width,energy", [(16, DEFAULT_ENERGY), (16, 0.37), (16, 2.9),
                                          (50, DEFAULT_ENERGY)])
def test_self_energies_equal_kwant(width, energy):
    geometry = NanowireGeometry(width_sites=width, length_sites=3, antidot_radius=1)
    fsyst = make_nanowire_system(geometry)
    fluxes = FLUXES if width < 50 else np.array([0.0, 0.01, -0.01, 0.05])
    leads = rgf.lead_self_energies(width, fluxes, energy=energy)
    i, _ = site_indices(fsyst)
    for n, phi in enumerate(fluxes):
        params = dict(potential=np.zeros(geometry.shape), flux_per_plaquette=phi)
        for lead, sigma in ((0, leads.sigma_left[n]), (1, leads.sigma_right[n])):
            order = i[fsyst.lead_interfaces[lead]]
            reference = fsyst.leads[lead].selfenergy(energy, params=params)
            mine = sigma[np.ix_(order, order)]
            assert np.max(np.abs(mine - reference)) < 1e-11, (phi, lead)
        # Γ = A A†, with as many channels as Kwant finds.
        for sigma, factor in ((leads.sigma_left[n], leads.gamma_left[n]),
                              (leads.sigma_right[n], leads.gamma_right[n])):
            gamma = 1j * (sigma - sigma.conj().T)
            assert np.max(np.abs(factor @ factor.conj().T - gamma)) < 1e-11
        modes, _ = fsyst.leads[0].modes(energy, params=params)
        assert leads.n_open[n] == modes.velocities.size // 2


def test_lead_self_energies_in_a_strong_field_at_full_width():
    # In a field the evanescent modes of a wide lead come in nearly degenerate pairs (one
    # per edge); an eigenvector-based construction loses ~1e-5 there. The self-energy must
    # still solve its defining equation Σ_R = T† (E - H0 - Σ_R)⁻¹ T to round-off.
    width, energy = 50, DEFAULT_ENERGY
    fluxes = np.array([-0.01, 0.02, 0.04])
    leads = rgf.lead_self_energies(width, fluxes, energy=energy)
    h0 = rgf._clean_hamiltonian(width)
    for n, phi in enumerate(fluxes):
        t = -np.diag(np.exp(-2j * np.pi * phi * (np.arange(width) - (width - 1) / 2)))
        a = energy * np.eye(width) - h0
        right, left = leads.sigma_right[n], leads.sigma_left[n]
        assert np.max(np.abs(right - t.conj().T @ np.linalg.solve(a - right, t))) < 1e-12
        assert np.max(np.abs(left - t @ np.linalg.solve(a - left, t.conj().T))) < 1e-12
        # Retarded: -Im Σ is positive semidefinite.
        assert np.linalg.eigvalsh(1j * (right - right.conj().T)).min() > -1e-12


def test_lead_input_validation():
    with pytest.raises(ValueError):
        rgf.lead_self_energies(0, [0.0])
    with pytest.raises(ValueError):
        rgf.lead_self_energies(10, [np.nan])
    leads = rgf.lead_self_energies(10, [0.0, 0.1, 0.2])
    sub = leads.select(slice(1, 3))
    assert sub.n_fields == 2 and sub.fluxes_per_plaquette.tolist() == [0.1, 0.2]
    np.testing.assert_array_equal(sub.sigma_left, leads.sigma_left[1:])


# ---------------------------------------------------------------------------------------------
# Transmission equals kwant.smatrix(...).transmission(1, 0)
# ---------------------------------------------------------------------------------------------
CASES = {
    "clean wire": [],
    "two antidots inside": [(5, 6), (10, 13)],
    "touching both y ends": [(5, 3), (11, 16.5)],     # rows 0..6 and 14..19
    "at the x edge margin": [(4, 8), (11, 12)],        # columns 1..7 and 8..14 of 0..15
    "at the x edges (notches)": [(0, 5), (15, 14)],
    "half-integer centres": [(4.5, 6.5), (10.5, 12)],
    "adjacent holes": [(4, 9), (11, 9)],               # removed sites next to each other
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_transmission_equals_kwant(case):
    centres = CASES[case]
    potential = random_potential(np.random.default_rng(len(case)), SMALL, 0.4)
    for kwargs in (dict(), dict(transfer_steps=1, chunk=3)):
        diff, reference = _compare(SMALL, centres, potential, **kwargs)
        assert diff <= TOL, (case, kwargs, diff)
    # The trace is not trivial: it varies with the field, and strong fields close channels.
    assert np.ptp(reference) > 0.1 * np.max(reference) > 0


@pytest.mark.parametrize("energy", [0.37, 2.9])
def test_other_energies_and_clean_potential(energy):
    centres = CASES["two antidots inside"]
    diff, _ = _compare(SMALL, centres, np.zeros(SMALL.shape), energy=energy)
    assert diff <= TOL
    potential = random_potential(np.random.default_rng(3), SMALL, 1.0)
    diff, _ = _compare(SMALL, centres, potential, energy=energy)
    assert diff <= TOL


def test_single_row_and_narrow_wires():
    for geometry, centres in [
            (NanowireGeometry(width_sites=7, length_sites=1, antidot_radius=1), [(3, 0)]),
            (NanowireGeometry(width_sites=7, length_sites=2, antidot_radius=1), []),
            (NanowireGeometry(width_sites=3, length_sites=9, antidot_radius=0.5), [(1, 4)])]:
        potential = random_potential(np.random.default_rng(9), geometry, 0.3)
        diff, _ = _compare(geometry, centres, potential, fluxes=FLUXES[:5])
        assert diff <= TOL, geometry


def test_transmission_at_p2_size():
    # The P2 device itself: 50 × 60 sites, two r = 5 antidots, a random potential.
    geometry = NanowireGeometry()
    centres = [(15, 20), (33, 40)]
    potential = random_potential(np.random.default_rng(2024), geometry, 0.2)
    fluxes = np.array([0.0, 0.0037, -0.0037, 0.012])
    diff, reference = _compare(geometry, centres, potential, fluxes=fluxes)
    assert diff <= TOL
    assert reference[1] == pytest.approx(reference[2], abs=1e-9)       # Onsager
    assert 1 < reference.min() and reference.max() < 16


def test_chunks_and_subsets_give_identical_bytes():
    # A sample's trace must not depend on how the fields are batched (datasets are sharded).
    centres = CASES["two antidots inside"]
    potential = random_potential(np.random.default_rng(4), SMALL, 0.4)
    present = present_mask(SMALL, centres)
    leads = rgf.lead_self_energies(SMALL.width_sites, FLUXES)
    whole = rgf.transmission(present, potential, leads)
    for chunk in (1, 2, 5):
        assert rgf.transmission(present, potential, leads, chunk=chunk).tobytes() == \
            whole.tobytes()
    part = rgf.transmission(present, potential, leads.select(slice(2, 5)))
    assert part.tobytes() == whole[2:5].tobytes()
    other = rgf.lead_self_energies(SMALL.width_sites, FLUXES, chunk=3)
    assert other.sigma_right.tobytes() == leads.sigma_right.tobytes()


def test_transmission_input_validation():
    leads = rgf.lead_self_energies(SMALL.width_sites, [0.0])
    present = present_mask(SMALL, [])
    with pytest.raises(ValueError, match="wide"):
        rgf.transmission(present[:-1], np.zeros((15, 20)), leads)
    with pytest.raises(ValueError, match="shape"):
        rgf.transmission(present, np.zeros((16, 19)), leads)
    bad = np.zeros(SMALL.shape)
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        rgf.transmission(present, bad, leads)
    cut = present.copy()
    cut[:, 7] = False
    with pytest.raises(ValueError, match="cut"):
        rgf.transmission(cut, np.zeros(SMALL.shape), leads)


# ---------------------------------------------------------------------------------------------
# LDOS equals kwant.ldos
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["two antidots inside", "touching both y ends",
                                  "half-integer centres"])
def test_ldos_equals_kwant(case):
    centres = CASES[case]
    potential = random_potential(np.random.default_rng(6), SMALL, 0.4)
    fsyst = make_nanowire_system(SMALL, centres)
    fluxes = [0.0, 0.017]
    leads = rgf.lead_self_energies(SMALL.width_sites, fluxes)
    images = rgf.ldos(present_mask(SMALL, centres), potential, leads)
    for n, phi in enumerate(fluxes):
        reference = ldos_kwant(fsyst, SMALL, potential=potential, flux_per_plaquette=phi)
        assert np.max(np.abs(images[n] - reference)) <= 1e-9 * np.max(reference), (case, phi)
        assert np.all(images[n][~present_mask(SMALL, centres)] == 0)


def test_ldos_at_p2_size():
    geometry = NanowireGeometry()
    centres = [(12, 25), (30, 31.5)]
    potential = random_potential(np.random.default_rng(8), geometry, 0.2)
    leads = rgf.lead_self_energies(geometry.width_sites, [0.0])
    image = rgf.ldos(present_mask(geometry, centres), potential, leads)[0]
    reference = ldos_kwant(make_nanowire_system(geometry, centres), geometry,
                           potential=potential)
    assert np.max(np.abs(image - reference)) <= 1e-9 * np.max(reference)
