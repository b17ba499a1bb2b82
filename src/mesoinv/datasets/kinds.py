"""Dataset kinds: what the shared sharding, validation and split code needs from each kind.

A kind is one config value (``kind: p1_pldos``) and one :class:`DatasetKind` entry here; the
shard, validation and split machinery (:mod:`.shards`, :mod:`.aggregate`) is the same for all.
"""

from dataclasses import dataclass
from typing import Callable

from .integrity import check_p1_physics, check_p2_physics
from .netcdf import (FORMAT_VERSION, P2_FORMAT_VERSION, p1_stored_values, p2_stored_values,
                     read_p1_metadata, read_p1_sample, read_p2_metadata, read_p2_sample,
                     write_p1_netcdf, write_p2_netcdf)
from .p1 import P1DatasetSpec, P1Sample, P1Simulator
from .p2 import P2DatasetSpec, P2Sample, P2Simulator

__all__ = ["DatasetKind", "KINDS", "kind_of", "spec_from_entry"]


@dataclass(frozen=True)
class DatasetKind:
    """The pieces of one dataset kind.

    Attributes
    ----------
    spec_class : type
        ``spec_class.from_config(name, entry)``; a :class:`~.base.ShardedDataset`.
    simulator_class : type
        ``simulator_class(spec)``; ``.simulate(sample_id)`` returns a ``sample_class`` instance,
        ``.file_metadata()`` the keyword arguments ``write`` needs beyond the samples.
    sample_class : type
        A dataclass of one sample (saved field by field in the partial files).
    write : callable
        ``write(path, spec, samples, *, extra_attributes, **metadata)``, atomic, streaming.
    read_sample, read_metadata : callable
        From an open netCDF4 dataset (auto-masking off): sample at a position; the metadata for
        ``write``.
    per_sample_variables : tuple of str
        Variables with a ``sample`` dimension that every file must have.
    consistent_attributes : tuple of str
        Global attributes that must agree between all files of a dataset.
    expected_dimensions : callable
        ``expected_dimensions(spec)`` → {dimension: size} every file must have.
    format_version : str
    stored_values : callable
        ``stored_values(spec, sample)`` → {per-sample variable: value as stored}, what the
        per-sample checksum covers (:func:`.integrity.sample_digest`).
    check_physics : callable
        ``check_physics(spec, block, ids, first, metadata)`` → None or the first violated
        invariant of a block of stored samples (:mod:`.integrity`).
    """

    name: str
    spec_class: type
    simulator_class: type
    sample_class: type
    write: Callable
    read_sample: Callable
    read_metadata: Callable
    per_sample_variables: tuple
    consistent_attributes: tuple
    expected_dimensions: Callable
    format_version: str
    stored_values: Callable
    check_physics: Callable


P1_KIND = DatasetKind(
    name="p1_pldos",
    spec_class=P1DatasetSpec,
    simulator_class=P1Simulator,
    sample_class=P1Sample,
    write=write_p1_netcdf,
    read_sample=read_p1_sample,
    read_metadata=read_p1_metadata,
    per_sample_variables=(
        "sample_id", "dopant_distance", "dopant_density", "rms", "correlation_length",
        "fourier_coefficient_real", "fourier_coefficient_imag", "potential", "pldos"),
    consistent_attributes=(
        "format_version", "dataset_name", "dataset_kind", "seed", "lattice_constant_nm",
        "nx_sites", "ny_sites", "qpc_first_y_site", "qpc_width_sites", "hopping_meV",
        "energy_meV", "relative_permittivity", "effective_mass_kg",
        "thomas_fermi_wavevector_per_nm", "cutoff_factor", "storage_dtype",
        "sample_config_sha256"),
    expected_dimensions=lambda spec: {"x": spec.geometry.nx, "y": spec.geometry.ny,
                                      "mode": len(spec.modes),
                                      "field": len(spec.magnetic_fields_T)},
    format_version=FORMAT_VERSION,
    stored_values=p1_stored_values,
    check_physics=lambda spec, block, ids, first, metadata: check_p1_physics(spec, block, ids,
                                                                             first),
)

P2_KIND = DatasetKind(
    name="p2_magnetoconductance",
    spec_class=P2DatasetSpec,
    simulator_class=P2Simulator,
    sample_class=P2Sample,
    write=write_p2_netcdf,
    read_sample=read_p2_sample,
    read_metadata=read_p2_metadata,
    per_sample_variables=("sample_id", "configuration_id", "potential_realization", "antidot_x",
                          "antidot_y", "potential", "conductance", "ldos"),
    consistent_attributes=(
        "format_version", "dataset_name", "dataset_kind", "seed", "lattice_constant_nm",
        "width_sites", "length_sites", "antidot_radius_sites", "energy_t",
        "potential_amplitude_t", "realizations_per_configuration", "n_configurations",
        "ldos_padding_sites", "storage_dtype", "sample_config_sha256"),
    expected_dimensions=lambda spec: {
        "x": spec.geometry.width_sites, "y": spec.geometry.length_sites,
        "image_x": spec.geometry.width_sites + 2 * spec.ldos_padding_sites,
        "field": len(spec.fields_T), "antidot": 2},
    format_version=P2_FORMAT_VERSION,
    stored_values=p2_stored_values,
    check_physics=lambda spec, block, ids, first, metadata: check_p2_physics(
        spec, block, ids, first, open_channels=metadata.get("open_channels")),
)

KINDS = {kind.name: kind for kind in (P1_KIND, P2_KIND)}


def kind_of(spec) -> DatasetKind:
    """The kind of a dataset spec."""
    for kind in KINDS.values():
        if isinstance(spec, kind.spec_class):
            return kind
    raise TypeError(f"not a dataset spec of a known kind: {type(spec).__name__}")


def spec_from_entry(name: str, entry: dict):
    """The spec of a validated dataset entry or definition, whatever its kind."""
    try:
        kind = KINDS[entry["kind"]]
    except KeyError:
        raise ValueError(f"dataset '{name}': unknown kind {entry.get('kind')!r} "
                         f"(known: {', '.join(KINDS)})") from None
    return kind.spec_class.from_config(name, entry)
