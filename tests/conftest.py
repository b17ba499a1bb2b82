"""Fixtures shared by the test modules that train tiny networks."""

import logging
import warnings

import pytest


@pytest.fixture
def one_thread_quiet():
    """One torch thread (tiny networks: threads only add overhead and nondeterminism in the
    last bits) and Lightning's info logs and warnings silenced, restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    level = logging.getLogger("pytorch_lightning").level
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="pytorch_lightning")
        warnings.filterwarnings("ignore", module="lightning_fabric")
        yield
    logging.getLogger("pytorch_lightning").setLevel(level)
    torch.set_num_threads(threads)
