"""Precision: every value the config schema accepts for each model kind trains one real step
on the CPU through the production Lightning path; every other Lightning precision is refused
by the config validation with the key and the reason (docs/models.md, "Precision").

The production path is what ``train_p1.train_model`` / ``train_p2.train_diffusion_model``
build: the validated config entry of config/test.yaml, ``resolve_precision`` (and P2's
``check_precision``), the network from its spec, the LightningModule, and ``make_trainer``
(checkpoints, CSV logger, deterministic CPU). Only the data are in-memory tensors instead of
a simulated dataset (the data modules are tested elsewhere; the precision plugin converts
whatever batch the loader yields). One step per case keeps the file in seconds.
"""

import copy
import typing
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from lightning_fabric.connector import (_PRECISION_INPUT_INT, _PRECISION_INPUT_STR,
                                        _PRECISION_INPUT_STR_ALIAS)
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, TensorDataset

from mesoinv.config import ConfigError, validate_config
from mesoinv.models.p2_unet import ConditionalUNet, SinusoidalTimeEmbedding
from mesoinv.training.model_file import network_from_spec
from mesoinv.training.p1_module import RegressionModule
from mesoinv.training.p2_module import SUPPORTED_PRECISIONS, DiffusionModule, check_precision
from mesoinv.training.train_p1 import network_spec
from mesoinv.training.train_p2 import diffusion_network_spec, resolve_definition
from mesoinv.training.trainer import load_best_weights, make_trainer, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"

#: The test config's model of each kind.
MODELS = {"p1_parameter_cnn": "p1_s_nd", "p1_fourier_cnn": "p1_fourier",
          "p1_encoder_decoder": "p1_potential", "p2_diffusion": "p2_ldos"}

#: Every precision Lightning's Trainer takes (strings, their aliases, the integers).
LIGHTNING_PRECISIONS = (*typing.get_args(_PRECISION_INPUT_STR),
                        *typing.get_args(_PRECISION_INPUT_STR_ALIAS),
                        *typing.get_args(_PRECISION_INPUT_INT))

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16

#: What each accepted value must do on the CPU: (precision Lightning runs, dtype of the
#: weights, dtype of the network's output). On the CPU ``auto`` is 32-true and Lightning
#: runs ``16-mixed`` as bf16-mixed (its fp16 GradScaler path is tested apart).
P1_RUNS = {"auto": ("32-true", F32, F32), "32-true": ("32-true", F32, F32),
           "64-true": ("64-true", F64, F64), "bf16-mixed": ("bf16-mixed", F32, BF16),
           "16-mixed": ("bf16-mixed", F32, BF16)}
P2_RUNS = {"auto": ("32-true", F32, F32), "32-true": ("32-true", F32, F32),
           "64-true": ("64-true", F64, F64), "bf16-mixed": ("bf16-mixed", F32, BF16)}
ACCEPTED = {"p1_parameter_cnn": P1_RUNS, "p1_fourier_cnn": P1_RUNS,
            "p1_encoder_decoder": P1_RUNS, "p2_diffusion": P2_RUNS}
CASES = [(kind, precision) for kind, runs in ACCEPTED.items() for precision in runs]

#: The reason the config validation gives for each refused value (a word of it).
REFUSAL_REASONS = {"16-mixed": "SAM", "16-true": "underflow", "bf16-true": "round",
                   "transformer-engine": "Transformer Engine",
                   "transformer-engine-float16": "Transformer Engine",
                   "64": "alias", "32": "alias", "16": "alias", "bf16": "alias",
                   64: "alias", 32: "alias", 16: "alias"}


pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


def config_with(kind: str, precision) -> dict:
    """config/test.yaml with only its model of ``kind``, renamed ``m``, at ``precision``."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["models"] = {"m": {**config["models"][MODELS[kind]], "precision": precision}}
    return config


def definition(kind: str, precision) -> dict:
    """The validated (defaults filled) config entry, one step, as the workflow hands it over."""
    entry = validate_config(config_with(kind, precision))["models"]["m"]
    return {**entry, "name": f"{kind}-{precision}", "max_steps": 1, "max_epochs": 1}


class LossRecorder(Callback):
    """Keeps the loss each training step returned."""

    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(loss.detach().float().clone())


def p1_module(entry: dict) -> tuple[RegressionModule, DataLoader]:
    """The P1 network and module as train_p1 builds them, and a tiny batch of its shape."""
    image_shape, in_channels = (16, 12), len(entry["inputs"]["fields_T"] or [0.0, 0.5])
    n_outputs = {"p1_parameter_cnn": len(entry.get("targets", [])), "p1_fourier_cnn": 6,
                 "p1_encoder_decoder": 1}[entry["kind"]]
    spec = network_spec(entry["kind"], entry["architecture"], image_shape, in_channels,
                        n_outputs)
    torch.manual_seed(0)
    network = network_from_spec(spec)
    module = RegressionModule(network, model_name=entry["name"], optimizer=entry["optimizer"])
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(entry["batch_size"], in_channels, *image_shape, generator=generator)
    targets = (torch.randn(entry["batch_size"], 1, *image_shape, generator=generator)
               if entry["kind"] == "p1_encoder_decoder"
               else torch.randn(entry["batch_size"], n_outputs, generator=generator))
    return module, DataLoader(TensorDataset(images, targets), batch_size=entry["batch_size"])


def p2_module(entry: dict) -> tuple[DiffusionModule, DataLoader]:
    """The P2 U-Net and diffusion module as train_p2 builds them, and a tiny batch."""
    resolved = resolve_definition(entry)
    size, n_fields = 20, 6
    spec = diffusion_network_spec(resolved["architecture"], size, n_fields)
    torch.manual_seed(0)
    network = ConditionalUNet(**spec["kwargs"])
    module = DiffusionModule(network, model_name=entry["name"], optimizer=resolved["optimizer"],
                             diffusion=resolved["diffusion"],
                             condition_dropout=resolved["condition_dropout"],
                             ema_decay=resolved["ema_decay"], validation_seed=resolved["seed"])
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(resolved["batch_size"], 1, size, size, generator=generator)
    traces = torch.randn(resolved["batch_size"], n_fields, generator=generator)
    return module, DataLoader(TensorDataset(images, traces), batch_size=resolved["batch_size"])


def one_step(kind: str, precision, tmp_path, plugins=None):
    """One training step of ``kind`` at ``precision`` on the production trainer, then its
    validation and the best-weight reload, as train_p1/train_p2 run them.

    Returns (trainer, weights before, weights after, the step's loss, the dtype of the
    network's output in the step).
    """
    entry = definition(kind, precision)
    resolved = resolve_precision(entry["precision"], on_gpu=False)
    if kind == "p2_diffusion":
        check_precision(resolved)  # as train_diffusion_model does before anything runs
        module, data = p2_module(entry)
    else:
        module, data = p1_module(entry)
    before = [p.detach().double().clone() for p in module.network.parameters()]
    outputs = []
    module.network.register_forward_hook(lambda net, args, out: outputs.append(out.dtype))
    recorder = LossRecorder()
    trainer, best = make_trainer(entry, tmp_path, name=entry["name"], has_val=plugins is None,
                                 accelerator="cpu", devices=1, strategy="auto",
                                 precision=resolved, progress=False, log_every_n_steps=1,
                                 extra_callbacks=[recorder])
    if plugins is not None:  # the same trainer with an explicit precision plugin
        trainer = pl.Trainer(accelerator="cpu", devices=1, plugins=plugins, max_steps=1,
                             logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, default_root_dir=tmp_path,
                             callbacks=[recorder])
    trainer.fit(module, data, data if plugins is None else None)
    after = list(module.network.parameters())
    assert len(recorder.losses) == 1
    if plugins is None:
        assert torch.isfinite(trainer.callback_metrics["val_loss"])
        assert load_best_weights(module.network, best) is not None
    return trainer, before, after, recorder.losses[0], outputs[0]


# --- what the schema accepts is what is tested here --------------------------------------------
def schema_accepts(kind: str, precision) -> bool:
    try:
        validate_config(config_with(kind, precision))
    except ConfigError as error:
        assert error.key == "models.m.precision", str(error)
        return False
    return True


@pytest.mark.parametrize("kind", MODELS)
def test_the_schema_accepts_exactly_the_precisions_trained_here(kind):
    accepted = {p for p in ("auto", *LIGHTNING_PRECISIONS) if schema_accepts(kind, p)}
    assert accepted == set(ACCEPTED[kind])


@pytest.mark.parametrize("kind", MODELS)
def test_refused_precisions_name_the_key_and_the_reason(kind):
    for precision in LIGHTNING_PRECISIONS:
        if precision in ACCEPTED[kind]:
            continue
        with pytest.raises(ConfigError) as error:
            validate_config(config_with(kind, precision))
        assert error.value.key == "models.m.precision"
        assert REFUSAL_REASONS[precision] in str(error.value), str(error.value)


def test_the_diffusion_module_refuses_what_the_schema_refuses():
    """train_diffusion_model takes definitions without the schema (API, benchmarks): its own
    check refuses the same precisions, with the reason."""
    assert set(SUPPORTED_PRECISIONS) == set(P2_RUNS) - {"auto"}
    for precision in ("16-mixed", "bf16-true", "16-true"):
        with pytest.raises(ValueError, match=REFUSAL_REASONS[precision]):
            check_precision(precision)
    # A GPU run's 16-mixed (auto never picks it) and any plugin with fp16's GradScaler.
    with pytest.raises(ValueError, match="SAM"):
        check_precision(resolve_precision("16-mixed", on_gpu=True))
    with pytest.raises(ValueError, match="SAM"):
        check_precision("32-true", has_grad_scaler=True)


# --- one real step per accepted precision --------------------------------------------------------
@pytest.mark.parametrize("kind, precision", CASES)
def test_accepted_precision_trains_one_step(kind, precision, tmp_path):
    effective, dtype, output = ACCEPTED[kind][precision]
    trainer, before, after, loss, output_dtype = one_step(kind, precision, tmp_path)
    assert trainer.precision == effective
    assert trainer.global_step == 1
    assert torch.isfinite(loss), loss
    assert {p.dtype for p in after} == {dtype}
    assert output_dtype == output
    changed = [not torch.equal(b, a.detach().double()) for b, a in zip(before, after)]
    assert sum(changed) >= 0.9 * len(changed), f"{sum(changed)} of {len(changed)} changed"


def test_p1_16_mixed_runs_with_the_fp16_grad_scaler(tmp_path):
    """What 16-mixed is on a GPU: fp16 autocast and a GradScaler. On the CPU Lightning swaps
    in bf16-mixed (above), so build the plugin a GPU run gets, on the CPU."""
    plugin = MixedPrecision("16-mixed", "cpu")
    assert plugin.scaler is not None
    trainer, before, after, loss, output_dtype = one_step("p1_parameter_cnn", "16-mixed",
                                                          tmp_path, plugins=[plugin])
    assert trainer.global_step == 1 and torch.isfinite(loss)
    assert output_dtype == torch.float16
    assert {p.dtype for p in after} == {torch.float32}
    # No overflow at the initial scale here, so the scaler took the step.
    assert plugin.scaler.get_scale() == 2.0 ** 16
    assert all(not torch.equal(b, a.detach().double()) for b, a in zip(before, after))


# --- the U-Net follows the dtype of its weights ---------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_unet_runs_in_the_dtype_of_its_weights(dtype):
    entry = definition("p2_diffusion", "32-true")
    torch.manual_seed(0)
    network = ConditionalUNet(**diffusion_network_spec(
        resolve_definition(entry)["architecture"], 20, 6)["kwargs"])
    reference = copy.deepcopy(network)
    network.to(dtype)
    x = torch.randn(2, 1, 20, 20)
    t = torch.tensor([3, 40])
    trace = torch.randn(2, 6)
    with torch.no_grad():
        out = network(x.to(dtype), t, trace.to(dtype))
        want = reference(x, t, trace)  # float32
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float64 else 0.1  # float32's, bfloat16's rounding
    assert float((out.float() - want).abs().max()) < tolerance * float(want.abs().max())


def test_time_embedding_in_float64_is_exact_and_float32_unchanged():
    t = torch.tensor([0, 1, 500, 999])
    embedding = SinusoidalTimeEmbedding(16)
    default = embedding(t)
    assert default.dtype == torch.float32
    assert torch.equal(embedding(t, dtype=torch.float32), default)
    double = embedding(t, dtype=torch.float64)
    half = 8
    frequencies = torch.exp(-torch.log(torch.tensor(1e4, dtype=torch.float64))
                            * torch.arange(half, dtype=torch.float64) / (half - 1))
    angles = t.double()[:, None] * frequencies
    torch.testing.assert_close(double, torch.cat([angles.sin(), angles.cos()], -1),
                               rtol=0, atol=1e-12)
    assert embedding(t, dtype=torch.bfloat16).dtype == torch.bfloat16
