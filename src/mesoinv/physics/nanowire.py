"""The P2 device: a two-dimensional nanowire with two circular antidots, in a magnetic field.

Geometry (integers are lattice sites; lattice constant a)::

          lead 1 (translation (0, +1), full width, clean)
            ║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║
   k = L-1 ─┌──────────────────────────────────────┐
            │        ○○○            scattering     │
            │       ○○○○○           region         │
            │        ○○○             W × L sites   │   ↑ y (along the wire, transport)
            │                ○○○                   │   │
            │               ○○○○○   antidots:      │   └──→ x (across)
            │                ○○○    sites removed  │
     k = 0 ─└──────────────────────────────────────┘
            i = 0                              i = W-1
            ║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║║
          lead 0 (translation (0, -1), full width, clean)

* Sites (i, k), 0 ≤ i < W (across, x), 0 ≤ k < L (along, y); P2: W = 50, L = 60. Site
  positions (x, y) = (i - (W-1)/2, k) a: x is measured from the wire's axis, so the mirror
  x → -x is i → W-1-i and leaves the gauge below unchanged up to B → -B.
* Antidots: a site is removed if its distance to an antidot centre (cx, cy) is at most the
  radius r, (i - cx)² + (k - cy)² ≤ r² (r = 5 sites in P2). Centres are given in site
  coordinates and may be integer (on a site) or half-integer (between sites): see
  :mod:`mesoinv.physics.antidots` for which placements the dataset uses. Removed sites are
  absent from the Hamiltonian (no site, no hopping), not modelled by a large onsite energy.
* Leads 0 (y < 0) and 1 (y ≥ L) are the clean wire of the full width W: the antidots and the
  random potential exist only in the scattering region. G = (e²/h) T with T =
  ``kwant.smatrix(...).transmission(1, 0)`` (from lead 0 to lead 1), spinless: multiply by
  2 for spin degeneracy.
* Hamiltonian, energies in units of the hopping t (P2 states no physical units; with a
  material, t = ħ²/(2 m* a²), see :func:`mesoinv.physics.materials.hopping_meV`):

      H = Σ_sites (4 + V(i, k)) |i,k⟩⟨i,k|
          - Σ_⟨x bonds⟩ |i+1,k⟩⟨i,k| - Σ_⟨y bonds⟩ exp(-2πi φ x_i) |i,k+1⟩⟨i,k| + h.c.,

  the band bottom of the clean 2D lattice at E = 0 (as in P1). V is a random onsite
  potential given as an array in ``params`` (never drawn inside a value function; see
  :func:`random_potential`); 0 in the leads.
* Magnetic field B along z in the Landau gauge A = (0, B x, 0), which is invariant under
  translations along y, so the leads carry the same Peierls phases as the scattering region.
  φ = B a² e/h is the flux per plaquette in flux quanta h/e
  (:func:`mesoinv.physics.materials.flux_per_plaquette`; at a = 5 nm, 1 T is φ = 6.045e-3).
  Sign: the hopping H[to, from] = -t exp(-i (e/ħ) ∫_from^to A·dl) of an electron (charge -e);
  the product of H[to, from] around a plaquette counter-clockwise is t⁴ exp(-2πi φ), the same
  convention as the P1 device (:mod:`mesoinv.physics.qpc`, gauge A = (-B y, 0)), so a given B
  means the same field in both.

Kwant detail: ``attach_lead`` fills holes that reach the first or last row of the region with
lead sites (it "smooths" the interface). So that an antidot touching the region's y end stays
a hole, :func:`make_nanowire_system` then adds one clean lead row (onsite 4, no potential)
beyond that end before attaching the lead. A clean lead unit cell moved into the scattering
region does not change the scattering matrix, so the model is the same: the lead begins
right after row 0 / row L-1 in all cases.

Value functions are module-level so that finalized systems pickle (for MPI workers).
"""

from __future__ import annotations

from dataclasses import dataclass

import kwant
import numpy as np

from .materials import flux_per_plaquette as _flux_per_plaquette

__all__ = [
    "NanowireGeometry",
    "DEFAULT_ENERGY",
    "removed_mask",
    "present_mask",
    "random_potential",
    "make_nanowire_system",
    "conductance_kwant",
    "ldos_kwant",
    "pad_image",
    "site_indices",
    "onsite",
    "lead_onsite",
    "hopping",
]

#: Default Fermi energy in units of t above the band bottom (our choice; P2 gives none):
#: k_F a = 1.02, λ_F = 6.2 a; 16 open channels in the clean 50-site wire at B = 0, mid-way
#: between the thresholds 0.893 (16th) and 1.000 (17th) of its transverse modes.
DEFAULT_ENERGY = 0.95

#: Tolerance of the antidot membership test in site units² (centres are exact half-integers;
#: this only protects against a radius that is not exactly representable).
_MEMBERSHIP_TOLERANCE = 1e-9


@dataclass(frozen=True)
class NanowireGeometry:
    """Sizes of the P2 nanowire, in lattice sites.

    Parameters
    ----------
    width_sites : int
        W, sites across the wire (x). P2: 50.
    length_sites : int
        L, sites along the wire (y, transport) in the scattering region. P2: 60.
    antidot_radius : float
        r in lattice constants; a site at distance ≤ r from an antidot centre is removed. P2: 5.
    lattice_constant_nm : float
        a in nm; only used to convert between tesla and flux per plaquette (P2 states none;
        5 nm as in P1).
    """

    width_sites: int = 50
    length_sites: int = 60
    antidot_radius: float = 5.0
    lattice_constant_nm: float = 5.0

    def __post_init__(self):
        if self.width_sites < 2 or self.length_sites < 1:
            raise ValueError(f"the wire needs at least 2 × 1 sites, got "
                             f"{self.width_sites} × {self.length_sites}")
        if not self.antidot_radius >= 0:
            raise ValueError(f"antidot_radius must be ≥ 0, got {self.antidot_radius}")
        if not self.lattice_constant_nm > 0:
            raise ValueError(f"lattice_constant_nm must be > 0, got {self.lattice_constant_nm}")

    @property
    def shape(self) -> tuple[int, int]:
        """(W, L): the shape of potentials, masks and LDOS images, indexed [i, k] = [x, y]."""
        return (self.width_sites, self.length_sites)

    @property
    def x_origin(self) -> float:
        """(W-1)/2: site index of the wire's axis; x_i = i - x_origin (lattice constants)."""
        return (self.width_sites - 1) / 2

    def flux_per_plaquette(self, field_T):
        """φ = B a² e/h (flux quanta per plaquette) for a field B in tesla."""
        return _flux_per_plaquette(field_T, self.lattice_constant_nm)

    def field_T(self, flux_per_plaquette):
        """B in tesla for a flux per plaquette φ (inverse of :meth:`flux_per_plaquette`)."""
        return np.asarray(flux_per_plaquette, dtype=float) / float(self.flux_per_plaquette(1.0))


def _centres_array(centres) -> np.ndarray:
    centres = np.asarray(centres, dtype=float).reshape(-1, 2) if len(centres) else \
        np.zeros((0, 2))
    if not np.all(np.isfinite(centres)):
        raise ValueError("antidot centres must be finite")
    doubled = 2 * centres
    if np.any(np.abs(doubled - np.round(doubled)) > 1e-9):
        raise ValueError(f"antidot centres must be integer or half-integer site coordinates, "
                         f"got {centres.tolist()}")
    return np.round(doubled) / 2


def removed_mask(geometry: NanowireGeometry, centres) -> np.ndarray:
    """Sites removed by the antidots: True where (i - cx)² + (k - cy)² ≤ r² for some centre.

    Parameters
    ----------
    geometry : NanowireGeometry
    centres : sequence of (cx, cy)
        Antidot centres in site coordinates (integer or half-integer), any number of them.
        Parts of a disk outside the W × L region are ignored.

    Returns
    -------
    ndarray of bool, shape (W, L)
    """
    centres = _centres_array(centres)
    i = np.arange(geometry.width_sites)[:, None]
    k = np.arange(geometry.length_sites)[None, :]
    removed = np.zeros(geometry.shape, dtype=bool)
    r2 = geometry.antidot_radius ** 2 + _MEMBERSHIP_TOLERANCE
    for cx, cy in centres:
        removed |= (i - cx) ** 2 + (k - cy) ** 2 <= r2
    return removed


def present_mask(geometry: NanowireGeometry, centres) -> np.ndarray:
    """Sites of the scattering region that exist: ``~removed_mask(geometry, centres)``."""
    return ~removed_mask(geometry, centres)


def random_potential(rng: np.random.Generator, geometry: NanowireGeometry,
                     amplitude: float) -> np.ndarray:
    """A random onsite potential, independent and uniform on [-amplitude/2, +amplitude/2].

    Anderson's convention (``amplitude`` is the full width W_A of the distribution; rms =
    W_A/√12), in units of t. Drawn on all W × L sites, antidot or not, so that a realization
    does not depend on the antidot placement (values on removed sites are ignored).

    Parameters
    ----------
    rng : numpy.random.Generator
    geometry : NanowireGeometry
    amplitude : float
        Full width of the uniform distribution in units of t (≥ 0).

    Returns
    -------
    ndarray, shape (W, L)
    """
    if not amplitude >= 0:
        raise ValueError(f"amplitude must be ≥ 0, got {amplitude}")
    return amplitude * (rng.random(geometry.shape) - 0.5)


# -- Kwant value functions (module level: finalized systems pickle) ---------------------------

def onsite(site, potential):
    """4 + V(i, k) in units of t; ``potential`` has shape (W, L), indexed by the site tag."""
    i, k = site.tag
    return 4.0 + potential[i, k]


def lead_onsite(site):
    """4 in units of t: the clean wire (also the padding rows next to the leads)."""
    return 4.0


def hopping(site_to, site_from, flux_per_plaquette):
    """-exp(-2πi φ x Δk) in units of t: Peierls hopping in the gauge A = (0, B x).

    x = ``site_from.pos[0]`` is measured from the wire's axis (the lattice carries the offset);
    bonds along x (Δk = 0) carry no phase.
    """
    dk = site_to.tag[1] - site_from.tag[1]
    if dk == 0:
        return -1.0
    return -np.exp(-2j * np.pi * flux_per_plaquette * site_from.pos[0] * dk)


def _lattice(geometry: NanowireGeometry):
    """Square lattice, a = 1, tags (i, k) at positions (i - x_origin, k)."""
    return kwant.lattice.Monatomic([(1, 0), (0, 1)], offset=(-geometry.x_origin, 0),
                                   name="wire", norbs=1)


def make_nanowire_system(geometry: NanowireGeometry, centres=()) -> kwant.system.FiniteSystem:
    """Finalized Kwant system of the wire with antidots (lead 0 at y < 0, lead 1 at y ≥ L).

    Parameters
    ----------
    geometry : NanowireGeometry
    centres : sequence of (cx, cy)
        Antidot centres in site coordinates (see :func:`removed_mask`).

    Returns
    -------
    kwant.system.FiniteSystem
        Parameters of its value functions (pass in ``params``): ``potential`` (array of
        shape (W, L), units of t) and ``flux_per_plaquette`` (φ). Site tags are (i, k);
        sites with k = -1 or k = L, if present, are the clean padding rows described in the
        module docstring.

    Raises
    ------
    ValueError
        If the antidots cut the wire (a row of the region has no site left).
    """
    present = present_mask(geometry, centres)
    if not np.all(present.any(axis=0)):
        raise ValueError("the antidots remove a whole row of the wire: it is cut in two")
    width, length = geometry.shape
    lat = _lattice(geometry)
    syst = kwant.Builder()
    syst[(lat(i, k) for i, k in zip(*np.nonzero(present)))] = onsite
    padding_rows = []
    if not present[:, 0].all():
        padding_rows.append(-1)
    if not present[:, -1].all():
        padding_rows.append(length)
    for k in padding_rows:
        syst[(lat(i, k) for i in range(width))] = lead_onsite
    syst[lat.neighbors()] = hopping

    for direction, row in ((-1, -1), (1, length)):
        lead = kwant.Builder(kwant.TranslationalSymmetry((0, direction)))
        lead[(lat(i, row) for i in range(width))] = lead_onsite
        lead[lat.neighbors()] = hopping
        added = syst.attach_lead(lead)
        if added:
            raise AssertionError(f"attach_lead added {len(added)} sites to the region")
    return syst.finalized()


def site_indices(fsyst) -> tuple[np.ndarray, np.ndarray]:
    """(i, k) lattice indices of each site of a finalized system, in Kwant's site order."""
    tags = np.array([site.tag for site in fsyst.sites], dtype=int)
    return tags[:, 0], tags[:, 1]


def _params(potential, flux):
    return dict(potential=potential, flux_per_plaquette=float(flux))


def _checked_potential(fsyst, potential):
    """The potential as a float array; zeros covering every site tag if None."""
    if potential is None:
        i, k = site_indices(fsyst)
        return np.zeros((int(i.max()) + 1, int(k.max()) + 1))
    potential = np.asarray(potential, dtype=float)
    if potential.ndim != 2:
        raise ValueError(f"potential must be a (W, L) array, got shape {potential.shape}")
    if not np.all(np.isfinite(potential)):
        raise ValueError("potential contains non-finite values")
    return potential


def conductance_kwant(fsyst, fluxes_per_plaquette, *, energy=DEFAULT_ENERGY, potential=None):
    """G(φ) in e²/h with plain ``kwant.smatrix`` (the reference path), one solve per field.

    Parameters
    ----------
    fsyst : kwant.system.FiniteSystem
        From :func:`make_nanowire_system`.
    fluxes_per_plaquette : sequence of float
        φ = B a² e/h for each point of the trace.
    energy : float
        Fermi energy in units of t (band bottom of the clean lattice at 0).
    potential : ndarray, shape (W, L), optional
        Onsite potential in units of t (default 0: the clean system).

    Returns
    -------
    ndarray, shape (n_fields,)
        T = ``kwant.smatrix(...).transmission(1, 0)`` per field (spinless G in e²/h).
    """
    potential = _checked_potential(fsyst, potential)
    fluxes = np.atleast_1d(np.asarray(fluxes_per_plaquette, dtype=float))
    out = np.empty(fluxes.shape)
    for n, phi in enumerate(fluxes):
        smatrix = kwant.smatrix(fsyst, energy=energy, params=_params(potential, phi))
        out[n] = smatrix.transmission(1, 0)
    return out


def ldos_kwant(fsyst, geometry: NanowireGeometry, *, energy=DEFAULT_ENERGY, potential=None,
               flux_per_plaquette=0.0):
    """LDOS image with plain ``kwant.ldos`` (the reference path); P2 uses B = 0.

    Parameters
    ----------
    fsyst : kwant.system.FiniteSystem
        From :func:`make_nanowire_system`.
    geometry : NanowireGeometry
        The geometry ``fsyst`` was built from (fixes the image shape).
    energy : float
        Fermi energy in units of t.
    potential : ndarray, shape (W, L), optional
        Onsite potential in units of t (default 0).
    flux_per_plaquette : float
        φ (default 0: P2's LDOS is at zero field).

    Returns
    -------
    ndarray, shape (W, L), indexed [i, k] = [x, y]
        ρ = Σ_leads Σ_modes |ψ|²/(2π) = -Im G^R(r, r)/π, states per t per site; 0 on removed
        antidot sites. Padding rows (k = -1, L) are not part of the image.
    """
    potential = _checked_potential(fsyst, potential)
    values = kwant.ldos(fsyst, energy=energy, params=_params(potential, flux_per_plaquette))
    i, k = site_indices(fsyst)
    inside = (k >= 0) & (k < geometry.length_sites)
    image = np.zeros(geometry.shape)
    image[i[inside], k[inside]] = values[inside]
    return image


def pad_image(image, size=None):
    """Pad an LDOS image (W, L) with zeros along x, symmetrically, to (size, L).

    The P2 option: 50 × 60 → 60 × 60 with 5 zero columns on each side of the wire.

    Parameters
    ----------
    image : ndarray, shape (..., W, L)
        Images indexed [..., x, y]; leading axes (e.g. a batch) are kept.
    size : int, optional
        Target width (default L, a square image). ``size - W`` must be even and ≥ 0.

    Returns
    -------
    ndarray, shape (..., size, L)
    """
    image = np.asarray(image)
    width, length = image.shape[-2:]
    size = length if size is None else int(size)
    extra = size - width
    if extra < 0 or extra % 2:
        raise ValueError(f"cannot pad width {width} symmetrically to {size}")
    pad = [(0, 0)] * (image.ndim - 2) + [(extra // 2, extra // 2), (0, 0)]
    return np.pad(image, pad)
