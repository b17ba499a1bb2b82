"""How well found antidot positions match the truth (P2 Sec. IV), and trace-blind baselines.

P2 reports that its diffusion model places the antidots "with high accuracy (over 95
percent)", without saying what counts as correct. This module makes it explicit. Positions are
antidot centres ``[[cx1, cy1], [cx2, cy2]]`` in the dataset's site indices (i across, k along
the wire), as read off images by :class:`mesoinv.inference.antidot_detector.AntidotDetector`
(whose docstring describes images and coordinates) or stored in a P2 file
(:func:`mesoinv.training.p2_readers.read_placements`). numpy only (no torch).

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

import numpy as np

from ...inference.antidot_detector import GEOMETRY_TOLERANCE, disk_offsets
from ...physics.antidots import MIRRORS, PairConstraints, class_members, mirror_pair
from ...physics.nanowire import NanowireGeometry

__all__ = ["PositionScores", "PositionEvaluation", "match_positions", "symmetric_placements",
           "evaluate_positions", "consensus_draw", "pixel_correlation", "ldos_scale",
           "most_frequent_placement", "placement_image", "DEFAULT_TOLERANCE", "CRITERIA"]

#: Default matching tolerance, sites.
DEFAULT_TOLERANCE = 1.5
#: The accuracy criteria of :class:`PositionEvaluation`, strict first.
CRITERIA = ("strict", "mirrors", "classes")


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
        Sites; a sample is correct when both matched distances are ≤ it. A NaN centre (the
        detector found no antidot there) is never correct.
    """
    found = np.asarray(found, dtype=np.float64)
    true = np.broadcast_to(np.asarray(true, dtype=np.float64), found.shape)
    distances, _ = _assignment(found, true)
    return PositionScores(distances, distances.mean(-1),
                          np.all(distances <= tolerance + GEOMETRY_TOLERANCE, axis=-1)
                          & np.all(np.isfinite(found), axis=(-2, -1)),
                          np.array(true))


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
        return np.stack([mirror_pair(pair, (W, L), mx, my) for mx, my in MIRRORS])
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
                          np.all(distances <= tolerance + GEOMETRY_TOLERANCE, axis=-1),
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
            found = np.isfinite(scores.error)
            out[f"both_found_{name}"] = float(found.mean())
            out[f"mean_error_{name}_sites"] = (float(scores.error[found].mean()) if found.any()
                                               else float("nan"))
            out[f"median_error_{name}_sites"] = (float(np.median(scores.error[found]))
                                                 if found.any() else float("nan"))
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
        Found centres (e.g. :attr:`mesoinv.inference.antidot_detector.Detection.centres`), k
        draws per trace; or a baseline placement broadcast to that shape.
    true : array (n, 2, 2)
        Stored placements (:func:`mesoinv.training.p2_readers.read_placements`).
    geometry, constraints
        Of the dataset (:func:`mesoinv.inference.antidot_detector.read_geometry`); define the
        symmetry classes.
    tolerance : float
        Sites (module docstring).

    A centre the detector did not find (NaN, "no antidot found") counts as wrong under every
    criterion (it is matched as if at (−(W + L), −(W + L)), outside the wire), and the image's
    position error is NaN: a position error is defined only where both antidots were found,
    so the mean error describes the images that have two holes, and the fraction of such
    images is reported beside it (``both_found``).
    """
    true = np.asarray(true, dtype=np.float64)
    found = np.asarray(found, dtype=np.float64)
    missing = np.isnan(found).any(axis=(-2, -1))
    if missing.any():
        far = -float(sum(geometry.shape))
        found = np.where(np.isnan(found).any(axis=-1, keepdims=True), far, found)
    if true.ndim != 3 or true.shape[1:] != (2, 2):
        raise ValueError(f"true placements must have shape (n, 2, 2), got {true.shape}")
    if found.shape[0] != true.shape[0] or found.shape[-2:] != (2, 2) or found.ndim not in (3, 4):
        raise ValueError(f"found positions must have shape ({len(true)}, 2, 2) or "
                         f"({len(true)}, k, 2, 2), got {found.shape}")
    broadcast_true = true if found.ndim == 3 else true[:, None]
    scores = [match_positions(found, broadcast_true, tolerance),
              _match_modulo(found, true, tolerance, geometry, constraints, "mirrors"),
              _match_modulo(found, true, tolerance, geometry, constraints, "classes")]
    if missing.any():
        for score in scores:
            score.error = np.where(missing, np.nan, score.error)
    return PositionEvaluation(float(tolerance), *scores)


def consensus_draw(found, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """The consensus of k draws per trace: the draw whose placement the most other draws agree
    with. A point estimate from the model's own samples (an approximate mode of its posterior
    over placements) that, unlike "any of k draws", never looks at the truth.

    Parameters
    ----------
    found : array (n, k, 2, 2)
        Centres found in each trace's k draws (sites; NaN where an antidot was not found).
    tolerance : float
        Sites. Draws i and j agree when both antidots of i lie within ``tolerance`` of those
        of j (the better of the two assignments, as in :func:`match_positions`).

    Returns
    -------
    ndarray of int (n,)
        Per trace, the index of the draw with the most agreeing draws (itself included); ties
        go to the draw with the smaller sum, over the other complete draws, of the larger of
        its two matched distances, then to the first. A draw with a missing antidot is chosen
        only when no draw of the trace has both.
    """
    found = np.asarray(found, dtype=np.float64)
    if found.ndim != 4 or found.shape[-2:] != (2, 2):
        raise ValueError(f"found positions must have shape (n, k, 2, 2), got {found.shape}")
    complete = np.all(np.isfinite(found), axis=(-2, -1))                      # (n, k)
    distances, _ = _assignment(found[:, :, None], found[:, None, :])         # (n, k, k, 2)
    both = complete[:, :, None] & complete[:, None, :]
    agree = both & np.all(distances <= tolerance + GEOMETRY_TOLERANCE, axis=-1)
    votes = agree.sum(axis=2)                                                 # (n, k)
    spread = np.where(both, distances.max(axis=-1), 0.0).sum(axis=2)
    spread = np.where(complete, spread, np.inf)
    choice = np.empty(len(found), dtype=np.int64)
    for row in range(len(found)):
        # lexsort: the last key is primary → most votes, then least spread, then first index
        order = np.lexsort((np.arange(found.shape[1]), spread[row], -votes[row]))
        choice[row] = order[0]
    return choice


# -- images -----------------------------------------------------------------------------------

def ldos_scale(generated, true, padding: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The absolute scale of generated LDOS images, which the pixel correlation ignores.

    Returns ``(ratio, mse)``, each (n,) or (n, k): the ratio of the generated image's mean LDOS
    over the wire's pixels to the true image's (1 = the right brightness; dimensionless), and
    the mean squared difference over those pixels (LDOS in states per t per site, so t⁻²).
    The 2p padding columns are left out, as in :func:`pixel_correlation`.
    """
    generated = np.asarray(generated, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if generated.ndim == true.ndim + 1:
        true = true[:, None]
    width = true.shape[-2] - 2 * padding
    g = generated[..., padding:padding + width, :]
    t = np.broadcast_to(true[..., padding:padding + width, :], g.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = g.mean(axis=(-2, -1)) / t.mean(axis=(-2, -1))
    return ratio, ((g - t) ** 2).mean(axis=(-2, -1))


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
        hits = (np.all(d <= tolerance + GEOMETRY_TOLERANCE, axis=-1) * counts[None]).sum(1)
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
        sites = disk_offsets(float(radius), px, py) + base
        keep = ((sites[:, 0] >= 0) & (sites[:, 0] < W) & (sites[:, 1] >= 0)
                & (sites[:, 1] < L))
        image[padding + sites[keep, 0], sites[keep, 1]] = 0.0
    return image
