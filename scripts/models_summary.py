"""Snakemake adapter: every model's metrics (and paper comparison) in one table (HTML + CSV)."""

import sys

from mesoinv.evaluation.summary import models_summary, write_table

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
table = models_summary(snakemake.input.metrics)  # noqa: F821
paper = models_summary(snakemake.input.get("paper", []))  # noqa: F821
print(table.to_string(), file=sys.stderr)
write_table(table, snakemake.output.csv, snakemake.output.html, paper=paper,  # noqa: F821
            title=snakemake.params.title)  # noqa: F821
