"""P1's LightningModule: the regression training logic around the plain networks of
:mod:`mesoinv.models` (parameter CNN, Fourier CNN, encoder-decoder)."""

import pytorch_lightning as pl
import torch
from torch import nn

from .optimizers import NonFiniteLossError, make_optimizer

__all__ = ["RegressionModule"]


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
        ``{"name", "learning_rate", "weight_decay"}`` and optionally ``"schedule"``
        (``constant`` or ``cosine``; config ``optimizer`` block).
    """

    def __init__(self, network: nn.Module, *, model_name: str, optimizer: dict,
                 channels_last: bool = False):
        super().__init__()
        # channels_last: the network's weights and each batch in NHWC memory order, a CPU
        # speed-up measured for the Fourier CNN and the encoder-decoder (train_p1's
        # CHANNELS_LAST_KINDS; docs/benchmarks.md, training.speed).
        self.channels_last = bool(channels_last)
        self.network = (network.to(memory_format=torch.channels_last) if self.channels_last
                        else network)
        self.model_name = model_name
        self.optimizer_config = dict(optimizer)
        self.loss = nn.MSELoss()

    def forward(self, inputs):
        return self.network(inputs)

    def _loss(self, batch):
        inputs, targets = batch
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        prediction = self.network(inputs)
        # float32 at least (autocast's bf16/fp16 outputs), float64 under 64-true.
        dtype = torch.promote_types(prediction.dtype, torch.float32)
        return self.loss(prediction.to(dtype), targets.to(dtype))

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
        optimizer = make_optimizer(self.network.parameters(), self.optimizer_config["name"],
                                   self.optimizer_config["learning_rate"],
                                   self.optimizer_config.get("weight_decay", 0.0))
        schedule = self.optimizer_config.get("schedule", "constant")
        if schedule == "constant":
            return optimizer
        if schedule != "cosine":
            raise ValueError(f"model '{self.model_name}': unknown optimizer.schedule "
                             f"{schedule!r} (known: constant, cosine)")
        # K = the steps the trainer plans (max_epochs x batches, or max_steps if fewer), so
        # the rate reaches 0 at the planned end; the scheduler's state travels in every
        # Lightning checkpoint, so a resumed run continues the same curve.
        planned_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=planned_steps)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
