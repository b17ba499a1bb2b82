# Aggregation stage: check the shards of each dataset, then merge them into split files.


rule validate_dataset:
    # Every shard: readable, expected ids (no duplicates, none missing), finite numbers, the
    # dataset's configuration hash and geometry. Fails naming the first bad shard.
    input:
        shards=lambda wildcards: shard_files(wildcards.dataset),
    output:
        "results/datasets/{dataset}/validation.json",
    log:
        "logs/validate_dataset/{dataset}.log",
    benchmark:
        "logs/benchmarks/validate_dataset/{dataset}.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        entry=entry_param,
    script:
        "../../scripts/validate_dataset.py"


rule split_dataset:
    # A sample's split is a hash of (seed, id): growing the dataset keeps old samples in place.
    input:
        validation="results/datasets/{dataset}/validation.json",
        shards=lambda wildcards: shard_files(wildcards.dataset),
    output:
        train="results/datasets/{dataset}/{dataset}-train.nc",
        val="results/datasets/{dataset}/{dataset}-val.nc",
        test="results/datasets/{dataset}/{dataset}-test.nc",
        manifest="results/datasets/{dataset}/manifest.json",
    log:
        "logs/split_dataset/{dataset}.log",
    benchmark:
        "logs/benchmarks/split_dataset/{dataset}.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    params:
        entry=entry_param,
    script:
        "../../scripts/split_dataset.py"


rule dataset_summary:
    input:
        splits=lambda wildcards: split_files(),
    output:
        html=report(
            "results/reports/datasets.html",
            caption="../report/datasets.rst",
            category="Datasets",
        ),
        csv="results/reports/datasets.csv",
    log:
        "logs/dataset_summary.log",
    benchmark:
        "logs/benchmarks/dataset_summary.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    script:
        "../../scripts/dataset_summary.py"
