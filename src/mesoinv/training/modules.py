"""LightningModules: the training logic around the plain networks of :mod:`mesoinv.models`."""

import pytorch_lightning as pl
import torch
from torch import nn

__all__ = ["NonFiniteLossError", "RegressionModule", "make_optimizer"]


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


class RegressionModule(pl.LightningModule):
    """Supervised regression with a mean-squared-error loss on standardised targets.

    Serves every image → numbers/image model of P1 (parameters, Fourier coefficients,
    potential): the network is given, the loss is MSE (P1 App. A), the optimizer from config.

    Parameters
    ----------
    network : nn.Module
        Maps a batch of normalised inputs to normalised predictions.
    model_name : str
        Named in errors (non-finite loss).
    optimizer : dict
        ``{"name", "learning_rate", "weight_decay"}`` (config ``optimizer`` block).
    """

    def __init__(self, network: nn.Module, *, model_name: str, optimizer: dict):
        super().__init__()
        self.network = network
        self.model_name = model_name
        self.optimizer_config = dict(optimizer)
        self.loss = nn.MSELoss()

    def forward(self, inputs):
        return self.network(inputs)

    def _loss(self, batch):
        inputs, targets = batch
        prediction = self.network(inputs)
        return self.loss(prediction.float(), targets.float())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(
                f"model '{self.model_name}': training loss is {loss.item()} at global step "
                f"{self.trainer.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "lower the learning rate or check the inputs for NaN/inf")
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(batch[1]), sync_dist=True)
        return loss

    def configure_optimizers(self):
        return make_optimizer(self.network.parameters(), self.optimizer_config["name"],
                              self.optimizer_config["learning_rate"],
                              self.optimizer_config.get("weight_decay", 0.0))


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
