"""Datasets (P1 PLDOS, P2 magnetoconductance): samples as pure functions of (seed, id, config),
simulated in resumable MPI shards, validated and split, written to netCDF."""

from ..lazy_exports import lazy_exports

#: Public name → submodule, imported on first use (PEP 562): reading and writing split files
#: (:mod:`.netcdf`, what training reads) needs neither Kwant nor the config schema, so
#: ``mesoinv train`` runs in an environment without them (a GPU node's, say).
_EXPORTS = {
    "FORMAT_VERSION": "netcdf", "write_p1_netcdf": "netcdf",
    "ShardedDataset": "base", "sample_rng": "base",
    "KINDS": "kinds", "DatasetKind": "kinds", "kind_of": "kinds", "spec_from_entry": "kinds",
    "P1DatasetSpec": "p1", "P1Sample": "p1", "P1Simulator": "p1", "draw_disorder": "p1",
    "P2DatasetSpec": "p2", "P2Sample": "p2", "P2Simulator": "p2",
    "MPIWiringError": "shards", "SampleStore": "shards", "mpi_world": "shards",
    "partial_dir_for": "shards", "simulate_shard": "shards",
    "dataset_spec": "simulate",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
