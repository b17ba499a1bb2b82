"""Antidot positions from LDOS images, and how well generated images place them (P2 Sec. IV).

P2 reports that its diffusion model "reproduce[s] the interference patterns and the positions
of the antidots with high accuracy (over 95 percent)", without saying how a position is read
off an image or what counts as correct. This module makes both explicit; it takes images from
any source (generated, true, a baseline), so every number it produces compares like with like.
numpy only (no torch), so evaluation rules need no accelerator.

Coordinates
-----------
Images are stored LDOS arrays ``(..., image_x, y)`` in states per t per site (generated images
after :meth:`mesoinv.training.p2_data.LDOSNormalization.inverse`): the first axis runs across
the wire with ``p`` zero padding columns on each side, so site ``(i, k)`` is pixel
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
4. The two centres are returned ordered by (cy, cx), with their depths.

On a true image the true disks score exactly 0 and every other candidate includes at least
one site connected to the leads, so the detector returns the true centres;
tests/test_p2_learning.py checks this on every class representative of the test lattice and
on every image of the test and demo datasets, so evaluation errors are the model's.

Matching, accuracy and the symmetries of the wire
-------------------------------------------------
Two found centres are matched to the two true ones by the better of the 2! assignments (the
smaller largest distance, then the smaller sum). A sample is **correct** when both matched
distances are ≤ ``tolerance`` sites (default 1.5: the found hole is within about one site of the
truth in each direction); its position error is the mean of the two distances.

G(B) is invariant under the symmetries of the clean wire (p2.md §6): translations along y, the
mirrors x → −x (i → W−1−i) and y → −y (k → L−1−k) and their product (exchange of the two
antidots is already in the matching). A generated image related to the truth by one of them
belongs to a placement that gives the same trace, so it is physically indistinguishable from the
truth given the trace. Three criteria are reported:

``strict``
    against the stored placement itself (the class's canonical representative).
``mirrors``
    the best of the truth's four mirror images {1, Mx, My, MxMy}.
``classes``
    the best of all members of the truth's symmetry class (mirrors × allowed translations,
    :func:`mesoinv.physics.antidots.class_members`): "modulo the symmetries of the dataset's
    classes".

Which is P2's: P2's dataset, like ours, holds one representative per class ("we selected 16,170
antidot configurations corresponding to unique conductance data"), and its accuracy compares a
generated image with the image of that configuration, so **strict** is the analogue of P2's
"over 95 percent" (P2 states no tolerance). ``mirrors`` and ``classes`` are upper bounds that
forgive answers the trace cannot distinguish; strict ≤ mirrors ≤ classes.

Baselines that ignore the trace: unconditional samples of the same model (just other images),
or :func:`most_frequent_placement` of the training split (the constant placement that is
correct for the most training samples) drawn as an image by :func:`placement_image`, or
evaluated directly with :func:`evaluate_positions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import netCDF4
import numpy as np

from ..physics.antidots import PairConstraints, class_members
from ..physics.nanowire import NanowireGeometry

__all__ = ["AntidotDetector", "Detection", "PositionScores", "PositionEvaluation",
           "detect_antidots", "match_positions", "symmetric_placements", "evaluate_positions",
           "pixel_correlation", "most_frequent_placement", "placement_image",
           "read_placements", "read_geometry", "DEFAULT_TOLERANCE", "CRITERIA"]

#: Default matching tolerance, sites.
DEFAULT_TOLERANCE = 1.5
#: The accuracy criteria of :class:`PositionEvaluation`, strict first.
CRITERIA = ("strict", "mirrors", "classes")

_TOL = 1e-9


# -- file helpers -----------------------------------------------------------------------------

def read_geometry(path) -> tuple[NanowireGeometry, PairConstraints, int]:
    """(geometry, pair constraints, padding p) from a P2 file's global attributes."""
    with netCDF4.Dataset(path) as ds:
        a = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return metadata_geometry(a)


def metadata_geometry(metadata: dict) -> tuple[NanowireGeometry, PairConstraints, int]:
    """(geometry, pair constraints, padding p) from P2 metadata (file attributes or the model
    file's ``data_metadata``)."""
    geometry = NanowireGeometry(width_sites=int(metadata["width_sites"]),
                                length_sites=int(metadata["length_sites"]),
                                antidot_radius=float(metadata["antidot_radius_sites"]),
                                lattice_constant_nm=float(metadata.get("lattice_constant_nm", 5.0)))
    constraints = PairConstraints(
        margin_x=int(metadata.get("antidot_margin_x_sites", 1)),
        margin_y=int(metadata.get("antidot_margin_y_sites", 0)),
        min_separation=float(metadata.get("antidot_min_separation_sites", 0.0)),
        half_integer_centres=bool(int(metadata.get("antidot_half_integer_centres", 0))))
    return geometry, constraints, int(metadata.get("ldos_padding_sites", 0))


def read_placements(path) -> np.ndarray:
    """Stored antidot centres per sample, (samples, 2, 2) ``[[cx1, cy1], [cx2, cy2]]``."""
    with netCDF4.Dataset(path) as ds:
        x = np.asarray(ds["antidot_x"][:], dtype=np.float64)
        y = np.asarray(ds["antidot_y"][:], dtype=np.float64)
    return np.stack([x, y], axis=-1)


# -- the detector -----------------------------------------------------------------------------

def _disk_offsets(radius: float, px: int, py: int) -> np.ndarray:
    """Removed-site offsets (a, b) from the base site (⌊cx⌋, ⌊cy⌋) of a centre with parities
    (px, py) (0: integer, 1: half-integer coordinate), by the dataset's rule
    (a − px/2)² + (b − py/2)² ≤ r² (+1e-9, as :mod:`mesoinv.physics.antidots`)."""
    n = int(math.ceil(radius)) + 1
    a, b = np.meshgrid(np.arange(-n, n + 2), np.arange(-n, n + 2), indexing="ij")
    inside = (a - px / 2) ** 2 + (b - py / 2) ** 2 <= radius ** 2 + _TOL
    return np.stack([a[inside], b[inside]], axis=1)


@dataclass
class Detection:
    """What the detector found.

    Attributes
    ----------
    centres : ndarray (..., 2, 2)
        ``[[cx1, cy1], [cx2, cy2]]`` in site indices, ordered by (cy, cx).
    depth : ndarray (..., 2)
        Mean of the hole map over each found disk: 0 = a perfect hole, ≈ 1 = no hole there.
    """

    centres: np.ndarray
    depth: np.ndarray


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
    """

    def __init__(self, geometry: NanowireGeometry, constraints: PairConstraints = PairConstraints(),
                 padding: int = 0, *, grid: str = "half", reference_fraction: float = 0.5):
        if grid not in ("half", "sites"):
            raise ValueError(f"grid must be 'half' or 'sites', got {grid!r}")
        if not reference_fraction > 0:
            raise ValueError("reference_fraction must be positive")
        self.geometry, self.constraints, self.padding = geometry, constraints, int(padding)
        self.grid, self.reference_fraction = grid, float(reference_fraction)
        W, L = geometry.shape
        r = float(geometry.antidot_radius)
        mx, my = constraints.margin_x, constraints.margin_y
        parities = ((0, 0), (0, 1), (1, 0), (1, 1)) if grid == "half" else ((0, 0),)
        self._offsets, centres, index = [], [], []
        for p, (px, py) in enumerate(parities):
            o = _disk_offsets(r, px, py)
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
        n = int(math.floor(s + _TOL))
        self._ball = np.array([(u, v) for u in range(-n, n + 1) for v in range(-n, n + 1)
                               if u * u + v * v <= s * s + _TOL])

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
        """The two antidots of each image ``(..., image_x, y)`` → :class:`Detection`."""
        images = np.asarray(images, dtype=np.float64)
        lead = images.shape[:-2]
        flat = images.reshape(-1, *images.shape[-2:])
        W, L = self.geometry.shape
        centres = np.empty((len(flat), 2, 2))
        depth = np.empty((len(flat), 2))
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
            swap = (pair[:, 1, 1] < pair[:, 0, 1]) | ((pair[:, 1, 1] == pair[:, 0, 1])
                                                       & (pair[:, 1, 0] < pair[:, 0, 0]))
            pair[swap] = pair[swap][:, ::-1]
            d[swap] = d[swap][:, ::-1]
            centres[start:start + len(block)] = pair
            depth[start:start + len(block)] = d
        return Detection(centres.reshape(*lead, 2, 2), depth.reshape(*lead, 2))


def detect_antidots(images, metadata: dict, **options) -> Detection:
    """Shortcut: :class:`AntidotDetector` from P2 ``metadata``, applied to ``images``."""
    return AntidotDetector.from_metadata(metadata, **options).detect(images)


# -- matching and accuracy --------------------------------------------------------------------

@dataclass
class PositionScores:
    """Per-sample results of matching found to true positions under one criterion.

    Attributes
    ----------
    distances : ndarray (..., 2)
        Distance (sites) of each matched pair, in the order of the true antidots.
    error : ndarray (...)
        Mean of the two distances: the sample's position error.
    correct : ndarray of bool (...)
        Both distances ≤ the tolerance.
    matched_truth : ndarray (..., 2, 2)
        The placement matched against (the truth itself, or its best symmetric image).
    """

    distances: np.ndarray
    error: np.ndarray
    correct: np.ndarray
    matched_truth: np.ndarray


def _assignment(found: np.ndarray, true: np.ndarray):
    """Distances (..., 2) of the better assignment and its key (max, sum) for comparisons."""
    straight = np.linalg.norm(found - true, axis=-1)
    crossed = np.linalg.norm(found[..., ::-1, :] - true, axis=-1)
    key_s = straight.max(-1) + 1e-9 * straight.sum(-1)
    key_c = crossed.max(-1) + 1e-9 * crossed.sum(-1)
    use_crossed = key_c < key_s
    distances = np.where(use_crossed[..., None], crossed, straight)
    return distances, np.minimum(key_s, key_c)


def match_positions(found, true, tolerance: float = DEFAULT_TOLERANCE) -> PositionScores:
    """Match two found centres to two true ones per sample (the better of 2! assignments).

    Parameters
    ----------
    found : array (..., 2, 2)
    true : array (..., 2, 2), broadcastable to ``found`` (e.g. (n, 1, 2, 2) for k draws)
    tolerance : float
        Sites; a sample is correct when both matched distances are ≤ it.
    """
    found = np.asarray(found, dtype=np.float64)
    true = np.broadcast_to(np.asarray(true, dtype=np.float64), found.shape)
    distances, _ = _assignment(found, true)
    return PositionScores(distances, distances.mean(-1),
                          np.all(distances <= tolerance + _TOL, axis=-1), np.array(true))


def symmetric_placements(true_pair, geometry: NanowireGeometry,
                         constraints: PairConstraints = PairConstraints(),
                         group: str = "classes") -> np.ndarray:
    """Placements that give the same clean G(B) as ``true_pair`` (m, 2, 2), itself first.

    ``group``: ``mirrors`` — {1, Mx, My, MxMy} (i → W−1−i, k → L−1−k); ``classes`` — every
    allowed member of its symmetry class (mirrors × translations along y, the classes of
    p2.md §6); ``none`` — only itself.
    """
    pair = np.asarray(true_pair, dtype=np.float64)
    if group == "none":
        return pair[None]
    W, L = geometry.shape
    if group == "mirrors":
        images = [pair]
        for mx, my in ((True, False), (False, True), (True, True)):
            image = pair.copy()
            if mx:
                image[:, 0] = W - 1 - image[:, 0]
            if my:
                image[:, 1] = L - 1 - image[:, 1]
            images.append(image)
        return np.stack(images)
    if group == "classes":
        members = class_members(geometry, pair, constraints)
        return np.concatenate([pair[None], members])
    raise ValueError(f"unknown symmetry group {group!r} (known: none, mirrors, classes)")


def _match_modulo(found, true, tolerance, geometry, constraints, group) -> PositionScores:
    """As :func:`match_positions`, against the best of the truth's symmetric images."""
    found = np.asarray(found, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    n = true.shape[0]
    extra = found.shape[1:-2]                     # draws per trace, if any
    flat_found = found.reshape(n, -1, 2, 2)       # (n, k, 2, 2)
    cache = {}
    distances = np.empty(flat_found.shape[:2] + (2,))
    matched = np.empty(flat_found.shape)
    for row in range(n):
        key = tuple(true[row].ravel())
        if key not in cache:
            cache[key] = symmetric_placements(true[row], geometry, constraints, group)
        images = cache[key]                                       # (m, 2, 2)
        d, k = _assignment(flat_found[row][:, None], images[None])  # (k, m, 2), (k, m)
        best = np.argmin(k, axis=1)                               # first minimum: itself
        draws = np.arange(len(best))
        distances[row] = d[draws, best]
        matched[row] = images[best]
    distances = distances.reshape(n, *extra, 2)
    return PositionScores(distances, distances.mean(-1),
                          np.all(distances <= tolerance + _TOL, axis=-1),
                          matched.reshape(n, *extra, 2, 2))


@dataclass
class PositionEvaluation:
    """Antidot positions of generated images against the truth, under the three criteria.

    ``strict``, ``mirrors``, ``classes`` are :class:`PositionScores` with shape (n,) or (n, k)
    (k draws per trace); see the module docstring for the criteria.
    """

    tolerance: float
    strict: PositionScores
    mirrors: PositionScores
    classes: PositionScores

    def summary(self) -> dict:
        """Accuracy and mean position error per criterion (JSON types).

        With k > 1 draws per trace also the spread: ``accuracy_std_over_draws`` (standard
        deviation of the accuracy of draw j over j) and ``any_draw_correct`` (fraction of traces
        with at least one correct draw).
        """
        out = {"tolerance_sites": self.tolerance, "n_traces": int(self.strict.correct.shape[0])}
        draws = self.strict.correct.shape[1] if self.strict.correct.ndim == 2 else 1
        out["draws_per_trace"] = draws
        for name in CRITERIA:
            scores = getattr(self, name)
            out[f"accuracy_{name}"] = float(scores.correct.mean())
            out[f"mean_error_{name}_sites"] = float(scores.error.mean())
            out[f"median_error_{name}_sites"] = float(np.median(scores.error))
            if draws > 1:
                out[f"accuracy_{name}_std_over_draws"] = float(scores.correct.mean(0).std())
                out[f"any_draw_correct_{name}"] = float(scores.correct.any(1).mean())
        return out


def evaluate_positions(found, true, geometry: NanowireGeometry,
                       constraints: PairConstraints = PairConstraints(), *,
                       tolerance: float = DEFAULT_TOLERANCE) -> PositionEvaluation:
    """Strict and symmetry-modulo accuracy of found positions.

    Parameters
    ----------
    found : array (n, 2, 2) or (n, k, 2, 2)
        Found centres (e.g. :attr:`Detection.centres`), k draws per trace; or a baseline
        placement broadcast to that shape.
    true : array (n, 2, 2)
        Stored placements (:func:`read_placements`).
    geometry, constraints
        Of the dataset (:func:`read_geometry`); define the symmetry classes.
    tolerance : float
        Sites (module docstring).
    """
    true = np.asarray(true, dtype=np.float64)
    found = np.asarray(found, dtype=np.float64)
    if true.ndim != 3 or true.shape[1:] != (2, 2):
        raise ValueError(f"true placements must have shape (n, 2, 2), got {true.shape}")
    if found.shape[0] != true.shape[0] or found.shape[-2:] != (2, 2) or found.ndim not in (3, 4):
        raise ValueError(f"found positions must have shape ({len(true)}, 2, 2) or "
                         f"({len(true)}, k, 2, 2), got {found.shape}")
    broadcast_true = true if found.ndim == 3 else true[:, None]
    return PositionEvaluation(
        float(tolerance), match_positions(found, broadcast_true, tolerance),
        _match_modulo(found, true, tolerance, geometry, constraints, "mirrors"),
        _match_modulo(found, true, tolerance, geometry, constraints, "classes"))


# -- images -----------------------------------------------------------------------------------

def pixel_correlation(generated, true, padding: int = 0) -> np.ndarray:
    """Pearson r over the wire's pixels of each generated image with its true image.

    ``generated`` (n, image_x, y) or (n, k, image_x, y); ``true`` (n, image_x, y). The 2p
    padding columns are left out (they are 0 in every true image and would inflate r).
    Returns (n,) or (n, k); NaN where an image is constant.
    """
    generated = np.asarray(generated, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if generated.ndim == true.ndim + 1:
        true = true[:, None]
    width = true.shape[-2] - 2 * padding
    g = generated[..., padding:padding + width, :].reshape(*generated.shape[:-2], -1)
    t = np.broadcast_to(true[..., padding:padding + width, :],
                        generated[..., padding:padding + width, :].shape)
    t = t.reshape(*generated.shape[:-2], -1)
    g = g - g.mean(-1, keepdims=True)
    t = t - t.mean(-1, keepdims=True)
    denominator = np.sqrt((g * g).sum(-1) * (t * t).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (g * t).sum(-1) / denominator, np.nan)


# -- trace-blind baselines --------------------------------------------------------------------

def most_frequent_placement(placements, tolerance: float = DEFAULT_TOLERANCE,
                            chunk: int = 512) -> np.ndarray:
    """The training placement that is (strictly) correct for the most training samples.

    The best constant answer to "where are the antidots?" that ignores the trace: among the
    distinct placements of the training split (each counted with its multiplicity), the one
    that lies within ``tolerance`` of the most training samples, ties to the first in
    (cy1, cx1, cy2, cx2) order. Returns (2, 2).
    """
    placements = np.asarray(placements, dtype=np.float64)
    if placements.ndim != 3 or placements.shape[1:] != (2, 2) or len(placements) == 0:
        raise ValueError(f"need training placements of shape (n, 2, 2), got {placements.shape}")
    flat = placements[:, :, [1, 0]].reshape(len(placements), 4)      # (cy1, cx1, cy2, cx2)
    unique, counts = np.unique(flat, axis=0, return_counts=True)
    distinct = unique.reshape(-1, 2, 2)[:, :, [1, 0]]                # back to (cx, cy)
    best, best_count = 0, -1
    for start in range(0, len(distinct), chunk):
        candidates = distinct[start:start + chunk]
        d, _ = _assignment(candidates[:, None], distinct[None])      # (c, u, 2)
        hits = (np.all(d <= tolerance + _TOL, axis=-1) * counts[None]).sum(1)
        index = int(np.argmax(hits))
        if hits[index] > best_count:
            best, best_count = start + index, int(hits[index])
    return distinct[best].copy()


def placement_image(placement, mean_image, radius: float, padding: int = 0) -> np.ndarray:
    """An LDOS-like image with holes at ``placement``: ``mean_image`` (image_x, y), e.g. the
    training split's mean LDOS, set to 0 on the removed sites of both antidots. Feeds a
    constant placement through the same detector as generated images."""
    image = np.array(mean_image, dtype=np.float64)
    W, L = image.shape[0] - 2 * padding, image.shape[1]
    for cx, cy in np.asarray(placement, dtype=np.float64):
        px, py = int(round(2 * cx)) % 2, int(round(2 * cy)) % 2
        base = np.array([math.floor(cx), math.floor(cy)])
        sites = _disk_offsets(float(radius), px, py) + base
        keep = ((sites[:, 0] >= 0) & (sites[:, 0] < W) & (sites[:, 1] >= 0)
                & (sites[:, 1] < L))
        image[padding + sites[keep, 0], sites[keep, 1]] = 0.0
    return image
