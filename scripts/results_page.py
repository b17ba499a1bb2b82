"""Snakemake adapter: the results page (the report's landing page) and results.json."""

import json
import sys
from pathlib import Path

from mesoinv.evaluation.results_page import write_results_page


def by_model(paths):
    """{model: [paths]} from results/evaluation/<model>/<file> paths, in their order."""
    out = {}
    for path in paths:
        out.setdefault(Path(path).parent.name, []).append(str(path))
    return out


sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
models = {entry.pop("name"): entry  # in the configuration's order
          for entry in json.loads(snakemake.params.models)}  # noqa: F821
metrics = {name: p[0] for name, p in by_model(snakemake.input.metrics).items()}  # noqa: F821
papers = {name: p[0] for name, p in by_model(snakemake.input.paper).items()}  # noqa: F821
figures = by_model([*snakemake.input.figures, *snakemake.input.examples])  # noqa: F821
manifests = {Path(p).parent.name: p for p in snakemake.input.manifests}  # noqa: F821
spread = snakemake.input.spread[0] if snakemake.input.spread else None  # noqa: F821
data = write_results_page(models, metrics=metrics, papers=papers, figures=figures,
                          manifests=manifests, html_path=snakemake.output.html,  # noqa: F821
                          json_path=snakemake.output.json, seed_spread=spread)  # noqa: F821
print(json.dumps(data["datasets"]), file=sys.stderr)
