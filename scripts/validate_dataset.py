"""Snakemake adapter: check all shards of a dataset; write validation.json (atomically)."""

import json
import sys

from mesoinv.datasets.kinds import spec_from_entry
from mesoinv.datasets.aggregate import validate_shards
from mesoinv.datasets.netcdf import atomic_path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
spec_entry = json.loads(snakemake.params.entry)  # noqa: F821
spec = spec_from_entry(snakemake.wildcards.dataset, spec_entry)  # noqa: F821
shards = list(snakemake.input.shards)  # noqa: F821
expected = {path: list(spec.shard_ids(k)) for k, path in enumerate(shards)}
summary = validate_shards(shards, spec, expected)
print(json.dumps(summary, indent=2), file=sys.stderr)
with atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
