"""Physics of the simulated devices: materials, disorder, Kwant systems, observables.

Energies in meV, lengths in nm, densities in cm⁻², fields in tesla.
"""

from ..lazy_exports import lazy_exports

#: Public name → submodule. Imported on first use (PEP 562), so that the parts that need no
#: Kwant (disorder, materials: what training and evaluation use) import without it: a GPU
#: node's environment may train and predict without Kwant and MUMPS installed.
_EXPORTS = {
    "FourierModes": "disorder", "RemoteDopantDisorder": "disorder",
    "draw_fourier_coefficients": "disorder", "fourier_modes": "disorder",
    "GAAS": "materials", "Material": "materials", "flux_per_plaquette": "materials",
    "hopping_meV": "materials",
    "PLDOSSolver": "pldos", "pldos_kwant": "pldos",
    "QPCGeometry": "qpc", "make_qpc_system": "qpc",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
