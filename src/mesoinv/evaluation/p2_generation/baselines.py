"""Baselines a skeptic tries before believing a P2 model: lookup and trace-blind predictors.

* :func:`nearest_training_traces`: for each evaluated trace, the training sample whose G(B) is
  nearest in Euclidean distance after standardising each field point with the training
  split's mean and standard deviation (1-nearest-neighbour). Its answer is that sample's
  stored LDOS image (and so its placement). When the evaluated placements also occur in
  training (new disorder realisations of known placements), this lookup is the bar any model
  must clear; on held-out placements it can only return the nearest known placement.
* :func:`k_nearest_training_traces`: the k nearest, for a lookup that takes the consensus of
  k candidates as the model takes the consensus of its k draws.
* :func:`mean_ldos_image` (from the training readers) and
  :func:`.positions.most_frequent_placement`: the trace-blind constant answers.

Ties (equal distances, e.g. a duplicated training trace) go to the training sample that comes
first in the split file, so the lookup is a pure function of the files.
"""

from dataclasses import dataclass

import numpy as np

from ...training.p2_readers import load_ldos, read_placements, read_traces

__all__ = ["NearestTraceLookup", "nearest_training_traces", "k_nearest_training_traces",
           "standardise_traces"]


def standardise_traces(train_traces: np.ndarray, traces: np.ndarray) -> tuple:
    """Both sets of traces standardised per field point with the training mean and standard
    deviation (a field point with zero spread is only centred)."""
    train_traces = np.asarray(train_traces, np.float64)
    mean = train_traces.mean(axis=0)
    std = train_traces.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train_traces - mean) / std, (np.asarray(traces, np.float64) - mean) / std


def nearest_training_traces(train_traces, traces) -> tuple[np.ndarray, np.ndarray]:
    """Row of the nearest training trace for every trace, and its distance
    (:func:`k_nearest_training_traces` with k = 1).

    Parameters
    ----------
    train_traces : array (n_train, n_fields)
        G(B) of the training split, e²/h.
    traces : array (n, n_fields)
        The traces to answer, e²/h, on the same field grid.

    Returns
    -------
    rows : ndarray of int (n,)
        Positions in the training split (ties: the first one).
    distances : ndarray (n,)
        Euclidean distance in standardised units (per field point).
    """
    rows, distances = k_nearest_training_traces(train_traces, traces, 1)
    return rows[:, 0], distances[:, 0]


def k_nearest_training_traces(train_traces, traces, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k nearest training traces for every trace, nearest first, and their
    distances.

    Parameters
    ----------
    train_traces : array (n_train, n_fields)
        G(B) of the training split, e²/h.
    traces : array (n, n_fields)
        The traces to answer, e²/h, on the same field grid.
    k : int
        Neighbours, 1 … n_train.

    Returns
    -------
    rows : ndarray of int (n, k)
        Positions in the training split, by increasing distance (equal distances: the
        training sample that comes first in the file first).
    distances : ndarray (n, k)
        Euclidean distances in standardised units (per field point).
    """
    train_z, z = standardise_traces(train_traces, traces)
    if not 1 <= int(k) <= len(train_z):
        raise ValueError(f"k = {k} neighbours out of {len(train_z)} training traces")
    k = int(k)
    if train_z.shape[1:] != z.shape[1:]:
        raise ValueError(f"traces of {z.shape[1]} field points cannot be compared with "
                         f"training traces of {train_z.shape[1]}")
    # |a − b|² = |a|² − 2 a·b + |b|², in blocks to bound memory; a stable sort keeps the
    # first of equal distances first.
    rows = np.empty((len(z), k), dtype=np.int64)
    distances = np.empty((len(z), k))
    train_norm = np.einsum("ij,ij->i", train_z, train_z)
    for start in range(0, len(z), 256):
        block = z[start:start + 256]
        squared = (np.einsum("ij,ij->i", block, block)[:, None] - 2 * block @ train_z.T
                   + train_norm[None, :])
        best = np.argsort(squared, axis=1, kind="stable")[:, :k]
        rows[start:start + 256] = best
        distances[start:start + 256] = np.sqrt(np.maximum(
            np.take_along_axis(squared, best, axis=1), 0.0))
    return rows, distances


@dataclass
class NearestTraceLookup:
    """The 1-NN baseline's answers for a set of traces.

    Attributes
    ----------
    rows : ndarray (n,)
        Training-split positions of the nearest traces.
    distances : ndarray (n,)
        Standardised distances to them.
    placements : ndarray (n, 2, 2)
        Their stored antidot centres (sites).
    images : ndarray (n, 1, image_x, y)
        Their stored LDOS images (t⁻¹): the lookup's "generated" image, one draw per trace.
    """

    rows: np.ndarray
    distances: np.ndarray
    placements: np.ndarray
    images: np.ndarray

    @classmethod
    def from_training_split(cls, train_path, traces, k: int = 1) -> "NearestTraceLookup":
        """Look every trace up in the training split file ``train_path``.

        With ``k`` > 1 the k nearest training samples, nearest first: ``rows``,
        ``distances`` (n, k), ``placements`` (n, k, 2, 2) and ``images`` (n, k, image_x, y),
        the candidates of a consensus (predictor ``nearest_traces_consensus`` of
        :mod:`mesoinv.evaluation.p2_generation.metrics`).
        """
        rows, distances = k_nearest_training_traces(read_traces(train_path), traces, k)
        unique, inverse = np.unique(rows.ravel(), return_inverse=True)
        images = np.asarray(load_ldos(train_path, unique.tolist()), np.float64)[inverse]
        images = images.reshape(*rows.shape, *images.shape[1:])
        placements = read_placements(train_path)[rows]
        if k == 1:
            return cls(rows=rows[:, 0], distances=distances[:, 0],
                       placements=placements[:, 0], images=images)
        return cls(rows=rows, distances=distances, placements=placements, images=images)
