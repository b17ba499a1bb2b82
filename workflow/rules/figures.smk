# Figures for the report.


rule plot_p1_sample:
    # P1 Fig. 2: disorder potential and PLDOS of one sample, side by side.
    input:
        shard_of_sample,
    output:
        report(
            "results/figures/{dataset}/sample-{sample_id}.png",
            caption="../report/p1_sample.rst",
            category="P1 samples",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "sample": "{sample_id}"},
        ),
    log:
        "logs/figures/{dataset}/sample-{sample_id}.log",
    benchmark:
        "logs/benchmarks/figures/{dataset}/sample-{sample_id}.tsv"
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv plot-sample {input} --sample-id {wildcards.sample_id}"
        " --output {output} > {log} 2>&1"
