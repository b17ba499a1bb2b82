"""Material parameters and unit conversions for a 2D electron gas.

Energies are in meV, lengths in nm, densities in cm⁻², magnetic fields in tesla.
Physical constants come from :mod:`scipy.constants` (CODATA), never retyped.
"""

from dataclasses import dataclass

import numpy as np
from scipy import constants

__all__ = [
    "Material",
    "GAAS",
    "hopping_meV",
    "flux_per_plaquette",
    "CM2_PER_NM2",
]

#: 1 cm² expressed in nm² is 1e14, so a density in cm⁻² times this is a density in nm⁻².
CM2_PER_NM2 = 1e-14

_MEV = 1e-3 * constants.e  # J
_NM = 1e-9  # m


@dataclass(frozen=True)
class Material:
    """A semiconductor host of a 2D electron gas.

    Parameters
    ----------
    relative_permittivity : float
        Static dielectric constant ε (dimensionless).
    effective_mass_kg : float
        Conduction-band effective mass m* in kg.
    """

    relative_permittivity: float
    effective_mass_kg: float

    @property
    def bohr_radius_nm(self) -> float:
        """Effective Bohr radius a_B* = 4πεε₀ħ²/(m* e²), in nm."""
        a_b = (4 * np.pi * self.relative_permittivity * constants.epsilon_0
               * constants.hbar**2 / (self.effective_mass_kg * constants.e**2))
        return a_b / _NM

    @property
    def thomas_fermi_wavevector_per_nm(self) -> float:
        """2D Thomas–Fermi screening wave vector q_TF = 2/a_B*, in nm⁻¹.

        The factor 2 is the spin degeneracy (one valley), q_TF = g_s m* e²/(4πεε₀ħ²)
        (Ando, Fowler & Stern, Rev. Mod. Phys. 54, 437, Eq. 2.25). P1 calls q_TF "the
        inverse of the effective Bohr radius"; see docs/physics.md for that choice.
        """
        return 2.0 / self.bohr_radius_nm

    @property
    def coulomb_prefactor_meV_nm(self) -> float:
        """e²/(2εε₀) in meV·nm: the 2D Fourier transform of e²/(4πεε₀ r) is this times 1/q."""
        value = constants.e**2 / (2 * self.relative_permittivity * constants.epsilon_0)
        return value / (_MEV * _NM)


#: GaAs as in P1: ε = 12.9, m* = 5.74e-32 kg (≈ 0.063 m_e).
GAAS = Material(relative_permittivity=12.9, effective_mass_kg=5.74e-32)


def hopping_meV(lattice_constant_nm: float, effective_mass_kg: float) -> float:
    """Tight-binding hopping t = ħ²/(2 m* a²) of the discretised Schrödinger equation, in meV.

    For a = 5 nm and m* = 5.74e-32 kg this is 24.19 meV.
    """
    a = lattice_constant_nm * _NM
    return constants.hbar**2 / (2 * effective_mass_kg * a**2) / _MEV


def flux_per_plaquette(field_T, lattice_constant_nm: float):
    """Magnetic flux through one lattice plaquette, in units of the flux quantum h/e.

    φ = B a² e / h. For a = 5 nm, 1 T gives φ = 6.045e-3.

    Parameters
    ----------
    field_T : float or array
        Perpendicular magnetic field B_z in tesla.
    lattice_constant_nm : float
        Lattice constant a in nm.
    """
    a = lattice_constant_nm * _NM
    return np.asarray(field_T, dtype=float) * a**2 * constants.e / constants.h
