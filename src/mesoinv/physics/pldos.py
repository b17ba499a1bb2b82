"""Partial local density of states injected from the QPC (P1 Eq. 2).

Normalisation: Kwant's scattering states carry unit current per mode, and the local density
of states of a site is Σ_leads Σ_n |ψ_n|²/(2π) in states per (energy unit) per site
(``kwant.ldos``). The PLDOS of the QPC lead is the lead-0 part of that sum,

    ρ_qpc(r) = (1/2π) Σ_{n=1}^{N_qpc} |ψ_{qpc,n}(r)|²        [meV⁻¹ per site]

since the Hamiltonian is in meV. P1 prints 2π instead of 1/(2π) in front of the sum; that
is a global factor (2π)² and does not change the image (docs/physics.md). Divide by a² for a
density per nm².

Two implementations:

* :func:`pldos_kwant` — plain ``kwant.wave_function``; the reference.
* :class:`PLDOSSolver` — the fast path. For a fixed geometry, energy and field only the
  onsite potential changes between samples. The solver asks Kwant once per field for its
  scattering linear system (left-hand side with the lead-mode blocks, right-hand side of the
  QPC modes) at V = 0, runs MUMPS's symbolic analysis once on it, and per sample only adds
  V to the diagonal of the scattering-region block and refactors numerically
  (``reuse_analysis=True``). The result equals :func:`pldos_kwant` to round-off (tested).

The analysis is always done on the V = 0 matrix, never on a sample's, so that a sample's
result does not depend on which samples a process computed before it.
"""

import kwant
import numpy as np
import scipy.sparse as sp
from kwant.linalg import _mumps, mumps
from kwant.solvers.mumps import default_solver as _mumps_solver

from .qpc import site_indices

__all__ = ["pldos_kwant", "PLDOSSolver", "QPC_LEAD"]

#: Index of the QPC lead in :func:`mesoinv.physics.qpc.make_qpc_system`.
QPC_LEAD = 0


def pldos_kwant(fsyst, potential_meV, *, energy_meV, hopping_meV, flux_per_plaquette=0.0,
                lead=QPC_LEAD):
    """PLDOS from one lead with plain ``kwant.wave_function`` (the reference path).

    Parameters
    ----------
    fsyst : kwant.system.FiniteSystem
        From :func:`mesoinv.physics.qpc.make_qpc_system`.
    potential_meV : ndarray, shape (nx, ny)
        Disorder potential V in meV on the scattering-region sites.
    energy_meV, hopping_meV : float
        Fermi energy E and hopping t in meV.
    flux_per_plaquette : float
        φ = B a² e/h.
    lead : int
        Injecting lead (0: QPC).

    Returns
    -------
    ndarray, shape (nx, ny)
        ρ(i, k) in meV⁻¹ per site.
    """
    params = dict(potential_meV=potential_meV, hopping_meV=hopping_meV,
                  flux_per_plaquette=flux_per_plaquette)
    psi = kwant.wave_function(fsyst, energy=energy_meV, params=params)(lead)
    density = np.sum(np.abs(psi) ** 2, axis=0) / (2 * np.pi)
    i, k = site_indices(fsyst)
    out = np.zeros(np.asarray(potential_meV).shape)
    out[i, k] = density
    return out


class _FieldSystem:
    """The scattering linear system at one field, analysed by MUMPS, ready for refactoring."""

    def __init__(self, fsyst, params, energy_meV, n_sites, ordering):
        linsys, lead_info = _mumps_solver._make_linear_sys(
            fsyst, [QPC_LEAD], energy_meV, params=params)
        lhs = sp.coo_matrix(linsys.lhs.tocsr())  # csr→coo sums duplicate entries
        self.shape = lhs.shape
        self.row = lhs.row.astype(np.int64)
        self.col = lhs.col.astype(np.int64)
        self.base_data = lhs.data.astype(complex)
        if linsys.num_orb != n_sites:
            raise AssertionError("one orbital per site is assumed")
        diagonal = np.flatnonzero((self.row == self.col) & (self.row < n_sites))
        order = np.argsort(self.row[diagonal])
        self.diagonal_positions = diagonal[order]
        if not np.array_equal(self.row[self.diagonal_positions], np.arange(n_sites)):
            raise AssertionError("a scattering-region diagonal entry is missing from the matrix")
        # Only the QPC interface rows are non-zero: a sparse right-hand side lets MUMPS prune
        # the forward substitution (half the solve time). Kwant's MUMPSContext keeps its
        # sparse-rhs flag between calls, so this context only ever gets sparse right-hand sides.
        self.rhs = sp.csc_matrix(linsys.rhs[0], dtype=complex)
        self.n_modes = int(lead_info[QPC_LEAD].velocities.size // 2)
        self.n_sites = n_sites
        self.ordering = ordering
        self.context = mumps.MUMPSContext()
        self.context.analyze(self._matrix(self.base_data), ordering=ordering)

    def _matrix(self, data):
        return sp.coo_matrix((data, (self.row, self.col)), shape=self.shape)

    def density(self, onsite_shift_meV):
        """Σ_n |ψ_n|²/(2π) per site (Kwant site order) for V added to the diagonal."""
        data = self.base_data.copy()
        data[self.diagonal_positions] += onsite_shift_meV
        self.context.factor(self._matrix(data), ordering=self.ordering, reuse_analysis=True,
                            overwrite_a=True)
        psi = self.context.solve(self.rhs)[: self.n_sites]
        return np.sum(psi.real**2 + psi.imag**2, axis=1) / (2 * np.pi)


class _SymmetricFieldSystem:
    """The B = 0 channel by an LDLᵀ factorisation of the complex-symmetric region matrix.

    Without a field H is real symmetric and the leads' self-energies are complex symmetric, so
    M = E - H - V - Σ_qpc - Σ_drain (region sites only) admits M = L D Lᵀ (MUMPS ``sym=2``):
    fewer than half the flops of the LU of Kwant's bordered system. With Γ = i(Σ_qpc - Σ_qpc†) =
    A A† (its N non-zero eigenpairs: the open channels), ψ = M⁻¹ A gives Σ_n |ψ_n|² =
    diag(G Γ G†), the same quantity Kwant's unit-current scattering states sum to (tested).
    This drives Kwant's MUMPS binding (``kwant.linalg._mumps``) directly, which exposes ``sym``.
    """

    def __init__(self, fsyst, params, energy_meV, n_sites, ordering):
        hamiltonian = fsyst.hamiltonian_submatrix(params=params, sparse=True).tocsr()
        matrix = energy_meV * sp.identity(n_sites, dtype=complex, format="csr") - hamiltonian
        sigma_qpc = None
        for lead, interface in enumerate(fsyst.lead_interfaces):
            sigma = np.asarray(fsyst.leads[lead].selfenergy(energy_meV, params=params))
            rows, cols = np.meshgrid(interface, interface, indexing="ij")
            matrix = matrix - sp.csr_matrix((sigma.ravel(), (rows.ravel(), cols.ravel())),
                                            shape=matrix.shape)
            if lead == QPC_LEAD:
                sigma_qpc, qpc_interface = sigma, np.asarray(interface)
        asymmetry = abs(matrix - matrix.T).max()
        if asymmetry > 1e-12 * abs(matrix).max():
            raise ValueError(f"the region matrix is not complex symmetric ({asymmetry:.1e}); "
                             "use the LU path for this field")
        upper = sp.triu(matrix, format="coo")
        upper.sum_duplicates()
        # MUMPS holds pointers to these Fortran-ordered, 1-based arrays; data is updated in place.
        self.row = np.asfortranarray(upper.row.astype(_mumps.int_dtype) + 1)
        self.col = np.asfortranarray(upper.col.astype(_mumps.int_dtype) + 1)
        self.data = np.asfortranarray(upper.data.astype(complex))
        diagonal = np.flatnonzero(upper.row == upper.col)
        self.diagonal_positions = diagonal[np.argsort(upper.row[diagonal])]
        if not np.array_equal(upper.row[self.diagonal_positions], np.arange(n_sites)):
            raise AssertionError("a scattering-region diagonal entry is missing from the matrix")
        self.base_diagonal = self.data[self.diagonal_positions].copy()
        propagating, _ = fsyst.leads[QPC_LEAD].modes(energy_meV, params=params)
        self.n_modes = int(propagating.velocities.size // 2)
        values, vectors = np.linalg.eigh(1j * (sigma_qpc - sigma_qpc.conj().T))
        top = np.argsort(values)[::-1][: self.n_modes]
        factor = vectors[:, top] * np.sqrt(values[top])
        rows = np.repeat(qpc_interface, self.n_modes)
        cols = np.tile(np.arange(self.n_modes), len(qpc_interface))
        rhs = sp.csc_matrix((factor.ravel(), (rows, cols)), shape=(n_sites, self.n_modes))
        self.rhs_colptr = np.asfortranarray(rhs.indptr.astype(_mumps.int_dtype) + 1)
        self.rhs_rowind = np.asfortranarray(rhs.indices.astype(_mumps.int_dtype) + 1)
        self.rhs_data = np.asfortranarray(rhs.data.astype(complex))
        self.solution = np.empty((n_sites, self.n_modes), dtype=complex, order="F")
        self.n_sites = n_sites
        self.instance = _mumps.zmumps(False, 2)  # verbose off; sym = 2: general symmetric
        self.instance.set_assembled_matrix(n_sites, self.row, self.col, self.data)
        self.instance.icntl[7] = mumps.orderings[ordering]
        self._call(1)  # analysis once, on the V = 0 matrix (results independent of history)

    def _call(self, job):
        self.instance.job = job
        while True:
            self.instance.call()
            error = self.instance.infog[1]
            if error in (-8, -9) and job == 2:  # workspace too small: double it, as Kwant does
                self.instance.icntl[14] *= 2
                continue
            if error < 0:
                raise mumps.MUMPSError(self.instance.infog)
            return

    def density(self, onsite_shift_meV):
        """Σ_n |ψ_n|²/(2π) per site (Kwant site order) for V added to the diagonal."""
        self.data[self.diagonal_positions] = self.base_diagonal - onsite_shift_meV  # E - H - V
        self._call(2)
        self.instance.set_sparse_rhs(self.rhs_colptr, self.rhs_rowind, self.rhs_data)
        self.instance.set_dense_rhs(self.solution)
        self.instance.icntl[20] = 1
        self._call(3)
        psi = self.solution
        return np.sum(psi.real**2 + psi.imag**2, axis=1) / (2 * np.pi)


class PLDOSSolver:
    """Fast QPC PLDOS for many potentials on one device, at one or several fields.

    Parameters
    ----------
    fsyst : kwant.system.FiniteSystem
        From :func:`mesoinv.physics.qpc.make_qpc_system`.
    shape : tuple (nx, ny)
        Shape of the potential arrays (the scattering region).
    energy_meV, hopping_meV : float
        Fermi energy E and hopping t in meV.
    fluxes_per_plaquette : sequence of float
        φ = B a² e/h for each field channel (default: B = 0 only).
    ordering : str
        MUMPS fill-reducing ordering ('pord', 'amd', 'amf', 'scotch', …; 'metis' only if this
        MUMPS build has it). 'pord' was fastest at paper scale here (docs/benchmarks.md).
    symmetric : bool
        Solve the B = 0 channel by LDLᵀ of the complex-symmetric region matrix (default; 1.3×
        faster at paper scale) instead of Kwant's bordered LU system. Same PLDOS to round-off.

    Notes
    -----
    Each field keeps its own MUMPS instance (analysis and the current factor), so memory grows
    with the number of fields; at paper scale one field takes ≈ 0.2 GB.
    """

    def __init__(self, fsyst, shape, *, energy_meV, hopping_meV, fluxes_per_plaquette=(0.0,),
                 ordering="pord", symmetric=True):
        self.shape = tuple(shape)
        self.site_i, self.site_k = site_indices(fsyst)
        n_sites = len(self.site_i)
        if n_sites != self.shape[0] * self.shape[1]:
            raise ValueError(f"potential shape {self.shape} does not match {n_sites} sites")
        zero = np.zeros(self.shape)
        self.fluxes_per_plaquette = tuple(float(f) for f in fluxes_per_plaquette)
        self._fields = []
        for phi in self.fluxes_per_plaquette:
            params = dict(potential_meV=zero, hopping_meV=hopping_meV, flux_per_plaquette=phi)
            # B = 0: complex symmetric, LDLᵀ; with a field H is only Hermitian: LU.
            system = _SymmetricFieldSystem if (phi == 0 and symmetric) else _FieldSystem
            self._fields.append(system(fsyst, params, energy_meV, n_sites, ordering))

    @property
    def n_modes(self) -> int:
        """Number of open channels of the QPC lead (at the first field)."""
        return self._fields[0].n_modes

    @property
    def open_modes(self) -> list[int]:
        """Number of open channels of the QPC lead at each field."""
        return [field.n_modes for field in self._fields]

    def __call__(self, potential_meV):
        """PLDOS for one potential.

        Parameters
        ----------
        potential_meV : ndarray, shape (nx, ny)
            V in meV.

        Returns
        -------
        ndarray, shape (n_fields, nx, ny)
            ρ in meV⁻¹ per site, one image per field.

        Raises
        ------
        ValueError
            If the potential has the wrong shape or non-finite values.
        FloatingPointError
            If the solution is not finite.
        kwant.linalg.mumps.MUMPSError
            If MUMPS finds the matrix numerically singular.
        """
        potential_meV = np.asarray(potential_meV, dtype=float)
        if potential_meV.shape != self.shape:
            raise ValueError(f"potential has shape {potential_meV.shape}, expected {self.shape}")
        if not np.all(np.isfinite(potential_meV)):
            raise ValueError("potential_meV contains non-finite values")
        shift = potential_meV[self.site_i, self.site_k]
        out = np.empty((len(self._fields),) + self.shape)
        for channel, field in enumerate(self._fields):
            out[channel, self.site_i, self.site_k] = field.density(shift)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("the PLDOS is not finite: the linear system is singular")
        return out
