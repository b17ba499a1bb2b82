# Sweeps and learning curves (config `sweeps:`, docs/workflow.md "Sweeps and learning
# curves"). The config loading expands each sweep into ordinary model entries, so train.smk
# trains every point as one job (the GPU partition on the SLURM profile), cached and
# rerunnable alone. Here: each point predicted and scored on its validation split; per
# selection sweep one table and figure, the chosen point (best validation metric) scored once
# on the test split by evaluate.smk's ordinary rules; per learning curve the points on val and
# test and a power law fitted to val.


rule predict_val_split:
    input:
        model="results/models/{model}/model.pt",
        val=lambda wildcards: model_split(wildcards, "val"),
    output:
        "results/evaluation/{model}/predictions-val.nc",
    log:
        "logs/predict_val/{model}.log",
    benchmark:
        "logs/benchmarks/predict_val/{model}.tsv"
    # `mesoinv predict` on the validation split (any P1 model, e.g. to look at one by hand).
    wildcard_constraints:
        model=model_pattern(PARAMETER_MODEL_KINDS + POTENTIAL_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv predict {input.model} {input.val} --output {output} > {log} 2>&1"


rule validation_metrics:
    input:
        "results/evaluation/{model}/predictions-val.nc",
    output:
        "results/evaluation/{model}/metrics-val.csv",
    log:
        "logs/validation_metrics/{model}.log",
    benchmark:
        "logs/benchmarks/validation_metrics/{model}.tsv"
    # The metrics of the test evaluation, with 95 % intervals, on val; no figures
    # (mesoinv.evaluation.sweeps.validation_metrics).
    wildcard_constraints:
        model=model_pattern(PARAMETER_MODEL_KINDS + POTENTIAL_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    script:
        "../../scripts/validation_metrics.py"


checkpoint sweep_validation:
    # A checkpoint: which point's test metrics rule sweep_test needs is known only once
    # this table has chosen it.
    input:
        metrics=sweep_point_files("results/evaluation/{model}/metrics-val.csv"),
        models=sweep_point_files("results/models/{model}/model.pt"),
    output:
        table=report(
            "results/sweeps/{sweep}/validation.csv",
            caption="../report/sweep_validation.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "validation table"},
        ),
        figure=report(
            "results/sweeps/{sweep}/validation.png",
            caption="../report/sweep_validation.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "validation figure"},
        ),
    log:
        "logs/sweeps/{sweep}/validation.log",
    benchmark:
        "logs/benchmarks/sweeps/{sweep}/validation.tsv"
    wildcard_constraints:
        sweep=sweep_pattern("select"),
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    params:
        sweep=sweep_params,
    script:
        "../../scripts/sweep_validation.py"


rule sweep_test:
    input:
        table="results/sweeps/{sweep}/validation.csv",
        metrics=sweep_chosen_test_metrics,
    output:
        report(
            "results/sweeps/{sweep}/chosen_test.csv",
            caption="../report/sweep_chosen_test.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "chosen point on test"},
        ),
    log:
        "logs/sweeps/{sweep}/chosen_test.log",
    benchmark:
        "logs/benchmarks/sweeps/{sweep}/chosen_test.tsv"
    wildcard_constraints:
        sweep=sweep_pattern("select"),
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    script:
        "../../scripts/sweep_test.py"


rule learning_curve:
    input:
        val=sweep_point_files("results/evaluation/{model}/metrics-val.csv"),
        test=sweep_point_files("results/evaluation/{model}/metrics.csv"),
        models=sweep_point_files("results/models/{model}/model.pt"),
    output:
        table=report(
            "results/sweeps/{sweep}/learning_curve.csv",
            caption="../report/learning_curve.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "learning curve points"},
        ),
        fits=report(
            "results/sweeps/{sweep}/learning_curve_fit.csv",
            caption="../report/learning_curve.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "power-law fit"},
        ),
        figure=report(
            "results/sweeps/{sweep}/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Sweeps",
            subcategory="{sweep}",
            labels={"sweep": "{sweep}", "file": "learning curve"},
        ),
    log:
        "logs/sweeps/{sweep}/learning_curve.log",
    benchmark:
        "logs/benchmarks/sweeps/{sweep}/learning_curve.tsv"
    wildcard_constraints:
        sweep=sweep_pattern("learning_curve"),
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    params:
        sweep=sweep_params,
    script:
        "../../scripts/learning_curve.py"


rule sweeps:
    # `snakemake sweeps`: every sweep's table, figure and test score, nothing else.
    input:
        sweep_targets(),
    localrule: True
