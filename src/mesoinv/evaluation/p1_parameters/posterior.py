"""How much a map can tell: the Bayes-optimal estimate of the disorder parameters from the
sample's true potential itself.

A PLDOS map is a function of the potential, so no estimator from the map can beat the best
estimator from the potential (data processing). For P1's remote-dopant model that best
estimator is computable exactly: the potential's Fourier components are
V_j ∝ K_j(s) C_j with K_j(s) = e^{-q_j s}/(q_j + q_TF), C_j complex Gaussian with
σ² = N_d L W / 2 per part, and C_j = 0 for q_j ≥ cutoff_factor/s. Given the stored
coefficients and the sample's s, the observed V_j define a likelihood of (s', N_d'); with the
dataset's uniform prior on its (s, N_d) ranges, the posterior mean of a target minimises the
mean squared error. Its R² is the ceiling any model of these targets can reach on this
region ("potential_posterior" rows of ``metrics.csv``).

The likelihood. The stored modes are a half plane (C₋ⱼ = Cⱼ*), so each stored mode j is one
complex Gaussian whose real and imaginary parts are independent with variance vⱼ each:
log p(Vⱼ) = −log vⱼ − |Vⱼ|²/(2 vⱼ) + const. (Until 2026-12 this module summed
−2 log v − |V|²/v, the square of that likelihood: a posterior too narrow and a ceiling too
low. ``likelihood_exponent`` keeps that tempered form reachable for the test that shows the
Bayes form is better.) Calibration — the posterior's central 90 % interval covers the true
N_d in 90 % of draws from the prior — is tested in tests/test_information.py.

The hard cutoff makes s (and ξ ≈ 1.7 s) nearly exact from the potential: which modes are zero
brackets s. A PLDOS map blurs that signature, so the ceiling for s and ξ is loose; for N_d
(and the rms, ∝ √N_d) it is tight: N_d is only in the modes' amplitudes, and a region with
few modes leaves it uncertain (docs/models.md).
"""

from dataclasses import dataclass

import netCDF4
import numpy as np

from ...physics.disorder import RemoteDopantDisorder
from ...physics.materials import Material

__all__ = ["potential_posterior", "potential_posterior_means", "PotentialPosterior",
           "POSTERIOR_DESCRIPTION", "POSTERIOR_TARGETS"]

POSTERIOR_DESCRIPTION = ("Bayes posterior mean from the sample's true potential (uniform "
                         "prior on the dataset's s, N_d ranges): the ceiling for any "
                         "estimator from a map")
POSTERIOR_TARGETS = ("dopant_distance", "dopant_density", "rms", "correlation_length")


@dataclass
class PotentialPosterior:
    """Posterior summaries of the disorder parameters of every sample of a P1 file.

    Attributes
    ----------
    sample_ids : ndarray of int64, (samples,)
    targets : tuple of str
        Among :data:`POSTERIOR_TARGETS`.
    means : ndarray, (samples, targets)
        Posterior means, in the targets' units (nm, cm⁻², meV, nm).
    quantile_levels : tuple of float
    quantiles : ndarray, (samples, targets, levels)
        Posterior quantiles at ``quantile_levels`` (on the grid: the smallest grid value whose
        cumulative posterior weight reaches the level).
    """

    sample_ids: np.ndarray
    targets: tuple
    means: np.ndarray
    quantile_levels: tuple
    quantiles: np.ndarray


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels) -> list:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    return [float(values[order][min(np.searchsorted(cumulative, level), len(order) - 1)])
            for level in levels]


def potential_posterior_means(split_path, targets, *, grid=(241, 161)) -> tuple:
    """Posterior means of ``targets`` for every sample of a P1 file.

    Returns
    -------
    sample_ids : ndarray of int64
    means : ndarray, shape (samples, len(targets)), in the targets' units

    See :func:`potential_posterior` for the parameters.
    """
    posterior = potential_posterior(split_path, targets, grid=grid)
    return posterior.sample_ids, posterior.means


def potential_posterior(split_path, targets, *, grid=(241, 161), quantile_levels=(0.05, 0.95),
                        likelihood_exponent: float = 1.0) -> PotentialPosterior:
    """Posterior of (s, N_d) from each sample's true potential, summarised for ``targets``.

    Parameters
    ----------
    split_path : path-like
        P1 dataset file (stores the Fourier coefficients, s, the modes and the physics).
    targets : sequence of str
        Among :data:`POSTERIOR_TARGETS` (units: nm, cm⁻², meV, nm).
    grid : (int, int)
        Points of the (s, N_d) grid over the dataset's ranges.
    quantile_levels : sequence of float
        Posterior quantiles to report (default: the central 90 % interval).
    likelihood_exponent : float
        1 for the Bayes posterior (always, outside tests); 2 gives the squared likelihood of
        the former code, kept only so that a test can compare the two.

    Returns
    -------
    PotentialPosterior
    """
    unknown = [t for t in targets if t not in POSTERIOR_TARGETS]
    if unknown:
        raise ValueError(f"no posterior for {unknown} (known: {POSTERIOR_TARGETS})")
    with netCDF4.Dataset(split_path) as ds:
        ids = np.asarray(ds["sample_id"][:], dtype=np.int64)
        coefficients = (np.asarray(ds["fourier_coefficient_real"][:])
                        + 1j * np.asarray(ds["fourier_coefficient_imag"][:]))
        q = np.hypot(np.asarray(ds["qx"][:]), np.asarray(ds["qy"][:]))
        s_true = np.asarray(ds["dopant_distance"][:], dtype=np.float64)
        material = Material(relative_permittivity=float(ds.relative_permittivity),
                            effective_mass_kg=float(ds.effective_mass_kg))
        q_tf, cutoff = float(ds.thomas_fermi_wavevector_per_nm), float(ds.cutoff_factor)
        s_range = np.asarray(ds.dopant_distance_range_nm, dtype=np.float64).reshape(-1)
        n_range = np.asarray(ds.dopant_density_range_cm2, dtype=np.float64).reshape(-1)
        area = float(ds.length_nm) * float(ds.width_nm)

    def disorder(s, n_d=1e12):
        return RemoteDopantDisorder(float(s), float(n_d), material, cutoff_factor=cutoff,
                                    thomas_fermi_wavevector_per_nm=q_tf)

    s_grid = np.linspace(s_range[0], s_range[-1], grid[0] if s_range[-1] > s_range[0] else 1)
    n_grid = np.linspace(n_range[0], n_range[-1], grid[1] if n_range[-1] > n_range[0] else 1)
    coarse = np.linspace(s_grid[0], s_grid[-1], min(len(s_grid), 25))
    rms_shape = np.interp(s_grid, coarse, [disorder(s).rms_meV for s in coarse])
    xi = (np.interp(s_grid, coarse, [disorder(s).correlation_length_nm for s in coarse])
          if "correlation_length" in targets else np.zeros_like(s_grid))
    kernel2 = np.stack([disorder(s).screened_kernel_nm(q) ** 2 for s in s_grid])  # (S, modes)
    active = q[None, :] < cutoff / s_grid[:, None]                                  # (S, modes)
    # Per real or imaginary part, Var V_j ∝ N_d A/2 K_j(s)² (the common prefactor cancels).
    variance_unit = (n_grid * 1e-14 * area / 2)                                    # (N,)
    values = {"dopant_distance": np.broadcast_to(s_grid[:, None], (len(s_grid), len(n_grid))),
              "dopant_density": np.broadcast_to(n_grid[None, :], (len(s_grid), len(n_grid))),
              "rms": np.sqrt(n_grid[None, :] / 1e12) * rms_shape[:, None],
              "correlation_length": np.broadcast_to(xi[:, None], (len(s_grid), len(n_grid)))}
    means = np.empty((len(ids), len(targets)))
    levels = tuple(float(level) for level in quantile_levels)
    quantiles = np.empty((len(ids), len(targets), len(levels)))
    for row in range(len(ids)):
        observed = np.abs(disorder(s_true[row]).screened_kernel_nm(q) * coefficients[row]) ** 2
        nonzero = observed > 0
        # Support: exactly the modes below the cutoff are non-zero.
        allowed = np.all(active == nonzero[None, :], axis=1)
        if not np.any(allowed):  # rounding at a mode on the cutoff: take the nearest s
            allowed = np.zeros(len(s_grid), bool)
            allowed[np.argmin(np.abs(s_grid - s_true[row]))] = True
        log_like = np.full((len(s_grid), len(n_grid)), -np.inf)
        for a in np.flatnonzero(allowed):
            k2 = kernel2[a, active[a]]
            v = observed[active[a]]
            var = variance_unit[None, :] * k2[:, None]                             # (m, N)
            # One complex Gaussian per stored mode (module docstring):
            # log p = −log v − |V|²/(2v) per mode.
            log_like[a] = likelihood_exponent * np.sum(-np.log(var) - v[:, None] / (2 * var),
                                                       axis=0)
        weights = np.exp(log_like - log_like.max())
        weights /= weights.sum()
        means[row] = [float(np.sum(weights * values[t])) for t in targets]
        flat = weights.ravel()
        quantiles[row] = [_weighted_quantiles(np.ascontiguousarray(values[t]).ravel(), flat,
                                              levels) for t in targets]
    return PotentialPosterior(ids, tuple(targets), means, levels, quantiles)
