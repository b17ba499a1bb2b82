"""Checking shards and merging them into train / val / test files.

* :func:`split_of` — a sample's split is a fixed function of (dataset seed, sample id): a hash
  mapped to [0, 1) and compared with the cumulative fractions. Growing a dataset never moves an
  existing sample to another split.
* :func:`validate_shards` — every shard opens, has the expected variables, ids, attributes
  and only finite numbers; the first problem raises :class:`ShardValidationError` naming the
  shard.
* :func:`write_splits` — streams the samples of all shards, sorted by id, into one file per
  split (same layout as a shard, plus a ``split`` attribute), atomically.
* :func:`content_checksum` — sha256 over the decoded bytes of every variable and attribute
  (independent of HDF5's on-disk layout), for the manifest.
"""

import hashlib
import json
from pathlib import Path

import netCDF4
import numpy as np

from .netcdf import FORMAT_VERSION, write_p1_netcdf
from .p1 import P1DatasetSpec, P1Sample

__all__ = ["SPLITS", "split_of", "ShardValidationError", "validate_shards", "write_splits",
           "content_checksum"]

SPLITS = ("train", "val", "test")

#: Global attributes that must agree between all shards of a dataset.
CONSISTENT_ATTRIBUTES = (
    "format_version", "dataset_name", "dataset_kind", "seed", "lattice_constant_nm", "nx_sites",
    "ny_sites", "qpc_first_y_site", "qpc_width_sites", "hopping_meV", "energy_meV",
    "relative_permittivity", "effective_mass_kg", "thomas_fermi_wavevector_per_nm",
    "cutoff_factor", "storage_dtype", "sample_config_sha256",
)
PER_SAMPLE_VARIABLES = (
    "sample_id", "dopant_distance", "dopant_density", "rms", "correlation_length",
    "fourier_coefficient_real", "fourier_coefficient_imag", "potential", "pldos",
)


def split_of(seed: int, sample_id: int, fractions: dict) -> str:
    """The split ('train', 'val' or 'test') of a sample.

    u = first 8 bytes of blake2b("mesoinv-split:<seed>:<id>") / 2⁶⁴ ∈ [0, 1); train if
    u < f_train, val if u < f_train + f_val, else test.
    """
    digest = hashlib.blake2b(f"mesoinv-split:{int(seed)}:{int(sample_id)}".encode(),
                             digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    edge = 0.0
    for name in SPLITS[:-1]:
        edge += fractions[name]
        if u < edge:
            return name
    return SPLITS[-1]


class ShardValidationError(ValueError):
    """A shard is missing, unreadable or inconsistent; ``shard`` names the file."""

    def __init__(self, shard, message):
        self.shard = str(shard)
        super().__init__(f"shard {shard}: {message}")


def _attributes(ds):
    return {name: ds.getncattr(name) for name in CONSISTENT_ATTRIBUTES if name in ds.ncattrs()}


def _same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def validate_shards(shards, spec: P1DatasetSpec, expected_ids: dict) -> dict:
    """Check all shards of a dataset against its definition.

    Parameters
    ----------
    shards : sequence of path-like
    spec : P1DatasetSpec
        The dataset (its sample-config hash, geometry and fields are checked).
    expected_ids : dict path → sequence of int
        The ids each shard must hold.

    Returns
    -------
    dict
        Summary: number of shards and samples, the common attributes.

    Raises
    ------
    ShardValidationError
        Naming the first bad shard and what is wrong with it.
    """
    shards = [Path(shard) for shard in shards]
    reference = None
    seen = {}
    failures = []
    geometry = spec.geometry
    for shard in shards:
        shard = Path(shard)
        if not shard.exists():
            raise ShardValidationError(shard, "is missing")
        try:
            ds = netCDF4.Dataset(shard)
        except OSError as error:
            raise ShardValidationError(shard, f"cannot be read (truncated or corrupt?): {error}")
        with ds:
            attributes = _attributes(ds)
            missing = [n for n in CONSISTENT_ATTRIBUTES if n not in attributes]
            if missing:
                raise ShardValidationError(shard, f"lacks global attributes {missing}")
            if attributes["format_version"] != FORMAT_VERSION:
                raise ShardValidationError(shard, f"format {attributes['format_version']!r}, "
                                                  f"expected {FORMAT_VERSION!r}")
            if attributes["sample_config_sha256"] != spec.config_hash:
                raise ShardValidationError(
                    shard, "was simulated with another configuration (sample_config_sha256 "
                           f"{attributes['sample_config_sha256'][:12]}…, expected "
                           f"{spec.config_hash[:12]}…)")
            if reference is None:
                reference = (shard, attributes)
            for name, value in attributes.items():
                if not _same(value, reference[1][name]):
                    raise ShardValidationError(
                        shard, f"attribute {name} = {value!r} differs from {reference[0].name}'s "
                               f"{reference[1][name]!r}")
            expected_dims = {"x": geometry.nx, "y": geometry.ny, "mode": len(spec.modes),
                             "field": len(spec.magnetic_fields_T)}
            for dim, size in expected_dims.items():
                if dim not in ds.dimensions or len(ds.dimensions[dim]) != size:
                    raise ShardValidationError(shard, f"dimension {dim} should have size {size}")
            if not _same(ds["field"][:], spec.magnetic_fields_T):
                raise ShardValidationError(shard, "magnetic fields differ from the definition")
            for name in PER_SAMPLE_VARIABLES:
                if name not in ds.variables:
                    raise ShardValidationError(shard, f"lacks variable {name}")
            ids = np.asarray(ds["sample_id"][:]).tolist()
            want = list(expected_ids[str(shard)] if str(shard) in expected_ids
                        else expected_ids[shard])
            if "failed_samples" not in ds.ncattrs():
                raise ShardValidationError(shard, "lacks the failed_samples attribute")
            failed = json.loads(ds.getncattr("failed_samples"))
            failed_ids = [entry["sample_id"] for entry in failed]
            if not set(failed_ids) <= set(want):
                raise ShardValidationError(shard, f"records failures of foreign ids {failed_ids}")
            for entry in failed:
                failures.append({"shard": shard.name, **entry})
            want = [i for i in want if i not in set(failed_ids)]
            if len(set(ids)) != len(ids):
                duplicates = sorted({i for i in ids if ids.count(i) > 1})
                raise ShardValidationError(shard, f"duplicate sample ids {duplicates[:10]}")
            if ids != want:
                raise ShardValidationError(
                    shard, f"holds {len(ids)} samples with ids {ids[:3]}…, expected "
                           f"{len(want)} with ids {want[:3]}…")
            for sample_id in ids:
                if sample_id in seen:
                    raise ShardValidationError(shard, f"sample {sample_id} is also in {seen[sample_id]}")
                seen[sample_id] = shard.name
            for name, variable in ds.variables.items():
                if variable.dtype.kind != "f":
                    continue
                for start in range(0, max(len(ids), 1), 64):  # bounded memory on big shards
                    block = (np.asarray(variable[start:start + 64]) if "sample" in variable.dimensions
                             else np.asarray(variable[:]))
                    bad = ~np.isfinite(block)
                    if bad.any():
                        where = np.argwhere(bad)[0]
                        sample = (ids[start + where[0]] if "sample" in variable.dimensions
                                  else None)
                        raise ShardValidationError(
                            shard, f"variable {name} has NaN/inf"
                                   + (f" (sample {sample})" if sample is not None else ""))
                    if "sample" not in variable.dimensions:
                        break
    return {
        "dataset": spec.name,
        "shards": len(shards),
        "samples": len(seen),
        "failed_samples": failures,
        "sample_config_sha256": spec.config_hash,
        "attributes": {k: (v.tolist() if hasattr(v, "tolist") else v)
                       for k, v in (reference[1] if reference else {}).items()},
    }


class _ShardSamples:
    """Samples of the given ids, read one at a time from shard files (stored dtype kept)."""

    def __init__(self, locations):
        self.locations = locations  # list of (sample_id, shard path, index)

    def __len__(self):
        return len(self.locations)

    def __iter__(self):
        handles = {}
        try:
            for sample_id, shard, index in self.locations:
                if shard not in handles:
                    handles[shard] = netCDF4.Dataset(shard)
                    handles[shard].set_auto_mask(False)
                ds = handles[shard]
                yield P1Sample(
                    sample_id=int(ds["sample_id"][index]),
                    dopant_distance_nm=float(ds["dopant_distance"][index]),
                    dopant_density_cm2=float(ds["dopant_density"][index]),
                    rms_meV=float(ds["rms"][index]),
                    correlation_length_nm=float(ds["correlation_length"][index]),
                    fourier_coefficients=(ds["fourier_coefficient_real"][index]
                                          + 1j * ds["fourier_coefficient_imag"][index]),
                    potential_meV=ds["potential"][index],
                    pldos_per_meV=ds["pldos"][index])
        finally:
            for handle in handles.values():
                handle.close()


def write_splits(shards, spec: P1DatasetSpec, fractions: dict, outputs: dict) -> dict:
    """Merge validated shards into one file per split; returns the ids of each split.

    Parameters
    ----------
    shards : sequence of path-like
    spec : P1DatasetSpec
    fractions : dict split → fraction
    outputs : dict split → path-like
    """
    locations = {name: [] for name in SPLITS}
    open_modes = None
    failed = []
    for shard in shards:
        with netCDF4.Dataset(shard) as ds:
            ids = np.asarray(ds["sample_id"][:]).tolist()
            open_modes = np.asarray(ds["qpc_open_modes"][:]).tolist()
            failed += json.loads(ds.getncattr("failed_samples"))
        for index, sample_id in enumerate(ids):
            locations[split_of(spec.seed, sample_id, fractions)].append((sample_id, str(shard), index))
    for name in SPLITS:
        locations[name].sort()
        write_p1_netcdf(outputs[name], spec, _ShardSamples(locations[name]),
                        open_modes=open_modes,
                        extra_attributes={"split": name,
                                          "failed_samples": json.dumps(
                                              [f for f in failed
                                               if split_of(spec.seed, f["sample_id"], fractions)
                                               == name]),
                                          "split_fractions": json.dumps(fractions, sort_keys=True),
                                          "split_rule": "blake2b('mesoinv-split:<seed>:<id>') "
                                                        "/ 2^64 against cumulative fractions"})
    return {name: [loc[0] for loc in locations[name]] for name in SPLITS}


def content_checksum(path) -> str:
    """sha256 of a netCDF file's content: each variable's name, dtype, shape and raw bytes, and
    the global attributes, in sorted order (independent of HDF5 layout and timestamps)."""
    digest = hashlib.sha256()
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        for name in sorted(ds.ncattrs()):
            digest.update(f"@{name}={ds.getncattr(name)!r}".encode())
        for name in sorted(ds.variables):
            data = np.ascontiguousarray(ds[name][:])
            digest.update(f"{name}:{data.dtype.str}:{data.shape}".encode())
            digest.update(data.tobytes())
    return digest.hexdigest()
