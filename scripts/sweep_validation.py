"""Snakemake adapter: a sweep's validation table (chosen point marked) and its figure."""

import json
import sys

from mesoinv.evaluation.sweep_figures import plot_sweep
from mesoinv.evaluation.sweeps import sweep_table, write_csv

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
sweep = json.loads(snakemake.params.sweep)  # noqa: F821
points = [dict(point, metrics=metrics, record=model) for point, metrics, model in
          zip(sweep["points"], snakemake.input.metrics, snakemake.input.models)]  # noqa: F821
selection = sweep["selection"]
table = sweep_table(points, sweep=sweep["sweep"], metric=selection["metric"],
                    target=selection["target"], higher_is_better=selection["higher_is_better"])
print(table.to_string(), file=sys.stderr)
write_csv(table, snakemake.output.table)  # noqa: F821
keys = list(dict.fromkeys(k for point in sweep["points"] for k in point["overrides"]))
plot_sweep(table, snakemake.output.figure, override_keys=keys)  # noqa: F821
