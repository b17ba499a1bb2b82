"""Datasets (P1 PLDOS, P2 magnetoconductance): samples as pure functions of (seed, id, config),
simulated in resumable MPI shards, validated and split, written to netCDF."""

from .netcdf import FORMAT_VERSION, write_p1_netcdf
from .base import ShardedDataset, sample_rng
from .kinds import KINDS, DatasetKind, kind_of, spec_from_entry
from .p1 import P1DatasetSpec, P1Sample, P1Simulator, draw_disorder
from .p2 import P2DatasetSpec, P2Sample, P2Simulator
from .shards import MPIWiringError, SampleStore, mpi_world, partial_dir_for, simulate_shard
from .simulate import dataset_spec

__all__ = ["FORMAT_VERSION", "write_p1_netcdf", "P1DatasetSpec", "P1Sample", "P1Simulator",
           "draw_disorder", "sample_rng", "dataset_spec", "simulate_shard", "SampleStore",
           "MPIWiringError", "mpi_world", "partial_dir_for", "ShardedDataset", "KINDS",
           "DatasetKind", "kind_of", "spec_from_entry", "P2DatasetSpec", "P2Sample",
           "P2Simulator"]
