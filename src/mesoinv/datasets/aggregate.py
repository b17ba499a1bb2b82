"""Checking shards and merging them into train / val / test files.

* :func:`split_of` — a sample's split is a fixed function of (dataset seed, sample id): a hash
  mapped to [0, 1) and compared with the cumulative fractions. Growing a dataset never moves an
  existing sample to another split.
* :func:`validate_shards` — every shard opens, has the expected variables, ids, attributes
  and only finite numbers; every sample matches its checksum (HDF5's fletcher32 and the
  sample's own ``sample_checksum``); the physics invariants hold (densities ≥ 0, parameters in
  range, the stored potential of a few samples per shard equals its rebuild); the first problem
  raises :class:`ShardValidationError` naming the shard.
* :func:`write_splits` — streams the samples of all shards, sorted by id, into one file per
  split (same layout as a shard, plus a ``split`` attribute), atomically, checking each
  sample's checksum again on the way.
* :func:`content_checksum` — sha256 over the decoded bytes of every variable and attribute
  (independent of HDF5's on-disk layout), for the manifest.
"""

import hashlib
import json
from pathlib import Path

import netCDF4
import numpy as np

from .integrity import CHECKSUM_VARIABLE, sample_digest
from .kinds import kind_of

__all__ = ["SPLITS", "split_of", "ShardValidationError", "validate_shards", "write_splits",
           "content_checksum"]

SPLITS = ("train", "val", "test")

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


def _attributes(ds, names):
    return {name: ds.getncattr(name) for name in names if name in ds.ncattrs()}


def _same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def validate_shards(shards, spec, expected_ids: dict) -> dict:
    """Check all shards of a dataset against its definition.

    Parameters
    ----------
    shards : sequence of path-like
    spec : dataset spec of any kind
        The dataset (its sample-config hash, dimensions and kind's attributes are checked).
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
    kind = kind_of(spec)
    reference = None
    seen = {}
    failures = []
    for shard in shards:
        shard = Path(shard)
        if not shard.exists():
            raise ShardValidationError(shard, "is missing")
        try:
            ds = netCDF4.Dataset(shard)
        except OSError as error:
            raise ShardValidationError(shard, f"cannot be read (truncated or corrupt?): {error}")
        try:
            with ds:
                ds.set_auto_mask(False)
                _validate_open_shard(ds, shard, spec, kind, expected_ids, reference, seen,
                                     failures)
                if reference is None:
                    reference = (shard, _attributes(ds, kind.consistent_attributes))
        except (OSError, RuntimeError) as error:  # HDF5: a chunk fails its fletcher32 checksum
            raise ShardValidationError(shard, f"cannot be read (corrupt: a checksum of HDF5 "
                                              f"failed?): {error}") from None
    return {
        "dataset": spec.name,
        "shards": len(shards),
        "samples": len(seen),
        "failed_samples": failures,
        "sample_config_sha256": spec.config_hash,
        "sample_checksums": "verified",
        "attributes": {k: (v.tolist() if hasattr(v, "tolist") else v)
                       for k, v in (reference[1] if reference else {}).items()},
    }


def _validate_open_shard(ds, shard, spec, kind, expected_ids, reference, seen, failures):
    """All checks of one open shard (see :func:`validate_shards`)."""
    attributes = _attributes(ds, kind.consistent_attributes)
    missing = [n for n in kind.consistent_attributes if n not in attributes]
    if missing:
        raise ShardValidationError(shard, f"lacks global attributes {missing}")
    if attributes["format_version"] != kind.format_version:
        raise ShardValidationError(
            shard, f"format {attributes['format_version']!r}, expected "
                   f"{kind.format_version!r} (written by another mesoinv version, "
                   "without per-sample checksums if older: delete it and rerun to "
                   "re-simulate it)")
    if attributes["sample_config_sha256"] != spec.config_hash:
        raise ShardValidationError(
            shard, "was simulated with another configuration (sample_config_sha256 "
                   f"{attributes['sample_config_sha256'][:12]}…, expected "
                   f"{spec.config_hash[:12]}…)")
    for name, value in attributes.items():
        if reference is not None and not _same(value, reference[1][name]):
            raise ShardValidationError(
                shard, f"attribute {name} = {value!r} differs from {reference[0].name}'s "
                       f"{reference[1][name]!r}")
    for dim, size in kind.expected_dimensions(spec).items():
        if dim not in ds.dimensions or len(ds.dimensions[dim]) != size:
            raise ShardValidationError(shard, f"dimension {dim} should have size {size}")
    for name in kind.per_sample_variables:
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
        if variable.dtype.kind == "f" and "sample" not in variable.dimensions:
            if not np.all(np.isfinite(np.asarray(variable[:]))):
                raise ShardValidationError(shard, f"variable {name} has NaN/inf")
    if CHECKSUM_VARIABLE not in ds.variables:
        raise ShardValidationError(shard, f"lacks the per-sample checksums "
                                          f"({CHECKSUM_VARIABLE})")
    checksums = np.asarray(ds[CHECKSUM_VARIABLE][:])
    metadata = kind.read_metadata(ds)
    names = kind.per_sample_variables
    for start in range(0, len(ids), 64):  # bounded memory on big shards
        stop = min(start + 64, len(ids))
        block = {name: np.asarray(ds[name][start:stop]) for name in names}
        for name, values in block.items():
            if values.dtype.kind != "f":
                continue
            bad = ~np.isfinite(values)
            if bad.any():
                sample = ids[start + np.argwhere(bad)[0][0]]
                raise ShardValidationError(shard, f"variable {name} has NaN/inf "
                                                  f"(sample {sample})")
        for i in range(stop - start):
            digest = sample_digest({name: block[name][i] for name in names})
            if digest != checksums[start + i]:
                raise ShardValidationError(
                    shard, f"sample {ids[start + i]} does not match its checksum: its "
                           "stored numbers changed after it was computed (corrupt)")
        problem = kind.check_physics(spec, block, ids[start:stop], start == 0, metadata)
        if problem:
            raise ShardValidationError(shard, problem)


class _ShardSamples:
    """Samples read one at a time from shard files, as stored (dtype kept), each checked
    against its checksum (a shard changed since its validation stops the merge)."""

    def __init__(self, kind, spec, locations):
        self.kind = kind
        self.spec = spec
        self.locations = locations  # list of (sample_id, shard path, index)

    def __len__(self):
        return len(self.locations)

    def __iter__(self):
        handles = {}
        try:
            for sample_id, shard, index in self.locations:
                try:
                    if shard not in handles:
                        handles[shard] = netCDF4.Dataset(shard)
                        handles[shard].set_auto_mask(False)
                    sample = self.kind.read_sample(handles[shard], index)
                    stored = handles[shard][CHECKSUM_VARIABLE][index]
                except (OSError, RuntimeError, IndexError) as error:
                    raise ShardValidationError(shard, f"cannot be read (corrupt?): "
                                                      f"{error}") from None
                if sample_digest(self.kind.stored_values(self.spec, sample)) != stored:
                    raise ShardValidationError(
                        shard, f"sample {sample_id} does not match its checksum: the shard "
                               "changed after its validation (corrupt); nothing was merged")
                yield sample
        finally:
            for handle in handles.values():
                handle.close()


def write_splits(shards, spec, fractions: dict, outputs: dict) -> dict:
    """Merge validated shards into one file per split; returns the ids of each split.

    Parameters
    ----------
    shards : sequence of path-like
    spec : dataset spec of any kind
    fractions : dict split → fraction
    outputs : dict split → path-like
    """
    kind = kind_of(spec)

    def split(sample_id):
        return split_of(spec.seed, spec.split_unit(sample_id), fractions)

    locations = {name: [] for name in SPLITS}
    metadata = None
    failed = []
    for shard in shards:
        with netCDF4.Dataset(shard) as ds:
            ids = np.asarray(ds["sample_id"][:]).tolist()
            metadata = kind.read_metadata(ds)
            failed += json.loads(ds.getncattr("failed_samples"))
        for index, sample_id in enumerate(ids):
            locations[split(sample_id)].append((sample_id, str(shard), index))
    written = []
    try:
        for name in SPLITS:
            _write_split(kind, spec, name, locations[name], outputs[name], metadata, failed,
                         fractions, split)
            written.append(outputs[name])
    except BaseException:
        for path in written:  # a failed merge leaves none of its split files
            Path(path).unlink(missing_ok=True)
        raise
    return {name: [loc[0] for loc in locations[name]] for name in SPLITS}


def _write_split(kind, spec, name, locations, output, metadata, failed, fractions, split):
    """One split file from its (sample_id, shard, index) locations."""
    locations.sort()
    kind.write(output, spec, _ShardSamples(kind, spec, locations), **metadata,
               extra_attributes={"split": name,
                                 "failed_samples": json.dumps(
                                     [f for f in failed if split(f["sample_id"]) == name]),
                                 "split_fractions": json.dumps(fractions, sort_keys=True),
                                 "split_rule": "blake2b('mesoinv-split:<seed>:<unit>') / 2^64 "
                                               "against cumulative fractions; unit = sample "
                                               "id (P1, or P2 with split_by: realization) or "
                                               "configuration id (P2)",
                                 "split_unit": getattr(spec, "split_by", "sample")})


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
