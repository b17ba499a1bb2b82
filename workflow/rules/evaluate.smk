# Evaluation stage: metrics and figures of the predictions written by the prediction stage
# (predict.smk), against baselines, ceilings and the papers; a summary table per model family.


rule evaluate_model:
    input:
        predictions="results/evaluation/{model}/predictions-test.nc",
        # for the Bayes ceiling: the best estimate from each sample's true potential
        test=lambda wildcards: model_split(wildcards, "test"),
        # for the baselines fitted on it: ridge on power spectra, nearest training map
        train=lambda wildcards: model_split(wildcards, "train"),
    output:
        metrics="results/evaluation/{model}/metrics.csv",
        paper=report(
            "results/evaluation/{model}/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "paper comparison"},
        ),
        predicted_vs_true=report(
            "results/evaluation/{model}/predicted_vs_true.png",
            caption="../report/predicted_vs_true.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "predicted vs true"},
        ),
        histograms=report(
            "results/evaluation/{model}/error_histograms.png",
            caption="../report/error_histograms.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "error histograms"},
        ),
        correlation=report(
            "results/evaluation/{model}/error_correlation.png",
            caption="../report/error_correlation.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "error correlation (Fig. 3)"},
        ),
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    # Parameter models (s, N_d, rms, ξ): P1 Fig. 3, errors against baselines and the ceiling.
    wildcard_constraints:
        model=model_pattern(PARAMETER_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv evaluate {input.predictions} --dataset {input.test} --train {input.train}"
        " --output-dir results/evaluation/{wildcards.model} > {log} 2>&1"


rule evaluate_potential_model:
    input:
        predictions="results/evaluation/{model}/predictions-test.nc",
        test=lambda wildcards: model_split(wildcards, "test"),
    output:
        metrics="results/evaluation/{model}/metrics.csv",
        paper=report(
            "results/evaluation/{model}/paper_comparison.csv",
            caption="../report/potential_paper_comparison.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "paper comparison"},
        ),
        r_p="results/evaluation/{model}/r_p.csv",
        r_p_by_distance="results/evaluation/{model}/r_p_by_distance.csv",
        consistency="results/evaluation/{model}/pldos_consistency.csv",
        coefficients="results/evaluation/{model}/coefficient_errors.csv",
        figures=[
            report(
                f"results/evaluation/{{model}}/{figure}",
                caption=f"../report/potential_{figure.removesuffix('.png')}.rst",
                category="Models",
                subcategory="{model}",
                labels={"model": "{model}", "figure": figure.removesuffix(".png")},
            )
            for figure in POTENTIAL_FIGURES
        ],
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    # Potential models (Fourier CNN, encoder-decoder): P1 Figs. 4-8, baselines, r_P against
    # distance from the QPC, and the PLDOS recomputed by the simulator from the predicted V.
    wildcard_constraints:
        model=model_pattern(POTENTIAL_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv evaluate {input.predictions} --dataset {input.test}"
        " --output-dir results/evaluation/{wildcards.model} > {log} 2>&1"


rule evaluate_diffusion_model:
    input:
        generated="results/evaluation/{model}/generated.nc",
        model="results/models/{model}/model.pt",
        split=diffusion_split_file,
        train=lambda wildcards: model_split(wildcards, "train"),
    output:
        metrics="results/evaluation/{model}/metrics.csv",
        figures=[
            report(
                f"results/evaluation/{{model}}/{figure}",
                caption=f"../report/diffusion_{figure.removesuffix('.png')}.rst",
                category="Models",
                subcategory="{model}",
                labels={"model": "{model}", "figure": figure.removesuffix(".png")},
            )
            for figure in DIFFUSION_FIGURES
        ],
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    # P2 Sec. IV-VI: antidot accuracy (strict and modulo the wire's symmetries) against the
    # trace-blind baselines, pixel correlation, generation snapshots, attention, score field.
    wildcard_constraints:
        model=model_pattern(DIFFUSION_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    threads: 2
    shell:
        "mesoinv evaluate {input.generated} --dataset {input.split} --model {input.model}"
        " --train {input.train} --output-dir results/evaluation/{wildcards.model}"
        " --device auto > {log} 2>&1"


# Summaries and the results page (the report's landing content; its inputs and the report
# categories of the metric files are defined in common.smk: results_files, KEY_FIGURES).


rule models_summary:
    # Every parameter model against its baselines, its ceiling and the paper (test split).
    input:
        metrics=lambda wildcards: model_metric_files(PARAMETER_MODEL_KINDS),
        paper=lambda wildcards: [
            f"results/evaluation/{name}/paper_comparison.csv"
            for name in models_of_kinds(PARAMETER_MODEL_KINDS)
        ],
    output:
        html=report(
            "results/reports/models.html",
            caption="../report/models.rst",
            category="All results",
            subcategory="P1 parameters",
            labels={"model": "every parameter model", "file": "table (readable)"},
        ),
        csv="results/reports/models.csv",
    log:
        "logs/models_summary.log",
    benchmark:
        "logs/benchmarks/models_summary.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        title="P1 Sec. III: every parameter model against its baselines and the paper",
    script:
        "../../scripts/models_summary.py"


rule potential_models_summary:
    # Both potential models against their baselines and P1's r_P (test split).
    input:
        metrics=lambda wildcards: model_metric_files(POTENTIAL_MODEL_KINDS),
        paper=lambda wildcards: [
            f"results/evaluation/{name}/paper_comparison.csv"
            for name in models_of_kinds(POTENTIAL_MODEL_KINDS)
        ],
    output:
        html=report(
            "results/reports/potential_models.html",
            caption="../report/potential_models.rst",
            category="All results",
            subcategory="P1 potential",
            labels={"model": "every potential model", "file": "table (readable)"},
        ),
        csv="results/reports/potential_models.csv",
    log:
        "logs/potential_models_summary.log",
    benchmark:
        "logs/benchmarks/potential_models_summary.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        title="P1 Sec. IV: every potential model against its baselines and the paper",
    script:
        "../../scripts/models_summary.py"


rule diffusion_models_summary:
    # P2 models: antidot accuracy against the lookup, placement and trace-blind baselines.
    input:
        metrics=lambda wildcards: model_metric_files(DIFFUSION_MODEL_KINDS),
    output:
        html=report(
            "results/reports/diffusion_models.html",
            caption="../report/diffusion_models.rst",
            category="All results",
            subcategory="P2 antidots",
            labels={"model": "every diffusion model", "file": "table (readable)"},
        ),
        csv="results/reports/diffusion_models.csv",
    log:
        "logs/diffusion_models_summary.log",
    benchmark:
        "logs/benchmarks/diffusion_models_summary.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        title="P2: every diffusion model against its baselines",
    script:
        "../../scripts/models_summary.py"


rule results_page:
    # The report's landing content (workflow/report/workflow.rst includes results.html): per
    # paper the headline metric of every model beside every baseline of its metric file, the
    # ceiling and the paper; key figures; results.json holds the same numbers and the split
    # sizes (docs/demo-results.json is its copy from the last demo run, checked against the
    # README by tests/test_readme.py). Marks the metric files and prediction examples for
    # the report.
    input:
        metrics=results_files(
            "metrics.csv",
            caption="../report/metrics_file.rst",
            category="All results",
            subcategory=lambda name, kind: RESULTS_SUBCATEGORY[kind],
            labels=lambda name, kind: {"model": name, "file": "metrics.csv"},
        ),
        paper=[
            f"results/evaluation/{name}/paper_comparison.csv"
            for name in models_of_kinds(PARAMETER_MODEL_KINDS + POTENTIAL_MODEL_KINDS)
        ],
        figures=[
            f"results/evaluation/{name}/{KEY_FIGURES[config['models'][name]['kind']]}"
            for name in models_of_kinds(RESULTS_KINDS)
        ],
        examples=results_files(
            "prediction-example.png",
            caption="../report/prediction_example.rst",
            category="Models",
            subcategory=lambda name, kind: name,
            labels=lambda name, kind: {"model": name, "figure": "prediction example"},
        ),
        manifests=[
            f"results/datasets/{name}/manifest.json" for name in config["datasets"]
        ],
        # where the config has seed_replicates (replicates.smk): a spread line per row
        spread=seed_spread_files(),
    output:
        html="results/reports/results.html",
        json=report(
            "results/reports/results.json",
            caption="../report/results.rst",
            category="All results",
            subcategory="Summary",
            labels={"model": "every model", "file": "results.json"},
        ),
    log:
        "logs/results_page.log",
    benchmark:
        "logs/benchmarks/results_page.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        models=results_models(),
    script:
        "../../scripts/results_page.py"
