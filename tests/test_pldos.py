"""Tests of the QPC device and its PLDOS (P1 Eq. 2), fast path against plain Kwant.

Real Kwant (MUMPS), no mocks. Geometry: a 200 × 150 nm region at a = 5 nm (40 × 30 sites) with
the P1 QPC lead (100 nm = 20 sites), E = 5.6 meV, GaAs; small enough that every solve takes
milliseconds, while the QPC lead is exactly P1's (its modes do not depend on the region).
"""

import kwant
import numpy as np
import pytest
from kwant.linalg import mumps

from mesoinv.physics.disorder import RemoteDopantDisorder, draw_fourier_coefficients, fourier_modes
from mesoinv.physics.materials import GAAS, flux_per_plaquette, hopping_meV
from mesoinv.physics.pldos import QPC_LEAD, PLDOSSolver, pldos_kwant
from mesoinv.physics.qpc import QPCGeometry, make_qpc_system, site_indices

A_NM = 5.0
ENERGY_MEV = 5.6  # P1: third QPC plateau
T_MEV = hopping_meV(A_NM, GAAS.effective_mass_kg)  # 24.19 meV
FIELDS_T = (0.0, 0.5, -1.0)


def _phi(field_t):
    return float(flux_per_plaquette(field_t, A_NM))


def _relative_difference(a, b):
    """max |a - b| / max |b|: the brief's measure of agreement between two PLDOS images."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _random_potential(geometry, seed, s_nm=40.0, n_d_cm2=1.5e12):
    """A P1 remote-dopant potential (meV, shape (nx, ny)) on the geometry's periodic box."""
    d = RemoteDopantDisorder(dopant_distance_nm=s_nm, dopant_density_cm2=n_d_cm2, material=GAAS)
    modes = fourier_modes(geometry.length_nm, geometry.width_nm, d.cutoff_per_nm)
    rng = np.random.default_rng(seed)
    coefficients = draw_fourier_coefficients(
        rng, len(modes), d.coefficient_sigma(geometry.length_nm, geometry.width_nm))
    return d.potential_meV(modes, coefficients, geometry.x_nm, geometry.y_nm)


def _params(potential, phi):
    return dict(potential_meV=potential, hopping_meV=T_MEV, flux_per_plaquette=phi)


@pytest.fixture(scope="module")
def centred():
    geometry = QPCGeometry.from_nm(A_NM, 200, 150, 100)
    assert (geometry.nx, geometry.ny, geometry.qpc_width, geometry.qpc_first_y) == (40, 30, 20, 5)
    return geometry, make_qpc_system(geometry)


@pytest.fixture(scope="module")
def off_centre():
    # QPC centre at 57.5 nm: first site round(11.5 - 9.5) = 2, sites 2..21 of 0..29.
    geometry = QPCGeometry.from_nm(A_NM, 200, 150, 100, qpc_center_nm=57.5)
    assert geometry.qpc_first_y == 2
    return geometry, make_qpc_system(geometry)


# ---------------------------------------------------------------------------------------------
# 1. Fast path equals plain Kwant
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("system", ["centred", "off_centre"])
def test_fast_solver_equals_kwant_wave_function(system, request):
    # The fast path reuses Kwant's linear system at V = 0 and only shifts its diagonal; it must
    # reproduce kwant.wave_function to round-off. One solver for all three fields at once also
    # checks that the output channels come in the order of fluxes_per_plaquette.
    # Measured: ≤ 1e-12 relative (MUMPS orderings differ, so not bit-identical).
    geometry, fsyst = request.getfixturevalue(system)
    potential = _random_potential(geometry, seed=1)
    assert 0.3 < np.std(potential) < 3  # a real, non-trivial disorder (meV)
    solver = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV, fluxes_per_plaquette=[_phi(b) for b in FIELDS_T])
    fast = solver(potential)
    assert fast.shape == (len(FIELDS_T), geometry.nx, geometry.ny)
    references = []
    for channel, field in enumerate(FIELDS_T):
        reference = pldos_kwant(fsyst, potential, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                                flux_per_plaquette=_phi(field))
        assert np.all(reference >= 0) and np.max(reference) > 0
        assert _relative_difference(fast[channel], reference) <= 1e-9, field
        references.append(reference)
    # The fields really give different images (otherwise the channel check is vacuous).
    assert _relative_difference(references[1], references[0]) > 1e-2
    assert _relative_difference(references[2], references[1]) > 1e-2

    # A single-field solver built at a finite field (not first at B = 0) agrees too, and so
    # does a solver with the fields in reverse order, channel by channel.
    single = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV, fluxes_per_plaquette=[_phi(-1.0)])(potential)
    assert single.shape == (1, geometry.nx, geometry.ny)
    assert _relative_difference(single[0], references[2]) <= 1e-9
    reverse = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                          hopping_meV=T_MEV,
                          fluxes_per_plaquette=[_phi(b) for b in FIELDS_T[::-1]])(potential)
    for channel, reference in enumerate(references[::-1]):
        assert _relative_difference(reverse[channel], reference) <= 1e-9


def test_solver_rejects_wrong_shapes(centred):
    geometry, fsyst = centred
    with pytest.raises(ValueError, match="does not match"):
        PLDOSSolver(fsyst, (geometry.nx, geometry.ny + 1), energy_meV=ENERGY_MEV,
                    hopping_meV=T_MEV)
    solver = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV)
    with pytest.raises(ValueError, match="expected"):
        solver(np.zeros((geometry.ny, geometry.nx)))


# ---------------------------------------------------------------------------------------------
# 2. Three open QPC modes at 5.6 meV
# ---------------------------------------------------------------------------------------------
def _hard_wall_open_modes(width_sites, energy_meV, t_meV):
    """Open channels of a hard-wall strip of w sites: E_n = 2t(1 - cos(nπ/(w+1))) < E.

    Lead onsite 4t on a square lattice puts the band bottom of transverse mode n at E_n
    (transverse eigenvalue 2t - 2t cos(nπ/(w+1)) plus the longitudinal 2t - 2t cos k at k = 0).
    """
    n = np.arange(1, width_sites + 1)
    thresholds = 2 * t_meV * (1 - np.cos(n * np.pi / (width_sites + 1)))
    return int(np.sum(thresholds < energy_meV)), thresholds


def test_qpc_lead_has_three_open_modes(centred):
    geometry, fsyst = centred
    assert T_MEV == pytest.approx(24.19, rel=1e-3)
    count, thresholds = _hard_wall_open_modes(geometry.qpc_width, ENERGY_MEV, T_MEV)
    assert count == 3
    # Not a marginal count: E lies well between the 3rd (4.79 meV) and 4th (8.41 meV) thresholds.
    assert thresholds[2] < ENERGY_MEV - 0.5 and thresholds[3] > ENERGY_MEV + 2.5
    # Kwant's own mode solver on the lead.
    propagating, _ = fsyst.leads[QPC_LEAD].modes(
        energy=ENERGY_MEV, params=dict(hopping_meV=T_MEV, flux_per_plaquette=0.0))
    assert propagating.velocities.size // 2 == 3
    assert np.sum(propagating.velocities > 0) == 3
    # The fast solver's count (it reads Kwant's lead info for its right-hand side).
    solver = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV)
    assert solver.n_modes == 3
    assert solver.open_modes == [3]
    # the LU path (Kwant's bordered system) counts the same channels
    lu = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                     hopping_meV=T_MEV, symmetric=False)
    assert lu.n_modes == 3
    # The same formula for the 30-site drain, checked against Kwant, validates the formula.
    drain_count, _ = _hard_wall_open_modes(geometry.ny, ENERGY_MEV, T_MEV)
    propagating, _ = fsyst.leads[1].modes(
        energy=ENERGY_MEV, params=dict(hopping_meV=T_MEV, flux_per_plaquette=0.0))
    assert propagating.velocities.size // 2 == drain_count == 4


def test_qpc_lead_mode_count_at_paper_geometry():
    # The 256 × 192 P1 device has the same 20-site QPC lead (NOTES §4: 3 open modes). Only the
    # lead's modes are needed, so the lead is built alone.
    geometry = QPCGeometry.from_nm(A_NM, 1280, 960, 100)
    assert geometry.qpc_width == 20
    lat = kwant.lattice.square(a=1, norbs=1)
    lead = kwant.Builder(kwant.TranslationalSymmetry((-1, 0)))
    lead[(lat(0, k) for k in range(geometry.qpc_width))] = 4 * T_MEV
    lead[lat.neighbors()] = -T_MEV
    propagating, _ = lead.finalized().modes(energy=ENERGY_MEV)
    assert propagating.velocities.size // 2 == 3


# ---------------------------------------------------------------------------------------------
# 3. Sum rule: PLDOS(QPC) + PLDOS(drain) = LDOS
# ---------------------------------------------------------------------------------------------
def _to_grid(fsyst, values, shape):
    i, k = site_indices(fsyst)
    out = np.zeros(shape)
    out[i, k] = values
    return out


def _ldos_from_greens_function(fsyst, params):
    """-Im G^R(r, r)/π with G^R = (E - H - Σ_0 - Σ_1)⁻¹, dense; independent of wave functions."""
    h = fsyst.hamiltonian_submatrix(params=params)
    lhs = ENERGY_MEV * np.eye(h.shape[0]) - h
    for lead, interface in zip(fsyst.leads, fsyst.lead_interfaces):
        sigma = lead.selfenergy(ENERGY_MEV, params=params)
        lhs[np.ix_(interface, interface)] -= sigma
    return -np.imag(np.diag(np.linalg.inv(lhs))) / np.pi


@pytest.mark.parametrize("field_t", [0.0, 0.5])
def test_pldos_of_both_leads_sums_to_ldos(centred, field_t):
    # Each lead's scattering states carry unit current per channel; Σ_leads Σ_n |ψ|²/(2π) is
    # the LDOS. This pins the 1/(2π) normalisation of the PLDOS: against kwant.ldos (same
    # wave-function construction inside Kwant) and against -Im G/π from a dense Green's
    # function (a different construction altogether).
    geometry, fsyst = centred
    shape = (geometry.nx, geometry.ny)
    potential = _random_potential(geometry, seed=2)
    phi = _phi(field_t)
    qpc = PLDOSSolver(fsyst, shape, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                      fluxes_per_plaquette=[phi])(potential)[0]
    drain = pldos_kwant(fsyst, potential, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                        flux_per_plaquette=phi, lead=1)
    params = _params(potential, phi)
    ldos = _to_grid(fsyst, kwant.ldos(fsyst, energy=ENERGY_MEV, params=params), shape)
    assert _relative_difference(qpc + drain, ldos) < 1e-9
    green = _to_grid(fsyst, _ldos_from_greens_function(fsyst, params), shape)
    assert _relative_difference(qpc + drain, green) < 1e-9
    # The QPC share is a substantial, not a negligible, part of the LDOS near the QPC.
    assert np.all(qpc <= ldos * (1 + 1e-9))
    near_qpc = qpc[:5, geometry.qpc_first_y:geometry.qpc_first_y + geometry.qpc_width]
    assert np.mean(near_qpc) > 0.3 * np.mean(ldos[:5, 5:25])


# ---------------------------------------------------------------------------------------------
# 4. Reproducibility
# ---------------------------------------------------------------------------------------------
def test_pldos_is_bitwise_reproducible_regardless_of_history(centred):
    # Datasets are sharded across processes: a sample's bytes must not depend on which samples
    # the same solver computed before, nor on the process (a fresh solver).
    geometry, fsyst = centred
    shape = (geometry.nx, geometry.ny)
    fluxes = [_phi(0.0), _phi(0.5)]
    target = _random_potential(geometry, seed=10)
    others = [_random_potential(geometry, seed=seed, s_nm=s)
              for seed, s in ((11, 40.0), (12, 70.0), (13, 45.0))]
    others.append(5.0 * others[0])  # a much stronger potential in between
    solver = PLDOSSolver(fsyst, shape, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                         fluxes_per_plaquette=fluxes)
    first = solver(target)
    target_copy = target.copy()
    for other in others:
        solver(other)
    again = solver(target)
    assert again.tobytes() == first.tobytes()
    np.testing.assert_array_equal(target, target_copy)  # the input is not modified
    fresh = PLDOSSolver(fsyst, shape, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                        fluxes_per_plaquette=fluxes)
    assert fresh(target).tobytes() == first.tobytes()
    # A fresh solver that saw the other potentials first, in reverse order.
    history = PLDOSSolver(fsyst, shape, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                          fluxes_per_plaquette=fluxes)
    for other in others[::-1]:
        history(other)
    assert history(target).tobytes() == first.tobytes()
    # A Fortran-ordered copy of the same potential gives the same bytes.
    assert solver(np.asfortranarray(target)).tobytes() == first.tobytes()


def test_invalid_potential_raises_and_leaves_the_solver_usable(centred):
    # A non-finite potential must never return a silent image. (What it raises today is
    # MUMPS's "numerically singular" error, not a ValueError; either is accepted here.) After
    # the failure the same solver still gives bit-identical results for a valid potential.
    # A finite potential that yields a non-finite PLDOS (the documented FloatingPointError)
    # could not be constructed reliably: even |V| = 1e308 on one site solves finitely.
    geometry, fsyst = centred
    solver = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV)
    potential = _random_potential(geometry, seed=3)
    before = solver(potential)
    for bad in (np.nan, np.inf):
        broken = potential.copy()
        broken[7, 11] = bad
        with pytest.raises((ValueError, FloatingPointError, mumps.MUMPSError)):
            solver(broken)
        assert solver(potential).tobytes() == before.tobytes()


# ---------------------------------------------------------------------------------------------
# 5. Clean-system symmetry and the Lorentz force
# ---------------------------------------------------------------------------------------------
def _mirror_asymmetry(image):
    """‖ρ - ρ(y → y0+y1-y)‖ / ‖ρ‖ for a QPC centred on the region (k → ny-1-k)."""
    return float(np.linalg.norm(image - image[:, ::-1]) / np.linalg.norm(image))


def test_clean_pldos_mirror_symmetry_broken_by_field(centred):
    # V = 0, centred QPC (ny - w = 10 even, so k → 29 - k maps the device onto itself): at
    # B = 0 the PLDOS is mirror-symmetric about the QPC axis (to round-off). A field bends the
    # flow (cyclotron radius ħk_F/(eB) ≈ 126 nm at 0.5 T, 63 nm at 1 T, against a 200 nm long
    # region), so the image must become strongly asymmetric. Measured asymmetry:
    # 3e-13 at 0 T, 0.85 at ±0.5 T, 1.2 at -1 T.
    geometry, fsyst = centred
    assert (geometry.ny - geometry.qpc_width) % 2 == 0
    assert geometry.qpc_first_y == geometry.ny - geometry.qpc_first_y - geometry.qpc_width
    fields = (0.0, 0.5, -0.5, -1.0)
    images = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV, fluxes_per_plaquette=[_phi(b) for b in fields])(
        np.zeros((geometry.nx, geometry.ny)))
    assert _mirror_asymmetry(images[0]) < 1e-10
    for image in images[1:]:
        assert _mirror_asymmetry(image) > 0.3
    # The mirror y → -y reverses B: ρ_B(x, y) = ρ_{-B}(x, -y). This holds exactly only if the
    # Peierls phases of region and leads are one consistent gauge (a constant offset of the
    # phase is a pure gauge along x).
    assert _relative_difference(images[1][:, ::-1], images[2]) < 1e-10
    # B = 0 is also symmetric against the reference path (not an artefact of the fast path).
    reference = pldos_kwant(fsyst, np.zeros((geometry.nx, geometry.ny)), energy_meV=ENERGY_MEV,
                            hopping_meV=T_MEV)
    assert _mirror_asymmetry(reference) < 1e-10


def test_mirror_relation_with_disorder_and_field(centred):
    # With disorder, the mirror maps (V, B) to (V mirrored, -B):
    # ρ[V, B](i, k) = ρ[V(i, ny-1-k), -B](i, ny-1-k). Checks the Landau-gauge phases of the
    # region and both leads together, with a non-trivial potential.
    geometry, fsyst = centred
    potential = _random_potential(geometry, seed=4)
    phi = _phi(0.8)
    solver = PLDOSSolver(fsyst, (geometry.nx, geometry.ny), energy_meV=ENERGY_MEV,
                         hopping_meV=T_MEV, fluxes_per_plaquette=[phi, -phi])
    direct = solver(potential)[0]
    mirrored = solver(potential[:, ::-1].copy())[1]
    assert _relative_difference(mirrored[:, ::-1], direct) < 1e-10
    # ... and it is not trivially true: the disorder is not mirror-symmetric itself.
    assert _relative_difference(solver(potential)[1], direct) > 1e-2


@pytest.mark.parametrize("field_t", [0.0, 0.5, -1.0, 3.0])
def test_full_width_qpc_is_a_perfect_ribbon_in_a_uniform_field(field_t):
    # With the QPC as wide as the region and V = 0 the device is one uniform strip in a uniform
    # field: every open channel is transmitted, T = N exactly, and the PLDOS is uniform along
    # x. This fails if a lead's Peierls phases do not continue the region's (a different field
    # or gauge in a lead scatters at the interface), which the mirror tests cannot see.
    # The mode count drops with the field (3, 3, 2, 1 at 0, 0.5, -1, 3 T): Landau quantisation.
    geometry = QPCGeometry.from_nm(A_NM, 100, 100, 100)
    assert geometry.qpc_width == geometry.ny and geometry.qpc_first_y == 0
    fsyst = make_qpc_system(geometry)
    zero = np.zeros((geometry.nx, geometry.ny))
    smatrix = kwant.smatrix(fsyst, energy=ENERGY_MEV, params=_params(zero, _phi(field_t)))
    n_open = smatrix.num_propagating(0)
    assert n_open == smatrix.num_propagating(1) >= 1
    assert smatrix.transmission(1, 0) == pytest.approx(n_open, abs=1e-9)
    solver = PLDOSSolver(fsyst, zero.shape, energy_meV=ENERGY_MEV, hopping_meV=T_MEV,
                         fluxes_per_plaquette=[_phi(field_t)])
    assert solver.n_modes == n_open
    image = solver(zero)[0]
    # Reflectionless: no standing wave along x, each column equals the first.
    assert _relative_difference(image, np.broadcast_to(image[:1], image.shape)) < 1e-9


def test_symmetric_and_lu_paths_agree_at_zero_field():
    # B = 0 uses LDLᵀ of the complex-symmetric region matrix; symmetric=False uses the LU of
    # Kwant's bordered system. Both must equal plain Kwant, and each other, to round-off.
    geometry = QPCGeometry.from_nm(5, 200, 150, 100)
    fsyst = make_qpc_system(geometry)
    rng = np.random.default_rng(11)
    potential = 2.0 * rng.standard_normal((geometry.nx, geometry.ny))
    kwargs = dict(energy_meV=ENERGY_MEV, hopping_meV=T_MEV, fluxes_per_plaquette=[0.0])
    ldlt = PLDOSSolver(fsyst, potential.shape, **kwargs)(potential)[0]
    lu = PLDOSSolver(fsyst, potential.shape, symmetric=False, **kwargs)(potential)[0]
    reference = pldos_kwant(fsyst, potential, energy_meV=ENERGY_MEV, hopping_meV=T_MEV)
    scale = np.max(np.abs(reference))
    assert np.max(np.abs(ldlt - reference)) <= 1e-9 * scale
    assert np.max(np.abs(lu - reference)) <= 1e-9 * scale
    assert np.max(np.abs(ldlt - lu)) <= 1e-11 * scale
