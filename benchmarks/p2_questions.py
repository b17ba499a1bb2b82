"""The skeptic's baselines of the P2 questions, without a diffusion model (issue 16).

For each P2 dataset directory (its ``<name>-train.nc`` and the evaluated split), scored by
the project's own matcher (:func:`mesoinv.evaluation.p2_generation.positions.evaluate_positions`,
tolerance 1.5 sites) with 95 % Wilson intervals over traces:

* ``nearest_training_trace`` — 1-NN on G(B) standardised per field with training statistics;
* ``direct_placement_model`` — the trace encoder + MLP head, 2,000 Adam steps (seeded);
* ``direct_placement_mlp`` — an MLP of the whole trace, as in the evaluation (300 passes,
  2,000 to 10,000 AdamW steps) or a fixed number of steps (``--mlp-steps``);
* ``most_frequent_placement`` — trace-blind;

and the median 1-NN distance (standardised units), which says whether the evaluated traces
are near a training trace (seen placement: ≈ 0.4 at 0.1 t; unseen: ≈ 8, NOTES.md §9).

    python benchmarks/p2_questions.py DATASET_DIR [...] [--split val] [--steps N]
        [--mlp-steps N] [-o table.md]

The question is named by the dataset's ``split_unit`` attribute: ``sample`` / realisation
(new realisations of seen placements: P2's likely random split of pairs) or ``configuration``
(held-out placements). docs/models.md ("P2: the three questions") has the tables.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import netCDF4
import numpy as np

from mesoinv.evaluation.intervals import wilson_interval
from mesoinv.evaluation.p2_generation.baselines import NearestTraceLookup
from mesoinv.evaluation.p2_generation.placement_baseline import (MLP_OPTIONS,
                                                                 PlacementBaselineOptions,
                                                                 fit_placement_baseline,
                                                                 predict_placements)
from mesoinv.evaluation.p2_generation.positions import (evaluate_positions,
                                                        most_frequent_placement)
from mesoinv.inference.antidot_detector import read_geometry
from mesoinv.training.p2_readers import read_placements, read_traces

CRITERIA = ("strict", "mirrors", "classes")


def _accuracy(evaluation, criterion):
    correct = getattr(evaluation, criterion).correct
    n = correct.shape[0]
    p = float(correct.mean())
    low, high = wilson_interval(p * n, n)
    return p, low, high


def question_rows(directory: Path, split: str, steps: int,
                  mlp_steps: int | None = None) -> list[dict]:
    name = directory.name
    train = directory / f"{name}-train.nc"
    evaluated = directory / f"{name}-{split}.nc"
    with netCDF4.Dataset(evaluated) as ds:
        unit = ds.getncattr("split_unit") if "split_unit" in ds.ncattrs() else "?"
        amplitude = ds.getncattr("potential_amplitude_t") if (
            "potential_amplitude_t" in ds.ncattrs()) else float("nan")
    geometry, constraints, _ = read_geometry(evaluated)
    traces, true = read_traces(evaluated), read_placements(evaluated)
    n_train = len(read_traces(train))
    rows = []
    started = time.perf_counter()
    lookup = NearestTraceLookup.from_training_split(train, traces)
    predictors = {"nearest_training_trace": (lookup.placements, time.perf_counter() - started)}
    started = time.perf_counter()
    fitted = fit_placement_baseline(train, geometry, PlacementBaselineOptions(steps=steps))
    predictors["direct_placement_model"] = (predict_placements(fitted, traces),
                                            time.perf_counter() - started)
    started = time.perf_counter()
    mlp = (MLP_OPTIONS if mlp_steps is None
           else dataclasses.replace(MLP_OPTIONS, steps=mlp_steps, epochs=None))
    fitted = fit_placement_baseline(train, geometry, mlp)
    predictors["direct_placement_mlp"] = (predict_placements(fitted, traces),
                                          time.perf_counter() - started)
    frequent = most_frequent_placement(read_placements(train))
    predictors["most_frequent_placement"] = (np.broadcast_to(frequent, true.shape).copy(), 0.0)
    for predictor, (found, seconds) in predictors.items():
        evaluation = evaluate_positions(found, true, geometry, constraints)
        row = {"dataset": name, "split_unit": unit, "amplitude_t": amplitude, "split": split,
               "n_train": n_train, "n": len(true), "predictor": predictor,
               "seconds": seconds,
               "median_nn_distance": float(np.median(lookup.distances))}
        for criterion in CRITERIA:
            row[criterion] = _accuracy(evaluation, criterion)
        rows.append(row)
    return rows


def markdown(rows) -> str:
    lines = ["| dataset | split unit | disorder (t) | split (n) | predictor | strict [95 %] "
             "| modulo mirrors | modulo classes | 1-NN distance (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{100 * p:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
                 for p, lo, hi in (r[c] for c in CRITERIA)]
        lines.append(f"| {r['dataset']} | {r['split_unit']} | {r['amplitude_t']:g} | "
                     f"{r['split']} ({r['n']}) | {r['predictor']} | " + " | ".join(cells)
                     + f" | {r['median_nn_distance']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="results/datasets/<name>")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--steps", type=int, default=2000, help="direct model's Adam steps")
    parser.add_argument("--mlp-steps", type=int,
                        help="the MLP's AdamW steps (default: the evaluation's, 300 passes)")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    rows = [r for d in args.datasets
            for r in question_rows(d, args.split, args.steps, args.mlp_steps)]
    table = markdown(rows)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
