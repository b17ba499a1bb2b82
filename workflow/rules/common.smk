# Configuration checks and input functions shared by all rules.
import csv
import json
import os
import re
import sys
from pathlib import Path

from mesoinv.config import (
    check_config_file,
    dataset_definition,
    replicate_groups,
    sweep_points,
    sweep_selection,
    validate_config,
)
from mesoinv.datasets.kinds import spec_from_entry

# Validate before any job is scheduled: a bad value stops here naming its key, nothing is
# written. Defaults from the schema are filled in place (the same object Snakemake holds).
# Duplicate keys are checked in the files themselves: Snakemake's loader keeps the last.
for _configfile in workflow.configfiles:
    check_config_file(_configfile)
config.update(validate_config(config))


envvars:
    "PATH",


# Rules call the `mesoinv` command of the environment running Snakemake (the project's
# venv), also inside SLURM jobs, which re-read this file with the same interpreter.
os.environ["PATH"] = (
    f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


wildcard_constraints:
    dataset="[A-Za-z][A-Za-z0-9_]*",
    model="[A-Za-z][A-Za-z0-9_]*",
    shard=r"\d{5}",
    sample_id=r"\d+",


def kind_pattern(kind):
    """Regex matching the names of the datasets of one kind (rules are per kind)."""
    names = [n for n, e in config["datasets"].items() if e["kind"] == kind]
    return "|".join(re.escape(n) for n in names) or "(?!)"


def canonical_json(value):
    """Params as sorted-key JSON: Snakemake compares params textually for rerun decisions, and
    the key order of a YAML file must not count as a change."""
    return json.dumps(value, sort_keys=True)


def definition_param(wildcards):
    return canonical_json(dataset_definition(config, wildcards.dataset))


def entry_param(wildcards):
    return canonical_json(config["datasets"][wildcards.dataset])


def dataset_spec(name):
    return spec_from_entry(name, config["datasets"][name])


def shard_numbers(name):
    return range(dataset_spec(name).n_shards)


def shard_path(name, shard):
    return f"results/datasets/{name}/shards/{name}-{shard:05d}.nc"


def shard_files(name):
    return [shard_path(name, shard) for shard in shard_numbers(name)]


def shard_id_range(wildcards):
    """'start:stop' of a shard's sample ids, for `mesoinv simulate --ids`."""
    ids = dataset_spec(wildcards.dataset).shard_ids(int(wildcards.shard))
    return f"{ids.start}:{ids.stop}"


def shard_of_sample(wildcards):
    spec = dataset_spec(wildcards.dataset)
    return shard_path(wildcards.dataset, int(wildcards.sample_id) // spec.shard_size)


def split_files():
    return [
        f"results/datasets/{name}/{name}-{split}.nc"
        for name in config["datasets"]
        for split in ("train", "val", "test")
    ]


def figure_files():
    ids = config["figures"]["sample_ids"]
    return [
        f"results/figures/{name}/sample-{sample_id}.png"
        for name in config["datasets"]
        for sample_id in ids
    ]


def model_definition_param(wildcards):
    """The model's config entry (defaults filled in) and its name, as canonical JSON."""
    return canonical_json(
        {**config["models"][wildcards.model], "name": wildcards.model}
    )


def model_split(wildcards, split):
    dataset = config["models"][wildcards.model]["dataset"]
    return f"results/datasets/{dataset}/{dataset}-{split}.nc"


# Parameter models predict numbers; potential models predict V(x, y). Their evaluations
# differ (rules evaluate_model and evaluate_potential_model), so each rule matches only the
# model names of its kinds.
PARAMETER_MODEL_KINDS = ("p1_parameter_cnn",)
POTENTIAL_MODEL_KINDS = ("p1_fourier_cnn", "p1_encoder_decoder")
DIFFUSION_MODEL_KINDS = ("p2_diffusion",)


def diffusion_split(wildcards):
    """The split a diffusion model is evaluated on: its `evaluation_split` (default val, as
    P2, which has no test split; test where val chose a sampling setting)."""
    return config["models"][wildcards.model]["evaluation_split"]


def diffusion_split_file(wildcards):
    return model_split(wildcards, diffusion_split(wildcards))


# Figures of `mesoinv evaluate` for a diffusion model (P2 Figs. 3-5 and the accuracy).
DIFFUSION_FIGURES = (
    "accuracy.png",
    "snapshots.png",
    "attention.png",
    "score_field.png",
    "depth_distribution.png",
)

# Figures of `mesoinv evaluate` for a potential model (fixed names for every kind).
POTENTIAL_FIGURES = (
    "r_p_histogram.png",
    "examples.png",
    "error_map.png",
    "coefficient_errors.png",
    "r_p_by_distance.png",
    "pldos_consistency.png",
)


def is_expanded(entry):
    """A model entry written by a sweep (sweeps.smk) or a seed replicate (replicates.smk)."""
    return "sweep" in entry or "replicate" in entry


def models_of_kinds(kinds, sweep_points=False):
    """Models of some kinds; the points of sweeps (sweeps.smk) and the seed replicates
    (replicates.smk) only with sweep_points=True: sweep points are scored on validation, and
    only a sweep's chosen point on test; replicates appear in the seed spread, not as models
    of their own in the tables and the results page."""
    return [
        name
        for name, entry in config["models"].items()
        if entry["kind"] in kinds and (sweep_points or not is_expanded(entry))
    ]


def model_pattern(kinds):
    """Regex matching the names of the models of some kinds (sweep points included)."""
    names = models_of_kinds(kinds, sweep_points=True)
    return "|".join(re.escape(n) for n in names) or "(?!)"


def model_metric_files(kinds=PARAMETER_MODEL_KINDS):
    return [f"results/evaluation/{name}/metrics.csv" for name in models_of_kinds(kinds)]


# The results page (evaluate.smk, rule results_page), the report's landing content. Tables and
# metric files go to the report category "All results" (sorted first in its menu), one
# subcategory per family.
RESULTS_SUBCATEGORY = {
    "p1_parameter_cnn": "P1 parameters",
    "p1_fourier_cnn": "P1 potential",
    "p1_encoder_decoder": "P1 potential",
    "p2_diffusion": "P2 antidots",
}
# The key figure of each model kind, on the results page beside its prediction example.
KEY_FIGURES = {
    "p1_parameter_cnn": "predicted_vs_true.png",
    "p1_fourier_cnn": "r_p_histogram.png",
    "p1_encoder_decoder": "r_p_histogram.png",
    "p2_diffusion": "accuracy.png",
}
RESULTS_KINDS = PARAMETER_MODEL_KINDS + POTENTIAL_MODEL_KINDS + DIFFUSION_MODEL_KINDS


def results_models():
    """[name, kind, dataset, evaluated split] of every evaluated model in the configuration's
    order, as canonical JSON."""
    return canonical_json(
        [
            {
                "name": name,
                "kind": entry["kind"],
                "dataset": entry["dataset"],
                "split": entry.get("evaluation_split", "test"),
            }
            for name, entry in config["models"].items()
            if entry["kind"] in RESULTS_KINDS and not is_expanded(entry)
        ]
    )


def results_files(filename, **report_args):
    """results/evaluation/<model>/<filename> of every evaluated model, marked for the report
    when report_args are given (category, subcategory and labels per model)."""
    files = []
    for name in models_of_kinds(RESULTS_KINDS):
        path = f"results/evaluation/{name}/{filename}"
        if report_args:
            kind = config["models"][name]["kind"]
            args = {
                key: value(name, kind) if callable(value) else value
                for key, value in report_args.items()
            }
            path = report(path, **args)
        files.append(path)
    return files


def model_targets():
    if not config["models"]:
        return []
    parameter_models = models_of_kinds(PARAMETER_MODEL_KINDS)
    potential_models = models_of_kinds(POTENTIAL_MODEL_KINDS)
    diffusion_models = models_of_kinds(DIFFUSION_MODEL_KINDS)
    return (
        [f"results/models/{name}/loss_curve.png" for name in config["models"]]
        + [
            f"results/evaluation/{name}/{figure}"
            for name in parameter_models
            for figure in (
                "predicted_vs_true.png",
                "error_histograms.png",
                "error_correlation.png",
                "prediction-example.png",
            )
        ]
        + [
            f"results/evaluation/{name}/{figure}"
            for name in potential_models
            for figure in POTENTIAL_FIGURES + ("prediction-example.png",)
        ]
        + [
            f"results/evaluation/{name}/{figure}"
            for name in diffusion_models
            for figure in DIFFUSION_FIGURES + ("prediction-example.png",)
        ]
        + (["results/reports/models.html"] if parameter_models else [])
        + (["results/reports/potential_models.html"] if potential_models else [])
        + (["results/reports/diffusion_models.html"] if diffusion_models else [])
        # the report's landing content (evaluate.smk, rule results_page)
        + ["results/reports/results.html", "results/reports/results.json"]
    )


# Sweeps and learning curves (config `sweeps:`, rules in sweeps.smk). The config loading
# expanded each sweep into model entries <sweep>_<index> or <sweep>_n<N> with a `sweep` record.
SWEEP_OUTPUTS = {
    "select": ("validation.csv", "validation.png", "chosen_test.csv"),
    "learning_curve": (
        "learning_curve.csv",
        "learning_curve_fit.csv",
        "learning_curve.png",
    ),
}


def sweep_mode(name):
    return "learning_curve" if "learning_curve" in config["sweeps"][name] else "select"


def sweep_names(mode):
    return [name for name in config.get("sweeps", {}) if sweep_mode(name) == mode]


def sweep_pattern(mode):
    """Regex matching the names of the sweeps of one mode (select or learning_curve)."""
    return "|".join(re.escape(n) for n in sweep_names(mode)) or "(?!)"


def sweep_point_files(template):
    """Input function: the template's file ({model}) of every point of the sweep."""

    def files(wildcards):
        points = sweep_points(config)[wildcards.sweep]
        return [template.format(model=point) for point in points]

    return files


def sweep_params(wildcards):
    """The sweep's points (name, overrides), selection, base kind and extrapolation size."""
    sweep = config["sweeps"][wildcards.sweep]
    base = config["models"][sweep["base"]]
    return canonical_json(
        {
            "sweep": wildcards.sweep,
            "points": [
                {
                    "name": point,
                    "overrides": config["models"][point]["sweep"]["overrides"],
                }
                for point in sweep_points(config)[wildcards.sweep]
            ],
            "selection": sweep_selection(config, wildcards.sweep),
            "kind": base["kind"],
            "extrapolate_to": sweep.get("learning_curve", {}).get("extrapolate_to"),
        }
    )


def sweep_chosen_test_metrics(wildcards):
    """The test metrics of the point the validation table chose (after the checkpoint)."""
    table = checkpoints.sweep_validation.get(sweep=wildcards.sweep).output.table
    with open(table, newline="") as handle:
        chosen = [
            row["point"] for row in csv.DictReader(handle) if row["chosen"] == "True"
        ]
    if len(chosen) != 1:
        raise ValueError(f"{table} marks {len(chosen)} chosen points, not one")
    return f"results/evaluation/{chosen[0]}/metrics.csv"


def sweep_targets():
    return [
        f"results/sweeps/{name}/{output}"
        for name in config.get("sweeps", {})
        for output in SWEEP_OUTPUTS[sweep_mode(name)]
    ]


# Seed replicates (config `seed_replicates:`, rules in replicates.smk). The config loading
# expanded each replicated model m into entries m_seed<k> with a `replicate` record.
SEED_SPREAD_OUTPUTS = (
    "results/reports/seed_spread.csv",
    "results/reports/seed_spread.html",
)


def seed_spread_files():
    """The seed-spread table where the config has replicates (the results page shows it)."""
    return list(SEED_SPREAD_OUTPUTS[:1]) if replicate_groups(config) else []


def seed_spread_metric_files():
    """metrics.csv of every replicated model and of its replicates, grouped in order."""
    return [
        f"results/evaluation/{name}/metrics.csv"
        for group in replicate_groups(config).values()
        for _, name in group
    ]


def seed_spread_params():
    """Per replicated model: kind, evaluated split and (seed, entry name) of its seeds."""
    return canonical_json(
        [
            {
                "model": base,
                "kind": config["models"][base]["kind"],
                "split": config["models"][base].get("evaluation_split", "test"),
                "seeds": [{"seed": seed, "name": name} for seed, name in group],
            }
            for base, group in replicate_groups(config).items()
        ]
    )


def seed_spread_targets():
    return list(SEED_SPREAD_OUTPUTS) if replicate_groups(config) else []


def no_seed_replicates():
    raise ValueError(
        "target seed_spread: the config has no seed_replicates; give the demo's overlay "
        "too: snakemake seed_spread --configfile config/config.yaml config/seeds.yaml"
    )


def all_targets():
    return (
        split_files()
        + figure_files()
        + ["results/reports/datasets.html"]
        + model_targets()
        + sweep_targets()
        + seed_spread_targets()
    )
