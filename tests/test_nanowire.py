"""Tests of the P2 nanowire model (Kwant reference path): geometry, antidots, gauge, LDOS.

Real Kwant, seeded, no mocks. Most systems are small (≤ 20 × 24 sites) so each Kwant solve
takes milliseconds; the fast path is tested against these in tests/test_rgf.py.
"""

import pickle

import kwant
import numpy as np
import pytest

from mesoinv.physics import qpc
from mesoinv.physics.materials import flux_per_plaquette
from mesoinv.physics.nanowire import (DEFAULT_ENERGY, NanowireGeometry, conductance_kwant,
                                      hopping, ldos_kwant, make_nanowire_system, pad_image,
                                      present_mask, random_potential, removed_mask,
                                      site_indices)

SMALL = NanowireGeometry(width_sites=16, length_sites=20, antidot_radius=3.0)


# ---------------------------------------------------------------------------------------------
# Geometry, units, antidot membership
# ---------------------------------------------------------------------------------------------
def test_defaults_are_p2():
    g = NanowireGeometry()
    assert (g.width_sites, g.length_sites, g.antidot_radius) == (50, 60, 5.0)
    assert g.shape == (50, 60)
    assert g.x_origin == 24.5
    assert 0.893 < DEFAULT_ENERGY < 1.0   # between the 16th and 17th transverse thresholds


def test_field_conversion():
    g = NanowireGeometry(lattice_constant_nm=5.0)
    assert float(g.flux_per_plaquette(1.0)) == pytest.approx(6.045e-3, rel=1e-3)
    assert float(g.flux_per_plaquette(1.0)) == float(flux_per_plaquette(1.0, 5.0))
    fields = np.array([-2.0, 0.0, 0.3, 7.0])
    np.testing.assert_allclose(g.field_T(g.flux_per_plaquette(fields)), fields, rtol=1e-14)
    # φ scales with a²
    assert float(NanowireGeometry(lattice_constant_nm=10).flux_per_plaquette(1.0)) == \
        pytest.approx(4 * float(g.flux_per_plaquette(1.0)))


@pytest.mark.parametrize("kwargs", [dict(width_sites=1), dict(length_sites=0),
                                    dict(antidot_radius=-1), dict(lattice_constant_nm=0)])
def test_geometry_validation(kwargs):
    with pytest.raises(ValueError):
        NanowireGeometry(**kwargs)


def test_antidot_membership_rule():
    g = NanowireGeometry(width_sites=30, length_sites=30, antidot_radius=5.0)
    removed = removed_mask(g, [(12, 14)])
    # Gauss circle: 81 lattice points with i² + k² ≤ 25; the boundary (distance exactly r) is in.
    assert removed.sum() == 81
    assert removed[17, 14] and removed[16, 17] and removed[12, 9]   # |d| = 5 exactly
    assert not removed[17, 15] and not removed[16, 18]              # |d|² = 26
    # A half-integer centre: (i - 12.5)² + (k - 14.5)² ≤ 25.
    half = removed_mask(g, [(12.5, 14.5)])
    i, k = np.nonzero(half)
    assert np.all((i - 12.5) ** 2 + (k - 14.5) ** 2 <= 25)
    assert half.sum() == 80 and half[8, 14] and half[12, 10] and not half[7, 14]
    # Two centres: the union, by brute force. Parts outside the region are cut off.
    expected = np.zeros(g.shape, dtype=bool)
    for i in range(30):
        for k in range(30):
            expected[i, k] = any((i - cx) ** 2 + (k - cy) ** 2 <= 25 for cx, cy in
                                 [(12, 14), (2, 2)])
    assert np.array_equal(removed_mask(g, [(12, 14), (2, 2)]), expected)
    assert 81 < expected.sum() < 2 * 81
    assert np.array_equal(present_mask(g, [(12, 14)]), ~removed)
    assert removed_mask(g, []).sum() == 0
    with pytest.raises(ValueError, match="half-integer"):
        removed_mask(g, [(12.25, 14)])


def test_random_potential():
    g = NanowireGeometry()
    v = random_potential(np.random.default_rng(7), g, 0.4)
    assert v.shape == (50, 60)
    assert -0.2 <= v.min() < -0.19 and 0.19 < v.max() <= 0.2
    assert abs(v.std() - 0.4 / np.sqrt(12)) < 0.005
    again = random_potential(np.random.default_rng(7), g, 0.4)
    assert again.tobytes() == v.tobytes()
    assert np.all(random_potential(np.random.default_rng(7), g, 0.0) == 0)
    with pytest.raises(ValueError):
        random_potential(np.random.default_rng(7), g, -1)


# ---------------------------------------------------------------------------------------------
# The Kwant system
# ---------------------------------------------------------------------------------------------
def test_system_sites_and_padding_rows():
    centres = [(5, 10), (11, 4)]
    fsyst = make_nanowire_system(SMALL, centres)
    i, k = site_indices(fsyst)
    present = present_mask(SMALL, centres)
    assert len(i) == present.sum()                  # no padding: rows 0 and L-1 complete
    assert np.all(present[i, k])
    # A hole reaching row 0 gets one clean lead row at k = -1 (and none at the other end).
    touching = [(5, 2), (11, 12)]
    fsyst = make_nanowire_system(SMALL, touching)
    i, k = site_indices(fsyst)
    present = present_mask(SMALL, touching)
    assert not present[:, 0].all() and present[:, -1].all()
    assert len(i) == present.sum() + SMALL.width_sites
    assert sorted(set(k[k < 0])) == [-1] and k.max() == SMALL.length_sites - 1
    inside = k >= 0
    assert np.all(present[i[inside], k[inside]])    # the holes stayed holes
    with pytest.raises(ValueError, match="cut"):
        make_nanowire_system(NanowireGeometry(width_sites=6, length_sites=10,
                                              antidot_radius=3), [(2.5, 5)])


def test_padding_row_is_exact():
    # The padding row is a lead cell moved into the region: the same device described with
    # two extra clean rows at each end (and the holes shifted) must give the same G. Both
    # holes reach an end row of the short region (rows 0..6 and 14..19).
    centres = [(5, 3), (11, 16.5)]
    present = present_mask(SMALL, centres)
    assert not present[:, 0].all() and not present[:, -1].all()
    assert removed_mask(SMALL, centres).sum() == 29 + 26    # both disks whole (r = 3)
    longer = NanowireGeometry(width_sites=16, length_sites=24, antidot_radius=3.0)
    shifted = [(cx, cy + 2) for cx, cy in centres]
    potential = random_potential(np.random.default_rng(3), SMALL, 0.3)
    padded_potential = np.zeros(longer.shape)
    padded_potential[:, 2:22] = potential
    fluxes = [0.0, 0.013, -0.04]
    g_short = conductance_kwant(make_nanowire_system(SMALL, centres), fluxes,
                                potential=potential)
    g_long = conductance_kwant(make_nanowire_system(longer, shifted), fluxes,
                               potential=padded_potential)
    np.testing.assert_allclose(g_short, g_long, rtol=0, atol=1e-10)


def test_system_pickles():
    fsyst = make_nanowire_system(SMALL, [(5, 10)])
    clone = pickle.loads(pickle.dumps(fsyst))
    potential = random_potential(np.random.default_rng(1), SMALL, 0.3)
    # Not bitwise: two kwant.smatrix calls on one system can differ by ~1e-14 (measured).
    np.testing.assert_allclose(conductance_kwant(clone, [0.02], potential=potential),
                               conductance_kwant(fsyst, [0.02], potential=potential),
                               rtol=0, atol=1e-11)


def _plaquette_phase(hop, sites):
    """Product of H[to, from] around a plaquette, counter-clockwise, divided by t⁴."""
    product = 1.0 + 0j
    for a, b in zip(sites, sites[1:] + sites[:1]):
        product *= hop(b, a)
    return product


def test_peierls_sign_matches_p1():
    # Counter-clockwise (x then y) around any plaquette: t⁴ exp(-2πiφ), as in the P1 device
    # (gauge A = (-B y, 0)): the same sign of B means the same field in both models.
    phi = 0.0123
    fsyst = make_nanowire_system(SMALL)
    by_tag = {s.tag: s for s in fsyst.sites}
    for i0, k0 in [(0, 0), (7, 3), (14, 18)]:
        sites = [by_tag[(i0, k0)], by_tag[(i0 + 1, k0)], by_tag[(i0 + 1, k0 + 1)],
                 by_tag[(i0, k0 + 1)]]
        value = _plaquette_phase(lambda a, b: hopping(a, b, phi), sites)
        assert value == pytest.approx(np.exp(-2j * np.pi * phi), abs=1e-14)

    lat = kwant.lattice.square(norbs=1)
    p1 = [lat(3, 4), lat(4, 4), lat(4, 5), lat(3, 5)]
    value = _plaquette_phase(lambda a, b: qpc.hopping(a, b, 1.0, phi), p1)
    assert value == pytest.approx(np.exp(-2j * np.pi * phi), abs=1e-14)


@pytest.mark.parametrize("phi", [0.0, 0.01, -0.05, 0.2])
def test_clean_wire_transmits_every_channel(phi):
    # No antidots, no potential: a perfect wire in a uniform field. Every open channel is
    # transmitted (T = N to round-off); any mismatch of the gauge between leads and region
    # would scatter. The channel count falls with the field (Landau quantisation).
    fsyst = make_nanowire_system(SMALL)
    smatrix = kwant.smatrix(fsyst, energy=DEFAULT_ENERGY,
                            params=dict(potential=np.zeros(SMALL.shape), flux_per_plaquette=phi))
    n = smatrix.num_propagating(0)
    assert n == smatrix.num_propagating(1)
    assert smatrix.transmission(1, 0) == pytest.approx(n, abs=1e-10)
    assert conductance_kwant(fsyst, [phi])[0] == pytest.approx(n, abs=1e-10)


def test_onsager_with_disorder_and_mirror_relation():
    # Two terminals: G(B) = G(-B) for any sample. The mirror x → -x maps (sample, B) onto
    # (mirrored sample, -B), exactly and with the potential mirrored too.
    centres = [(4, 6), (10.5, 13)]
    potential = random_potential(np.random.default_rng(11), SMALL, 0.5)
    fsyst = make_nanowire_system(SMALL, centres)
    fluxes = np.array([0.007, 0.031, 0.09])
    plus = conductance_kwant(fsyst, fluxes, potential=potential)
    minus = conductance_kwant(fsyst, -fluxes, potential=potential)
    np.testing.assert_allclose(plus, minus, rtol=0, atol=1e-10)
    mirrored = [(SMALL.width_sites - 1 - cx, cy) for cx, cy in centres]
    g_mirror = conductance_kwant(make_nanowire_system(SMALL, mirrored), -fluxes,
                                 potential=potential[::-1].copy())
    np.testing.assert_allclose(g_mirror, plus, rtol=0, atol=1e-10)
    # Not trivially equal: the field changes G, and an unmirrored potential changes G.
    assert np.ptp(plus) > 0.05
    other = conductance_kwant(make_nanowire_system(SMALL, mirrored), fluxes,
                              potential=potential)
    assert np.max(np.abs(other - plus)) > 1e-3


# ---------------------------------------------------------------------------------------------
# LDOS image and padding
# ---------------------------------------------------------------------------------------------
def test_ldos_image():
    centres = [(5, 2), (11, 12)]          # the first touches row 0 (padding row)
    potential = random_potential(np.random.default_rng(5), SMALL, 0.3)
    fsyst = make_nanowire_system(SMALL, centres)
    image = ldos_kwant(fsyst, SMALL, potential=potential)
    assert image.shape == SMALL.shape
    removed = removed_mask(SMALL, centres)
    assert np.all(image[removed] == 0)
    assert np.all(image[~removed] > 0)
    # Same values as kwant.ldos, site by site.
    values = kwant.ldos(fsyst, energy=DEFAULT_ENERGY,
                        params=dict(potential=potential, flux_per_plaquette=0.0))
    i, k = site_indices(fsyst)
    inside = k >= 0
    np.testing.assert_allclose(image[i[inside], k[inside]], values[inside], rtol=1e-12)


def test_pad_image():
    image = np.arange(50 * 60, dtype=float).reshape(50, 60) + 1
    padded = pad_image(image)
    assert padded.shape == (60, 60)
    assert np.all(padded[:5] == 0) and np.all(padded[-5:] == 0)
    np.testing.assert_array_equal(padded[5:55], image)
    batch = pad_image(np.stack([image, 2 * image]))
    assert batch.shape == (2, 60, 60)
    np.testing.assert_array_equal(batch[1, 5:55], 2 * image)
    assert pad_image(image, 54).shape == (54, 60)
    for bad in (49, 55):
        with pytest.raises(ValueError):
            pad_image(image, bad)
