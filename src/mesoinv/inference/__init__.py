"""Inference stage: turn a model file and inputs into predictions.

Model loading for inference, readers of inputs (P1 PLDOS maps from netCDF splits or ``.npy``
files; P2 G(B) traces from netCDF splits or CSV), the P1 predictor, the P2 generator, the
antidot detector applied to generated images, and the writers and readers of the prediction
file formats. The CLI's ``predict`` and the workflow's prediction rules call it; the
evaluation stage reads what it wrote.

Imports run one way: ``physics → datasets → models → training → inference → evaluation → cli``.
"""
