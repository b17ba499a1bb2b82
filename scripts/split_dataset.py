"""Snakemake adapter: merge a dataset's shards into train/val/test files and a manifest."""

import json
import sys

from mesoinv.datasets.kinds import kind_of, spec_from_entry
from mesoinv.datasets.aggregate import SPLITS, content_checksum, write_splits
from mesoinv.datasets.netcdf import atomic_path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
spec_entry = json.loads(snakemake.params.entry)  # noqa: F821
spec = spec_from_entry(snakemake.wildcards.dataset, spec_entry)  # noqa: F821
outputs = {name: snakemake.output[name] for name in SPLITS}  # noqa: F821
fractions = spec_entry["splits"]
ids = write_splits(list(snakemake.input.shards), spec, fractions, outputs)  # noqa: F821
manifest = {
    "dataset": spec.name,
    "format_version": kind_of(spec).format_version,
    "sample_config_sha256": spec.config_hash,
    "sample_checksums": "each sample verified against its checksum while merged",
    "split_fractions": fractions,
    "splits": {name: {"file": outputs[name], "samples": len(ids[name]),
                      "content_sha256": content_checksum(outputs[name])} for name in SPLITS},
}
print(json.dumps(manifest, indent=2), file=sys.stderr)
with atomic_path(snakemake.output.manifest) as tmp:  # noqa: F821
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
