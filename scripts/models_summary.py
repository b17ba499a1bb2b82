"""Snakemake adapter: every model's test metrics and baselines in one table (HTML + CSV)."""

import sys

from mesoinv.datasets.netcdf import atomic_path
from mesoinv.evaluation.summary import models_summary

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
table = models_summary(snakemake.input.metrics)  # noqa: F821
print(table.to_string(), file=sys.stderr)
with atomic_path(snakemake.output.csv) as tmp:  # noqa: F821
    table.to_csv(tmp, index=False)
with atomic_path(snakemake.output.html) as tmp:  # noqa: F821
    tmp.write_text(table.to_html(index=False, border=0, classes="table table-striped"))
