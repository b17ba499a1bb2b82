"""Snakemake adapter: check all shards of a dataset; write validation.json (atomically)."""

import json
import sys

from mesoinv.datasets.kinds import spec_from_entry
from mesoinv.datasets.aggregate import ShardValidationError, validate_shards
from mesoinv.datasets.netcdf import atomic_path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
spec_entry = json.loads(snakemake.params.entry)  # noqa: F821
spec = spec_from_entry(snakemake.wildcards.dataset, spec_entry)  # noqa: F821
shards = list(snakemake.input.shards)  # noqa: F821
expected = {path: list(spec.shard_ids(k)) for k, path in enumerate(shards)}
try:
    summary = validate_shards(shards, spec, expected)
except ShardValidationError as error:
    # The recovery: deleting the shard alone is not enough (Snakemake keeps the existing
    # splits: "Nothing to be done"); forcing the shard reruns it and everything after it.
    raise ShardValidationError(
        error.shard, f"{str(error).partition(': ')[2]}. To rebuild it and everything after "
                     f"it: snakemake --forcerun {error.shard}") from None
print(json.dumps(summary, indent=2), file=sys.stderr)
with atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
