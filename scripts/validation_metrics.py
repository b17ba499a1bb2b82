"""Snakemake adapter: one model's metrics on its validation split (no figures)."""

import sys

from mesoinv.evaluation.sweeps import validation_metrics, write_csv

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
table = validation_metrics(snakemake.input[0])  # noqa: F821
print(table.to_string(), file=sys.stderr)
write_csv(table, snakemake.output[0])  # noqa: F821
