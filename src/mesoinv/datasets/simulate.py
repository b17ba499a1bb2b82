"""Simulate a list of sample ids of a dataset into one netCDF file."""

import sys

from tqdm import tqdm

from .netcdf import write_p1_netcdf
from .p1 import P1DatasetSpec, P1Simulator

__all__ = ["dataset_spec", "simulate_ids"]


def dataset_spec(config: dict, name: str) -> P1DatasetSpec:
    """The spec of dataset ``name`` of a validated config (clear error for an unknown name)."""
    try:
        entry = config["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(config["datasets"]))
        raise ValueError(f"no dataset '{name}' in the config (known: {known})") from None
    return P1DatasetSpec.from_config(name, entry)


def simulate_ids(spec: P1DatasetSpec, sample_ids, output, *, progress: bool = True):
    """Simulate ``sample_ids`` (any order, no duplicates) and write them, sorted, to ``output``.

    Returns the path written. Nothing appears at ``output`` unless every sample succeeded.
    """
    ids = sorted(int(i) for i in sample_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate sample ids")
    if ids and ids[0] < 0:
        raise ValueError(f"sample ids are non-negative, got {ids[0]}")
    if ids and spec.n_samples is not None and ids[-1] >= spec.n_samples:
        raise ValueError(f"sample ids must lie in 0…{spec.n_samples - 1} for dataset "
                         f"'{spec.name}', got {ids[0]}…{ids[-1]}")
    simulator = P1Simulator(spec)
    samples = [simulator.simulate(i) for i in tqdm(
        ids, desc=f"{spec.name}", unit="sample", disable=not progress, file=sys.stderr)]
    return write_p1_netcdf(output, spec, samples, open_modes=simulator.open_modes)
