# Simulation stage: Kwant samples, one job per shard of consecutive sample ids.


rule dataset_definition:
    # The sample-defining part of a dataset's config (no n_samples, no shard_size). Shards
    # depend on it: changing the physics reruns them, growing the dataset does not.
    output:
        "results/datasets/{dataset}/definition.json",
    log:
        "logs/dataset_definition/{dataset}.log",
    benchmark:
        "logs/benchmarks/dataset_definition/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/mesoinv.yaml"
    params:
        definition=definition_param,
    script:
        "../../scripts/write_dataset_definition.py"


rule simulate_p1_shard:
    input:
        definition="results/datasets/{dataset}/definition.json",
    output:
        "results/datasets/{dataset}/shards/{dataset}-{shard}.nc",
    log:
        "logs/simulate/{dataset}/{dataset}-{shard}.log",
    benchmark:
        "logs/benchmarks/simulate/{dataset}/{dataset}-{shard}.tsv"
    # The same shard machinery serves every dataset kind; this rule takes the P1 datasets.
    wildcard_constraints:
        dataset=kind_pattern("p1_pldos"),
    conda:
        "../../envs/mesoinv.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
        # MPI launch: `tasks` ranks share the shard (profiles/slurm: srun --mpi=pmi2, tasks > 1).
        # With tasks = 1 the command runs as a plain process, no MPI launcher.
        mpi="mpiexec",
        tasks=1,
    params:
        ids=shard_id_range,
        on_failure=lambda wildcards: config["datasets"][wildcards.dataset][
            "on_sample_failure"
        ],
    shell:
        # Sequential MUMPS, one process per core: no hidden BLAS/OpenMP threads. Finished
        # samples are kept beside the shard until it is complete (resumable after a kill).
        "export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1;"
        " if [ {resources.tasks} -gt 1 ]; then launch='{resources.mpi} -n {resources.tasks}';"
        " else launch=''; fi;"
        " $launch mesoinv simulate --dataset-definition {input.definition}"
        " --ids {params.ids} --on-sample-failure {params.on_failure}"
        " --expect-ranks {resources.tasks} --output {output} --no-progress"
        " > {log} 2>&1"
