"""P2's conditional diffusion model: U-Net, diffusion process, SAM/Adam training module.

Tiny networks (8/16 channels, 12 × 12 images, 10-value traces) keep the file well under a
minute on one core; the architecture is the real one, only its sizes shrink.
"""

import json

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, TensorDataset

from mesoinv.models.gaussian_diffusion import GaussianDiffusion, SamplingStep
from mesoinv.models.p2_unet import ConditionalUNet
from mesoinv.training.p2_module import (DiffusionModule, check_precision,
                                               make_diffusion_optimizer)

IMAGE = 12
FIELDS = 10
TINY = {"image_size": IMAGE, "in_channels": 1, "n_fields": FIELDS, "base_channels": 8,
        "channel_mults": [1, 2, 2], "groups": 4, "linear_attention_heads": 2,
        "linear_attention_head_dim": 8, "attention_heads": 4, "attention_head_dim": 8,
        "trace_token_dim": 16, "trace_layers": 1, "trace_heads": 4, "condition_channels": 4}
BOTTLENECK_TOKENS = (IMAGE // 4) ** 2


pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


def tiny_network(seed: int = 0) -> ConditionalUNet:
    torch.manual_seed(seed)
    return ConditionalUNet(**TINY)


def tiny_data(n: int = 12, seed: int = 1):
    """Images with one Gaussian blob whose position the trace encodes (learnable from it)."""
    generator = torch.Generator().manual_seed(seed)
    traces = torch.randn(n, FIELDS, generator=generator)
    centres = (traces[:, :2].tanh() + 1) * (IMAGE - 1) / 2
    grid = torch.arange(IMAGE, dtype=torch.float32)
    dx = grid[None, :, None] - centres[:, 0, None, None]
    dy = grid[None, None, :] - centres[:, 1, None, None]
    images = torch.exp(-(dx ** 2 + dy ** 2) / 4.0)
    images = (images - images.mean()) / images.std()
    return images[:, None], traces


def loader(n: int = 12, batch_size: int = 4) -> DataLoader:
    return DataLoader(TensorDataset(*tiny_data(n)), batch_size=batch_size, shuffle=False)


def module(name: str, *, seed: int = 0, **kwargs) -> DiffusionModule:
    optimizer = {"name": name, "learning_rate": kwargs.pop("learning_rate", 2e-3)}
    if name == "sam":
        optimizer["rho"] = 0.05
    return DiffusionModule(tiny_network(seed), model_name="tiny", optimizer=optimizer, **kwargs)


def trainer(max_steps: int, tmp_path, **kwargs) -> pl.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False,
               "num_sanity_val_steps": 0, "default_root_dir": tmp_path}
    options.update(kwargs)
    return pl.Trainer(max_steps=max_steps, **options)


def base_optimizer(optimizer):
    """Adam itself, whether alone or wrapped by SAM."""
    return getattr(optimizer, "base_optimizer", optimizer)


# --- network ---------------------------------------------------------------------------------
def test_unet_output_shape_and_bottleneck_attention():
    network = tiny_network().eval()
    x = torch.randn(3, 1, IMAGE, IMAGE)
    t = torch.tensor([0, 500, 999])
    trace = torch.randn(3, FIELDS)
    with torch.no_grad():
        epsilon, weights = network(x, t, trace, return_attention=True)
        fused = network(x, t, trace)
    assert epsilon.shape == x.shape
    assert weights.shape == (3, 4, BOTTLENECK_TOKENS, BOTTLENECK_TOKENS)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, BOTTLENECK_TOKENS))
    # The explicit-softmax path and the fused kernel compute the same attention.
    torch.testing.assert_close(epsilon, fused, atol=1e-5, rtol=1e-5)


def test_unet_default_is_p2_size():
    network = ConditionalUNet()  # 60 × 60, 50 fields, 4 bottleneck heads
    with torch.no_grad():
        epsilon, weights = network(torch.randn(1, 1, 60, 60), torch.tensor([3]),
                                   torch.randn(1, 50), return_attention=True)
    assert epsilon.shape == (1, 1, 60, 60)
    assert weights.shape == (1, 4, 225, 225)


def test_unet_rebuilds_from_json_kwargs():
    network = tiny_network(seed=3).eval()
    rebuilt = ConditionalUNet(**json.loads(json.dumps(TINY))).eval()
    rebuilt.load_state_dict(network.state_dict())
    x, t, trace = torch.randn(2, 1, IMAGE, IMAGE), torch.tensor([1, 2]), torch.randn(2, FIELDS)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, t, trace), network(x, t, trace))


def test_unet_refuses_bad_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConditionalUNet(**{**TINY, "image_size": 14})
    with pytest.raises(ValueError, match="groups=3"):
        ConditionalUNet(**{**TINY, "groups": 3})
    network = tiny_network()
    with pytest.raises(ValueError, match="expected"):
        network(torch.randn(1, 1, 16, 16), torch.tensor([0]), torch.randn(1, FIELDS))
    with pytest.raises(ValueError, match="one value per training field"):
        network(torch.randn(1, 1, IMAGE, IMAGE), torch.tensor([0]), torch.randn(1, FIELDS + 1))


def test_trace_mlp_embedding_conditions_every_block_and_has_a_null():
    """With trace_mlp_width the whole trace shifts the time embedding: outputs depend on the
    trace through it alone when the condition image is held fixed, a dropped condition is
    exactly the null embedding, and the default (0) builds no such module (P2's design)."""
    assert tiny_network().trace_mlp is None
    torch.manual_seed(0)
    network = ConditionalUNet(**TINY, trace_mlp_width=16).eval()
    assert network.trace_mlp is not None
    x, t = torch.randn(2, 1, IMAGE, IMAGE), torch.tensor([5, 700])
    trace, other = torch.randn(2, FIELDS), torch.randn(2, FIELDS)
    embedding = network.trace_mlp
    with torch.no_grad():
        # the null vector starts at zero: unconditional = the plain time embedding
        torch.testing.assert_close(embedding(None, None, 2), torch.zeros(2, network.embed_time(
            t).shape[1]))
        keep = torch.tensor([True, False])
        mixed = embedding(trace, keep, 2)
        torch.testing.assert_close(mixed[0], embedding(trace, None, 2)[0])
        torch.testing.assert_close(mixed[1], embedding.null)
        # the embedding reaches the output: same condition image, different MLP input
        baseline = network(x, t, trace)
        fixed = network.trace_encoder(trace, None, 2)
        hook = network.trace_encoder.register_forward_hook(lambda module, args, out: fixed)
        try:
            moved = network(x, t, other)
        finally:
            hook.remove()
        assert (moved - baseline).abs().max() > 1e-4
        # the kwargs round-trip through JSON (a model file rebuilds it)
        rebuilt = ConditionalUNet(**json.loads(json.dumps({**TINY, "trace_mlp_width": 16})))
        rebuilt.load_state_dict(network.state_dict())
        torch.testing.assert_close(rebuilt.eval()(x, t, trace), baseline)
    with pytest.raises(ValueError, match="trace_mlp_width"):
        ConditionalUNet(**TINY, trace_mlp_width=-1)


# --- diffusion process -----------------------------------------------------------------------
def test_linear_schedule_and_q_sample():
    diffusion = GaussianDiffusion()
    assert diffusion.num_timesteps == 1000
    assert float(diffusion.betas[0]) == pytest.approx(1e-4)
    assert float(diffusion.betas[-1]) == pytest.approx(0.02)
    assert (diffusion.alphas_cumprod.diff() < 0).all()
    assert GaussianDiffusion(**json.loads(json.dumps(diffusion.config()))).config() == \
        diffusion.config()
    x0, noise = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    t = torch.tensor([0, 999])
    x_t = diffusion.q_sample(x0, t, noise)
    abar = diffusion.alphas_cumprod[t].float()[:, None, None, None]
    torch.testing.assert_close(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    torch.testing.assert_close(diffusion.predict_x0(x_t, t, noise), x0, atol=1e-4, rtol=1e-4)


def test_guidance_scale_maps_to_conditional_and_unconditional():
    network = tiny_network().eval()
    diffusion = GaussianDiffusion()
    x, trace = torch.randn(2, 1, IMAGE, IMAGE), torch.randn(2, FIELDS)
    t = torch.tensor([10, 700])
    keep, drop = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        conditional = network(x, t, trace, keep)
        unconditional = network(x, t, trace, drop)
        assert not torch.allclose(conditional, unconditional)
        guided = {g: diffusion.predict_noise(network, x, t, trace, guidance_scale=g)
                  for g in (0.0, 1.0, 2.5)}
    torch.testing.assert_close(guided[1.0], conditional)
    torch.testing.assert_close(guided[0.0], unconditional)
    torch.testing.assert_close(guided[2.5], 2.5 * conditional - 1.5 * unconditional,
                               atol=1e-5, rtol=1e-5)


def test_score_is_minus_noise_over_sigma():
    network = tiny_network().eval()
    diffusion = GaussianDiffusion()
    x, trace = torch.randn(2, 1, IMAGE, IMAGE), torch.randn(2, FIELDS)
    score = diffusion.score(network, x, 99, trace)
    with torch.no_grad():
        epsilon = network(x, torch.full((2,), 99), trace, torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(score, -epsilon / float(diffusion.sigmas[99]))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_shape_and_seeded_reproducibility(sampler):
    network = tiny_network().eval()
    # DDPM runs every step: a 100-step schedule keeps it fast; DDIM uses P2's 1000 steps.
    diffusion = GaussianDiffusion(num_timesteps=100 if sampler == "ddpm" else 1000)
    steps = None if sampler == "ddpm" else 10
    trace = torch.randn(2, FIELDS)
    shape = (2, 1, IMAGE, IMAGE)

    def run(seed, guidance=1.5):
        return diffusion.sample(network, trace, shape, sampler=sampler, steps=steps,
                                guidance_scale=guidance,
                                generator=torch.Generator().manual_seed(seed))

    first = run(7)
    assert first.shape == shape
    assert torch.isfinite(first).all()
    assert torch.equal(first, run(7))
    assert not torch.allclose(first, run(8))


def test_ddim_eta0_is_deterministic_given_the_initial_noise():
    network = tiny_network().eval()
    diffusion = GaussianDiffusion()
    assert diffusion.ddim_timesteps(10)[0] == 999 and diffusion.ddim_timesteps(10)[-1] == 0
    x_T = torch.randn(1, 1, IMAGE, IMAGE)
    trace = torch.randn(1, FIELDS)
    a = diffusion.ddim_sample(network, trace, x_T.shape, steps=5, noise=x_T)
    b = diffusion.ddim_sample(network, trace, x_T.shape, steps=5, noise=x_T,
                              generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b)


def test_sampling_callback_gives_snapshots_and_attention():
    network = tiny_network().eval()
    diffusion = GaussianDiffusion(num_timesteps=20)
    steps: list[SamplingStep] = []
    final = diffusion.ddpm_sample(network, torch.randn(2, FIELDS), (2, 1, IMAGE, IMAGE),
                                  guidance_scale=2.0, generator=torch.Generator().manual_seed(0),
                                  callback=steps.append, record_attention=True)
    assert [s.t for s in steps] == list(range(19, -1, -1))
    assert [s.index for s in steps] == list(range(20))
    assert torch.equal(steps[-1].x, final)
    for step in steps:
        assert step.x0.shape == final.shape
        assert step.attention.shape == (2, 4, BOTTLENECK_TOKENS, BOTTLENECK_TOKENS)
        torch.testing.assert_close(step.attention.sum(-1),
                                   torch.ones(2, 4, BOTTLENECK_TOKENS))


# --- training module -------------------------------------------------------------------------
def fixed_loss(network, diffusion, images, traces) -> float:
    """Loss at fixed t/noise/mask: comparable before and after training."""
    draws = diffusion.draw_training_inputs(images, 0.0, torch.Generator().manual_seed(5))
    t, noise, keep = draws
    with torch.no_grad():
        return diffusion.loss(network, images, traces, t=t, noise=noise,
                              keep_condition=keep).item()


@pytest.mark.parametrize("optimizer", ["sam", "adam"])
def test_loss_decreases_on_tiny_data(optimizer, tmp_path):
    pl.seed_everything(0, verbose=False)
    model = module(optimizer, learning_rate=3e-3, condition_dropout=0.1)
    images, traces = tiny_data(8)
    before = fixed_loss(model.network, model.diffusion, images, traces)
    data = DataLoader(TensorDataset(images, traces), batch_size=8)
    trainer(40, tmp_path).fit(model, data)
    after = fixed_loss(model.network, model.diffusion, images, traces)
    assert after < 0.5 * before, (before, after)


class _StepRecorder(Callback):
    """Global step after each batch, and Adam's first-moment of the first parameter at the
    start of training (after any checkpoint restore)."""

    def __init__(self):
        self.steps_after_batch = []
        self.start_step = None
        self.start_state = None

    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step
        adam = base_optimizer(trainer.optimizers[0])
        first = next(pl_module.network.parameters())
        state = adam.state.get(first, {})
        self.start_state = {k: v.clone() for k, v in state.items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps_after_batch.append(trainer.global_step)


@pytest.mark.parametrize("optimizer", ["sam", "adam"])
def test_checkpoint_and_resume_keep_step_and_adam_moments(optimizer, tmp_path):
    data = loader(12, 4)  # 3 batches per epoch
    first_run = _StepRecorder()
    model = module(optimizer)
    run = trainer(4, tmp_path, callbacks=[first_run])
    run.fit(model, data)
    assert first_run.steps_after_batch == [1, 2, 3, 4]  # one global step per batch
    checkpoint_path = tmp_path / "run.ckpt"
    run.save_checkpoint(checkpoint_path)

    live = base_optimizer(run.optimizers[0]).state[next(model.network.parameters())]
    saved = torch.load(checkpoint_path, weights_only=True)
    saved_state = saved["optimizer_states"][0]["state"][0]  # first parameter
    assert torch.equal(saved_state["exp_avg"], live["exp_avg"])
    assert torch.equal(saved_state["exp_avg_sq"], live["exp_avg_sq"])
    assert float(saved_state["step"]) == 4
    assert saved["global_step"] == 4

    second_run = _StepRecorder()
    resumed = module(optimizer, seed=99)  # other initial weights: the checkpoint must win
    again = trainer(6, tmp_path, callbacks=[second_run])
    again.fit(resumed, data, ckpt_path=checkpoint_path)
    assert second_run.start_step == 4
    assert torch.equal(second_run.start_state["exp_avg"], saved_state["exp_avg"])
    assert torch.equal(second_run.start_state["exp_avg_sq"], saved_state["exp_avg_sq"])
    assert second_run.steps_after_batch == [5, 6]
    assert again.global_step == 6
    final = base_optimizer(again.optimizers[0]).state[next(resumed.network.parameters())]
    assert float(final["step"]) == 6  # Adam's own counter spans both runs


@pytest.mark.parametrize("optimizer,passes", [("sam", 2), ("adam", 1)])
def test_sam_passes_share_t_noise_and_condition_mask(optimizer, passes, tmp_path):
    model = module(optimizer, condition_dropout=0.5)
    calls = []
    first_weight = next(model.network.parameters())

    def record(network, args, kwargs):
        x_t, t, trace, keep = args
        calls.append({"x_t": x_t.detach().clone(), "t": t.clone(), "keep": keep.clone(),
                      "weight": first_weight.detach().clone()})

    model.network.register_forward_pre_hook(record, with_kwargs=True)
    trainer(3, tmp_path).fit(model, loader(12, 4))
    assert len(calls) == 3 * passes
    for step in range(3):
        pair = calls[step * passes:(step + 1) * passes]
        for other in pair[1:]:
            # x_t = √ᾱ_t x0 + σ_t ε: equal x_t on the same batch means equal t and ε.
            assert torch.equal(other["t"], pair[0]["t"])
            assert torch.equal(other["keep"], pair[0]["keep"])
            assert torch.equal(other["x_t"], pair[0]["x_t"])
            # ... while the weights differ: the second pass runs at SAM's perturbed point.
            assert not torch.equal(other["weight"], pair[0]["weight"])
    assert not all(torch.equal(calls[0]["t"], c["t"]) for c in calls[passes::passes])
    masks = torch.stack([c["keep"] for c in calls])
    assert masks.any() and not masks.all()  # dropout 0.5 really drops some conditions


def test_16_mixed_is_refused_and_bf16_accepted(tmp_path):
    with pytest.raises(ValueError, match="16-mixed"):
        check_precision("16-mixed")
    check_precision("32-true")
    check_precision("bf16-mixed")
    # On a CPU Lightning silently turns precision="16-mixed" into bf16, so build the fp16 AMP
    # plugin (with its GradScaler) explicitly, as a GPU run would get it.
    with pytest.raises(ValueError, match="cannot run"):
        trainer(1, tmp_path, plugins=[MixedPrecision("16-mixed", "cpu")]).fit(
            module("sam"), loader(4, 4))
    run = trainer(1, tmp_path, precision="bf16-mixed")
    run.fit(module("sam"), loader(4, 4))
    assert run.global_step == 1


def test_ema_callback_updates_under_manual_optimization_and_resumes(tmp_path):
    model = module("sam", ema_decay=0.5)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3,
                                  save_top_k=-1, filename="{step}")
    run = trainer(3, tmp_path, enable_checkpointing=True, callbacks=[checkpoints])
    run.fit(model, loader(12, 4))
    ema = next(c for c in run.callbacks if type(c).__name__ == "EMAWeightAveraging")
    assert int(ema._average_model.n_averaged) == 3  # one update per SAM step
    # After fit the module holds the averaged weights.
    for averaged, current in zip(ema._average_model.module.parameters(), model.parameters()):
        assert torch.equal(averaged, current)
    path = tmp_path / "ckpt" / "step=3.ckpt"
    saved = torch.load(path, weights_only=True)
    assert "current_model_state" in saved and "averaging_state" in saved
    name = "network.init_conv.weight"
    assert not torch.equal(saved["state_dict"][name], saved["current_model_state"][name])

    resumed = module("sam", ema_decay=0.5, seed=5)
    again = trainer(5, tmp_path)
    again.fit(resumed, loader(12, 4), ckpt_path=path)
    ema = next(c for c in again.callbacks if type(c).__name__ == "EMAWeightAveraging")
    assert again.global_step == 5
    assert int(ema._average_model.n_averaged) == 5


def test_optimizer_config_and_checkpoint_mismatch(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(2))]
    sam = make_diffusion_optimizer(params, {"name": "sam", "learning_rate": 1e-3})
    assert isinstance(sam.base_optimizer, torch.optim.Adam)
    assert sam.state is sam.base_optimizer.state
    assert isinstance(make_diffusion_optimizer(params, {"name": "adam", "learning_rate": 1e-3}),
                      torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown SAM base"):
        make_diffusion_optimizer(params, {"name": "sam", "base": "lion", "learning_rate": 1e-3})
    run = trainer(1, tmp_path)
    run.fit(module("sam"), loader(4, 4))
    run.save_checkpoint(tmp_path / "sam.ckpt")
    with pytest.raises(ValueError, match="optimizer 'sam'"):
        trainer(2, tmp_path).fit(module("adam"), loader(4, 4), ckpt_path=tmp_path / "sam.ckpt")
