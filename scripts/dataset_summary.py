"""Snakemake adapter: the dataset summary table (HTML for the report, CSV for scripts)."""

import sys

from mesoinv.evaluation.summary import dataset_summary, write_dataset_tables

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
table = dataset_summary(snakemake.input.splits)  # noqa: F821
print(table.to_string(), file=sys.stderr)
write_dataset_tables(table, snakemake.output.csv, snakemake.output.html)  # noqa: F821
