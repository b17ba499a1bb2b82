"""Evaluation of P2 diffusion models (generated LDOS images → antidot positions): matching
and scores of positions (:mod:`.positions`), ``metrics.csv`` (:mod:`.metrics`), figures
(:mod:`.figures`) and the workflow's entry point (:func:`.evaluate.evaluate_diffusion_model`)."""
