"""Gaussian diffusion of P2 (Sec. II, IV): forward noising, the ε-prediction loss, classifier-free
guidance, DDPM and DDIM sampling, and the model's score.

A plain class, not an ``nn.Module`` and not Lightning: the schedule is a fixed function of its
constructor arguments, so it holds no parameters, adds nothing to a checkpoint or to weight
averaging, and is rebuilt from ``{"num_timesteps", "beta_start", "beta_end", "prediction"}``. Its tensors
live in float64 on the CPU and are indexed and cast to the sample's device and dtype at use.

Conventions
-----------
* Timesteps are indices ``t = 0 … T−1`` (T = ``num_timesteps``, 1000 in P2); index t is the
  noise level after t + 1 forward steps, so ``t = 0`` is the least noisy (DDPM's t = 1).
* Schedule: DDPM's linear β (Ho et al. 2020): β_t from 1e-4 to 0.02 over 1000 steps; those
  endpoints were chosen for T = 1000 and are not rescaled for other T. ᾱ_t = Π_{s≤t}(1 − β_s).
* Forward process: x_t = √ᾱ_t x_0 + σ_t ε with σ_t = √(1 − ᾱ_t), ε ~ N(0, 1).
* What the network predicts (``prediction``): ``epsilon`` (P2, DDPM: ε, loss MSE against the
  drawn ε), ``v`` (Salimans & Ho 2022: v = √ᾱ_t ε − σ_t x_0) or ``x0`` (the clean image), the
  loss the MSE against that target, t uniform over the T steps (P2 Sec. IV). Every sampler and
  the score use the noise estimate the output implies: ε = (x_t − √ᾱ_t x̂_0)/σ_t for ``x0``,
  ε = σ_t x_t + √ᾱ_t v for ``v``. The map from output to ε is affine in the output at fixed
  (x_t, t), so guidance may combine outputs or noise estimates alike.

Guidance and P2's deformed score
--------------------------------
P2 (Sec. II) samples from the deformed score ∇log P_γ(x|y) = γ ∇log P(x, y) + (1 − γ) ∇log P(x).
Since ∇_x log P(x, y) = ∇_x log P(x|y), and a noise prediction is a scaled score,
ε(x_t, y) = −σ_t ∇log p_t(x_t|y), the deformed score is, in noise terms,

    ε̂ = γ ε(x_t, y) + (1 − γ) ε(x_t, ∅),

classifier-free guidance (Ho & Salimans 2022) with one network that also learned the
unconditional ε(x_t, ∅) through condition dropout. γ = 1 is the plain conditional model, γ = 0
the unconditional one, γ > 1 sharpens the condition. Ho & Salimans' w is γ − 1; lucidrains'
``cond_scale`` is γ.

The network is any callable ``model(x_t, t, trace, keep_condition, return_attention=...)``
returning ε (and with ``return_attention`` also attention weights), as
:class:`mesoinv.models.p2_unet.ConditionalUNet`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["GaussianDiffusion", "SamplingStep", "PREDICTIONS"]

#: What the network may be trained to predict (module docstring).
PREDICTIONS = ("epsilon", "v", "x0")


@dataclass
class SamplingStep:
    """What a sampler hands its ``callback`` after each denoising step.

    Attributes
    ----------
    index : int
        0-based count of the step within this run (0 … steps − 1).
    t : int
        Timestep index that was just denoised (T − 1 first, 0 last).
    x : tensor (batch, channels, height, width)
        The sample after this step (x_{t−1}; the final image after the last step).
    x0 : tensor
        The network's estimate of the clean image at this step.
    attention : tensor (batch, heads, N, N) or None
        Bottleneck attention weights of the (conditional, unless γ = 0) pass, when the sampler
        was asked to record them.
    """

    index: int
    t: int
    x: torch.Tensor
    x0: torch.Tensor
    attention: torch.Tensor | None = None


def _randn(shape, generator, device, dtype=torch.float32):
    """Normal draws from ``generator`` (on its own device, so a CPU generator gives the same
    numbers whatever device the model runs on), moved to ``device``.

    ``generator`` may be a sequence of G generators: the batch is then G equal blocks of rows,
    block g drawn from generator g alone, so each block's numbers are the ones it would get if
    it were sampled on its own (batched generation of several traces, each with its seed).
    """
    if isinstance(generator, (list, tuple)):
        if not generator or shape[0] % len(generator):
            raise ValueError(f"a batch of {shape[0]} rows cannot be split into "
                             f"{len(generator)} equal blocks, one per generator")
        block = (shape[0] // len(generator),) + tuple(shape[1:])
        return torch.cat([_randn(block, g, device, dtype) for g in generator])
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source, dtype=dtype).to(device)


def _clamp(x0: torch.Tensor, clip) -> torch.Tensor:
    """x̂_0 clamped to [−c, c] (a number c) or [low, high] (a pair)."""
    if isinstance(clip, (tuple, list)):
        return x0.clamp(float(clip[0]), float(clip[1]))
    return x0.clamp(-clip, clip)


class GaussianDiffusion:
    """DDPM forward process with a linear β schedule, its loss, guidance and two samplers.

    Parameters
    ----------
    num_timesteps : int
        T, the number of diffusion steps (1000 in P2).
    beta_start, beta_end : float
        First and last β of the linear schedule (DDPM: 1e-4, 0.02).
    prediction : str
        The network's target, :data:`PREDICTIONS` (module docstring); P2: ``epsilon``.
    """

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, prediction: str = "epsilon"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r} (known: {PREDICTIONS})")
        self.prediction = prediction
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be positive, got {num_timesteps}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        self.num_timesteps = int(num_timesteps)
        self._config = {"num_timesteps": self.num_timesteps, "beta_start": float(beta_start),
                        "beta_end": float(beta_end), "prediction": prediction}
        self.betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64),
                                              self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sigmas = (1.0 - self.alphas_cumprod).sqrt()
        # q(x_{t-1} | x_t, x_0) = N(mean_coef_x0 x_0 + mean_coef_xt x_t, posterior_variance)
        self.posterior_variance = (self.betas * (1.0 - self.alphas_cumprod_prev)
                                   / (1.0 - self.alphas_cumprod))
        self.posterior_mean_coef_x0 = (self.betas * self.alphas_cumprod_prev.sqrt()
                                       / (1.0 - self.alphas_cumprod))
        self.posterior_mean_coef_xt = ((1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt()
                                       / (1.0 - self.alphas_cumprod))

    def config(self) -> dict:
        """Constructor arguments, JSON types: ``GaussianDiffusion(**d.config())`` rebuilds it."""
        return dict(self._config)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped (batch, 1, 1, …) to broadcast over ``like``, in its dtype/device."""
        picked = values[t.to("cpu", torch.long)]
        return picked.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def _timesteps(self, t, batch: int, device) -> torch.Tensor:
        """An int or a (batch,) tensor of timesteps → (batch,) long tensor on ``device``."""
        if isinstance(t, int):
            if not 0 <= t < self.num_timesteps:
                raise ValueError(f"timestep {t} outside 0 … {self.num_timesteps - 1}")
            return torch.full((batch,), t, dtype=torch.long, device=device)
        return t.to(device, torch.long)

    # --- forward process and training -------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + σ_t ε for timestep indices ``t`` (batch,)."""
        return self._at(self.sqrt_alphas_cumprod, t, x0) * x0 + self._at(self.sigmas, t, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
        """The clean image implied by a noise estimate: (x_t − σ_t ε) / √ᾱ_t."""
        return ((x_t - self._at(self.sigmas, t, x_t) * epsilon)
                / self._at(self.sqrt_alphas_cumprod, t, x_t))

    def training_target(self, x0: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor) -> torch.Tensor:
        """What the network learns to output for (x_0, t, ε): ε, v or x_0 (``prediction``)."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "x0":
            return x0
        return (self._at(self.sqrt_alphas_cumprod, t, x0) * noise
                - self._at(self.sigmas, t, x0) * x0)

    def output_to_noise(self, x_t: torch.Tensor, t: torch.Tensor,
                        output: torch.Tensor) -> torch.Tensor:
        """The noise estimate ε̂ implied by a network output at (x_t, t) (module docstring)."""
        if self.prediction == "epsilon":
            return output
        sigma = self._at(self.sigmas, t, x_t)
        root = self._at(self.sqrt_alphas_cumprod, t, x_t)
        if self.prediction == "x0":
            return (x_t - root * output) / sigma
        return sigma * x_t + root * output

    def draw_training_inputs(self, x0: torch.Tensor, condition_dropout: float = 0.0,
                             generator: torch.Generator | None = None):
        """The randomness of one training batch, drawn once so that every pass over the batch
        (both passes of SAM) can share it.

        Parameters
        ----------
        x0 : tensor (batch, …)
            Clean images; fix the batch size, device and noise shape.
        condition_dropout : float
            Probability that a sample's trace is replaced by the null condition.
        generator : torch.Generator or None
            Source of the draws (its own device); None → torch's global generator.

        Returns
        -------
        t : long tensor (batch,)
            Timesteps, uniform over 0 … T−1.
        noise : tensor like x0
        keep_condition : bool tensor (batch,)
            False where the condition is dropped.
        """
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1], got {condition_dropout}")
        batch = x0.shape[0]
        source = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=source)
        noise = _randn(x0.shape, generator, x0.device, torch.float32).to(x0.dtype)
        keep = torch.rand(batch, generator=generator, device=source) >= condition_dropout
        return t.to(x0.device), noise, keep.to(x0.device)

    def loss(self, model, x0: torch.Tensor, trace: torch.Tensor | None, *, t: torch.Tensor,
             noise: torch.Tensor, keep_condition: torch.Tensor | None = None) -> torch.Tensor:
        """MSE between the network's output and its target (ε, v or x_0; ``prediction``),
        ``mean((model(x_t, t, trace) − target)²)``, for the given t and noise.

        t, noise and keep_condition are arguments (not drawn here) so that SAM's two passes
        evaluate the same loss function at two weight vectors.
        """
        x_t = self.q_sample(x0, t, noise)
        prediction = model(x_t, t, trace, keep_condition)
        # At least float32 (bf16 predictions are promoted), float64 under 64-true.
        dtype = torch.promote_types(prediction.dtype, torch.float32)
        return F.mse_loss(prediction.to(dtype), self.training_target(x0, t, noise).to(dtype))

    # --- guidance and score -----------------------------------------------------------------
    def predict_noise(self, model, x_t: torch.Tensor, t, trace: torch.Tensor | None, *,
                      guidance_scale: float = 1.0, return_attention: bool = False):
        """Guided noise estimate ε̂ = γ ε(x_t, y) + (1 − γ) ε(x_t, ∅) (module docstring).

        γ = 1 runs only the conditional pass, γ = 0 (or ``trace`` None) only the
        unconditional one; otherwise both run as one batch of twice the size.

        Returns
        -------
        tensor like x_t, or (that, attention) with ``return_attention``; the attention
        weights are those of the conditional pass (the unconditional one when γ = 0).
        """
        batch = x_t.shape[0]
        t = self._timesteps(t, batch, x_t.device)
        keep = torch.ones(batch, dtype=torch.bool, device=x_t.device)
        gamma = float(guidance_scale)
        if trace is None or gamma == 0.0:
            output = model(x_t, t, trace, torch.zeros_like(keep),
                           return_attention=return_attention)
        elif gamma == 1.0:
            output = model(x_t, t, trace, keep, return_attention=return_attention)
        else:
            output = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([trace, trace]),
                           torch.cat([keep, torch.zeros_like(keep)]),
                           return_attention=return_attention)
        raw, attention = output if return_attention else (output, None)
        if raw.shape[0] == 2 * batch:
            conditional, unconditional = raw.chunk(2)
            raw = gamma * conditional + (1.0 - gamma) * unconditional
            attention = None if attention is None else attention[:batch]
        epsilon = self.output_to_noise(x_t, t, raw)
        return (epsilon, attention) if return_attention else epsilon

    @torch.no_grad()
    def score(self, model, x_t: torch.Tensor, t, trace: torch.Tensor | None, *,
              guidance_scale: float = 1.0) -> torch.Tensor:
        """The model's score s(x_t, t) = ∇ log p_t(x_t | y) ≈ −ε̂ / σ_t (P2 Sec. VI, Fig. 5).

        It is the score of the *noised* distribution at level t, in units of 1 / (normalised
        image units); P2's Fig. 5 evaluates it at points noised by 100 steps (``t = 99``).
        """
        batch = x_t.shape[0]
        t = self._timesteps(t, batch, x_t.device)
        epsilon = self.predict_noise(model, x_t, t, trace, guidance_scale=guidance_scale)
        return -epsilon / self._at(self.sigmas, t, x_t)

    # --- sampling ---------------------------------------------------------------------------
    def _start(self, shape, trace, generator, noise, device):
        if trace is not None and trace.shape[0] != shape[0]:
            raise ValueError(f"{trace.shape[0]} traces for a batch of {shape[0]} images")
        if noise is not None:
            if tuple(noise.shape) != tuple(shape):
                raise ValueError(f"initial noise has shape {tuple(noise.shape)}, expected {shape}")
            return noise.to(device)
        return _randn(shape, generator, device)

    @staticmethod
    def _device(model, trace):
        if trace is not None:
            return trace.device
        return next(model.parameters()).device

    @torch.no_grad()
    def ddpm_sample(self, model, trace: torch.Tensor | None, shape, *,
                    guidance_scale: float = 1.0, generator: torch.Generator | None = None,
                    noise: torch.Tensor | None = None, clip_x0: float | None = None,
                    callback=None, record_attention: bool = False) -> torch.Tensor:
        """DDPM ancestral sampling over all T steps (P2's generation, Fig. 3).

        x_{t−1} = μ̃(x_t, x̂_0) + √β̃_t z, with the posterior mean μ̃ and variance
        β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) of q(x_{t−1} | x_t, x_0) (DDPM's σ² = β̃ choice),
        x̂_0 from the guided noise estimate, and no noise on the last step.

        Parameters
        ----------
        model : callable
            The noise predictor (module docstring); put it in eval mode first.
        trace : tensor (batch, n_fields) or None
            Normalised traces; None → unconditional samples.
        shape : tuple (batch, channels, height, width)
        guidance_scale : float
            γ of P2's deformed score (module docstring).
        generator : torch.Generator, sequence of them, or None
            Seeded generator for the initial noise and every step's noise: the same seed
            gives the same images. A sequence of G generators splits the batch into G equal
            blocks of rows, each drawn from its own generator (one trace's images each).
        noise : tensor or None
            Initial x_T instead of a draw.
        clip_x0 : float, (low, high) or None
            Clamp x̂_0 to [−clip_x0, clip_x0], or to [low, high] (only meaningful for data
            bounded so); None → off.
        callback : callable or None
            Called with a :class:`SamplingStep` after every step (snapshots, attention).
        record_attention : bool
            Put the bottleneck attention weights into each :class:`SamplingStep`.

        Returns
        -------
        tensor ``shape``: the generated normalised images.
        """
        device = self._device(model, trace)
        x = self._start(shape, trace, generator, noise, device)
        for index, step in enumerate(range(self.num_timesteps - 1, -1, -1)):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            epsilon, attention = self._epsilon(model, x, t, trace, guidance_scale,
                                               record_attention and callback is not None)
            x0 = self.predict_x0(x, t, epsilon)
            if clip_x0 is not None:
                x0 = _clamp(x0, clip_x0)
            mean = (self._at(self.posterior_mean_coef_x0, t, x) * x0
                    + self._at(self.posterior_mean_coef_xt, t, x) * x)
            if step > 0:
                x = mean + self._at(self.posterior_variance, t, x).sqrt() * _randn(
                    shape, generator, device, x.dtype)
            else:
                x = mean
            if callback is not None:
                callback(SamplingStep(index, step, x, x0, attention))
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        """The ``steps`` timesteps DDIM visits, descending from T − 1 to 0, evenly spaced."""
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"DDIM steps must be in 1 … {self.num_timesteps}, got {steps}")
        if steps == 1:
            return [self.num_timesteps - 1]
        grid = torch.linspace(0, self.num_timesteps - 1, steps, dtype=torch.float64).round()
        return sorted({int(v) for v in grid}, reverse=True)

    @torch.no_grad()
    def ddim_sample(self, model, trace: torch.Tensor | None, shape, *, steps: int = 50,
                    eta: float = 0.0, guidance_scale: float = 1.0,
                    generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                    clip_x0: float | None = None, callback=None,
                    record_attention: bool = False) -> torch.Tensor:
        """DDIM sampling (Song et al. 2021) over ``steps`` of the T timesteps.

        x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − c²) ε̂ + c z, with
        c = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) and ᾱ_prev = 1 after the last step.
        η = 0 (default) is deterministic given x_T; η = 1 resembles DDPM's variance.

        Parameters
        ----------
        steps : int
            Number of network evaluations (× 2 with guidance γ ∉ {0, 1}).
        eta : float
            η above.
        model, trace, shape, guidance_scale, generator, noise, clip_x0, callback, record_attention
            As :meth:`ddpm_sample`.
        """
        device = self._device(model, trace)
        x = self._start(shape, trace, generator, noise, device)
        timesteps = self.ddim_timesteps(steps)
        for index, step in enumerate(timesteps):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            epsilon, attention = self._epsilon(model, x, t, trace, guidance_scale,
                                               record_attention and callback is not None)
            x0 = self.predict_x0(x, t, epsilon)
            if clip_x0 is not None:
                x0 = _clamp(x0, clip_x0)
                # Keep ε̂ consistent with the clamped x̂_0, so the step points at it.
                epsilon = ((x - self._at(self.sqrt_alphas_cumprod, t, x) * x0)
                           / self._at(self.sigmas, t, x))
            alpha = float(self.alphas_cumprod[step])
            alpha_prev = (float(self.alphas_cumprod[timesteps[index + 1]])
                          if index + 1 < len(timesteps) else 1.0)
            c = eta * ((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev)) ** 0.5
            x = alpha_prev ** 0.5 * x0 + max(1 - alpha_prev - c ** 2, 0.0) ** 0.5 * epsilon
            if c > 0:
                x = x + c * _randn(shape, generator, device, x.dtype)
            if callback is not None:
                callback(SamplingStep(index, step, x, x0, attention))
        return x

    def sample(self, model, trace: torch.Tensor | None, shape, *, sampler: str = "ddpm",
               steps: int | None = None, **options) -> torch.Tensor:
        """``ddpm`` (all T steps; ``steps`` must be None or T) or ``ddim`` (``steps``,
        default 50); ``options`` go to :meth:`ddpm_sample` / :meth:`ddim_sample`."""
        if sampler == "ddpm":
            if steps not in (None, self.num_timesteps):
                raise ValueError(f"DDPM runs all {self.num_timesteps} steps; for fewer "
                                 f"steps use sampler='ddim' (got steps={steps})")
            return self.ddpm_sample(model, trace, shape, **options)
        if sampler == "ddim":
            return self.ddim_sample(model, trace, shape, steps=steps or 50, **options)
        raise ValueError(f"unknown sampler {sampler!r} (known: ddpm, ddim)")

    def _epsilon(self, model, x, t, trace, guidance_scale, record_attention):
        output = self.predict_noise(model, x, t, trace, guidance_scale=guidance_scale,
                                    return_attention=record_attention)
        return output if record_attention else (output, None)
