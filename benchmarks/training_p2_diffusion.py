"""Training group, P2 diffusion model: SAM vs Adam training and DDPM vs DDIM sampling of P2's
conditional diffusion U-Net.

Rows (keys are stable; docs/benchmarks.md says what each means):

* ``train.p2.*``           P2's conditional diffusion U-Net (``ConditionalUNet``, the "small"
                           demo size at 60 × 60, 50 field points) on synthetic batches:
                           ``a.sam`` / ``a.adam`` steady-state seconds per step of
                           ``Trainer.fit(DiffusionModule)`` (manual optimization) with SAM
                           (two forward/backward passes) and with Adam, same batches, same
                           initial weights, same t/noise draws; ``*_rate`` as steps/s;
                           ``ratio.sam_over_adam`` the median of per-repeat CPU ratios;
                           ``check.same_first_loss`` 0 when both runs started alike;
                           ``s.ddpm`` / ``s.ddim`` seconds per generated image of
                           ``GaussianDiffusion.sample`` (DDPM all 1000 steps, DDIM 50 steps,
                           γ = 1: one network pass per step), a batch of a few images timed
                           and divided; ``ratio.ddpm_over_ddim`` the median of per-repeat
                           CPU ratios.

The P2 rows run after the P1 rows, in their own repeats (SAM and Adam back to back, order
alternating; DDPM and DDIM back to back, order alternating), on random images and traces of
the right shapes generated here (the cost of a step does not depend on the values).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

try:
    from .common import (Row, Stopwatch, Timings, alternating, paired_ratio_row, progress,
                         rate_row, state_copy, steady_state, step_clock, timed_trainer)
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import (Row, Stopwatch, Timings, alternating, paired_ratio_row, progress,
                        rate_row, state_copy, steady_state, step_clock, timed_trainer)


@dataclass(frozen=True)
class P2Config:
    """Problem size and repeat counts of the P2 diffusion rows."""

    image_size: int            # square image side (P2: the 50 × 60 LDOS padded to 60 × 60)
    n_fields: int              # trace length (field points)
    architecture: tuple        # ConditionalUNet keyword arguments, as (name, value) pairs
    num_timesteps: int         # T of the diffusion (DDPM runs all of them)
    ddim_steps: int
    batch_size: int            # training batch
    warmup_steps: int          # W: untimed steps at the start of every training run
    timed_steps: int           # T: timed steps after warm-up
    n_images: int              # images generated per sampling call (time per image = / n)
    n_repeats: int
    learning_rate: float = 2e-4   # train_diffusion_model's defaults: SAM(Adam), rho 0.05,
    rho: float = 0.05             # condition dropout 0.1
    condition_dropout: float = 0.1
    seed: int = 3


#: The "small" demo-size network: 457,321 parameters at 60 × 60, 50 field points. On the
#: 2-core box ≈ 0.36 s per Adam step (batch 8) and ≈ 16 ms per network pass of one image: the
#: three full 1000-step DDPM chains of 2 images dominate (≈ 1.6 min; ≈ 2.2 min in all).
P2_DEMO = P2Config(image_size=60, n_fields=50, architecture=(
    ("base_channels", 16), ("channel_mults", (1, 2, 2)), ("linear_attention_head_dim", 16),
    ("attention_head_dim", 16), ("trace_token_dim", 32), ("condition_channels", 8)),
    num_timesteps=1000, ddim_steps=50, batch_size=8, warmup_steps=2, timed_steps=6,
    n_images=2, n_repeats=3)
#: --quick: 12 × 12 images, a tiny network (config/test.yaml's p2_ldos), 20 diffusion steps.
P2_QUICK = P2Config(image_size=12, n_fields=6, architecture=(
    ("base_channels", 8), ("channel_mults", (1, 2, 2)), ("groups", 4),
    ("linear_attention_head_dim", 8), ("attention_head_dim", 8), ("trace_token_dim", 16),
    ("trace_layers", 1), ("trace_heads", 2), ("condition_channels", 4)),
    num_timesteps=20, ddim_steps=5, batch_size=4, warmup_steps=1, timed_steps=2, n_images=2,
    n_repeats=1)


def _network(cfg: P2Config):
    from mesoinv.models.p2_unet import ConditionalUNet

    return ConditionalUNet(cfg.image_size, 1, cfg.n_fields, **dict(cfg.architecture))


def _optimizer(cfg: P2Config, name: str) -> dict:
    if name == "sam":
        return {"name": "sam", "base": "adam", "learning_rate": cfg.learning_rate,
                "rho": cfg.rho}
    return {"name": "adam", "learning_rate": cfg.learning_rate}


def _training_run(cfg: P2Config, loader, network, initial_state, optimizer: str):
    """``Trainer.fit(DiffusionModule)`` with ``optimizer`` (sam/adam) from ``initial_state``:
    steady-state (wall, cpu) seconds per step and the loss of every step."""
    import torch

    from mesoinv.training.p2_module import DiffusionModule

    network.load_state_dict(initial_state)
    module = DiffusionModule(network, model_name="bench-p2",
                             optimizer=_optimizer(cfg, optimizer),
                             diffusion={"num_timesteps": cfg.num_timesteps},
                             condition_dropout=cfg.condition_dropout)
    clock = step_clock()
    trainer = timed_trainer(cfg.warmup_steps + cfg.timed_steps, clock)
    torch.manual_seed(cfg.seed)     # t, noise and the condition-dropout mask: same draws
    trainer.fit(module, train_dataloaders=loader)
    if trainer.global_step != cfg.warmup_steps + cfg.timed_steps:
        raise RuntimeError(f"{optimizer}: global step {trainer.global_step}, expected "
                           f"{cfg.warmup_steps + cfg.timed_steps}")
    return steady_state(clock.stamps, cfg.warmup_steps, cfg.timed_steps), clock.losses


def _sampling_run(cfg: P2Config, diffusion, network, traces, sampler: str):
    """One ``GaussianDiffusion.sample`` call of ``cfg.n_images`` images: (wall, cpu) per
    image."""
    import torch

    n, size = cfg.n_images, cfg.image_size
    generator = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.ddim_steps if sampler == "ddim" else None
    with Stopwatch() as sw:
        images = diffusion.sample(network, traces, (n, 1, size, size), sampler=sampler,
                                  steps=steps, generator=generator)
    if images.shape != (n, 1, size, size) or not torch.isfinite(images).all():
        raise RuntimeError(f"{sampler}: bad samples {tuple(images.shape)}")
    return sw.seconds / n, sw.cpu_seconds / n


def measure(cfg: P2Config):
    """SAM vs Adam training and DDPM vs DDIM sampling of the P2 U-Net, side by side."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from mesoinv.models.gaussian_diffusion import GaussianDiffusion

    size, n_train = cfg.image_size, (cfg.warmup_steps + cfg.timed_steps) * cfg.batch_size
    generator = torch.Generator().manual_seed(cfg.seed)
    # Normalised-looking synthetic data: images in [-1, 1], standardised traces.
    images = torch.rand(n_train, 1, size, size, generator=generator) * 2 - 1
    traces = torch.randn(n_train, cfg.n_fields, generator=generator)
    loader = DataLoader(TensorDataset(images, traces), batch_size=cfg.batch_size,
                        shuffle=False)
    torch.manual_seed(cfg.seed)
    network = _network(cfg)
    initial_state = state_copy(network)
    diffusion = GaussianDiffusion(num_timesteps=cfg.num_timesteps)
    sample_traces = torch.randn(cfg.n_images, cfg.n_fields, generator=generator)

    timings = {name: Timings() for name in ("sam", "adam", "ddpm", "ddim")}
    paired_train, paired_sample, first_loss_diffs = [], [], []
    for repeat in range(cfg.n_repeats):
        progress(f"p2: repeat {repeat + 1}/{cfg.n_repeats}: training (SAM, Adam)")
        order = alternating(repeat, "adam", "sam")
        losses = {}
        for name in order:
            (wall, cpu), losses[name] = _training_run(cfg, loader, network, initial_state,
                                                      name)
            timings[name].add(wall, cpu)
        paired_train.append(timings["sam"].cpus[-1] / timings["adam"].cpus[-1])
        first_loss_diffs.append(abs(losses["sam"][0] - losses["adam"][0]))

        progress(f"p2: repeat {repeat + 1}/{cfg.n_repeats}: sampling (DDPM "
                 f"{cfg.num_timesteps} steps, DDIM {cfg.ddim_steps} steps)")
        network.load_state_dict(initial_state)
        network.eval()
        order = alternating(repeat, "ddim", "ddpm")
        for name in order:
            timings[name].add(*_sampling_run(cfg, diffusion, network, sample_traces, name))
        network.train()
        paired_sample.append(timings["ddpm"].cpus[-1] / timings["ddim"].cpus[-1])
    return SimpleNamespace(cfg=cfg, parameters=sum(q.numel() for q in network.parameters()),
                           timings=timings, paired_train=paired_train,
                           paired_sample=paired_sample,
                           first_loss_diff=max(first_loss_diffs))


def rows(m, prefix: str = "train.p2") -> list[Row]:
    """The rows of ``measure``'s result (``<prefix>.*``)."""
    cfg, t = m.cfg, m.timings
    arch = dict(m.cfg.architecture)
    size, batch = cfg.image_size, cfg.batch_size
    network = (f"ConditionalUNet (base {arch['base_channels']}, mults "
               f"{list(arch['channel_mults'])}, linear/bottleneck head dim "
               f"{arch['linear_attention_head_dim']}/{arch['attention_head_dim']}, trace token "
               f"{arch['trace_token_dim']}, condition channels {arch['condition_channels']})")
    ddpm_step = 1e3 * t["ddpm"].cpu_median / cfg.num_timesteps
    ddim_step = 1e3 * t["ddim"].cpu_median / cfg.ddim_steps
    return [
        Row(f"{prefix}.config.image", f"P2 diffusion: image {size} × {size} pixels, trace of "
            f"{cfg.n_fields} fields (synthetic)", size * size, "pixels"),
        Row(f"{prefix}.config.parameters", f"P2 diffusion: {network} parameters",
            m.parameters, "parameters"),
        Row(f"{prefix}.config.batch", "P2 diffusion: training batch size", batch, "samples",
            note=f"steps {cfg.warmup_steps} + {cfg.timed_steps} per run; lr "
                 f"{cfg.learning_rate:g}, rho {cfg.rho:g}, condition dropout "
                 f"{cfg.condition_dropout:g}"),
        t["sam"].row(f"{prefix}.a.sam", "P2 (a SAM) Trainer.fit(DiffusionModule), SAM(Adam), "
                     "manual optimization: per step",
                     note="steady state; two forward + backward passes per step"),
        t["adam"].row(f"{prefix}.a.adam", "P2 (a Adam) the same with Adam: per step",
                      note="same batches, same initial weights, same t / noise / dropout "
                           "draws"),
        rate_row(f"{prefix}.a.sam_rate", "P2 (a SAM) training steps per second", t["sam"],
                 1, "steps/s", note=f"{batch / t['sam'].cpu_median:.1f} samples/s (CPU)"),
        rate_row(f"{prefix}.a.adam_rate", "P2 (a Adam) training steps per second",
                 t["adam"], 1, "steps/s",
                 note=f"{batch / t['adam'].cpu_median:.1f} samples/s (CPU)"),
        paired_ratio_row(f"{prefix}.ratio.sam_over_adam", "P2 SAM / Adam time per step",
                         t["sam"], t["adam"], m.paired_train,
                         note="expected ≈ 2 (two passes)"),
        Row(f"{prefix}.check.same_first_loss", "P2 |loss SAM − loss Adam| at the first step",
            m.first_loss_diff, "1", note="0: same batch, same weights, same t / noise draws"),
        t["ddpm"].row(f"{prefix}.s.ddpm", f"P2 (s DDPM) sample, {cfg.num_timesteps} steps, "
                      "per image", note=f"{cfg.n_images} images per call, γ = 1; "
                                        f"{ddpm_step:.1f} ms CPU per step and image"),
        t["ddim"].row(f"{prefix}.s.ddim", f"P2 (s DDIM) sample, {cfg.ddim_steps} steps, "
                      "η = 0, per image", note=f"{cfg.n_images} images per call, γ = 1; "
                                               f"{ddim_step:.1f} ms CPU per step and image"),
        paired_ratio_row(f"{prefix}.ratio.ddpm_over_ddim", "P2 DDPM / DDIM time per image",
                         t["ddpm"], t["ddim"], m.paired_sample,
                         note=f"step-count ratio {cfg.num_timesteps / cfg.ddim_steps:g}"),
    ]
