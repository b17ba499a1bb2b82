# Training stage: one Lightning job per model (profiles/slurm sends it to the GPU partition).


rule model_definition:
    # The model's validated config entry. Training depends on it: changing a hyperparameter
    # reruns this model's training and evaluation, never a simulation.
    output:
        "results/models/{model}/definition.json",
    log:
        "logs/model_definition/{model}.log",
    benchmark:
        "logs/benchmarks/model_definition/{model}.tsv"
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    params:
        definition=model_definition_param,
    script:
        "../../scripts/write_dataset_definition.py"


rule train_model:
    input:
        definition="results/models/{model}/definition.json",
        train=lambda wildcards: model_split(wildcards, "train"),
        val=lambda wildcards: model_split(wildcards, "val"),
    output:
        model="results/models/{model}/model.pt",
        metrics="results/models/{model}/training_metrics.csv",
        loss_curve=report(
            "results/models/{model}/loss_curve.png",
            caption="../report/loss_curve.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "loss curve"},
        ),
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/benchmarks/train/{model}.tsv"
    # Resumable state (checkpoints, SLURM hpc checkpoints, CSV logs) lives in
    # results/training/<model>/<hash>/, NOT in the outputs: Snakemake deletes declared
    # outputs before a rerun. A killed job resumes when the rule reruns; under SLURM,
    # Lightning requeues the job itself (SIGURG), so Snakemake must not retry it too.
    retries: 0
    conda:
        "../../envs/mesoinv.yaml"
    # Capped at --cores locally; on SLURM the allocation is cpus_per_gpu (profiles/slurm), and
    # `mesoinv train` never starts more torch threads than the job's CPUs. (Not
    # workflow.cores: it is undefined under the SLURM executor, where no --cores is given.)
    threads: 8
    resources:
        mem_mb=4000,
        runtime=720,
    shell:
        "mesoinv train --definition {input.definition} --train {input.train}"
        " --val {input.val} --state-dir results/training/{wildcards.model}"
        " --output {output.model} --metrics-csv {output.metrics}"
        " --loss-curve {output.loss_curve} --threads {threads} --no-progress"
        " > {log} 2>&1"
