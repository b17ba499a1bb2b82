# Simulation of P2 datasets (nanowire with two antidots): the P1 shard rule, for P2 names.
# G(B) traces are cheaper per sample than P1's PLDOS and need less memory.


use rule simulate_p1_shard as simulate_p2_shard with:
    wildcard_constraints:
        dataset=kind_pattern("p2_magnetoconductance"),
    resources:
        mem_mb=500,
        runtime=60,
        mpi="mpiexec",
        tasks=1,
