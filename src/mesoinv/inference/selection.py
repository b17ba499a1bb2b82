"""Selecting samples of an input file by their ids (``mesoinv predict --ids``)."""

import numpy as np

__all__ = ["select_positions"]


def select_positions(sample_ids: np.ndarray, ids, source) -> list[int]:
    """Row positions of the requested sample ids in a file's ``sample_id`` array.

    Parameters
    ----------
    sample_ids : numpy.ndarray
        The file's sample ids, in row order.
    ids : sequence of int or None
        The ids wanted, in the order wanted; None selects every row in file order.
    source : str
        What the file is, for the error message.

    Raises
    ------
    ValueError
        Naming the ids (first ten) that are not in the file.
    """
    if ids is None:
        return list(range(len(sample_ids)))
    where = {int(s): i for i, s in enumerate(sample_ids)}
    missing = [int(i) for i in ids if int(i) not in where]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise ValueError(f"sample id(s) {shown} not in {source} ({len(sample_ids)} samples)")
    return [where[int(i)] for i in ids]
