# Prediction stage (mesoinv.inference): a trained model applied to its evaluation split with
# `mesoinv predict`, the command users run on their own maps and traces. P1 models write
# predictions of the test split; P2 diffusion models generate LDOS images from every trace of
# their evaluation split. The evaluation stage (evaluate.smk) reads these files.


rule predict_test_split:
    input:
        model="results/models/{model}/model.pt",
        test=lambda wildcards: model_split(wildcards, "test"),
    output:
        predictions="results/evaluation/{model}/predictions-test.nc",
        figure="results/evaluation/{model}/prediction-example.png",
    log:
        "logs/predict/{model}.log",
    benchmark:
        "logs/benchmarks/predict/{model}.tsv"
    # The same function as `mesoinv predict`: its numbers are the evaluation's, bit for bit.
    wildcard_constraints:
        model=model_pattern(PARAMETER_MODEL_KINDS + POTENTIAL_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv predict {input.model} {input.test} --output {output.predictions}"
        " --figure {output.figure} > {log} 2>&1"


rule generate_evaluation_split:
    input:
        model="results/models/{model}/model.pt",
        split=diffusion_split_file,
    output:
        generated="results/evaluation/{model}/generated.nc",
        figure="results/evaluation/{model}/prediction-example.png",
    log:
        "logs/predict/{model}.log",
    benchmark:
        "logs/benchmarks/predict/{model}.tsv"
    # P2: LDOS images generated from every trace of the evaluation split (val, as P2, or test;
    # the model's `evaluation_split`), several draws each, with the
    # sampler, steps, guidance and seed of the model's `sampling` block; `mesoinv predict`.
    # --device auto: the GPU where the job has one (the GPU partition), else the CPU; the
    # per-trace seeds draw the same noise on both.
    wildcard_constraints:
        model=model_pattern(DIFFUSION_MODEL_KINDS),
    conda:
        "../../envs/mesoinv.yaml"
    threads: 2
    shell:
        "mesoinv predict {input.model} {input.split} --output {output.generated}"
        " --figure {output.figure} --device auto > {log} 2>&1"
