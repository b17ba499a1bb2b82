"""Optimizer pieces shared by the P1 and P2 LightningModules."""

import torch
from torch import nn

__all__ = ["NonFiniteLossError", "make_optimizer", "count_parameters"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the model and step."""


def make_optimizer(parameters, name: str, learning_rate: float, weight_decay: float = 0.0):
    """torch.optim optimizer by config name (adam, adamw, sgd)."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, weight_decay=weight_decay,
                               momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r} (known: adam, adamw, sgd)")


def count_parameters(network: nn.Module) -> int:
    """Number of parameters of a network."""
    return sum(p.numel() for p in network.parameters())
