"""Snakemake adapter: the seed-spread table (results/reports/seed_spread.{csv,html})."""

import json
import sys
from pathlib import Path

from mesoinv.evaluation.seed_spread import write_seed_spread

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
models = json.loads(snakemake.params.models)  # noqa: F821
metrics = {Path(p).parent.name: str(p) for p in snakemake.input.metrics}  # noqa: F821
table = write_seed_spread(models, metrics, csv_path=snakemake.output.csv,  # noqa: F821
                          html_path=snakemake.output.html)  # noqa: F821
print(table.to_string(), file=sys.stderr)
