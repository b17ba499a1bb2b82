"""Snakemake adapter: write a dataset's definition (params.definition) as JSON, atomically."""

import json
import sys

from mesoinv.datasets.netcdf import atomic_path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
with atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
    definition = json.loads(snakemake.params.definition)  # noqa: F821
    tmp.write_text(json.dumps(definition, indent=2, sort_keys=True) + "\n")
