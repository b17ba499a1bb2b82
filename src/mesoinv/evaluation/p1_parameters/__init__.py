"""Evaluation of P1 parameter models (P1 Sec. III, Fig. 3): metrics (:mod:`.metrics`), the Bayes
ceiling from the true potential (:mod:`.posterior`), figures (:mod:`.figures`) and the
workflow's entry point :func:`.evaluate.evaluate_parameter_model`."""
