"""Tests of the materials constants and the remote-dopant disorder (P1 Eqs. 1, 4, 5).

Units follow the modules under test: meV, nm, cm⁻², tesla. Everything is seeded; the
statistical tests use tolerances of 5 standard errors estimated from the ensemble itself, so
a correct implementation fails them with probability ~1e-6 per comparison (and with a fixed
seed, never).
"""

import itertools

import numpy as np
import pytest
from scipy import constants, optimize

from mesoinv.physics.disorder import (
    RemoteDopantDisorder,
    draw_fourier_coefficients,
    fourier_modes,
)
from mesoinv.physics.materials import GAAS, flux_per_plaquette, hopping_meV
from mesoinv.physics.qpc import QPCGeometry

M_GAAS = 5.74e-32  # kg, P1
EPS_GAAS = 12.9  # P1


def _disorder(s_nm=50.0, n_d_cm2=1e12, **kwargs):
    return RemoteDopantDisorder(dopant_distance_nm=s_nm, dopant_density_cm2=n_d_cm2,
                                material=GAAS, **kwargs)


def _grid(length_nm, width_nm, a_nm=5.0):
    """Site coordinates of an L × W box sampled at spacing a (periodic: the last site is L - a)."""
    return np.arange(0, length_nm, a_nm), np.arange(0, width_nm, a_nm)


# ---------------------------------------------------------------------------------------------
# 1. Materials
# ---------------------------------------------------------------------------------------------
def test_material_constants_match_quoted_values():
    # The numbers quoted in P1 / NOTES §4–§5: t = ħ²/(2m*a²) = 24.19 meV at a = 5 nm,
    # a_B* = 10.83 nm, and 1 T through a 5 nm plaquette is 6.045e-3 flux quanta.
    assert hopping_meV(5, M_GAAS) == pytest.approx(24.19, rel=1e-3)
    assert GAAS.bohr_radius_nm == pytest.approx(10.83, rel=1e-3)
    assert flux_per_plaquette(1.0, 5) == pytest.approx(6.045e-3, rel=1e-3)
    # The field enters with its sign, and arrays are accepted (one flux per field channel).
    np.testing.assert_allclose(flux_per_plaquette([-1.0, 0.0, 2.0], 5),
                               [-6.045e-3, 0.0, 2 * 6.045e-3], rtol=1e-3)
    # t ∝ 1/a²: halving a multiplies t by 4.
    assert hopping_meV(2.5, M_GAAS) == pytest.approx(4 * hopping_meV(5, M_GAAS), rel=1e-14)
    # q_TF = 2/a_B* (spin-degenerate 2D Thomas–Fermi, the module's documented convention).
    assert GAAS.thomas_fermi_wavevector_per_nm == pytest.approx(2 / GAAS.bohr_radius_nm,
                                                                rel=1e-14)
    # e²/(2εε₀) from the textbook e²/(4πε₀) = 1.439964 eV·nm: 2π · 1439.964 / 12.9 meV·nm.
    assert GAAS.coulomb_prefactor_meV_nm == pytest.approx(2 * np.pi * 1439.964 / EPS_GAAS,
                                                          rel=1e-6)


# ---------------------------------------------------------------------------------------------
# 2. rms and ξ (NOTES §5)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s_nm, rms_meV, xi_nm", [(40, 1.68, 69), (50, 1.37, 84), (70, 1.01, 115)])
def test_rms_and_correlation_length_match_notes(s_nm, rms_meV, xi_nm):
    # NOTES §5 at N_d = 1e12 cm⁻², q_TF = 2/a_B*, cutoff 3.5/s. The quoted numbers have 3
    # (rms) and 2–3 (ξ) significant digits, so 1 % is the resolution of the quotation.
    d = _disorder(s_nm)
    assert d.rms_meV == pytest.approx(rms_meV, rel=1e-2)
    assert d.correlation_length_nm == pytest.approx(xi_nm, rel=1e-2)
    # ξ is defined by C(ξ)/C(0) = 1/2; check the root the solver returned.
    assert d.correlation_meV2(d.correlation_length_nm) / d.correlation_meV2(0.0) == \
        pytest.approx(0.5, abs=1e-9)


def test_rms_and_xi_with_paper_wording_of_q_tf():
    # NOTES §5: with q_TF = 1/a_B* (P1's wording) rms ≈ 2.5 meV and ξ ≈ 90 nm at s = 50 nm.
    d = _disorder(50, thomas_fermi_wavevector_per_nm=1 / GAAS.bohr_radius_nm)
    assert d.rms_meV == pytest.approx(2.5, rel=2e-2)
    assert d.correlation_length_nm == pytest.approx(90, rel=1e-2)


def test_rms_scales_as_sqrt_density_and_xi_does_not_depend_on_density():
    # C(R) ∝ N_d (Poisson dopants: ⟨|C_j|²⟩ = N_d L W), so rms ∝ √N_d and the shape of
    # C(R)/C(0), hence ξ, is independent of N_d.
    base = _disorder(50, 1e12)
    for n_d in (0.6e12, 1.5e12, 2.25e12):
        other = _disorder(50, n_d)
        assert other.rms_meV / base.rms_meV == pytest.approx(np.sqrt(n_d / 1e12), rel=1e-12)
        assert other.correlation_length_nm == pytest.approx(base.correlation_length_nm,
                                                            rel=1e-9)
    # And larger s means a smoother, weaker potential.
    assert _disorder(70).rms_meV < base.rms_meV < _disorder(40).rms_meV
    assert _disorder(40).correlation_length_nm < base.correlation_length_nm \
        < _disorder(70).correlation_length_nm


# ---------------------------------------------------------------------------------------------
# 3. Fourier modes
# ---------------------------------------------------------------------------------------------
def _brute_force_modes(length_nm, width_nm, cutoff):
    """All (m, n) ≠ 0 of the full plane with |q| < cutoff, q computed as the module does."""
    dqx, dqy = 2 * np.pi / length_nm, 2 * np.pi / width_nm
    bound_m = int(cutoff / dqx) + 3
    bound_n = int(cutoff / dqy) + 3
    out = set()
    for m in range(-bound_m, bound_m + 1):
        for n in range(-bound_n, bound_n + 1):
            if (m, n) != (0, 0) and np.hypot(m * dqx, n * dqy) < cutoff:
                out.add((m, n))
    return out


@pytest.mark.parametrize("length_nm, width_nm, cutoff", [
    (200, 150, 3.5 / 50),
    (640, 480, 3.5 / 40),
    (1280, 960, 3.5 / 50),
    (333, 1000, 0.1),  # incommensurate box, many more modes along y than x
    # A cutoff exactly on a mode's |q| (m, n) = (3, 4) of a 100 × 100 box: the bound is
    # strict, so that mode (and its mirror images) must be excluded.
    (100, 100, float(np.hypot(3 * (2 * np.pi / 100), 4 * (2 * np.pi / 100)))),
])
def test_fourier_modes_half_plane_and_cutoff(length_nm, width_nm, cutoff):
    modes = fourier_modes(length_nm, width_nm, cutoff)
    pairs = list(zip(modes.m.tolist(), modes.n.tolist()))
    half = set(pairs)
    assert len(half) == len(pairs), "duplicate modes"
    # No q = 0 (the uniform component is the neutralising background) ...
    assert (0, 0) not in half
    # ... and never both q and -q: the -q half is implied by C(-q) = C(q)*.
    assert not any((-m, -n) in half for m, n in half)
    # Together with their negatives they are exactly the full-plane modes inside the cutoff,
    # so the count is half the brute-force count.
    full = _brute_force_modes(length_nm, width_nm, cutoff)
    assert half | {(-m, -n) for m, n in half} == full
    assert 2 * len(modes) == len(full)
    # Every stored mode is strictly inside the cutoff, with q = 2π(m/L, n/W).
    assert np.all(modes.q_per_nm < cutoff)
    np.testing.assert_allclose(modes.qx_per_nm, 2 * np.pi * modes.m / length_nm, rtol=1e-15)
    np.testing.assert_allclose(modes.qy_per_nm, 2 * np.pi * modes.n / width_nm, rtol=1e-15)
    # The documented half plane and order: m > 0, or m = 0 and n > 0; sorted by (m, n).
    assert all(m > 0 or (m == 0 and n > 0) for m, n in pairs)
    assert pairs == sorted(pairs)


def test_fourier_modes_rejects_bad_cutoff():
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="cutoff_per_nm"):
            fourier_modes(100, 100, bad)


# ---------------------------------------------------------------------------------------------
# 4. Ensemble statistics of realisations
# ---------------------------------------------------------------------------------------------
def _ensemble_autocorrelation(d, length_nm, width_nm, n_samples, lags, seed, sites=()):
    """Per-realisation spatial autocorrelation A(R) = mean_r V(r) V(r + R) on the periodic box.

    The box is the period of the Fourier series, so circular shifts are exact translations.
    ``lags`` are (i, j) site offsets, negative ones allowed. Returns the modes, A at those lags
    (shape (n_samples, len(lags))), the values of V at ``sites`` and the spatial mean of each
    realisation.
    """
    modes = fourier_modes(length_nm, width_nm, d.cutoff_per_nm)
    sigma = d.coefficient_sigma(length_nm, width_nm)
    x, y = _grid(length_nm, width_nm)
    lag_i = np.array([i for i, _ in lags]) % len(x)
    lag_j = np.array([j for _, j in lags]) % len(y)
    rng = np.random.default_rng(seed)
    acf = np.empty((n_samples, len(lags)))
    at_sites = np.empty((n_samples, len(sites)))
    spatial_mean = np.empty(n_samples)
    for k in range(n_samples):
        coefficients = draw_fourier_coefficients(rng, len(modes), sigma)
        v = d.potential_meV(modes, coefficients, x, y)
        assert v.dtype == np.float64 and v.shape == (len(x), len(y))
        # Wiener–Khinchin on the periodic grid: identical to averaging v * np.roll(v, ...)
        # over all sites (checked against np.roll below), but for all lags at once.
        full = np.fft.irfft2(np.abs(np.fft.rfft2(v)) ** 2, s=v.shape) / v.size
        acf[k] = full[lag_i, lag_j]
        at_sites[k] = [v[i, j] for i, j in sites]
        spatial_mean[k] = v.mean()
        if k == 0:
            for lag_x, lag_y in ((3, 0), (0, 5), (4, 4), (-7, 9)):
                shifted = np.roll(v, (-lag_x, -lag_y), axis=(0, 1))  # shifted[r] = v[r + R]
                assert np.mean(v * shifted) == pytest.approx(
                    full[lag_x % len(x), lag_y % len(y)], rel=1e-10)
    return modes, acf, at_sites, spatial_mean


def test_potential_ensemble_mean_and_correlation_match_discrete_series():
    # 400 realisations of the P1 series on a 640 × 480 nm box (a = 5 nm, s = 50 nm).
    d = _disorder(50)
    length, width, a = 640.0, 480.0, 5.0
    sites = [(0, 0), (40, 30), (77, 13), (120, 90)]
    # Along x, along y, both diagonals, from R = 0 to beyond ξ ≈ 72 nm of this box.
    lags = [(0, 0), (1, 0), (0, 1), (4, 0), (0, 4), (10, 0), (0, 17), (12, 12), (-9, 9),
            (20, 5), (30, 0), (0, -30), (25, -25)]
    n = 400
    modes, acf, at_sites, spatial_mean = _ensemble_autocorrelation(
        d, length, width, n, lags, seed=20240611, sites=sites)

    # No q = 0 term: every realisation has zero spatial mean over the period (to round-off,
    # relative to the rms ≈ 1.2 meV on this box).
    assert np.max(np.abs(spatial_mean)) < 1e-12
    # Ensemble mean at fixed sites is 0 within 5 standard errors (⟨C_j⟩ = 0).
    mean = at_sites.mean(axis=0)
    standard_error = at_sites.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(mean) < 5 * standard_error), mean / standard_error

    # The autocorrelation ⟨V(r)V(r+R)⟩ equals correlation_discrete_meV2 (the exact ensemble
    # correlation of this finite series) within 5 standard errors. The spatial average over
    # the box in each realisation makes the per-realisation values independent draws, so the
    # ensemble standard error is std/√n.
    acf_mean = acf.mean(axis=0)
    acf_se = acf.std(axis=0, ddof=1) / np.sqrt(n)
    expected = d.correlation_discrete_meV2(modes, a * np.array([i for i, _ in lags]),
                                           a * np.array([j for _, j in lags]))
    z = (acf_mean - expected) / acf_se
    assert np.all(np.abs(z) < 5), dict(zip(lags, np.round(z, 2)))
    # The comparison must be with the discrete series: on this small box it differs from
    # the continuum Eq. (4) by ≈ 18 % at R = 0 (next test), far beyond 5 standard errors.
    assert abs(acf_mean[0] - d.correlation_meV2(0.0)) > 5 * acf_se[0]


def test_discrete_correlation_matches_the_diagonal_symmetry_lag():
    # The lag (-9, 9) used above relies on C(-R) = C(R); check it directly on the series.
    d = _disorder(50)
    modes = fourier_modes(640, 480, d.cutoff_per_nm)
    for rx, ry in ((-45, 45), (30, -70), (12.5, 3.0)):
        assert d.correlation_discrete_meV2(modes, rx, ry) == pytest.approx(
            d.correlation_discrete_meV2(modes, -rx, -ry), rel=1e-14)


def test_discrete_correlation_tends_to_continuum_for_a_large_box():
    # correlation_discrete_meV2 is a Riemann sum of the Eq. (4) integral over cells of area
    # (2π)²/(LW), without the q = 0 cell. Measured (s = 50 nm, N_d = 1e12):
    #   R =    0 nm: -17.7 % (640 × 480), -5.3 % (1280 × 960), -1.44 % (2560 × 1920)
    #   R = ξ=84 nm:           -35 %,        -10.6 %,             -2.9 %
    # i.e. the deficit falls ≈ 4× per doubling of both sides (the missing cell at q → 0,
    # where f(q)² = 1/q_TF² is largest, has area ∝ 1/(LW)). Measured relative to C(0) the
    # 2560 × 1920 box is within 1.5 % of the continuum everywhere up to 3ξ.
    d = _disorder(50)
    c0 = d.correlation_meV2(0.0)
    r = np.array([0.0, 10.0, 25.0, 50.0, 84.0, 120.0, 180.0, 250.0])
    continuum = d.correlation_meV2(r)
    previous_error = None
    for length, width, tolerance in ((640, 480, 0.30), (1280, 960, 0.07), (2560, 1920, 0.02)):
        modes = fourier_modes(length, width, d.cutoff_per_nm)
        error = 0.0
        for direction in ((1, 0), (0, 1), (np.sqrt(0.5), np.sqrt(0.5))):
            discrete = d.correlation_discrete_meV2(modes, r * direction[0], r * direction[1])
            error = max(error, np.max(np.abs(discrete - continuum)) / c0)
        assert error < tolerance, (length, width, error)
        if previous_error is not None:
            assert error < previous_error / 3  # converges ~ 1/(LW)
        previous_error = error
    # Large box: rms within 1 % (measured 0.72 %) and C(ξ)/C(0) within 1 % of 1/2.
    modes = fourier_modes(2560, 1920, d.cutoff_per_nm)
    c0_discrete = d.correlation_discrete_meV2(modes, 0.0, 0.0)
    assert np.sqrt(c0_discrete) == pytest.approx(d.rms_meV, rel=1e-2)
    xi = d.correlation_length_nm
    assert d.correlation_discrete_meV2(modes, xi, 0.0) / c0_discrete == pytest.approx(
        0.5, abs=1e-2)


def _half_crossing_on_grid(c, step_nm):
    """First R with c(R)/c(0) = 1/2 by linear interpolation between grid lags."""
    ratio = c / c[0]
    k = int(np.argmax(ratio < 0.5))
    assert k > 0
    return step_nm * (k - 1 + (ratio[k - 1] - 0.5) / (ratio[k - 1] - ratio[k]))


def test_ensemble_rms_and_xi_agree_with_analytic_values_on_a_large_box():
    # 200 realisations on 2560 × 1920 nm (512 × 384 sites, 961 modes at s = 50 nm).
    d = _disorder(50)
    length, width, a = 2560.0, 1920.0, 5.0
    n, n_batches = 200, 10
    max_lag = 40
    lags = [(k, 0) for k in range(max_lag)] + [(0, k) for k in range(max_lag)]
    modes, acf, _, _ = _ensemble_autocorrelation(d, length, width, n, lags, seed=7)
    acf = acf.reshape(n, 2, max_lag)  # [sample, axis (x, y), lag]

    # rms: ensemble C(0) vs the exact C(0) of the series within 5 standard errors
    # (statistics only) ...
    c0 = acf[:, 0, 0]
    assert np.array_equal(c0, acf[:, 1, 0])
    c0_discrete = d.correlation_discrete_meV2(modes, 0.0, 0.0)
    assert abs(c0.mean() - c0_discrete) < 5 * c0.std(ddof=1) / np.sqrt(n)
    # ... and vs the continuum rms: the finite box lowers rms by 0.72 % (previous test) and
    # the statistical standard error of rms is ≈ 0.3 % here (≈ 0.6 % relative on C(0)), so
    # 0.72 % + 5 × 0.3 % ≈ 2.2 % → 2.5 %.
    assert np.sqrt(c0.mean()) == pytest.approx(d.rms_meV, rel=2.5e-2)

    # ξ along x and along y from the ensemble autocorrelation, with the same grid estimator
    # (linear interpolation between 5 nm lags) applied to the exact discrete correlation,
    # so the interpolation bias cancels. The statistical error comes from 10 batches of 20.
    lags_nm = a * np.arange(max_lag)
    xi_discrete = [
        _half_crossing_on_grid(d.correlation_discrete_meV2(modes, lags_nm, 0 * lags_nm), a),
        _half_crossing_on_grid(d.correlation_discrete_meV2(modes, 0 * lags_nm, lags_nm), a),
    ]
    batches = acf.reshape(n_batches, n // n_batches, 2, max_lag).mean(axis=1)
    for axis in (0, 1):
        xis = np.array([_half_crossing_on_grid(curve, a) for curve in batches[:, axis]])
        xi_total = _half_crossing_on_grid(acf[:, axis].mean(axis=0), a)
        xi_se = xis.std(ddof=1) / np.sqrt(n_batches)
        assert abs(xi_total - xi_discrete[axis]) < 5 * xi_se, (axis, xi_total, xi_se)
        # vs the continuum ξ = 84.2 nm: measured 83.4 nm here (the finite box shortens ξ by
        # ≈ 1 %, and the grid interpolation adds < 0.1 nm), so 2.5 % covers bias + statistics.
        assert xi_total == pytest.approx(d.correlation_length_nm, rel=2.5e-2)
    # The exact ξ of the series itself (a continuous root, not on the grid) is within 1.5 %
    # of the continuum one.
    xi_series = optimize.brentq(
        lambda r: d.correlation_discrete_meV2(modes, r, 0.0) / c0_discrete - 0.5, 10.0, 200.0)
    assert xi_series == pytest.approx(d.correlation_length_nm, rel=1.5e-2)


# ---------------------------------------------------------------------------------------------
# 5. Shared mode sets: modes at or beyond the disorder's own cutoff are skipped
# ---------------------------------------------------------------------------------------------
def test_potential_skips_modes_beyond_own_cutoff():
    # A mode set built for s = 40 nm (cutoff 0.0875/nm) used by an s = 50 nm disorder (cutoff
    # 0.07/nm) must give the same V as the s = 50 set with the matching coefficients: the extra
    # modes are dropped, not evaluated.
    length, width = 640.0, 480.0
    d50 = _disorder(50)
    wide = fourier_modes(length, width, _disorder(40).cutoff_per_nm)
    narrow = fourier_modes(length, width, d50.cutoff_per_nm)
    assert len(wide) > len(narrow)
    rng = np.random.default_rng(3)
    c_wide = draw_fourier_coefficients(rng, len(wide), d50.coefficient_sigma(length, width))
    index = {pair: j for j, pair in enumerate(zip(wide.m.tolist(), wide.n.tolist()))}
    c_narrow = c_wide[[index[pair] for pair in zip(narrow.m.tolist(), narrow.n.tolist())]]
    x, y = _grid(length, width)
    v_wide = d50.potential_meV(wide, c_wide, x, y)
    v_narrow = d50.potential_meV(narrow, c_narrow, x, y)
    np.testing.assert_allclose(v_wide, v_narrow, rtol=0, atol=1e-12 * np.max(np.abs(v_narrow)))
    # The same holds for the discrete correlation.
    assert d50.correlation_discrete_meV2(wide, 30.0, 20.0) == pytest.approx(
        d50.correlation_discrete_meV2(narrow, 30.0, 20.0), rel=1e-13)


def test_potential_skips_a_mode_exactly_at_the_cutoff():
    # "At or beyond": with s = 1 nm and cutoff_factor equal to a mode's |q|, cutoff_per_nm is
    # bit-identical to that |q|; that mode alone must give V = 0, and a mode just inside
    # must not.
    modes = fourier_modes(100.0, 100.0, 1.0)
    q = modes.q_per_nm
    k_edge = int(np.argmax(q))
    inside = q < q[k_edge]
    k_inside = int(np.flatnonzero(inside)[np.argmax(q[inside])])
    d = RemoteDopantDisorder(dopant_distance_nm=1.0, dopant_density_cm2=1e12, material=GAAS,
                             cutoff_factor=float(q[k_edge]))
    assert d.cutoff_per_nm == q[k_edge]
    x, y = _grid(100.0, 100.0)
    only_edge = np.zeros(len(modes), complex)
    only_edge[k_edge] = 1.0 + 1.0j
    assert np.all(d.potential_meV(modes, only_edge, x, y) == 0)
    only_inside = np.zeros(len(modes), complex)
    only_inside[k_inside] = 1.0 + 1.0j
    assert np.max(np.abs(d.potential_meV(modes, only_inside, x, y))) > 0


def test_potential_rejects_wrong_number_of_coefficients():
    d = _disorder(50)
    modes = fourier_modes(200, 150, d.cutoff_per_nm)
    with pytest.raises(ValueError, match="coefficients"):
        d.potential_meV(modes, np.zeros(len(modes) + 1, complex), [0.0], [0.0])


# ---------------------------------------------------------------------------------------------
# 6. Eq. (1) by a direct double sum over the full plane
# ---------------------------------------------------------------------------------------------
def test_potential_equals_direct_full_plane_sum_of_eq1():
    # V(r) = -(e²/(2εε₀ L W)) Σ_{q≠0, |q|<3.5/s} e^{-qs}/(q+q_TF) C(q) e^{-iq·r}, summed over
    # q AND -q with C(-q) = C(q)*. Constants recomputed here from scipy.constants (not from
    # the module) so that the sign and prefactor convention is pinned independently.
    s, length, width = 40.0, 640.0, 480.0
    d = _disorder(s, 1.3e12)
    coulomb = constants.e**2 / (2 * EPS_GAAS * constants.epsilon_0) / (1e-3 * constants.e * 1e-9)
    bohr_nm = (4 * np.pi * EPS_GAAS * constants.epsilon_0 * constants.hbar**2
               / (M_GAAS * constants.e**2)) / 1e-9
    q_tf = 2 / bohr_nm
    modes = fourier_modes(length, width, 3.5 / s)
    rng = np.random.default_rng(11)
    c_half = draw_fourier_coefficients(rng, len(modes), d.coefficient_sigma(length, width))

    qx = np.concatenate([modes.qx_per_nm, -modes.qx_per_nm])
    qy = np.concatenate([modes.qy_per_nm, -modes.qy_per_nm])
    c_full = np.concatenate([c_half, np.conj(c_half)])
    q = np.hypot(qx, qy)
    f = np.exp(-q * s) / (q + q_tf)

    points = rng.uniform([0, 0], [length, width], size=(6, 2))
    points[0] = (0.0, 0.0)
    for x, y in points:
        direct = -coulomb / (length * width) * np.sum(f * c_full * np.exp(-1j * (qx * x + qy * y)))
        # C(-q) = C(q)* makes the full-plane sum real.
        assert abs(direct.imag) < 1e-13 * abs(direct.real)
        v = d.potential_meV(modes, c_half, np.array([x]), np.array([y]))
        assert v.shape == (1, 1)
        assert v[0, 0] == pytest.approx(direct.real, rel=1e-12)

    # A single positive real coefficient: V(0) = -2 e²/(2εε₀LW) f(q) C < 0 (attractive
    # ionised donors lower the electron's energy where they are dense).
    single = np.zeros(len(modes), complex)
    single[0] = 1.0
    v0 = d.potential_meV(modes, single, np.array([0.0]), np.array([0.0]))[0, 0]
    assert v0 == pytest.approx(-2 * coulomb / (length * width) * f[0], rel=1e-12)
    assert v0 < 0


def test_coefficient_draw_is_reproducible_and_has_documented_variance():
    # σ² = N_d L W / 2 per real and imaginary part; the draw is a fixed function of the seed.
    d = _disorder(50, 1e12)
    sigma = d.coefficient_sigma(640, 480)
    assert sigma == pytest.approx(np.sqrt(1e12 * 1e-14 * 640 * 480 / 2), rel=1e-14)
    a = draw_fourier_coefficients(np.random.default_rng(5), 20000, sigma)
    b = draw_fourier_coefficients(np.random.default_rng(5), 20000, sigma)
    assert a.tobytes() == b.tobytes()
    # Sample variance of 20000 normals: relative standard error √(2/20000) = 1 %, so 5 %.
    assert np.var(a.real) == pytest.approx(sigma**2, rel=5e-2)
    assert np.var(a.imag) == pytest.approx(sigma**2, rel=5e-2)
    # Real parts are drawn first, then imaginary parts.
    reference = np.random.default_rng(5).normal(0.0, sigma, 40000)
    np.testing.assert_array_equal(a.real, reference[:20000])
    np.testing.assert_array_equal(a.imag, reference[20000:])


# ---------------------------------------------------------------------------------------------
# 7. Invalid parameters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s_nm", [0.0, -10.0, np.nan])
def test_disorder_rejects_nonpositive_distance(s_nm):
    with pytest.raises(ValueError, match="dopant_distance_nm"):
        _disorder(s_nm, 1e12)


@pytest.mark.parametrize("n_d", [0.0, -1e12, np.nan])
def test_disorder_rejects_nonpositive_density(n_d):
    with pytest.raises(ValueError, match="dopant_density_cm2"):
        _disorder(50.0, n_d)


@pytest.mark.parametrize("args, message", [
    ((5, 201, 150, 100), r"length_nm = 201 nm"),
    ((5, 200, 152.5, 100), r"width_nm = 152.5 nm"),
    ((5, 200, 150, 102), r"qpc_width_nm = 102 nm"),
])
def test_geometry_rejects_non_integer_multiples_of_a(args, message):
    with pytest.raises(ValueError, match=message):
        QPCGeometry.from_nm(*args)


def test_geometry_rejects_qpc_outside_region():
    # 30 sites wide, QPC 20 sites: a centre at 10 nm puts the first site at
    # floor(2 - 9.5 + 0.5) = -7, a centre at 140 nm puts the last site at 19 + 19 = 38 > 29.
    with pytest.raises(ValueError, match=r"qpc_center_nm = 10 nm .*first y site -7, width 20"):
        QPCGeometry.from_nm(5, 200, 150, 100, qpc_center_nm=10)
    with pytest.raises(ValueError, match=r"qpc_center_nm = 140 nm .*first y site 19, width 20"):
        QPCGeometry.from_nm(5, 200, 150, 100, qpc_center_nm=140)
    # A QPC wider than the region.
    with pytest.raises(ValueError, match=r"qpc_width must be within 1\.\.30 sites, got 40"):
        QPCGeometry.from_nm(5, 200, 150, 200)
    # Edge cases that are inside: flush with the lower and the upper edge.
    assert QPCGeometry.from_nm(5, 200, 150, 100, qpc_center_nm=47.5).qpc_first_y == 0
    assert QPCGeometry.from_nm(5, 200, 150, 100, qpc_center_nm=97.5).qpc_first_y == 10


def test_geometry_sizes_and_default_centring():
    g = QPCGeometry.from_nm(5, 1280, 960, 100)  # P1: 256 × 192 sites, 20-site QPC
    assert (g.nx, g.ny, g.qpc_width, g.qpc_first_y) == (256, 192, 20, 86)
    assert g.length_nm == 1280 and g.width_nm == 960
    np.testing.assert_array_equal(g.x_nm, 5.0 * np.arange(256))
    # Centred: equal numbers of rows below and above the QPC.
    assert g.qpc_first_y == g.ny - (g.qpc_first_y + g.qpc_width)


def test_all_combinations_of_small_invalid_region_raise():
    for nx, ny in itertools.product((0, 1, 2), (0, 1, 2)):
        if nx >= 2 and ny >= 2:
            continue
        with pytest.raises(ValueError):
            QPCGeometry(lattice_constant_nm=5.0, nx=nx, ny=ny, qpc_width=1, qpc_first_y=0)
