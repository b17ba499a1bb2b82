# Figures for the report.


rule plot_p1_sample:
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
    # P1 Fig. 2: disorder potential and PLDOS of one sample, side by side.
    wildcard_constraints:
        dataset=kind_pattern("p1_pldos"),
    conda:
        "../../envs/mesoinv.yaml"
    shell:
        "mesoinv plot-sample {input} --sample-id {wildcards.sample_id}"
        " --output {output} > {log} 2>&1"


use rule plot_p1_sample as plot_p2_sample with:
    output:
        report(
            "results/figures/{dataset}/sample-{sample_id}.png",
            caption="../report/p2_sample.rst",
            category="P2 samples",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "sample": "{sample_id}"},
        ),
    # P2 Fig. 1: the lattice with its antidots, the LDOS image and the G(B) trace.
    wildcard_constraints:
        dataset=kind_pattern("p2_magnetoconductance"),
