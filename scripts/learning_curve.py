"""Snakemake adapter: a learning curve's points (val, test), power-law fits and figure."""

import json
import sys

from mesoinv.evaluation.sweep_figures import plot_learning_curve
from mesoinv.evaluation.sweeps import learning_curve_fits, learning_curve_table, write_csv

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
sweep = json.loads(snakemake.params.sweep)  # noqa: F821
inputs = snakemake.input  # noqa: F821
points = [dict(name=point["name"], val=val, test=test, record=model) for point, val, test, model
          in zip(sweep["points"], inputs.val, inputs.test, inputs.models)]
selection = sweep["selection"]
table = learning_curve_table(points, sweep=sweep["sweep"], metric=selection["metric"],
                             target=selection["target"],
                             higher_is_better=selection["higher_is_better"])
fits = learning_curve_fits(table, kind=sweep["kind"], extrapolate_to=sweep["extrapolate_to"])
print(table.to_string(), fits.to_string(), sep="\n\n", file=sys.stderr)
write_csv(table, snakemake.output.table)  # noqa: F821
write_csv(fits, snakemake.output.fits)  # noqa: F821
plot_learning_curve(table, fits, snakemake.output.figure)  # noqa: F821
