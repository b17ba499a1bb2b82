"""Benchmark group "training": the group's entry point ``run``.

Three model families, each in its own module (their docstrings list their rows; keys are
stable, docs/benchmarks.md says what each means), in this order:

* ``training_p1_parameters``  the P1 parameter CNN (``train.config.*``, ``train.a/b/e/f/c/d``,
                              ``train.ratio.*``, ``train.check.*``; ``train.paper.*`` at P1's
                              256 × 192 sites): Lightning vs a plain PyTorch loop, the data
                              loaders, and prediction.
* ``training_p1_potential``   the P1 potential models (``train.fourier.*``,
                              ``train.encdec.*``), timed in the same repeats as the parameter
                              CNN's demo geometry; their rows follow its demo rows.
* ``training_p2_diffusion``   P2's conditional diffusion U-Net (``train.p2.*``): SAM vs Adam,
                              DDPM vs DDIM, run after the P1 rows in its own repeats.
* ``training_speed``          ``torch.compile``, ``channels_last`` and 1 vs 2 threads for the
                              three P1 networks and the P2 U-Net (``train.speed.*``), and P2
                              generation per trace for the 1-NN lookup, the direct placement
                              model and the diffusion model (``train.p2gen.*``); last, in its
                              own repeats. ``run.py --only training.speed`` runs it alone.

The shared pieces (step clock, steady-state timing, Lightning and plain-loop runs, P1 split
files, throughput/overhead/paired-ratio rows) are in ``common``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

try:
    from . import (training_p1_parameters, training_p1_potential, training_p2_diffusion,
                   training_speed)
    from .common import Row
except ImportError:  # pragma: no cover - imported as a top-level module
    import training_p1_parameters
    import training_p1_potential
    import training_p2_diffusion
    import training_speed
    from common import Row


def _measure_p1(cfg, directory: Path, tag: str):
    """One P1 geometry: the parameter CNN's timings and, if ``cfg.potential_models``, the
    potential models' in the same repeats. Returns (parameter CNN measurements,
    PotentialModels)."""
    potential = training_p1_potential.PotentialModels()
    measured = training_p1_parameters.measure(
        cfg, directory, tag, companions=[potential] if cfg.potential_models else [])
    return measured, potential


@contextlib.contextmanager
def group_settings():
    """The settings every training row runs under, restored afterwards: torch's intra-op
    threads = ``OMP_NUM_THREADS`` (1 as run.py sets it), deterministic algorithms (as
    ``train_model`` sets on the CPU, for all paths), Lightning's start-up chatter silenced."""
    import pytorch_lightning  # noqa: F401 - sets its loggers to INFO on import
    import torch

    # Lightning's start-up chatter (accelerators, tips, SLURM hints) is not a result.
    levels = {name: logging.getLogger(name).level
              for name in ("pytorch_lightning", "lightning_fabric")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.WARNING)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.use_deterministic_algorithms(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(pytorch_lightning|lightning_fabric)\.")
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def run(quick: bool = False) -> list[Row]:
    """All training rows. ``quick``: the test geometry, a few steps, one repeat."""
    parameters = training_p1_parameters
    demo_cfg = parameters.QUICK if quick else parameters.DEMO
    paper_cfg = parameters.QUICK_PAPER if quick else parameters.PAPER
    p2_cfg = training_p2_diffusion.P2_QUICK if quick else training_p2_diffusion.P2_DEMO
    speed_cfg = training_speed.SPEED_QUICK if quick else training_speed.SPEED_DEMO
    with group_settings(), \
            tempfile.TemporaryDirectory(prefix="mesoinv-bench-training-") as tmp:
        tmp = Path(tmp)
        (tmp / "demo").mkdir()
        (tmp / "paper").mkdir()
        demo, demo_potential = _measure_p1(demo_cfg, tmp / "demo", "demo")
        paper, paper_potential = _measure_p1(paper_cfg, tmp / "paper", "paper")
        p2 = training_p2_diffusion.measure(p2_cfg)
        speed = training_speed.measure(speed_cfg)
        return (parameters.rows(demo, "train", paper=False) + demo_potential.rows("train")
                + parameters.rows(paper, "train.paper", paper=True)
                + paper_potential.rows("train.paper") + training_p2_diffusion.rows(p2)
                + training_speed.rows(speed))


def run_speed(quick: bool = False) -> list[Row]:
    """The speed rows alone (``run.py --only training.speed``): torch.compile, channels_last
    and threads for the four networks, and P2 generation per trace."""
    with group_settings():
        return training_speed.rows(training_speed.measure(
            training_speed.SPEED_QUICK if quick else training_speed.SPEED_DEMO))
