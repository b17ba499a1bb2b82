"""Evaluation of P1 potential-reconstruction models (P1 Sec. IV, Figs. 4-8): metrics
(:mod:`.metrics`), Eq. 1 and its least-squares inverse (:mod:`.projection`), the PLDOS
recomputed from the predicted potentials (:mod:`.consistency`), the paper's statements
(:mod:`.paper`), figures (:mod:`.figures`) and the workflow's entry point
:func:`.evaluate.evaluate_potential_model`."""
