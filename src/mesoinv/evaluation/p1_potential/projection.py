"""Eq. 1 of P1 as a linear map from Fourier coefficients to potentials, and its inverse by
least squares.

The basis is built by the simulator's own Eq. 1
(:meth:`mesoinv.physics.disorder.RemoteDopantDisorder.potential_meV`), so that it has exactly
the simulator's conventions (:func:`eq1_basis`); :func:`potential_from_coefficients` rebuilds
potentials from coefficients, and :func:`project_coefficients` finds the coefficients of a
potential that has none (the encoder-decoder's), or the part of it outside the span of Eq. 1.

Units: lengths in nm, wave vectors in nm⁻¹, potentials in meV, PLDOS in meV⁻¹ per site,
Fourier coefficients dimensionless (their σ² = N_d L W/2, see
:mod:`mesoinv.physics.disorder`). Arrays of potentials are indexed (sample, x, y), x along
transport from the QPC (x = 0) to the drain (x = (nx - 1) a).
"""

import numpy as np

from ...physics.disorder import FourierModes, RemoteDopantDisorder

__all__ = ["eq1_basis", "potential_from_coefficients", "project_coefficients"]


def eq1_basis(modes: FourierModes, disorder: RemoteDopantDisorder, x_nm, y_nm) -> np.ndarray:
    """The real-linear basis of Eq. 1: V(C) = Σ_j Re C_j B_j + Im C_j B_{M+j}.

    Built by calling the simulator's own Eq. 1
    (:meth:`mesoinv.physics.disorder.RemoteDopantDisorder.potential_meV`) with C = e_j and
    C = i e_j, so the basis has exactly the simulator's conventions (prefactor, sign,
    e^{−i q·r}, the factor 2 of the conjugate half plane, the cutoff).

    Parameters
    ----------
    modes : FourierModes
    disorder : RemoteDopantDisorder
        Fixes s, q_TF, the material and the cutoff (N_d does not enter).
    x_nm, y_nm : 1D array_like
        Site coordinates, nm.

    Returns
    -------
    ndarray, shape (2 M, nx, ny)
        meV per unit of Re C_j (first M) and Im C_j (last M); zero images for modes at or
        beyond the disorder's cutoff.
    """
    count = len(modes)
    basis = np.empty((2 * count, len(x_nm), len(y_nm)))
    unit = np.zeros(count, dtype=complex)
    for j in range(count):
        for part, value in ((0, 1.0), (1, 1j)):
            unit[j] = value
            basis[part * count + j] = disorder.potential_meV(modes, unit, x_nm, y_nm)
        unit[j] = 0
    return basis


def potential_from_coefficients(coefficients, modes: FourierModes,
                                disorder: RemoteDopantDisorder, x_nm, y_nm) -> np.ndarray:
    """Eq. 1 for a stack of coefficient vectors, by the simulator's ``potential_meV``.

    Parameters
    ----------
    coefficients : complex array_like, shape (n, M) or (M,)
    modes, disorder, x_nm, y_nm : as for :func:`eq1_basis`

    Returns
    -------
    ndarray, shape (n, nx, ny) or (nx, ny)
        V in meV.
    """
    coefficients = np.asarray(coefficients, dtype=complex)
    if coefficients.ndim == 1:
        return disorder.potential_meV(modes, coefficients, x_nm, y_nm)
    return np.stack([disorder.potential_meV(modes, c, x_nm, y_nm) for c in coefficients])


def _projector(modes, disorder, x_nm, y_nm):
    """(active columns, Q, R) of the QR factorisation of the Eq. 1 basis matrix."""
    basis = eq1_basis(modes, disorder, x_nm, y_nm).reshape(2 * len(modes), -1)
    active = np.any(basis != 0, axis=1)
    q, r = np.linalg.qr(basis[active].T)
    return active, q, r


def project_coefficients(potential_meV, modes: FourierModes, disorder: RemoteDopantDisorder,
                         x_nm, y_nm, *, chunk: int = 512, return_residual: bool = False):
    """Fourier coefficients of potentials by least squares on the Eq. 1 basis of ``modes``.

    Solves min_C ‖V − V(C)‖² over the pixels for each potential, with V(C) the simulator's
    Eq. 1 (:func:`eq1_basis`). On the periodic site grid the basis images are orthogonal, so
    the projection is exact for a potential of the form Eq. 1 on the same modes and otherwise
    returns the coefficients of its component in the span of Eq. 1. Modes at or beyond the
    disorder's cutoff (zero basis images) get C = 0, as the datasets store them.

    Parameters
    ----------
    potential_meV : array_like, shape (n, nx, ny) or (nx, ny)
    modes, disorder, x_nm, y_nm : as for :func:`eq1_basis`
    chunk : int
        Samples per matrix product (memory).
    return_residual : bool
        Also return the rms (meV) over pixels of V − V(C), per sample: the part of V outside
        the span of Eq. 1.

    Returns
    -------
    complex ndarray, shape (n, M) or (M,)
        C_j, dimensionless; with ``return_residual`` a tuple (C, residual rms in meV).
    """
    potential = np.asarray(potential_meV, dtype=np.float64)
    single = potential.ndim == 2
    stack = potential[None] if single else potential
    count = len(modes)
    active, q, r = _projector(modes, disorder, x_nm, y_nm)
    flat = stack.reshape(len(stack), -1)
    real_imag = np.zeros((len(stack), 2 * count))
    residual = np.zeros(len(stack))
    for start in range(0, len(stack), chunk):
        block = flat[start:start + chunk].T  # (pixels, samples)
        projected = q.T @ block
        real_imag[start:start + chunk, active] = np.linalg.solve(r, projected).T
        residual[start:start + chunk] = np.sqrt(np.mean((block - q @ projected) ** 2, axis=0))
    coefficients = real_imag[:, :count] + 1j * real_imag[:, count:]
    if single:
        coefficients, residual = coefficients[0], residual[0]
    return (coefficients, residual) if return_residual else coefficients
