"""The P1 device: a quantum point contact injecting into a rectangular 2DEG.

Geometry (all integers are lattice sites, lattice constant a in nm)::

            y ↑
     ny-1 ─ ┌─────────────────────────────┐
            │                             │ ═══ drain lead (lead 1): full width ny,
   QPC lead │        scattering region    │     sites x ≥ nx, translation (+1, 0)
  (lead 0)  │          nx × ny sites      │
  ════════ ─┤ y0 … y0+w-1                 │
            │                             │
        0 ─ └─────────────────────────────┘ → x (transport)
            x = 0                      x = nx-1

* Scattering region: sites (i, k), 0 ≤ i < nx, 0 ≤ k < ny, at positions (i a, k a).
* Lead 0, the QPC: sites x ≤ -1, y0 ≤ k < y0 + w, translation (-1, 0). It is the source of
  the PLDOS. Its hard-wall width w a (P1: 100 nm = 20 sites) fixes the open modes (3 at
  5.6 meV).
* Lead 1, the drain: sites x ≥ nx, 0 ≤ k < ny, translation (+1, 0).
* Hamiltonian: onsite 4t + V(i, k) in the scattering region, 4t in the leads (energies are
  measured from the band bottom of the clean 2DEG), nearest-neighbour hopping -t with a
  Peierls phase for a perpendicular field B (Landau gauge A = (-B y, 0), invariant along
  x, so both leads carry the same phase as the region):

      H[(i+1, k), (i, k)] = -t exp(2πi φ k),     φ = B a² e/h (flux quanta per plaquette).

  Hoppings along y carry no phase. Units: t and V in meV, so Kwant's energies are meV.

Value functions are module-level so that finalized systems pickle (for MPI workers).
"""

from dataclasses import dataclass

import kwant
import numpy as np

__all__ = ["QPCGeometry", "make_qpc_system", "onsite", "hopping", "site_indices"]


@dataclass(frozen=True)
class QPCGeometry:
    """Sizes of the QPC device in lattice sites.

    Parameters
    ----------
    lattice_constant_nm : float
        Lattice constant a in nm.
    nx, ny : int
        Scattering region size along x (transport) and y, in sites.
    qpc_width : int
        Width w of the QPC lead in sites.
    qpc_first_y : int
        First y index y0 of the QPC lead; it occupies y0 … y0 + w - 1.
    """

    lattice_constant_nm: float
    nx: int
    ny: int
    qpc_width: int
    qpc_first_y: int

    def __post_init__(self):
        if self.nx < 2 or self.ny < 2:
            raise ValueError(f"the region needs at least 2×2 sites, got {self.nx}×{self.ny}")
        if not 1 <= self.qpc_width <= self.ny:
            raise ValueError(f"qpc_width must be within 1..{self.ny} sites, got {self.qpc_width}")
        if not 0 <= self.qpc_first_y <= self.ny - self.qpc_width:
            raise ValueError(
                f"the QPC (first y site {self.qpc_first_y}, width {self.qpc_width}) must lie "
                f"inside the region's {self.ny} sites")

    @classmethod
    def from_nm(cls, lattice_constant_nm, length_nm, width_nm, qpc_width_nm,
                qpc_center_nm=None):
        """Build from lengths in nm; each must be a whole number of lattice constants.

        Parameters
        ----------
        length_nm, width_nm : float
            Region size L (along x) × W (along y) in nm; L = nx a, W = ny a.
        qpc_width_nm : float
            QPC width in nm (w a).
        qpc_center_nm : float, optional
            y of the QPC's centre, in nm from the lower edge's first site row; default: the
            region's centre (ny - 1) a / 2. First row y0 = floor(centre/a - (w - 1)/2 + 1/2).
        """
        a = float(lattice_constant_nm)

        def sites(name, value):
            count = value / a
            if abs(count - round(count)) > 1e-9 * max(1.0, count):
                raise ValueError(f"{name} = {value} nm is not a whole number of lattice "
                                 f"constants ({a} nm)")
            return int(round(count))

        nx, ny = sites("length_nm", length_nm), sites("width_nm", width_nm)
        w = sites("qpc_width_nm", qpc_width_nm)
        centred = qpc_center_nm is None
        if centred:
            qpc_center_nm = (ny - 1) * a / 2
        # Round half up (not Python's half-to-even), so centres step evenly; the default centre
        # goes through the same rule (for odd ny - w it lies between two rows: the upper one).
        y0 = int(np.floor(qpc_center_nm / a - (w - 1) / 2 + 0.5))
        if not centred:
            if not 0 <= y0 <= ny - w:
                raise ValueError(f"qpc_center_nm = {qpc_center_nm} nm puts the QPC (first y site "
                                 f"{y0}, width {w}) outside the region's {ny} sites")
        return cls(lattice_constant_nm=a, nx=nx, ny=ny, qpc_width=w, qpc_first_y=y0)

    @property
    def x_nm(self) -> np.ndarray:
        """Site x coordinates in nm, shape (nx,)."""
        return np.arange(self.nx) * self.lattice_constant_nm

    @property
    def y_nm(self) -> np.ndarray:
        """Site y coordinates in nm, shape (ny,)."""
        return np.arange(self.ny) * self.lattice_constant_nm

    @property
    def length_nm(self) -> float:
        """Period L = nx a of the disorder series along x, in nm."""
        return self.nx * self.lattice_constant_nm

    @property
    def width_nm(self) -> float:
        """Period W = ny a of the disorder series along y, in nm."""
        return self.ny * self.lattice_constant_nm


def onsite(site, potential_meV, hopping_meV):
    """Onsite energy 4t + V(i, k) in meV; ``potential_meV`` has shape (nx, ny)."""
    i, k = site.tag
    return 4 * hopping_meV + potential_meV[i, k]


def lead_onsite(site, hopping_meV):
    """Onsite energy 4t of the clean leads, in meV."""
    return 4 * hopping_meV


def hopping(site_to, site_from, hopping_meV, flux_per_plaquette):
    """-t exp(2πi φ k Δi): Peierls hopping in the Landau gauge A = (-B y, 0), in meV."""
    i_to, k_to = site_to.tag
    i_from, k_from = site_from.tag
    return -hopping_meV * np.exp(2j * np.pi * flux_per_plaquette * k_to * (i_to - i_from))


def make_qpc_system(geometry: QPCGeometry) -> kwant.system.FiniteSystem:
    """Finalized Kwant system of the QPC device (lead 0: QPC, lead 1: drain).

    Parameters of the value functions (pass in ``params``): ``potential_meV`` (array of
    shape (nx, ny), meV), ``hopping_meV`` (t, meV), ``flux_per_plaquette`` (φ, flux quanta).
    """
    lat = kwant.lattice.square(a=1, norbs=1, name="2deg")
    nx, ny = geometry.nx, geometry.ny
    syst = kwant.Builder()
    syst[(lat(i, k) for i in range(nx) for k in range(ny))] = onsite
    syst[lat.neighbors()] = hopping

    qpc = kwant.Builder(kwant.TranslationalSymmetry((-1, 0)))
    y0, w = geometry.qpc_first_y, geometry.qpc_width
    qpc[(lat(-1, k) for k in range(y0, y0 + w))] = lead_onsite
    qpc[lat.neighbors()] = hopping
    syst.attach_lead(qpc)

    drain = kwant.Builder(kwant.TranslationalSymmetry((1, 0)))
    drain[(lat(nx, k) for k in range(ny))] = lead_onsite
    drain[lat.neighbors()] = hopping
    syst.attach_lead(drain)
    fsyst = syst.finalized()
    # attach_lead can add sites to reach the lead; here both leads abut the rectangle.
    if len(fsyst.sites) != nx * ny:
        raise AssertionError("the QPC lead added sites to the scattering region")
    return fsyst


def site_indices(fsyst) -> tuple[np.ndarray, np.ndarray]:
    """(i, k) lattice indices of each site of a finalized system, in Kwant's site order."""
    tags = np.array([site.tag for site in fsyst.sites], dtype=int)
    return tags[:, 0], tags[:, 1]
