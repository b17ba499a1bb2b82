"""Datasets: samples as pure functions of (seed, id, config), written to netCDF."""

from .netcdf import FORMAT_VERSION, write_p1_netcdf
from .p1 import P1DatasetSpec, P1Sample, P1Simulator, draw_disorder, sample_rng
from .simulate import dataset_spec, simulate_ids

__all__ = ["FORMAT_VERSION", "write_p1_netcdf", "P1DatasetSpec", "P1Sample", "P1Simulator",
           "draw_disorder", "sample_rng", "dataset_spec", "simulate_ids"]
