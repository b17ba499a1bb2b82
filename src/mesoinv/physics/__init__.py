"""Physics of the simulated devices: materials, disorder, Kwant systems, observables.

Energies in meV, lengths in nm, densities in cm⁻², fields in tesla.
"""

from .disorder import FourierModes, RemoteDopantDisorder, draw_fourier_coefficients, fourier_modes
from .materials import GAAS, Material, flux_per_plaquette, hopping_meV
from .pldos import PLDOSSolver, pldos_kwant
from .qpc import QPCGeometry, make_qpc_system

__all__ = [
    "FourierModes", "RemoteDopantDisorder", "draw_fourier_coefficients", "fourier_modes",
    "GAAS", "Material", "flux_per_plaquette", "hopping_meV",
    "PLDOSSolver", "pldos_kwant",
    "QPCGeometry", "make_qpc_system",
]
