"""Fast magnetoconductance and LDOS of the P2 nanowire: recursive Green's functions in numpy.

The model is exactly the one of :mod:`mesoinv.physics.nanowire` (same Hamiltonian, gauge,
units and lead convention); this module computes it without Kwant, without per-hopping
Python callbacks, and for all field values of a trace at once. Results equal
``kwant.smatrix(...).transmission(1, 0)`` and ``kwant.ldos`` to round-off (tests/test_rgf.py
asserts ≤ 1e-9 absolute; measured ≤ ~2e-12 at 50 × 60).

Usage (the lead self-energies depend only on W, E and the field grid, never on the sample,
so a dataset computes them once)::

    leads = lead_self_energies(50, fluxes, energy=E)
    G = transmission(present_mask(geometry, centres), potential, leads)     # (n_fields,)
    image = ldos(present, potential, lead_self_energies(50, [0.0], energy=E))[0]

Slices. Slice k (0 ≤ k < L) is the row of constant y = k with its present sites (antidot
sites are removed from the slice, so slices through an antidot are smaller; no large onsite
energies). x bonds within a slice carry no phase, so the slice Hamiltonians H_k (tridiagonal,
4 + V on the diagonal, -1 between adjacent present sites) do not depend on the field. The
field is only in the hopping from slice k to k+1, H_{k+1,k} = -diag(d) restricted to the
sites present in both rows, d_x = exp(-2πi φ x), x = i - (W-1)/2.

Leads (:func:`lead_self_energies`). Both leads are the clean full-width wire, unit cell H0,
hopping T = H_{k+1,k} = -D. Their Bloch modes ψ_k = λ^k u solve the quadratic eigenproblem
(H0 - E) u - (λ⁻¹ D + λ D*) u = 0. With λ = e^{iα}(1 + iτ)/(1 - iτ) it becomes a *real*
quadratic problem in τ (see :func:`_companions`), linearised as a real 2W × 2W companion
matrix: propagating modes are its real eigenvalues (|λ| = 1 exactly), evanescent ones decay
towards +y for Im τ > 0. The invariant subspaces are taken from Schur vectors, not
eigenvectors: in a field the evanescent modes of a wide lead come in nearly degenerate pairs
(one per edge) whose eigenvectors are numerically parallel (an eigenvector construction was
off by 1e-5 at W = 50). Propagating modes are split by the sign of their velocity
(Hellmann–Feynman). From a basis Z = [Z_top; Z_bot] of the right-going modes [τu; u],
ψ_{k+1} = F_R ψ_k with F_R = e^{iα}(Z_bot + iZ_top)(Z_bot - iZ_top)⁻¹, similarly F_L for the
left-going ones, and the exact retarded self-energies (no broadening η) are

    Σ_R = T† F_R   (lead 1, on row L-1),       Σ_L = T F_L   (lead 0, on row 0).

Γ = i(Σ - Σ†) has rank N (open channels); it is stored as a factor Γ = A A† of
N_max = max_φ N columns. An antidot that removes sites of row 0 or L-1 couples the lead to
the present sites only: the self-energy is the submatrix of the full-width one (the lead
begins one row beyond, as in the Kwant system's padding row).

Sweep (:func:`transmission`). Left-connected Green's functions

    g_0 = (E - H_0 - Σ_L)⁻¹,   g_k = (E - H_k - H_{k,k-1} g_{k-1} H_{k-1,k} [- Σ_R if k=L-1])⁻¹

with H_{k,k-1} g H_{k-1,k} = D g D* on the shared sites (an elementwise product). Inverses
are done per field with LAPACK getrf/getri in place (faster than ``numpy.linalg.inv`` on the
stack); the fields of a chunk share the Python loop over rows. Runs of complete rows are
crossed in transfer-matrix form (:func:`_sweep`): ``transfer_steps`` rows cost one division
ψ Q⁻¹ instead of ``transfer_steps`` inverses. The price is the growth of evanescent
components between divisions, ~e^{2κ·steps} (κ ≤ acosh 3): 3 steps lose ~4 digits
(measured ≤ 6e-13 against the plain RGF at 50 × 60), 6 steps ~7 (6e-11); the default is 3.
The sweep ends with the full block G = G_{L-1,L-1}; then r = -1 + i A_R† G A_R is lead 1's
reflection block (generalised Fisher–Lee; unitary for any factor A of Γ) and
T = N - ‖r‖²_F, so no G_{k,0} needs to be carried along.

LDOS (:func:`ldos`): the plain forward sweep storing every g_k, then the backward recursion
G_kk = g_k + g_k H_{k,k+1} G_{k+1,k+1} H_{k+1,k} g_k, and ρ = -Im diag(G_kk)/π, which is
what ``kwant.ldos`` computes from scattering states when there are no bound states at E.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from .nanowire import DEFAULT_ENERGY

__all__ = [
    "LeadSelfEnergies",
    "lead_self_energies",
    "transmission",
    "ldos",
]

#: Default number of transfer-matrix steps between two divisions in :func:`transmission`
#: (1: plain RGF, one inverse per row). See the module docstring for the error estimate.
TRANSFER_STEPS = 3

#: Fields processed together in one Python loop over slices (keeps the stacks in cache).
DEFAULT_CHUNK = 16

_getrf, _getri, _getrs = lapack.zgetrf, lapack.zgetri, lapack.zgetrs


def _x_positions(width: int) -> np.ndarray:
    """x_i = i - (W-1)/2 in lattice constants (the gauge origin, as in the Kwant system)."""
    return np.arange(width) - (width - 1) / 2


def _phases(fluxes: np.ndarray, width: int) -> np.ndarray:
    """d[f, i] = exp(-2πi φ_f x_i): H_{k+1,k} = -diag(d)."""
    return np.exp(-2j * np.pi * fluxes[:, None] * _x_positions(width)[None, :])


def _clean_slice(width: int, energy: float) -> np.ndarray:
    """E - H0 of the clean full-width row: E - 4 on the diagonal, +1 next to it."""
    a = np.diag(np.full(width, energy - 4.0))
    a += np.diag(np.ones(width - 1), 1) + np.diag(np.ones(width - 1), -1)
    return a


@dataclass(frozen=True)
class LeadSelfEnergies:
    """Retarded self-energies of the two clean leads for each field of a trace.

    They depend only on (W, E, φ), not on the antidots or the potential: compute them once
    per field grid and reuse them for every sample.

    Attributes
    ----------
    width_sites : int
        W.
    energy : float
        Fermi energy in units of t.
    fluxes_per_plaquette : ndarray, shape (n_fields,)
        φ of each field value.
    sigma_left, sigma_right : ndarray, shape (n_fields, W, W)
        Σ of lead 0 on row 0 and of lead 1 on row L-1, sites ordered by i (units of t).
    gamma_left, gamma_right : ndarray, shape (n_fields, W, N_max)
        Factors A with Γ = i(Σ - Σ†) = A A†.
    n_open : ndarray of int, shape (n_fields,)
        Open channels N of the (clean) wire at each field.
    """

    width_sites: int
    energy: float
    fluxes_per_plaquette: np.ndarray
    sigma_left: np.ndarray
    sigma_right: np.ndarray
    gamma_left: np.ndarray
    gamma_right: np.ndarray
    n_open: np.ndarray

    @property
    def n_fields(self) -> int:
        return len(self.fluxes_per_plaquette)

    def select(self, index) -> "LeadSelfEnergies":
        """The self-energies of a subset of the fields (an index or slice into the fields)."""
        index = np.atleast_1d(np.arange(self.n_fields)[index])
        return LeadSelfEnergies(self.width_sites, self.energy,
                                self.fluxes_per_plaquette[index], self.sigma_left[index],
                                self.sigma_right[index], self.gamma_left[index],
                                self.gamma_right[index], self.n_open[index])


def _clean_hamiltonian(width: int) -> np.ndarray:
    """H0 of the clean full-width row: 4 on the diagonal, -1 next to it (real, W × W)."""
    return -_clean_slice(width, 0.0)


def _diag_stack(values: np.ndarray) -> np.ndarray:
    """(n, W) → (n, W, W) stack of diagonal matrices."""
    out = np.zeros(values.shape + values.shape[-1:], dtype=values.dtype)
    idx = np.arange(values.shape[-1])
    out[:, idx, idx] = values
    return out


def _companions(theta: np.ndarray, energy: float):
    """Real companion matrices of the lead's mode problem for each field, and their shifts α.

    With λ = e^{iq} the mode equation (H0 - E) u - (λ⁻¹ D + λ D*) u = 0 reads
    (H0 - E - 2 diag cos(q + θ_x)) u = 0, θ_x = 2πφ x. Writing q = α + q' and
    τ = tan(q'/2) (cos q' = (1-τ²)/(1+τ²), sin q' = 2τ/(1+τ²)) turns it into the *real*
    quadratic eigenproblem

        [τ² (H0 - E + 2C) + τ 4S + (H0 - E - 2C)] u = 0,   C, S = diag cos, sin(θ_x + α),

    linearised as K [τu; u] = τ [τu; u] with K = [[-M2⁻¹M1, -M2⁻¹M0], [1, 0]]. Real τ are
    the propagating modes (|λ| = 1 exactly), Im τ > 0 the evanescent modes decaying towards
    +y (|λ| < 1), Im τ < 0 those decaying towards -y; λ = e^{iα}(1 + iτ)/(1 - iτ). The
    shift α (q' = π, where τ is infinite) is chosen per field among a few candidates so that
    M2 = H0 - E + 2C, which the companion form inverts, is well conditioned.

    Returns
    -------
    companion : ndarray, shape (n, 2W, 2W), real
    alpha : ndarray, shape (n,)
    """
    n, width = theta.shape
    h0_minus_e = _clean_hamiltonian(width) - energy * np.eye(width)
    candidates = np.pi * np.array([0.0, 0.5, 1.0, 1.5, 0.25, 0.75, 1.25, 1.75])
    alpha = np.zeros(n)
    best = np.full(n, -1.0)
    for a in candidates:
        todo = best < 0.1
        if not todo.any():
            break
        m2 = h0_minus_e[None] + 2 * _diag_stack(np.cos(theta[todo] + a))
        gap = np.min(np.abs(np.linalg.eigvalsh(m2)), axis=-1)
        better = gap > best[todo]
        idx = np.flatnonzero(todo)[better]
        alpha[idx], best[idx] = a, gap[better]
    beta = theta + alpha[:, None]
    cos, sin = np.cos(beta), np.sin(beta)
    m2 = h0_minus_e[None] + 2 * _diag_stack(cos)
    m0 = h0_minus_e[None] - 2 * _diag_stack(cos)
    rhs = np.concatenate([4 * _diag_stack(sin), m0], axis=2)        # [M1, M0]
    companion = np.zeros((n, 2 * width, 2 * width))
    companion[:, :width, :] = -np.linalg.solve(m2, rhs)
    companion[:, width + np.arange(width), np.arange(width)] = 1.0
    return companion, alpha


def _select_real(wr, wi):
    return wi == 0.0


def _complex_schur(t, z):
    """Real Schur form (T, Z) → complex Schur form, block by block (as scipy's rsf2csf)."""
    t = t.astype(complex)
    z = z.astype(complex)
    n = t.shape[0]
    for m in range(n - 1, 0, -1):
        if t[m, m - 1] != 0:
            a, b, c, d = t[m - 1, m - 1], t[m - 1, m], t[m, m - 1], t[m, m]
            half = (a - d) / 2
            mu = half + np.sqrt(half * half + b * c)       # eigenvalue - d
            r = np.sqrt(abs(mu) ** 2 + abs(c) ** 2)
            cs, sn = mu / r, c / r
            g = np.array([[np.conj(cs), sn], [-sn, cs]])
            t[m - 1:m + 1, m - 1:] = g @ t[m - 1:m + 1, m - 1:]
            t[:m + 1, m - 1:m + 1] = t[:m + 1, m - 1:m + 1] @ g.conj().T
            z[:, m - 1:m + 1] = z[:, m - 1:m + 1] @ g.conj().T
            t[m, m - 1] = 0.0
    return t, z


def _lead_bases(companion, alpha, theta, field_index):
    """Bases of the right- and left-going mode subspaces of one field (each 2W × W).

    Eigenvectors are not used for the evanescent modes: in a field they come in nearly
    degenerate pairs (localised at the two edges) whose computed eigenvectors are nearly
    parallel. Orthonormal Schur vectors span the invariant subspaces exactly:

    1. real Schur form of the companion with the real eigenvalues (propagating modes)
       first (LAPACK dgees with sorting); the propagating modes' eigenvectors come from
       that small triangular block, and their velocity v = dE/dq = 2 Σ_x |u_x|² sin(q+θ_x)
       (Hellmann–Feynman for H(q) = H0 - 2 diag cos(q + θ_x)) decides their direction;
    2. its complex Schur form, reordered (ztrsen) to put Im τ > 0 first: those Schur
       vectors span the evanescent modes decaying towards +y; their complex conjugates span
       the ones decaying towards -y (the companion is real).
    """
    n2 = companion.shape[0]
    width = n2 // 2
    t, n_prop, _, _, z, _, info = lapack.dgees(_select_real, companion, sort_t=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dgees failed (info {info}) at field index {field_index}")
    # -- propagating modes
    t11 = t[:n_prop, :n_prop]
    tau_p, y = np.linalg.eig(t11)
    tau_p, y = tau_p.real, y.real
    order = np.argsort(tau_p)
    if n_prop > 1 and np.any(np.diff(tau_p[order]) < 1e-7 * (1 + np.abs(tau_p[order][1:]))):
        raise RuntimeError(
            f"degenerate propagating lead modes at field index {field_index} (two bands "
            f"cross the Fermi energy at the same momentum); not supported")
    modes = z[:, :n_prop] @ y
    modes /= np.linalg.norm(modes, axis=0)
    u = modes[width:]
    q = alpha + 2 * np.arctan(tau_p)
    velocity = 2 * np.sum(u ** 2 * np.sin(q[None, :] + theta[:, None]), axis=0) / np.sum(
        u ** 2, axis=0)
    right_p, left_p = modes[:, velocity > 0], modes[:, velocity < 0]
    # -- evanescent modes
    tc, zc = _complex_schur(t, z)
    select = (np.diag(tc).imag > 0).astype(np.int32)
    n_decay = int(select.sum())
    _, zs, _, m, _, _, info = lapack.ztrsen(select, tc, zc, job="N")
    if info != 0:
        raise np.linalg.LinAlgError(f"ztrsen failed (info {info}) at field index {field_index}")
    decaying = zs[:, :m]
    n_open = right_p.shape[1]
    if (n_prop % 2 or left_p.shape[1] != n_open or n_decay + n_open != width
            or np.any(velocity == 0)):
        raise RuntimeError(
            f"lead mode classification failed at field index {field_index}: {n_prop} "
            f"propagating ({n_open} right-, {left_p.shape[1]} left-moving), {n_decay} "
            f"decaying of {n2} modes (the energy may sit on a band edge)")
    right = np.concatenate([decaying, right_p], axis=1)
    left = np.concatenate([np.conj(decaying), left_p], axis=1)
    return right, left, n_open


def lead_self_energies(width_sites: int, fluxes_per_plaquette, *, energy=DEFAULT_ENERGY,
                       chunk: int = DEFAULT_CHUNK) -> LeadSelfEnergies:
    """Exact self-energies of both leads for all fields.

    Parameters
    ----------
    width_sites : int
        W, the width of the wire (and of the leads) in sites.
    fluxes_per_plaquette : sequence of float
        φ = B a² e/h for each field value.
    energy : float
        Fermi energy in units of t (band bottom of the clean lattice at 0).
    chunk : int
        Fields per batched set-up (memory only; results do not depend on it).

    Returns
    -------
    LeadSelfEnergies

    Raises
    ------
    RuntimeError
        If the modes cannot be split into W right- and W left-going ones (the energy on a
        band edge of the lead, where the self-energy is singular).

    Notes
    -----
    With a basis Z = [Z_top; Z_bot] (2W × W) of the right-going modes [τu; u], the transfer
    from row k to k+1 is F_R = U Λ U⁻¹ = e^{iα}(Z_bot + iZ_top)(Z_bot - iZ_top)⁻¹ (λ is a
    Möbius function of τ; the basis does not matter), and from the left-going basis
    F_L = U Λ⁻¹ U⁻¹ = e^{-iα}(Z_bot - iZ_top)(Z_bot + iZ_top)⁻¹. Then Σ_R = T† F_R and
    Σ_L = T F_L with T = -D.
    """
    width = int(width_sites)
    if width < 1:
        raise ValueError(f"width_sites must be ≥ 1, got {width_sites}")
    fluxes = np.atleast_1d(np.asarray(fluxes_per_plaquette, dtype=float))
    if fluxes.ndim != 1 or not np.all(np.isfinite(fluxes)):
        raise ValueError("fluxes_per_plaquette must be a finite 1D sequence")
    energy = float(energy)
    n_fields = len(fluxes)
    theta_all = 2 * np.pi * fluxes[:, None] * _x_positions(width)[None, :]
    d_all = np.exp(-1j * theta_all)
    sigma_left = np.empty((n_fields, width, width), dtype=complex)
    sigma_right = np.empty_like(sigma_left)
    n_open = np.empty(n_fields, dtype=int)
    for start in range(0, n_fields, chunk):
        stop = min(start + chunk, n_fields)
        companion, alpha = _companions(theta_all[start:stop], energy)
        for j in range(stop - start):
            f = start + j
            right, left, n_open[f] = _lead_bases(companion[j], alpha[j], theta_all[f], f)
            phase = np.exp(1j * alpha[j])
            top, bot = right[:width], right[width:]
            f_right = phase * np.linalg.solve((bot - 1j * top).T, (bot + 1j * top).T).T
            top, bot = left[:width], left[width:]
            f_left = np.linalg.solve((bot + 1j * top).T, (bot - 1j * top).T).T / phase
            d = d_all[f]
            sigma_right[f] = -np.conj(d)[:, None] * f_right   # T† F_R
            sigma_left[f] = -d[:, None] * f_left              # T F_L
    n_max = int(n_open.max()) if n_fields else 0
    gamma_left = _gamma_factor(sigma_left, n_open, n_max)
    gamma_right = _gamma_factor(sigma_right, n_open, n_max)
    return LeadSelfEnergies(width, energy, fluxes, sigma_left, sigma_right, gamma_left,
                            gamma_right, n_open)


def _gamma_factor(sigma, n_open, n_max):
    """A (n_fields, W, n_max) with A A† = Γ = i(Σ - Σ†): its N largest eigenpairs."""
    gamma = 1j * (sigma - np.conj(np.swapaxes(sigma, -1, -2)))
    gamma = (gamma + np.conj(np.swapaxes(gamma, -1, -2))) / 2
    w, q = np.linalg.eigh(gamma)                      # ascending
    w, q = w[:, ::-1][:, :n_max], q[:, :, ::-1][:, :, :n_max]
    keep = np.arange(n_max)[None, :] < n_open[:, None]
    w = np.where(keep, np.clip(w, 0, None), 0.0)
    return q * np.sqrt(w)[:, None, :]


# -- slices -----------------------------------------------------------------------------------

@dataclass
class _Slice:
    sites: np.ndarray        # x indices i of the present sites, ascending
    e_minus_h: np.ndarray    # E - H_k (real, m × m)
    e_minus_h_diag: np.ndarray  # its diagonal E - 4 - V
    full_coupling: bool      # previous slice and this one both complete
    rows: np.ndarray         # positions (in this slice) of sites with a partner in k-1
    cols: np.ndarray         # positions of those partners in slice k-1
    xs: np.ndarray           # their x indices i


def _slices(present, potential, energy):
    present = np.asarray(present, dtype=bool)
    potential = np.asarray(potential, dtype=float)
    if present.ndim != 2:
        raise ValueError(f"present must be a (W, L) mask, got shape {present.shape}")
    if potential.shape != present.shape:
        raise ValueError(f"potential has shape {potential.shape}, expected {present.shape}")
    if not np.all(np.isfinite(potential)):
        raise ValueError("potential contains non-finite values")
    width, length = present.shape
    out = []
    previous = None
    for k in range(length):
        sites = np.flatnonzero(present[:, k])
        if sites.size == 0:
            raise ValueError(f"row {k} has no sites: the wire is cut")
        m = sites.size
        e_minus_h = np.diag(energy - 4.0 - potential[sites, k])
        adjacent = np.flatnonzero(np.diff(sites) == 1)
        e_minus_h[adjacent, adjacent + 1] = 1.0
        e_minus_h[adjacent + 1, adjacent] = 1.0
        if previous is None:
            rows = cols = xs = np.arange(0)
            full = False
        else:
            xs, rows, cols = np.intersect1d(sites, previous, assume_unique=True,
                                            return_indices=True)
            full = m == width and previous.size == width
        out.append(_Slice(sites, e_minus_h, np.diag(e_minus_h).copy(), full, rows, cols, xs))
        previous = sites
    return out


def _invert_in_place(stack):
    """Invert each (m, m) matrix of a C-contiguous stack in place (LAPACK getrf + getri).

    getrf/getri on each matrix beat ``numpy.linalg.inv`` on the stack (which solves against
    the identity) by ~1.6× at m = 50 here; the transpose of a C-contiguous matrix is
    F-contiguous, so LAPACK works on the stack's memory without copies.
    """
    for j in range(stack.shape[0]):
        lu, piv, info = _getrf(stack[j].T, overwrite_a=1)
        if info > 0:
            raise np.linalg.LinAlgError("singular slice matrix: E is an eigenvalue of a "
                                        "part of the wire decoupled from the leads")
        inv, info = _getri(lu, piv, overwrite_lu=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"getri failed (info {info})")
        if not np.shares_memory(inv, stack):  # pragma: no cover - f2py copied after all
            stack[j] = inv.T


def _next_matrix(sl, g_prev, neg_pair_phase):
    """E - H_k - H_{k,k-1} g_{k-1} H_{k-1,k}, with H_{k,k-1} g H_{k-1,k} = D g D*."""
    if sl.full_coupling:
        a = np.multiply(g_prev, neg_pair_phase)
        a += sl.e_minus_h
        return a
    n, m = g_prev.shape[0], sl.sites.size
    a = np.zeros((n, m, m), dtype=complex)
    r, c, x = sl.rows, sl.cols, sl.xs
    a[:, r[:, None], r[None, :]] = (g_prev[:, c[:, None], c[None, :]]
                                    * neg_pair_phase[:, x[:, None], x[None, :]])
    a += sl.e_minus_h
    return a


def _check(present, leads):
    width = np.asarray(present).shape[0]
    if width != leads.width_sites:
        raise ValueError(f"the mask is {width} sites wide, the leads {leads.width_sites}")


def _divide_in_place(psi, q):
    """psi ← psi q⁻¹ for each matrix of the stacks (LAPACK getrf on qᵀ, getrs on psiᵀ)."""
    for j in range(psi.shape[0]):
        lu, piv, info = _getrf(q[j].T, overwrite_a=1)
        if info > 0:
            raise np.linalg.LinAlgError("singular matrix in the transfer sweep: E is an "
                                        "eigenvalue of a part of the wire decoupled from "
                                        "the leads")
        x, info = _getrs(lu, piv, psi[j].T, overwrite_b=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"getrs failed (info {info})")
        if not np.shares_memory(x, psi):  # pragma: no cover - f2py copied after all
            psi[j] = x.T
    return psi


def _sweep(slices, leads, index, store=False, transfer_steps=1):
    """Forward sweep for the fields ``index``.

    Returns (G_{L-1,L-1} of shape (n, m, m), the list of all g_k if ``store``, d).

    With ``transfer_steps`` > 1 (not with ``store``), runs of complete rows are crossed with
    the transfer-matrix form of the recursion: g_{k-1} = ψ_{k-1} (T† ψ_k)⁻¹ with
    T† ψ_{k+1} = Q_k = (E - H_k) ψ_k - T ψ_{k-1} (the Schrödinger equation; T = -D, so a
    step costs a tridiagonal product and two diagonal scalings, no inverse), and the
    explicit g_k = ψ_k Q_k⁻¹ is formed only every ``transfer_steps`` rows, at the end of a
    run and at the last row. The run starts from the explicit g of the row before it, or
    from the left lead itself (ψ_{-1} = D* Σ_L D, the lead's surface Green's function).
    """
    d = _phases(leads.fluxes_per_plaquette[index], leads.width_sites)
    neg_pair_phase = -(d[:, :, None] * np.conj(d)[:, None, :])
    width = leads.width_sites
    stored = [] if store else None
    transfer = transfer_steps > 1 and not store
    g = None
    psi_prev = psi_cur = None
    steps = 0
    last = len(slices) - 1
    diag = np.arange(width)

    def transferable(k):
        if k == 0:
            return slices[0].sites.size == width
        return slices[k].full_coupling

    for k, sl in enumerate(slices):
        if transfer and psi_prev is None and transferable(k) and k < last \
                and transferable(k + 1):
            # Start a run: the pair (ψ_{k-1}, ψ_k) with T† ψ_k = 1.
            if k == 0:
                psi_prev = (np.conj(d)[:, :, None] * leads.sigma_left[index]) * d[:, None, :]
            else:
                psi_prev = g
            psi_cur = np.zeros((len(index), width, width), dtype=complex)
            psi_cur[:, diag, diag] = -d
            steps = 0
        if psi_prev is not None:
            # Q_k = (E - H_k) ψ_k + D ψ_{k-1}  [- Σ_R ψ_k on the last row]
            q = sl.e_minus_h_diag[None, :, None] * psi_cur
            q[:, :-1] += psi_cur[:, 1:]
            q[:, 1:] += psi_cur[:, :-1]
            q += d[:, :, None] * psi_prev
            if k == last:
                q -= leads.sigma_right[index] @ psi_cur
            steps += 1
            if k == last or not transferable(k + 1) or steps >= transfer_steps:
                g = _divide_in_place(psi_cur, q)
                psi_prev = psi_cur = None
            else:
                psi_prev, psi_cur = psi_cur, np.multiply(q, -d[:, :, None], out=q)
            continue
        if k == 0:
            s = sl.sites
            a = sl.e_minus_h - leads.sigma_left[index[:, None, None], s[:, None], s[None, :]]
        else:
            a = _next_matrix(sl, g, neg_pair_phase)
        if k == last:
            s = sl.sites
            a -= leads.sigma_right[index[:, None, None], s[:, None], s[None, :]]
        _invert_in_place(a)
        g = a
        if store:
            stored.append(g)
    return g, stored, d


def transmission(present, potential, leads: LeadSelfEnergies, *, chunk: int = DEFAULT_CHUNK,
                 transfer_steps: int = TRANSFER_STEPS):
    """Transmission T(φ) from lead 0 to lead 1 for every field of ``leads``.

    Parameters
    ----------
    present : ndarray of bool, shape (W, L)
        Sites of the scattering region that exist (:func:`mesoinv.physics.nanowire.present_mask`).
    potential : ndarray, shape (W, L)
        Onsite potential V in units of t (ignored on removed sites).
    leads : LeadSelfEnergies
        From :func:`lead_self_energies` for the same W; fixes E and the fields.
    chunk : int
        Fields per sweep (speed only; the result does not depend on it).
    transfer_steps : int
        Rows crossed in transfer-matrix form between two explicit divisions (1: plain RGF).

    Returns
    -------
    ndarray, shape (n_fields,)
        T = G/(e²/h) (spinless), equal to ``kwant.smatrix(...).transmission(1, 0)``.

    Notes
    -----
    The sweep ends with the full Green's function block G = G_{L-1,L-1} of the last row.
    With Γ_R = A A† (N non-zero columns), S = -1 + i A† G A is lead 1's reflection block
    r_11 (the generalised Fisher–Lee relation; S†S = 1 follows from G - G† = -i G Γ G† for
    any factor A), and two-terminal unitarity gives T_10 = N - ‖r_11‖²_F. So no product
    G_{k,0} needs to be carried along the sweep.
    """
    _check(present, leads)
    if int(transfer_steps) != transfer_steps or transfer_steps < 1:
        raise ValueError(f"transfer_steps must be a positive integer, got {transfer_steps}")
    slices = _slices(present, potential, leads.energy)
    out = np.empty(leads.n_fields)
    last = slices[-1].sites
    n_max = leads.gamma_right.shape[2]
    for start in range(0, leads.n_fields, chunk):
        index = np.arange(start, min(start + chunk, leads.n_fields))
        big_g, _, _ = _sweep(slices, leads, index, transfer_steps=transfer_steps)
        a_right = leads.gamma_right[index][:, last, :]
        r = 1j * (np.conj(np.swapaxes(a_right, -1, -2)) @ big_g @ a_right)
        n_open = leads.n_open[index]
        diag = np.arange(n_max)
        r[:, diag, diag] -= (diag[None, :] < n_open[:, None])
        out[index] = n_open - np.sum(r.real ** 2 + r.imag ** 2, axis=(1, 2))
    return out


def ldos(present, potential, leads: LeadSelfEnergies, *, chunk: int = 4):
    """Local density of states -Im G^R(r, r)/π for every field of ``leads``.

    Parameters
    ----------
    present, potential
        As in :func:`transmission`.
    leads : LeadSelfEnergies
        P2's LDOS is at B = 0: ``lead_self_energies(W, [0.0], energy=E)``.
    chunk : int
        Fields per sweep (memory: the sweep stores every slice's g_k).

    Returns
    -------
    ndarray, shape (n_fields, W, L)
        States per t per site, 0 on removed sites; equal to ``kwant.ldos`` (which sums
        |ψ|²/(2π) over the scattering states of both leads).
    """
    _check(present, leads)
    present = np.asarray(present, dtype=bool)
    slices = _slices(present, potential, leads.energy)
    out = np.zeros((leads.n_fields,) + present.shape)
    for start in range(0, leads.n_fields, chunk):
        index = np.arange(start, min(start + chunk, leads.n_fields))
        big_g, gs, d = _sweep(slices, leads, index, store=True)
        k_last = len(slices) - 1
        out[index[:, None], slices[-1].sites[None, :], k_last] = (
            -np.diagonal(big_g, axis1=1, axis2=2).imag / np.pi)
        for k in range(k_last - 1, -1, -1):
            nxt = slices[k + 1]
            g = gs[k]
            n, m, m_next = g.shape[0], g.shape[1], nxt.sites.size
            # R = H_{k+1,k} g_k (m_{k+1} × m_k), Lm = g_k H_{k,k+1} (m_k × m_{k+1}).
            r = np.zeros((n, m_next, m), dtype=complex)
            r[:, nxt.rows, :] = -d[:, nxt.xs, None] * g[:, nxt.cols, :]
            lm = np.zeros((n, m, m_next), dtype=complex)
            lm[:, :, nxt.rows] = g[:, :, nxt.cols] * (-np.conj(d[:, None, nxt.xs]))
            big_g = g + lm @ (big_g @ r)
            out[index[:, None], slices[k].sites[None, :], k] = (
                -np.diagonal(big_g, axis1=1, axis2=2).imag / np.pi)
    return out
