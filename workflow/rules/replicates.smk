# Seed replicates (config `seed_replicates:`, docs/workflow.md "Seed spread"). The config
# loading expands each replicated model m into ordinary entries m_seed<k>, identical but for
# the training seed, so train.smk, predict.smk and evaluate.smk train and score every
# replicate on m's evaluation split with the ordinary rules (no selection: a replicate is not
# a choice). Here: the table of the headline metrics over seeds, and the target
# `snakemake seed_spread --configfile config/config.yaml config/seeds.yaml` (the target first:
# --configfile takes every word after it).


rule seed_spread_table:
    input:
        metrics=seed_spread_metric_files(),
    output:
        csv=report(
            SEED_SPREAD_OUTPUTS[0],
            caption="../report/seed_spread.rst",
            category="All results",
            subcategory="Summary",
            labels={"model": "every replicated model", "file": "seed_spread.csv"},
        ),
        html=report(
            SEED_SPREAD_OUTPUTS[1],
            caption="../report/seed_spread.rst",
            category="All results",
            subcategory="Summary",
            labels={
                "model": "every replicated model",
                "file": "seed spread (readable)",
            },
        ),
    log:
        "logs/seed_spread.log",
    benchmark:
        "logs/benchmarks/seed_spread.tsv"
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    params:
        models=seed_spread_params(),
    script:
        "../../scripts/seed_spread.py"


rule seed_spread:
    # `snakemake ... seed_spread`: the spread table and the results page that shows it.
    input:
        lambda wildcards: seed_spread_targets() or no_seed_replicates(),
        "results/reports/results.html",
    localrule: True
