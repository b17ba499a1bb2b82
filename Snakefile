# mesoinv: Kwant simulations → datasets → models → reports.
# Table of contents only; the rules live in workflow/rules/, one file per stage, and call the
# `mesoinv` command (src/mesoinv/cli.py). Run: ./scripts/run-demo (local, config/config.yaml);
# on a cluster: snakemake --configfile config/paper.yaml --profile profiles/slurm.
from snakemake.utils import min_version

min_version("9.0")


# The demo config applies only when no --configfile is given: Snakemake would otherwise merge
# a user's file into it, and the demo datasets would run alongside the user's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/simulate_p2.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/replicates.smk"


rule all:
    default_target: True
    input:
        all_targets(),
