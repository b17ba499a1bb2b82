"""LightningModule of P2's conditional diffusion model: ε-prediction training with SAM or Adam.

SAM (Foret et al. 2021; P2 Sec. IV) evaluates the loss twice per batch: at the weights w, and
at w + ρ g/|g| where g is the first gradient; the base optimizer (Adam) then steps from w with
the second gradient. Doing this inside Lightning needs manual optimization, and four things
must hold (NOTES §6, §8), each of which this module arranges:

1. The global step advances once per batch: the first pass runs in ``training_step``, the
   second through ``optimizer.step(closure=...)`` of Lightning's optimizer wrapper (SAM's
   ``step(closure)`` perturbs, runs the closure, restores and steps Adam). Calling SAM's
   ``first_step``/``second_step`` directly would leave ``trainer.global_step`` at 0.
2. Both passes evaluate the same loss function: the timesteps t, the noise ε and the
   condition-dropout mask are drawn once per batch and shared; the network has no dropout
   and uses GroupNorm (no running statistics to update twice).
3. The checkpoint holds Adam's moments. pytorch-optimizer 4.1's ``SAM`` shares one ``state``
   dict and its ``param_groups`` with the base optimizer, so ``SAM.state_dict()`` carries
   ``exp_avg``/``exp_avg_sq`` and ``SAM.load_state_dict`` re-links them (checked in its
   source and by tests/test_diffusion_models.py); :func:`make_diffusion_optimizer` asserts
   the sharing so that a future version that drops it fails loudly instead of resuming
   with fresh moments.
4. Precision is ``32-true``, ``64-true`` or ``bf16-mixed`` (:data:`SUPPORTED_PRECISIONS`):
   Lightning's ``16-mixed`` plugin calls the closure itself and then
   ``scaler.step(optimizer)`` without it, which SAM cannot run, and ``bf16-true`` keeps the
   weights in bfloat16, where Adam's small updates round away; they are refused in ``setup``
   with the reason (:func:`check_precision`, the config check's text).

EMA of the weights (option ``ema_decay``) uses Lightning 2.6's ``EMAWeightAveraging``
callback, returned by :meth:`DiffusionModule.configure_callbacks`. It updates in
``on_train_batch_end`` whenever ``trainer.global_step`` has advanced, which under manual
optimization happens through ``opt.step()`` (point 1), so it works here (tested). Its
behaviour: validation runs with the EMA weights, a checkpoint's ``state_dict`` holds the EMA
weights (the raw ones under ``current_model_state``), and at the end of ``fit`` the module is
left holding the EMA weights.

Batches are ``(image, trace)``: images (B, 1, H, W) and traces (B, n_fields), both normalised
by the data module.
"""

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_optimizer import SAM
from torch import nn

from ..config import precision_refusal
from ..models.gaussian_diffusion import GaussianDiffusion
from .optimizers import NonFiniteLossError, make_optimizer

__all__ = ["DiffusionModule", "make_diffusion_optimizer", "check_precision",
           "SUPPORTED_PRECISIONS", "CHECKPOINT_VERSION"]

#: Lightning precisions this module trains under (see :func:`check_precision`); the config
#: schema's ``precision`` of p2_diffusion offers these and ``auto``.
SUPPORTED_PRECISIONS = ("32-true", "64-true", "bf16-mixed")

#: Written into every checkpoint by :meth:`DiffusionModule.on_save_checkpoint`.
CHECKPOINT_VERSION = "mesoinv-diffusion-module-1"

#: Base optimizers SAM can wrap, by config name.
SAM_BASES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def check_precision(precision: str, *, has_grad_scaler: bool = False) -> None:
    """Refuse precisions the SAM closure path cannot run or that lose the training's updates.

    Parameters
    ----------
    precision : str
        Lightning's precision string (``trainer.precision``).
    has_grad_scaler : bool
        The precision plugin carries an fp16 ``GradScaler`` (refused whatever its name).

    Raises
    ------
    ValueError
        For ``16-mixed``, ``bf16-true`` and any other precision outside
        :data:`SUPPORTED_PRECISIONS`, with the reason (:func:`mesoinv.config.precision_refusal`).
    """
    if precision in SUPPORTED_PRECISIONS and not has_grad_scaler:
        return
    # A GradScaler is the fp16 AMP plugin whatever the precision's name.
    reason = precision_refusal("p2_diffusion", "16-mixed" if has_grad_scaler else precision)
    raise ValueError(
        f"precision {precision!r} is not supported by the diffusion module: "
        f"{reason or 'not a precision it was tested under'}. Supported: "
        f"{', '.join(SUPPORTED_PRECISIONS)}")


def make_diffusion_optimizer(parameters, config: dict) -> torch.optim.Optimizer:
    """The optimizer named in ``config``.

    Parameters
    ----------
    parameters : iterable of tensors
    config : dict
        ``name``: ``sam`` or any name of :func:`mesoinv.training.p1_module.make_optimizer`
        (``adam``, ``adamw``, ``sgd``); ``learning_rate``; ``weight_decay`` (default 0). For
        SAM also ``base`` (``adam`` default, or ``adamw``), ``rho`` (neighbourhood radius,
        default 0.05) and ``adaptive`` (ASAM, default False).

    Raises
    ------
    RuntimeError
        When the installed SAM does not share its state with its base optimizer (its
        ``state_dict`` would then lose Adam's moments).
    """
    name = config["name"]
    learning_rate = config["learning_rate"]
    weight_decay = config.get("weight_decay", 0.0)
    if name != "sam":
        return make_optimizer(parameters, name, learning_rate, weight_decay)
    base_name = config.get("base", "adam")
    if base_name not in SAM_BASES:
        raise ValueError(f"unknown SAM base optimizer {base_name!r} (known: "
                         f"{', '.join(SAM_BASES)})")
    optimizer = SAM(parameters, SAM_BASES[base_name], rho=config.get("rho", 0.05),
                    adaptive=config.get("adaptive", False), lr=learning_rate,
                    weight_decay=weight_decay)
    if optimizer.state is not optimizer.base_optimizer.state:
        raise RuntimeError("this pytorch-optimizer SAM keeps its base optimizer's state apart, "
                           "so its state_dict would not carry Adam's moments: save and restore "
                           "optimizer.base_optimizer.state_dict() explicitly")
    return optimizer


class DiffusionModule(pl.LightningModule):
    """Training of a trace-conditioned denoiser (ε, v or x₀ prediction) with SAM or a plain
    optimizer.

    Parameters
    ----------
    network : nn.Module
        ``network(x_t, t, trace, keep_condition)`` → predicted noise, e.g.
        :class:`mesoinv.models.p2_unet.ConditionalUNet`.
    model_name : str
        Named in errors.
    optimizer : dict
        See :func:`make_diffusion_optimizer` (``{"name": "sam", "learning_rate": 2e-4,
        "rho": 0.05}`` or ``{"name": "adam", ...}``).
    diffusion : dict or None
        Keyword arguments of :class:`GaussianDiffusion` (``num_timesteps``, ``beta_start``,
        ``beta_end``); None → P2's 1000 linear steps.
    condition_dropout : float
        Probability of training a sample with the null condition (classifier-free guidance).
    ema_decay : float or None
        EMA decay of the weights (e.g. 0.999) through Lightning's ``EMAWeightAveraging``;
        None → no EMA.
    validation_seed : int
        Seeds the t, noise of each validation batch, so ``val_loss`` compares across epochs.
    """

    def __init__(self, network: nn.Module, *, model_name: str, optimizer: dict,
                 diffusion: dict | None = None, condition_dropout: float = 0.1,
                 ema_decay: float | None = None, validation_seed: int = 0):
        super().__init__()
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1], got {condition_dropout}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
        self.automatic_optimization = False
        self.network = network
        self.model_name = model_name
        self.optimizer_config = dict(optimizer)
        self.diffusion = GaussianDiffusion(**(diffusion or {}))
        self.condition_dropout = condition_dropout
        self.ema_decay = ema_decay
        self.validation_seed = validation_seed

    def forward(self, x_t, t, trace=None, keep_condition=None, **kwargs):
        return self.network(x_t, t, trace, keep_condition, **kwargs)

    @property
    def uses_sam(self) -> bool:
        return self.optimizer_config["name"] == "sam"

    def setup(self, stage: str) -> None:
        plugin = self.trainer.precision_plugin
        check_precision(str(self.trainer.precision),
                        has_grad_scaler=getattr(plugin, "scaler", None) is not None)

    def configure_optimizers(self):
        return make_diffusion_optimizer(self.network.parameters(), self.optimizer_config)

    def configure_callbacks(self):
        if self.ema_decay is None:
            return []
        return [EMAWeightAveraging(decay=self.ema_decay)]

    def _check_finite(self, loss, what: str, batch_idx: int) -> None:
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(
                f"model '{self.model_name}': {what} is {loss.item()} at global step "
                f"{self.trainer.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "lower the learning rate (or SAM's rho) or check the inputs for NaN/inf")

    def training_step(self, batch, batch_idx):
        image, trace = batch
        optimizer = self.optimizers()
        # Drawn once: both SAM passes must differ only in the weights.
        t, noise, keep = self.diffusion.draw_training_inputs(image, self.condition_dropout)

        def batch_loss():
            return self.diffusion.loss(self.network, image, trace, t=t, noise=noise,
                                       keep_condition=keep)

        optimizer.zero_grad()
        loss = batch_loss()
        self._check_finite(loss, "training loss", batch_idx)
        self.manual_backward(loss)

        if self.uses_sam:
            def perturbed_pass():
                # SAM has perturbed the weights and zeroed the gradients; recompute them there.
                perturbed_loss = batch_loss()
                self._check_finite(perturbed_loss, "training loss at SAM's perturbed weights",
                                   batch_idx)
                self.manual_backward(perturbed_loss)
                return perturbed_loss

            optimizer.step(closure=perturbed_pass)
        else:
            optimizer.step()
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=image.shape[0])
        return loss.detach()

    def validation_step(self, batch, batch_idx):
        image, trace = batch
        # Fixed draws per batch (conditional, no dropout): val_loss measures the same
        # noisy inputs at every epoch.
        generator = torch.Generator().manual_seed(self.validation_seed * 100_003 + batch_idx)
        t, noise, _ = self.diffusion.draw_training_inputs(image, 0.0, generator)
        loss = self.diffusion.loss(self.network, image, trace, t=t, noise=noise)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=image.shape[0], sync_dist=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mesoinv_diffusion"] = {"version": CHECKPOINT_VERSION,
                                           "optimizer": self.optimizer_config["name"],
                                           "diffusion": self.diffusion.config()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("mesoinv_diffusion")
        if saved is None or saved.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint is not a {CHECKPOINT_VERSION} checkpoint "
                             f"(found {saved and saved.get('version')}); start a fresh run")
        if saved["optimizer"] != self.optimizer_config["name"]:
            raise ValueError(f"checkpoint was trained with optimizer {saved['optimizer']!r}, "
                             f"this run uses {self.optimizer_config['name']!r}: its optimizer "
                             "state cannot be resumed; start a fresh run")
        # Checkpoints written before ``prediction`` existed were ε-prediction runs.
        if {"prediction": "epsilon", **saved["diffusion"]} != self.diffusion.config():
            raise ValueError(f"checkpoint's diffusion schedule {saved['diffusion']} differs from "
                             f"this run's {self.diffusion.config()}; start a fresh run")
