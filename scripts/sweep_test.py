"""Snakemake adapter: the test metrics of the point a sweep chose on validation."""

import sys

from mesoinv.evaluation.sweeps import chosen_test_metrics, write_csv

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
table = chosen_test_metrics(snakemake.input.table, snakemake.input.metrics)  # noqa: F821
print(table.to_string(), file=sys.stderr)
write_csv(table, snakemake.output[0])  # noqa: F821
