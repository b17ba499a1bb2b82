"""Remote-dopant Coulomb disorder of a 2D electron gas (P1, Eqs. 1, 4, 5).

Ionised donors of areal density N_d sit in a plane at distance s from the 2DEG. Their
potential energy for an electron, screened in the Thomas–Fermi approximation, is a
Fourier series over the periodic box L × W:

    V(r) = -(e²/(2εε₀)) (1/(L W)) Σ_{j≠0} e^{-q_j s}/(q_j + q_TF) C_j e^{-i q_j·r}     [meV]

with q_j = (2π m/L, 2π n/W), |q_j| < q_cutoff = 3.5/s, C_{-j} = C_j* so that V is real,
and Re C_j, Im C_j independent normal variables of variance σ² = N_d L W / 2
(so ⟨|C_j|²⟩ = N_d L W, the variance of the structure factor of N_d L W Poisson-placed
dopants). The prefactor e²/(2εε₀ L W) replaces P1's printed Δq_x Δq_y/π; the derivation,
and why this is the physical normalisation, are in docs/physics.md.

The ensemble correlation function (P1 Eq. 4, in the same normalisation) is

    C(R) = ⟨V(r) V(r+R)⟩ = N_d/(2π) (e²/(2εε₀))² ∫_0^{q_cutoff} dq q e^{-2qs}/(q+q_TF)² J₀(qR)   [meV²]

and rms = √C(0) (P1 Eq. 5, with the square root the printed equation lacks); the
correlation length ξ solves C(ξ)/C(0) = 1/2.

Lengths are in nm, wave vectors in nm⁻¹, densities in cm⁻² at the interface (converted to
nm⁻² inside), energies in meV.
"""

from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, special

from .materials import CM2_PER_NM2, Material

__all__ = [
    "FourierModes",
    "fourier_modes",
    "RemoteDopantDisorder",
    "draw_fourier_coefficients",
    "mirror_y_coefficients",
]


@dataclass(frozen=True)
class FourierModes:
    """Half of the reciprocal lattice of the L × W box inside the cutoff.

    Only the half plane (m > 0, or m = 0 and n > 0) is stored; the other half follows from
    C(-q) = C(q)*. Modes are sorted by (m, n).

    Attributes
    ----------
    m, n : ndarray of int
        Integer indices: q_x = 2π m/L, q_y = 2π n/W.
    qx_per_nm, qy_per_nm : ndarray of float
        Wave-vector components in nm⁻¹.
    length_nm, width_nm : float
        Box size L (along x, transport) and W (along y) in nm.
    """

    m: np.ndarray
    n: np.ndarray
    qx_per_nm: np.ndarray
    qy_per_nm: np.ndarray
    length_nm: float
    width_nm: float

    def __len__(self):
        return len(self.m)

    @property
    def q_per_nm(self) -> np.ndarray:
        """|q| in nm⁻¹."""
        return np.hypot(self.qx_per_nm, self.qy_per_nm)


def fourier_modes(length_nm: float, width_nm: float, cutoff_per_nm: float) -> FourierModes:
    """All half-plane modes q_j ≠ 0 of the L × W box with |q_j| < cutoff.

    Parameters
    ----------
    length_nm, width_nm : float
        Box size L × W in nm (the period of the Fourier series).
    cutoff_per_nm : float
        Strict upper bound on |q| in nm⁻¹ (P1: 3.5/s).
    """
    if not cutoff_per_nm > 0:
        raise ValueError(f"cutoff_per_nm must be positive, got {cutoff_per_nm}")
    dqx = 2 * np.pi / length_nm
    dqy = 2 * np.pi / width_nm
    m_max = int(np.floor(cutoff_per_nm / dqx))
    n_max = int(np.floor(cutoff_per_nm / dqy))
    m, n = np.meshgrid(np.arange(0, m_max + 1), np.arange(-n_max, n_max + 1), indexing="ij")
    m, n = m.ravel(), n.ravel()
    upper_half = (m > 0) | ((m == 0) & (n > 0))
    qx, qy = m * dqx, n * dqy
    inside = np.hypot(qx, qy) < cutoff_per_nm
    keep = upper_half & inside
    return FourierModes(m=m[keep], n=n[keep], qx_per_nm=qx[keep], qy_per_nm=qy[keep],
                        length_nm=float(length_nm), width_nm=float(width_nm))


def draw_fourier_coefficients(rng: np.random.Generator, n_modes: int, sigma: float) -> np.ndarray:
    """Complex Gaussian coefficients C_j, real and imaginary parts of standard deviation σ.

    Real parts are drawn first, then imaginary parts, so the draw is a fixed function of
    the generator's state.
    """
    real = rng.normal(0.0, sigma, n_modes)
    imag = rng.normal(0.0, sigma, n_modes)
    return real + 1j * imag


def mirror_y_coefficients(modes: FourierModes, coefficients: np.ndarray,
                          y_sum_nm: float) -> np.ndarray:
    """Coefficients of the mirrored potential V'(x, y) = V(x, Y − y), Y = ``y_sum_nm``.

    On a grid y_k = k a (k = 0 … ny − 1) with Y = (ny − 1) a, V' is the array V flipped along
    y. Mode (m, n) of V becomes mode (m, −n) of V' with a phase:
    C'(m, −n) = C(m, n) e^{−i q_y Y} for m > 0, and for m = 0 (only n > 0 is stored, the
    other half being the complex conjugate) C'(0, n) = conj(C(0, n)) e^{+i q_y Y}. The kernel
    e^{−qs}/(q + q_TF) depends on |q| only, so it is the same for both modes. Used to mirror the
    targets of the Fourier-coefficient model together with its input map.

    Parameters
    ----------
    modes : FourierModes
        The half-plane modes (a cutoff disc is symmetric in n, so (m, −n) is among them).
    coefficients : complex ndarray, shape (..., len(modes))
    y_sum_nm : float
        Y in nm: the mirror is y → Y − y.

    Returns
    -------
    complex ndarray, same shape
    """
    coefficients = np.asarray(coefficients)
    position = {(int(m), int(n)): j for j, (m, n) in enumerate(zip(modes.m, modes.n))}
    try:
        partner = np.array([position[(int(m), -int(n)) if m > 0 else (0, int(n))]
                            for m, n in zip(modes.m, modes.n)], dtype=int)
    except KeyError as missing:
        raise ValueError(f"mode {missing} of the mirror is not in the mode set") from None
    phase = np.exp(-1j * modes.qy_per_nm * y_sum_nm)
    mirrored = np.empty_like(coefficients, dtype=complex)
    on_axis = modes.m == 0
    shifted = coefficients * phase
    mirrored[..., partner[~on_axis]] = shifted[..., ~on_axis]
    mirrored[..., on_axis] = np.conj(shifted[..., on_axis])
    return mirrored


@dataclass(frozen=True)
class RemoteDopantDisorder:
    """Statistics and realisations of the remote-dopant potential.

    Parameters
    ----------
    dopant_distance_nm : float
        Distance s between the dopant plane and the 2DEG, in nm.
    dopant_density_cm2 : float
        Areal density N_d of ionised dopants, in cm⁻².
    material : Material
        Host material (ε, m*): fixes e²/(2εε₀) and the default q_TF.
    cutoff_factor : float
        q_cutoff = cutoff_factor / s (P1: 3.5).
    thomas_fermi_wavevector_per_nm : float, optional
        Screening wave vector q_TF in nm⁻¹; default ``material.thomas_fermi_wavevector_per_nm``
        (2/a_B*).
    """

    dopant_distance_nm: float
    dopant_density_cm2: float
    material: Material
    cutoff_factor: float = 3.5
    thomas_fermi_wavevector_per_nm: float | None = None

    def __post_init__(self):
        if not self.dopant_distance_nm > 0:
            raise ValueError(f"dopant_distance_nm must be positive, got {self.dopant_distance_nm}")
        if not self.dopant_density_cm2 > 0:
            raise ValueError(f"dopant_density_cm2 must be positive, got {self.dopant_density_cm2}")

    # -- parameters -----------------------------------------------------------------------
    @property
    def q_tf_per_nm(self) -> float:
        """Thomas–Fermi wave vector q_TF in nm⁻¹."""
        if self.thomas_fermi_wavevector_per_nm is None:
            return self.material.thomas_fermi_wavevector_per_nm
        return float(self.thomas_fermi_wavevector_per_nm)

    @property
    def cutoff_per_nm(self) -> float:
        """q_cutoff = cutoff_factor/s in nm⁻¹."""
        return self.cutoff_factor / self.dopant_distance_nm

    @property
    def density_per_nm2(self) -> float:
        """N_d in nm⁻²."""
        return self.dopant_density_cm2 * CM2_PER_NM2

    def coefficient_sigma(self, length_nm: float, width_nm: float) -> float:
        """σ = √(N_d L W / 2): standard deviation of Re C_j and of Im C_j (dimensionless)."""
        return float(np.sqrt(self.density_per_nm2 * length_nm * width_nm / 2))

    def screened_kernel_nm(self, q_per_nm) -> np.ndarray:
        """e^{-q s}/(q + q_TF) in nm."""
        q = np.asarray(q_per_nm, dtype=float)
        return np.exp(-q * self.dopant_distance_nm) / (q + self.q_tf_per_nm)

    # -- realisations ---------------------------------------------------------------------
    def potential_meV(self, modes: FourierModes, coefficients: np.ndarray,
                      x_nm: np.ndarray, y_nm: np.ndarray) -> np.ndarray:
        """Evaluate V(x, y) on a grid, in meV.

        Modes with |q| ≥ this disorder's cutoff are skipped, so a mode set built for a smaller
        s (a larger cutoff) can be shared by a whole dataset.

        Parameters
        ----------
        modes : FourierModes
            Half-plane modes; their L, W are the period of the series.
        coefficients : complex ndarray, shape (len(modes),)
            C_j for those modes (dimensionless).
        x_nm, y_nm : 1D ndarray
            Grid coordinates in nm.

        Returns
        -------
        ndarray, shape (len(x_nm), len(y_nm))
            V[i, k] = V(x_i, y_k) in meV.
        """
        coefficients = np.asarray(coefficients)
        if coefficients.shape != (len(modes),):
            raise ValueError(f"expected {len(modes)} coefficients, got shape {coefficients.shape}")
        active = modes.q_per_nm < self.cutoff_per_nm
        area = modes.length_nm * modes.width_nm
        # Weight of each mode, the factor 2 collecting q and -q (C_{-j} = C_j*).
        weights = (-2 * self.material.coulomb_prefactor_meV_nm / area
                   * self.screened_kernel_nm(modes.q_per_nm) * coefficients)
        weights = np.where(active, weights, 0)
        # Separable sum: scatter weights on an (m, n) grid, then two small matrix products.
        m_values = np.arange(modes.m.min(initial=0), modes.m.max(initial=0) + 1)
        n_values = np.arange(modes.n.min(initial=0), modes.n.max(initial=0) + 1)
        grid = np.zeros((len(m_values), len(n_values)), dtype=complex)
        np.add.at(grid, (modes.m - m_values[0], modes.n - n_values[0]), weights)
        phase_x = np.exp(-2j * np.pi * np.outer(np.asarray(x_nm, float), m_values) / modes.length_nm)
        phase_y = np.exp(-2j * np.pi * np.outer(np.asarray(y_nm, float), n_values) / modes.width_nm)
        return np.real(phase_x @ grid @ phase_y.T)

    # -- statistics -----------------------------------------------------------------------
    def correlation_meV2(self, separation_nm) -> np.ndarray:
        """Ensemble correlation C(R) of the infinite system (P1 Eq. 4), in meV².

        C(R) = N_d/(2π) (e²/(2εε₀))² ∫_0^{q_cutoff} dq q e^{-2qs}/(q+q_TF)² J₀(qR).
        """
        prefactor = (self.density_per_nm2 / (2 * np.pi)
                     * self.material.coulomb_prefactor_meV_nm**2)
        separations = np.atleast_1d(np.asarray(separation_nm, dtype=float))

        def integrand(q, r):
            return q * self.screened_kernel_nm(q) ** 2 * special.j0(q * r)

        values = np.array([
            integrate.quad(integrand, 0.0, self.cutoff_per_nm, args=(r,),
                           epsabs=0, epsrel=1e-11, limit=200)[0]
            for r in separations
        ])
        result = prefactor * values
        return result if np.ndim(separation_nm) else result[0]

    def correlation_discrete_meV2(self, modes: FourierModes, separation_x_nm, separation_y_nm):
        """Ensemble correlation of the finite Fourier series itself, in meV².

        C(R) = (2/(LW)) N_d (e²/(2εε₀))² Σ_{half plane, |q|<cutoff} f(q)² cos(q·R), with
        f = e^{-qs}/(q+q_TF). It tends to :meth:`correlation_meV2` as L, W → ∞.
        """
        area = modes.length_nm * modes.width_nm
        active = modes.q_per_nm < self.cutoff_per_nm
        f2 = np.where(active, self.screened_kernel_nm(modes.q_per_nm) ** 2, 0)
        rx = np.asarray(separation_x_nm, dtype=float)[..., None]
        ry = np.asarray(separation_y_nm, dtype=float)[..., None]
        cos = np.cos(rx * modes.qx_per_nm + ry * modes.qy_per_nm)
        return (2 * self.density_per_nm2 / area * self.material.coulomb_prefactor_meV_nm**2
                * np.sum(f2 * cos, axis=-1))

    @property
    def rms_meV(self) -> float:
        """Root mean square √C(0) of the potential, in meV (P1 Eq. 5 with its square root)."""
        return float(np.sqrt(self.correlation_meV2(0.0)))

    @property
    def correlation_length_nm(self) -> float:
        """ξ with C(ξ)/C(0) = 1/2, in nm (the first crossing)."""
        c0 = self.correlation_meV2(0.0)

        def half_crossing(r):
            return self.correlation_meV2(r) / c0 - 0.5

        # The spectrum is dominated by q ≲ 1/(2s), so ξ is of order s (ξ ≈ 1.7 s for GaAs
        # at s = 40–70 nm): scan in steps of s/4 for the first bracket, then refine.
        step = self.dopant_distance_nm / 4
        lower, r = 0.0, step
        while half_crossing(r) > 0:
            lower, r = r, r + step
            if r > 1000 * self.dopant_distance_nm:
                raise RuntimeError("no half crossing of the correlation function found")
        return float(optimize.brentq(half_crossing, lower, r, xtol=1e-10, rtol=1e-12))
