"""Baselines a skeptic tries before believing a P2 model: lookup and trace-blind predictors.

* :func:`nearest_training_traces`: for each evaluated trace, the training sample whose G(B) is
  nearest in Euclidean distance after standardising each field point with the training
  split's mean and standard deviation (1-nearest-neighbour). Its answer is that sample's
  stored LDOS image (and so its placement). When the evaluated placements also occur in
  training (new disorder realisations of known placements), this lookup is the bar any model
  must clear; on held-out placements it can only return the nearest known placement.
* :func:`mean_ldos_image` (from the training readers) and
  :func:`.positions.most_frequent_placement`: the trace-blind constant answers.

Ties (equal distances, e.g. a duplicated training trace) go to the training sample that comes
first in the split file, so the lookup is a pure function of the files.
"""

from dataclasses import dataclass

import numpy as np

from ...training.p2_readers import load_ldos, read_placements, read_traces

__all__ = ["NearestTraceLookup", "nearest_training_traces", "standardise_traces"]


def standardise_traces(train_traces: np.ndarray, traces: np.ndarray) -> tuple:
    """Both sets of traces standardised per field point with the training mean and standard
    deviation (a field point with zero spread is only centred)."""
    train_traces = np.asarray(train_traces, np.float64)
    mean = train_traces.mean(axis=0)
    std = train_traces.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train_traces - mean) / std, (np.asarray(traces, np.float64) - mean) / std


def nearest_training_traces(train_traces, traces) -> tuple[np.ndarray, np.ndarray]:
    """Row of the nearest training trace for every trace, and its distance.

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
    train_z, z = standardise_traces(train_traces, traces)
    if train_z.shape[1:] != z.shape[1:]:
        raise ValueError(f"traces of {z.shape[1]} field points cannot be compared with "
                         f"training traces of {train_z.shape[1]}")
    # |a − b|² = |a|² − 2 a·b + |b|², in blocks to bound memory; argmin keeps the first tie.
    rows = np.empty(len(z), dtype=np.int64)
    distances = np.empty(len(z))
    train_norm = np.einsum("ij,ij->i", train_z, train_z)
    for start in range(0, len(z), 256):
        block = z[start:start + 256]
        squared = (np.einsum("ij,ij->i", block, block)[:, None] - 2 * block @ train_z.T
                   + train_norm[None, :])
        best = np.argmin(squared, axis=1)
        rows[start:start + 256] = best
        distances[start:start + 256] = np.sqrt(np.maximum(
            squared[np.arange(len(block)), best], 0.0))
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
    def from_training_split(cls, train_path, traces) -> "NearestTraceLookup":
        """Look every trace up in the training split file ``train_path``."""
        rows, distances = nearest_training_traces(read_traces(train_path), traces)
        unique, inverse = np.unique(rows, return_inverse=True)
        images = load_ldos(train_path, unique.tolist())[inverse]
        return cls(rows=rows, distances=distances,
                   placements=read_placements(train_path)[rows],
                   images=np.asarray(images, np.float64)[:, None])
