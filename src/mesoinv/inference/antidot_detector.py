"""Antidot positions read off LDOS images: the template-matching detector (P2 Sec. IV).

P2 reports that its diffusion model "reproduce[s] the interference patterns and the positions
of the antidots with high accuracy (over 95 percent)", without saying how a position is read
off an image. This module makes it explicit. It takes images from any source (generated, true,
a baseline), so every position the evaluation scores
(:mod:`mesoinv.evaluation.p2_generation.positions`) is read the same way;
:func:`mesoinv.inference.p2_format.write_generated` stores the antidots it finds in generated
images. numpy only (no torch).

Coordinates
-----------
Images are stored LDOS arrays ``(..., image_x, y)`` in states per t per site (generated images
after :meth:`mesoinv.training.normalization.LDOSNormalization.inverse`): the first axis runs
across the wire with ``p`` zero padding columns on each side, so site ``(i, k)`` is pixel
``[p + i, k]``. Positions are antidot centres ``[[cx1, cy1], [cx2, cy2]]`` in the dataset's site
indices (``antidot_x``/``antidot_y``: i across, k along the wire), ordered by (cy, cx).

The detector (:class:`AntidotDetector`)
---------------------------------------
An antidot removes the sites within radius r of its centre, ``(i − cx)² + (k − cy)² ≤ r²``
(p2.md §2); removed sites are absent, so the LDOS there is exactly 0, while it is positive on
every site connected to the leads. The detector is template matching with that exact disk:

1. Hole map: h = clip(ρ / ρ_ref, 0, 1) on the wire's sites (padding dropped), with
   ρ_ref = ``reference_fraction`` (default 0.5) × the image's median LDOS over the wire. Holes
   are 0, ordinary sites ≈ 1; bright interference maxima saturate, so they cannot outweigh a
   dark disk; negative values of a generated image count as 0.
2. Score of a candidate centre c = the mean of h over the disk's sites (the "depth": 0 for a
   perfect hole, ≈ 1 where there is none). Candidates: every centre on the half-integer grid
   (``grid="half"``, default; ``"sites"``: integers only) whose whole disk satisfies the
   dataset's margins (``margin_x``, ``margin_y``), so the padding never counts as a hole.
3. The first antidot is the candidate with the lowest score; the second the lowest-scoring
   candidate whose disk is disjoint from the first one's and farther than
   ``min_separation`` from it (the dataset's own pair rule, p2.md §6). Greedy, not a joint
   search; ties go to the first candidate in (i, k) order.
4. "No antidot found": a candidate counts as an antidot only when its depth is at most
   ``max_depth`` (:data:`DEFAULT_MAX_DEPTH` = 0.5: the disk's LDOS averages below about half
   the reference ρ_ref, i.e. a quarter of the wire's median; ``None``: always two). The
   detector reports the ``count`` found per image (0, 1 or 2) and NaN centres for the missing
   ones (a found one first). Measured on the 36 true images of the test config's ``p2_wire``
   (config/test.yaml, 12 placements × 3 realisations): every true hole has depth exactly 0,
   and the lowest depth of any candidate disk that touches no true hole is 0.86 (median
   0.94), so 0.5 passes every true image with a wide margin on both sides; images with two
   clear holes give the same centres as without the criterion.
5. The found centres are returned ordered by (cy, cx), with their depths.

On a true image the true disks score exactly 0 and every other candidate includes at least
one site connected to the leads, so the detector returns the true centres;
tests/test_p2_learning.py checks this on every class representative of the test lattice and
on every image of the test and demo datasets, so evaluation errors are the model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import netCDF4
import numpy as np

from ..physics.antidots import PairConstraints
from ..physics.nanowire import NanowireGeometry

__all__ = ["AntidotDetector", "Detection", "detect_antidots", "read_geometry",
           "metadata_geometry", "disk_offsets", "GEOMETRY_TOLERANCE", "DEFAULT_MAX_DEPTH"]

#: Largest depth (mean hole map over the disk) that still counts as an antidot (module
#: docstring, step 4).
DEFAULT_MAX_DEPTH = 0.5

#: Slack of the geometric comparisons (disk membership, separations, matching distances), as
#: in :mod:`mesoinv.physics.antidots`; dimensionless (squared sites or sites).
GEOMETRY_TOLERANCE = 1e-9


# -- geometry of the dataset ------------------------------------------------------------------

def read_geometry(path) -> tuple[NanowireGeometry, PairConstraints, int]:
    """(geometry, pair constraints, padding p) from a P2 file's global attributes."""
    with netCDF4.Dataset(path) as ds:
        a = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return metadata_geometry(a)


def metadata_geometry(metadata: dict) -> tuple[NanowireGeometry, PairConstraints, int]:
    """(geometry, pair constraints, padding p) from P2 metadata (file attributes or the model
    file's ``data_metadata``)."""
    geometry = NanowireGeometry(
        width_sites=int(metadata["width_sites"]), length_sites=int(metadata["length_sites"]),
        antidot_radius=float(metadata["antidot_radius_sites"]),
        lattice_constant_nm=float(metadata.get("lattice_constant_nm", 5.0)))
    constraints = PairConstraints(
        margin_x=int(metadata.get("antidot_margin_x_sites", 1)),
        margin_y=int(metadata.get("antidot_margin_y_sites", 0)),
        min_separation=float(metadata.get("antidot_min_separation_sites", 0.0)),
        half_integer_centres=bool(int(metadata.get("antidot_half_integer_centres", 0))))
    return geometry, constraints, int(metadata.get("ldos_padding_sites", 0))


# -- the detector -----------------------------------------------------------------------------

def disk_offsets(radius: float, px: int, py: int) -> np.ndarray:
    """Removed-site offsets (a, b) from the base site (⌊cx⌋, ⌊cy⌋) of a centre with parities
    (px, py) (0: integer, 1: half-integer coordinate), by the dataset's rule
    (a − px/2)² + (b − py/2)² ≤ r² (+1e-9, as :mod:`mesoinv.physics.antidots`), with the
    radius r in sites. Returns the integer offsets (m, 2), in sites."""
    n = int(math.ceil(radius)) + 1
    a, b = np.meshgrid(np.arange(-n, n + 2), np.arange(-n, n + 2), indexing="ij")
    inside = (a - px / 2) ** 2 + (b - py / 2) ** 2 <= radius ** 2 + GEOMETRY_TOLERANCE
    return np.stack([a[inside], b[inside]], axis=1)


@dataclass
class Detection:
    """What the detector found.

    Attributes
    ----------
    centres : ndarray (..., 2, 2)
        ``[[cx1, cy1], [cx2, cy2]]`` in site indices, ordered by (cy, cx); NaN for an antidot
        not found (the found one first).
    depth : ndarray (..., 2)
        Mean of the hole map over each best candidate disk: 0 = a perfect hole, ≈ 1 = no hole
        there (kept for a candidate that was not counted as an antidot).
    count : ndarray (...,), int
        Antidots found per image: 0, 1 or 2 (depth ≤ ``max_depth``).
    """

    centres: np.ndarray
    depth: np.ndarray
    count: np.ndarray | None = None


class AntidotDetector:
    """Template-matching detector of the two antidots (module docstring).

    Parameters
    ----------
    geometry : NanowireGeometry
        W, L and the antidot radius r (sites).
    constraints : PairConstraints
        Margins and separation of allowed placements (the dataset's).
    padding : int
        Zero columns on each side of the image.
    grid : str
        ``half`` (default): candidate centres on the half-integer grid; ``sites``: integers.
    reference_fraction : float
        ρ_ref = this × the image's median wire LDOS (step 1).
    max_depth : float or None
        Largest depth counted as an antidot (step 4); None: always two.
    """

    def __init__(self, geometry: NanowireGeometry,
                 constraints: PairConstraints = PairConstraints(), padding: int = 0, *,
                 grid: str = "half", reference_fraction: float = 0.5,
                 max_depth: float | None = DEFAULT_MAX_DEPTH):
        if grid not in ("half", "sites"):
            raise ValueError(f"grid must be 'half' or 'sites', got {grid!r}")
        if not reference_fraction > 0:
            raise ValueError("reference_fraction must be positive")
        if max_depth is not None and not 0 <= float(max_depth) <= 1:
            raise ValueError(f"max_depth must be in [0, 1] or None, got {max_depth}")
        self.max_depth = None if max_depth is None else float(max_depth)
        self.geometry, self.constraints, self.padding = geometry, constraints, int(padding)
        self.grid, self.reference_fraction = grid, float(reference_fraction)
        W, L = geometry.shape
        r = float(geometry.antidot_radius)
        mx, my = constraints.margin_x, constraints.margin_y
        parities = ((0, 0), (0, 1), (1, 0), (1, 1)) if grid == "half" else ((0, 0),)
        self._offsets, centres, index = [], [], []
        for p, (px, py) in enumerate(parities):
            o = disk_offsets(r, px, py)
            self._offsets.append(o)
            bx, by = np.meshgrid(np.arange(W), np.arange(L), indexing="ij")
            ok = ((bx + o[:, 0].min() >= mx) & (bx + o[:, 0].max() <= W - 1 - mx)
                  & (by + o[:, 1].min() >= my) & (by + o[:, 1].max() <= L - 1 - my))
            bx, by = bx[ok], by[ok]
            centres.append(np.stack([bx + px / 2, by + py / 2], axis=1))
            index.append(np.stack([np.full(bx.shape, p), bx, by], axis=1))
        self.candidates = np.concatenate(centres)              # (M, 2) centres, sites
        self._index = np.concatenate(index)                    # (M, 3) parity, base i, k
        if len(self.candidates) == 0:
            raise ValueError(f"no antidot of radius {r} fits a {W} × {L} wire with margins "
                             f"({mx}, {my})")
        self._reach = int(math.ceil(r)) + 2
        # Dilation ball for the separation rule: q conflicts with p if |q − p| ≤ min_separation.
        s = float(constraints.min_separation)
        n = int(math.floor(s + GEOMETRY_TOLERANCE))
        self._ball = np.array([(u, v) for u in range(-n, n + 1) for v in range(-n, n + 1)
                               if u * u + v * v <= s * s + GEOMETRY_TOLERANCE])

    @classmethod
    def from_metadata(cls, metadata: dict, **options) -> "AntidotDetector":
        """From P2 file attributes or a model file's ``data_metadata``."""
        geometry, constraints, padding = metadata_geometry(metadata)
        return cls(geometry, constraints, padding, **options)

    @classmethod
    def from_file(cls, path, **options) -> "AntidotDetector":
        """From a P2 netCDF file's global attributes."""
        geometry, constraints, padding = read_geometry(path)
        return cls(geometry, constraints, padding, **options)

    def _wire(self, images: np.ndarray) -> np.ndarray:
        W, L = self.geometry.shape
        if images.shape[-2:] != (W + 2 * self.padding, L):
            raise ValueError(f"images are {images.shape[-2:]} (image_x, y); expected "
                             f"{(W + 2 * self.padding, L)} for a {W} × {L} wire padded by "
                             f"{self.padding}")
        return images[:, self.padding:self.padding + W, :]

    def hole_map(self, images) -> np.ndarray:
        """h = clip(ρ / ρ_ref, 0, 1) on the wire's sites, (n, W, L) (module docstring)."""
        images = np.asarray(images, dtype=np.float64)
        wire = self._wire(images.reshape(-1, *images.shape[-2:]))
        reference = self.reference_fraction * np.median(wire.reshape(len(wire), -1), axis=1)
        reference = np.where(reference > 0, reference, 1e-300)
        return np.clip(wire / reference[:, None, None], 0.0, 1.0)

    def _disk_sums(self, field: np.ndarray, outside: float) -> np.ndarray:
        """Σ of ``field`` (n, W, L) over every candidate disk → (n, M)."""
        n, W, L = field.shape
        R = self._reach
        padded = np.full((n, W + 2 * R, L + 2 * R), outside, dtype=np.float64)
        padded[:, R:R + W, R:R + L] = field
        out = np.empty((n, len(self.candidates)))
        for p, offsets in enumerate(self._offsets):
            sums = np.zeros((n, W, L))
            for a, b in offsets:
                sums += padded[:, R + a:R + a + W, R + b:R + b + L]
            sel = self._index[:, 0] == p
            out[:, sel] = sums[:, self._index[sel, 1], self._index[sel, 2]]
        return out

    def _removed(self, candidate: int, W: int, L: int) -> np.ndarray:
        p, bx, by = self._index[candidate]
        mask = np.zeros((W, L), dtype=bool)
        sites = self._offsets[p] + (bx, by)
        if len(self._ball):
            sites = (sites[:, None, :] + self._ball[None, :, :]).reshape(-1, 2)
        keep = ((sites[:, 0] >= 0) & (sites[:, 0] < W) & (sites[:, 1] >= 0)
                & (sites[:, 1] < L))
        mask[sites[keep, 0], sites[keep, 1]] = True
        return mask

    def scores(self, images) -> np.ndarray:
        """Depth of every candidate disk (n, M): mean hole map over the disk."""
        holes = self.hole_map(images)
        sizes = np.array([len(self._offsets[p]) for p in self._index[:, 0]], dtype=np.float64)
        return self._disk_sums(holes, 1.0) / sizes

    def detect(self, images, chunk: int = 128) -> Detection:
        """The antidots (up to two) of each image ``(..., image_x, y)`` → :class:`Detection`."""
        images = np.asarray(images, dtype=np.float64)
        lead = images.shape[:-2]
        flat = images.reshape(-1, *images.shape[-2:])
        W, L = self.geometry.shape
        centres = np.empty((len(flat), 2, 2))
        depth = np.empty((len(flat), 2))
        count = np.empty(len(flat), dtype=np.int64)
        for start in range(0, len(flat), chunk):
            block = flat[start:start + chunk]
            scores = self.scores(block)
            first = np.argmin(scores, axis=1)
            conflicts = np.stack([self._removed(c, W, L) for c in first]).astype(np.float64)
            blocked = self._disk_sums(conflicts, 0.0) > 0.5
            second = np.argmin(np.where(blocked, np.inf, scores), axis=1)
            if np.any(blocked[np.arange(len(block)), second]):
                raise ValueError("no second antidot fits beside the first one")
            rows = np.arange(len(block))
            pair = np.stack([self.candidates[first], self.candidates[second]], axis=1)
            d = np.stack([scores[rows, first], scores[rows, second]], axis=1)
            # the second's depth is ≥ the first's: a miss of the first is a miss of both
            found = (np.ones_like(d, dtype=bool) if self.max_depth is None
                     else d <= self.max_depth + GEOMETRY_TOLERANCE)
            swap = found[:, 1] & ((pair[:, 1, 1] < pair[:, 0, 1])
                                  | ((pair[:, 1, 1] == pair[:, 0, 1])
                                     & (pair[:, 1, 0] < pair[:, 0, 0])))
            pair[swap] = pair[swap][:, ::-1]
            d[swap] = d[swap][:, ::-1]
            pair[~found] = np.nan
            centres[start:start + len(block)] = pair
            depth[start:start + len(block)] = d
            count[start:start + len(block)] = found.sum(axis=1)
        return Detection(centres.reshape(*lead, 2, 2), depth.reshape(*lead, 2),
                         count.reshape(lead))


def detect_antidots(images, metadata: dict, **options) -> Detection:
    """Shortcut: :class:`AntidotDetector` from P2 ``metadata``, applied to ``images``."""
    return AntidotDetector.from_metadata(metadata, **options).detect(images)
