"""Placements of the two P2 antidots and their classes under the symmetries of G(B).

Placements
----------
An antidot is a centre (cx, cy) in site coordinates; it removes the sites with
(i - cx)² + (k - cy)² ≤ r² (:func:`mesoinv.physics.nanowire.removed_mask`). Centres lie on
sites (integers) by default; ``half_integer_centres=True`` also allows half-integer
coordinates (between sites), which doubles the positions per axis. Internally centres are
kept in doubled integer coordinates (2cx, 2cy), so all comparisons are exact.

A placement is an unordered pair of centres that satisfies the constraints
(:class:`PairConstraints`):

* x: every removed site has margin_x ≤ i ≤ W-1-margin_x (``margin_x`` present columns
  between each hole and each edge of the wire; default 1, so an antidot is a hole, not a
  notch in the edge);
* y: every removed site has margin_y ≤ k ≤ L-1-margin_y (default 0: a hole may reach the
  first or last row of the scattering region; the clean lead begins beyond it);
* separation: the two holes are disjoint, and every removed site of one is farther than
  ``min_separation`` lattice constants from every removed site of the other (default 0:
  disjoint only, the holes may touch; 1: distinct holes, no removed nearest neighbours).

Symmetries of the clean system's G(B)
-------------------------------------
With V = 0 the device is a clean, infinite wire of width W with two holes; the scattering
region is bookkeeping. These maps of a placement leave the two-terminal G(B) unchanged:

* translation along y by whole lattice constants: an exact symmetry of the Hamiltonian at
  any B (the Landau gauge A = (0, B x) does not depend on y), as long as the holes stay in
  the region (the leads must remain the clean wire);
* exchange of the two antidots: they are identical;
* mirror x → -x (i → W-1-i): maps H(B) onto H(-B) of the mirrored placement (B_z is odd
  under a reflection; with x measured from the wire axis the gauge maps onto itself), so
  G_mirrored(B) = G(-B); and G(-B) = G(B) for any two-terminal conductance (Onsager–
  Büttiker: T_10(B) = T_01(-B), and T_10 = T_01 by current conservation with equal channel
  numbers in the two identical leads). So G is unchanged at every B;
* mirror y → -y (k → L-1-k, then a translation): also reverses B and swaps the two leads;
  T_10(mirrored, B) = T_01(original, -B) = T_10(original, B) by the same two relations;
* the product of the two mirrors (a rotation by π): keeps B and swaps the leads, exact
  without Onsager.

So all these hold with a field, the mirrors only because the measurement has two terminals
(a four-terminal Hall-type quantity would not be symmetric). With the random potential none
of them is a symmetry, but the potential is an independent draw per sample, so the class
representative is only a convention. The LDOS image is *not* invariant (it moves and
mirrors with the holes): the dataset uses one fixed representative per class.

Canonical representative
------------------------
For each of the four mirror images {1, Mx, My, MxMy} of a placement: translate it along y
so that the rows of its removed sites, ymin … ymax, are centred in the region,
ymin + ymax = L-1, or L-2 when L-1-ymin-ymax is odd (the shift s = ⌊(L-1-ymin-ymax)/2⌋);
order its two centres by (cy, cx). The representative is the image whose
(cy1, cx1, cy2, cx2) is lexicographically smallest. Every class has exactly one; the class
is the set of all placements reachable by the group that satisfy the constraints, and its
size is (number of distinct mirror images) × (number of allowed y positions,
L - 2 margin_y - (ymax - ymin + 1) + 1).

Count and P2
------------
For P2's 50 × 60 wire, r = 5 and the defaults (integer centres, margin_x = 1, margin_y = 0,
min_separation = 0) there are 17,484 classes covering 1,566,282 placements
(:func:`count_classes`; tests/test_antidots.py pins both). P2 reports 16,170 for
constraints it does not state. Its number has the size that all five symmetries give
(without the mirrors: 66,258 classes; without the translations: ~0.4 million; with
half-integer centres: 291,034), but the exact value depends on the unstated details:
margin_x = 0 gives 19,396, margin_x = 2 gives 15,672, min_separation = 1 removes ~1.5 %,
margin_y = 1 ~4 %; no combination of margins 0–5 (x), 0–3 (y) and separations 0–5, for
either orientation (50 × 60 or 60 × 50), gives exactly 16,170. We do not tune to it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .nanowire import NanowireGeometry

__all__ = [
    "MIRRORS",
    "mirror_pair",
    "PairConstraints",
    "PairClasses",
    "antidot_sites",
    "is_valid_pair",
    "canonical_pair",
    "canonical_pairs",
    "class_members",
    "symmetry_classes",
    "count_classes",
    "enumerate_pairs",
]

_TOL = 1e-9


@dataclass(frozen=True)
class PairConstraints:
    """Which antidot pairs are allowed (see the module docstring for the exact rules).

    Parameters
    ----------
    margin_x : int
        Present columns between every removed site and each wire edge (≥ 0).
    margin_y : int
        Present rows between every removed site and each end of the region (≥ 0).
    min_separation : float
        Removed sites of different antidots must be more than this far apart, in lattice
        constants (0: disjoint holes; 1: no removed nearest neighbours between them).
    half_integer_centres : bool
        Allow centres at half-integer site coordinates.
    """

    margin_x: int = 1
    margin_y: int = 0
    min_separation: float = 0.0
    half_integer_centres: bool = False

    def __post_init__(self):
        if self.margin_x < 0 or self.margin_y < 0:
            raise ValueError("margins must be ≥ 0")
        if not self.min_separation >= 0:
            raise ValueError("min_separation must be ≥ 0")


@dataclass(frozen=True)
class PairClasses:
    """The symmetry classes of antidot placements.

    Attributes
    ----------
    representatives : ndarray, shape (n_classes, 2, 2)
        Canonical placement of each class: [[cx1, cy1], [cx2, cy2]] in site coordinates,
        centres ordered by (cy, cx); classes sorted by (cy1, cx1, cy2, cx2).
    sizes : ndarray of int, shape (n_classes,)
        Number of allowed placements in each class.
    """

    representatives: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.sizes)


# -- disks ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _offsets(radius: float, px: int, py: int) -> np.ndarray:
    """Removed-site offsets (a, b) from the base site (⌊cx⌋, ⌊cy⌋) of a centre with parities.

    A centre with doubled coordinates (X, Y) = (2bx + px, 2by + py) removes the sites
    (bx + a, by + b) with (a - px/2)² + (b - py/2)² ≤ r².
    """
    n = int(np.ceil(radius)) + 1
    a, b = np.meshgrid(np.arange(-n, n + 2), np.arange(-n, n + 2), indexing="ij")
    inside = (a - px / 2) ** 2 + (b - py / 2) ** 2 <= radius ** 2 + _TOL
    out = np.stack([a[inside], b[inside]], axis=1)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _extents(radius: float) -> np.ndarray:
    """[px, py] → (amin, amax, bmin, bmax) of the offsets; shape (2, 2, 4)."""
    out = np.zeros((2, 2, 4), dtype=np.int64)
    for px in (0, 1):
        for py in (0, 1):
            o = _offsets(radius, px, py)
            if len(o) == 0:
                raise ValueError(f"an antidot of radius {radius} removes no site")
            out[px, py] = (o[:, 0].min(), o[:, 0].max(), o[:, 1].min(), o[:, 1].max())
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _forbidden(radius: float, min_separation: float, p1: tuple, p2: tuple) -> frozenset:
    """Base displacements (Δbx, Δby) of centre 2 from centre 1 that violate the separation.

    Violation: some removed sites p of 1 and q of 2 have |q - p| ≤ min_separation (with
    min_separation = 0: a shared site).
    """
    o1, o2 = _offsets(radius, *p1), _offsets(radius, *p2)
    n = int(np.floor(min_separation + _TOL))
    ball = [(u, v) for u in range(-n, n + 1) for v in range(-n, n + 1)
            if u * u + v * v <= min_separation ** 2 + _TOL]
    diff = (o1[:, None, :] - o2[None, :, :]).reshape(-1, 2)
    diff = np.unique(diff, axis=0)
    out = set()
    for u, v in ball:
        out.update(map(tuple, (diff + (u, v)).tolist()))
    return frozenset(out)


def antidot_sites(centre, radius: float) -> np.ndarray:
    """Integer sites (i, k) removed by one antidot, shape (n, 2) (the whole disk)."""
    x2, y2 = _doubled(centre)
    o = _offsets(float(radius), int(x2 % 2), int(y2 % 2))
    return o + np.array([x2 // 2, y2 // 2])


def _doubled(centre) -> tuple[int, int]:
    cx, cy = (float(c) for c in centre)
    x2, y2 = 2 * cx, 2 * cy
    if abs(x2 - round(x2)) > _TOL or abs(y2 - round(y2)) > _TOL:
        raise ValueError(f"centre {centre} is not on the half-integer grid")
    return int(round(x2)), int(round(y2))


def _pair_doubled(pair) -> np.ndarray:
    pair = np.asarray(pair, dtype=float)
    if pair.shape != (2, 2):
        raise ValueError(f"a placement is [[cx1, cy1], [cx2, cy2]], got shape {pair.shape}")
    return np.array([_doubled(pair[0]), _doubled(pair[1])], dtype=np.int64)


# -- vectorised checks and canonical forms (doubled coordinates) ------------------------------

def _box(x2, y2, ext):
    """Removed-site bounding boxes (xmin, xmax, ymin, ymax) of centres in doubled coords."""
    e = ext[x2 % 2, y2 % 2]
    bx, by = x2 // 2, y2 // 2
    return bx + e[..., 0], bx + e[..., 1], by + e[..., 2], by + e[..., 3]


def _valid(geometry, constraints, x1, y1, x2, y2):
    """Vectorised validity of placements given by doubled-coordinate arrays."""
    W, L = geometry.shape
    ext = _extents(float(geometry.antidot_radius))
    ok = np.ones(np.shape(x1), dtype=bool)
    if not constraints.half_integer_centres:
        ok &= (x1 % 2 == 0) & (y1 % 2 == 0) & (x2 % 2 == 0) & (y2 % 2 == 0)
    mx, my = constraints.margin_x, constraints.margin_y
    for x, y in ((x1, y1), (x2, y2)):
        xmin, xmax, ymin, ymax = _box(x, y, ext)
        ok &= (xmin >= mx) & (xmax <= W - 1 - mx) & (ymin >= my) & (ymax <= L - 1 - my)
    ok &= ~_violates_separation(geometry, constraints, x1, y1, x2, y2)
    return ok


def _violates_separation(geometry, constraints, x1, y1, x2, y2):
    radius = float(geometry.antidot_radius)
    x1, y1, x2, y2 = (np.asarray(v, dtype=np.int64) for v in (x1, y1, x2, y2))
    out = np.zeros(x1.shape, dtype=bool)
    dbx, dby = x2 // 2 - x1 // 2, y2 // 2 - y1 // 2
    for p1 in ((0, 0), (0, 1), (1, 0), (1, 1)):
        for p2 in ((0, 0), (0, 1), (1, 0), (1, 1)):
            sel = ((x1 % 2 == p1[0]) & (y1 % 2 == p1[1]) & (x2 % 2 == p2[0])
                   & (y2 % 2 == p2[1]))
            if not sel.any():
                continue
            forbidden = _forbidden(radius, float(constraints.min_separation), p1, p2)
            if not forbidden:
                continue
            table = np.array(sorted(forbidden), dtype=np.int64)
            span = int(np.abs(table).max()) + 1
            code = (table[:, 0] + span) * (2 * span + 1) + (table[:, 1] + span)
            ddx, ddy = dbx[sel], dby[sel]
            inside = (np.abs(ddx) <= span) & (np.abs(ddy) <= span)
            test = (ddx + span) * (2 * span + 1) + (ddy + span)
            hit = np.zeros(ddx.shape, dtype=bool)
            hit[inside] = np.isin(test[inside], code)
            out[sel] = hit
    return out


def _images(geometry, x1, y1, x2, y2):
    """Codes of the four centred, ordered mirror images; shape (4, n) int64, and n_trans."""
    W, L = geometry.shape
    ext = _extents(float(geometry.antidot_radius))
    m = 8 * (W + L) + 16
    codes = []
    for mirror_x in (False, True):
        for mirror_y in (False, True):
            a1, b1, a2, b2 = x1, y1, x2, y2
            if mirror_x:
                a1, a2 = 2 * (W - 1) - a1, 2 * (W - 1) - a2
            if mirror_y:
                b1, b2 = 2 * (L - 1) - b1, 2 * (L - 1) - b2
            _, _, lo1, hi1 = _box(a1, b1, ext)
            _, _, lo2, hi2 = _box(a2, b2, ext)
            ymin, ymax = np.minimum(lo1, lo2), np.maximum(hi1, hi2)
            shift = np.floor_divide(L - 1 - ymin - ymax, 2)
            b1, b2 = b1 + 2 * shift, b2 + 2 * shift
            first = (b1 < b2) | ((b1 == b2) & (a1 <= a2))
            ya, xa = np.where(first, b1, b2), np.where(first, a1, a2)
            yb, xb = np.where(first, b2, b1), np.where(first, a2, a1)
            h = m // 2
            codes.append((((ya + h) * m + (xa + h)) * m + (yb + h)) * m + (xb + h))
    _, _, lo1, hi1 = _box(x1, y1, ext)
    _, _, lo2, hi2 = _box(x2, y2, ext)
    extent = np.maximum(hi1, hi2) - np.minimum(lo1, lo2) + 1
    return np.stack(codes), extent, m


def _decode(codes, m):
    h = m // 2
    xb = codes % m - h
    yb = (codes // m) % m - h
    xa = (codes // m ** 2) % m - h
    ya = (codes // m ** 3) - h
    pairs = np.stack([np.stack([xa, ya], axis=-1), np.stack([xb, yb], axis=-1)], axis=-2)
    return pairs / 2.0


# -- public API -------------------------------------------------------------------------------

MIRRORS = ((False, False), (True, False), (False, True), (True, True))
"""The wire's mirror group {1, Mx, My, MxMy} as (mirror_x, mirror_y) flags, identity first."""


def mirror_pair(pair, shape: tuple[int, int], mirror_x: bool, mirror_y: bool) -> np.ndarray:
    """A placement under the mirrors x → −x (i → W−1−i) and/or y → −y (k → L−1−k).

    Parameters
    ----------
    pair : array_like, shape (..., 2, 2)
        Centres (cx, cy) in sites; leading axes are kept.
    shape : (int, int)
        (W, L) of the wire in sites.
    mirror_x, mirror_y : bool

    Returns
    -------
    ndarray, float64, the same shape. Both mirrors keep G(B) (module docstring), and with the
    disorder potential mirrored too they map one sample onto another exactly (the B = 0 LDOS
    mirrors with the placement).
    """
    out = np.array(pair, dtype=np.float64, copy=True)
    W, L = shape
    if mirror_x:
        out[..., 0] = W - 1 - out[..., 0]
    if mirror_y:
        out[..., 1] = L - 1 - out[..., 1]
    return out


def is_valid_pair(geometry: NanowireGeometry, pair, constraints=PairConstraints()) -> bool:
    """Whether a placement [[cx1, cy1], [cx2, cy2]] satisfies the constraints."""
    (x1, y1), (x2, y2) = _pair_doubled(pair)
    return bool(_valid(geometry, constraints, np.array([x1]), np.array([y1]),
                       np.array([x2]), np.array([y2]))[0])


def canonical_pair(geometry: NanowireGeometry, pair) -> np.ndarray:
    """The class representative of a placement (module docstring), shape (2, 2)."""
    return canonical_pairs(geometry, np.asarray(pair, dtype=float)[None])[0]


def canonical_pairs(geometry: NanowireGeometry, pairs) -> np.ndarray:
    """Class representatives of many placements at once: (n, 2, 2) → (n, 2, 2)."""
    pairs = np.asarray(pairs, dtype=float)
    if pairs.ndim != 3 or pairs.shape[1:] != (2, 2):
        raise ValueError(f"placements must have shape (n, 2, 2), got {pairs.shape}")
    doubled = 2 * pairs
    if np.any(np.abs(doubled - np.round(doubled)) > _TOL):
        raise ValueError("centres must be integer or half-integer site coordinates")
    d = np.round(doubled).astype(np.int64)
    codes, _, m = _images(geometry, d[:, 0, 0], d[:, 0, 1], d[:, 1, 0], d[:, 1, 1])
    return _decode(codes.min(axis=0), m)


def class_members(geometry: NanowireGeometry, pair,
                  constraints=PairConstraints()) -> np.ndarray:
    """All allowed placements in the class of ``pair``, shape (n, 2, 2).

    Members are listed with their centres ordered by (cy, cx), sorted.
    """
    if not is_valid_pair(geometry, pair, constraints):
        raise ValueError(f"{np.asarray(pair).tolist()} violates the constraints")
    (x1, y1), (x2, y2) = _pair_doubled(pair)
    codes, extent, m = _images(geometry, *(np.array([v]) for v in (x1, y1, x2, y2)))
    L = geometry.length_sites
    images = _decode(np.unique(codes[:, 0]), m)          # centred mirror images
    out = []
    for image in images:
        ext = _extents(float(geometry.antidot_radius))
        d = _pair_doubled(image)
        _, _, lo1, _ = _box(d[:, 0], d[:, 1], ext)
        ymin = int(lo1.min())
        first = constraints.margin_y - ymin
        count = L - 2 * constraints.margin_y - int(extent[0]) + 1
        for s in range(first, first + count):
            out.append(image + np.array([[0, s], [0, s]]))
    return np.array(sorted(out, key=lambda p: tuple(p.ravel()[[1, 0, 3, 2]])))


def _centre_grid(geometry, constraints):
    step = 1 if constraints.half_integer_centres else 2
    W = geometry.width_sites
    return np.arange(-2, 2 * W + 2, step)


def symmetry_classes(geometry: NanowireGeometry,
                     constraints=PairConstraints()) -> PairClasses:
    """All classes of allowed placements, with their canonical representatives and sizes.

    Enumerates every pair of centre columns, centre row parities and relative row offset
    once (translations along y are factored out), then canonicalises.
    """
    W, L = geometry.shape
    ext = _extents(float(geometry.antidot_radius))
    xs = _centre_grid(geometry, constraints)
    y_parities = (0, 1) if constraints.half_integer_centres else (0,)
    reps = []
    for py1 in y_parities:
        for py2 in y_parities:
            x1, x2, dby = np.meshgrid(xs, xs, np.arange(-L - 2, L + 3), indexing="ij")
            x1, x2, dby = x1.ravel(), x2.ravel(), dby.ravel()
            y1 = np.full(x1.shape, py1, dtype=np.int64)
            y2 = 2 * dby + py2
            # Put each pair at its centred y position before checking the y constraints.
            _, _, lo1, hi1 = _box(x1, y1, ext)
            _, _, lo2, hi2 = _box(x2, y2, ext)
            shift = np.floor_divide(L - 1 - np.minimum(lo1, lo2) - np.maximum(hi1, hi2), 2)
            y1, y2 = y1 + 2 * shift, y2 + 2 * shift
            ok = _valid(geometry, constraints, x1, y1, x2, y2)
            # One ordering of the two centres suffices (exchange is in the group).
            ok &= (y1 < y2) | ((y1 == y2) & (x1 <= x2))
            if ok.any():
                reps.append(np.stack([x1[ok], y1[ok], x2[ok], y2[ok]]))
    if not reps:
        return PairClasses(np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64))
    x1, y1, x2, y2 = np.concatenate(reps, axis=1)
    codes, extent, m = _images(geometry, x1, y1, x2, y2)
    canonical = codes.min(axis=0)
    unique, first = np.unique(canonical, return_index=True)
    image_codes = np.sort(codes[:, first], axis=0)
    n_images = 1 + np.sum(np.diff(image_codes, axis=0) != 0, axis=0)
    n_trans = L - 2 * constraints.margin_y - extent[first] + 1
    return PairClasses(_decode(unique, m), (n_images * n_trans).astype(np.int64))


def count_classes(geometry: NanowireGeometry = NanowireGeometry(),
                  constraints=PairConstraints()) -> int:
    """Number of symmetry classes of allowed placements (P2's '16,170', for its constraints)."""
    return len(symmetry_classes(geometry, constraints))


def enumerate_pairs(geometry: NanowireGeometry, constraints=PairConstraints()) -> np.ndarray:
    """Every allowed placement (unordered: centres ordered by (cy, cx)), shape (n, 2, 2).

    Brute force over all centre pairs; meant for small lattices (tests). At 50 × 60 with
    the defaults it lists 1,566,282 placements (slow; use :func:`symmetry_classes`).
    """
    W, L = geometry.shape
    xs = _centre_grid(geometry, constraints)
    step = 1 if constraints.half_integer_centres else 2
    ys = np.arange(-2, 2 * L + 2, step)
    cx, cy = np.meshgrid(xs, ys, indexing="ij")
    cx, cy = cx.ravel(), cy.ravel()
    ext = _extents(float(geometry.antidot_radius))
    xmin, xmax, ymin, ymax = _box(cx, cy, ext)
    single = ((xmin >= constraints.margin_x) & (xmax <= W - 1 - constraints.margin_x)
              & (ymin >= constraints.margin_y) & (ymax <= L - 1 - constraints.margin_y))
    cx, cy = cx[single], cy[single]
    order = np.lexsort((cx, cy))
    cx, cy = cx[order], cy[order]
    i, j = np.triu_indices(len(cx), k=0)
    ok = _valid(geometry, constraints, cx[i], cy[i], cx[j], cy[j])
    pairs = np.stack([np.stack([cx[i[ok]], cy[i[ok]]], axis=-1),
                      np.stack([cx[j[ok]], cy[j[ok]]], axis=-1)], axis=1)
    return pairs / 2.0
