"""Oracle tests of the P2 numerics: cases whose answer is known independently of the code.

* Samplers: Gaussian data x₀ ~ N(μ, s²) per pixel, with the exact optimal noise predictor
  ε*(x_t, t) = σ_t (x_t − √ᾱ_t μ) / (ᾱ_t s² + σ_t²) in place of the network. For such data
  every DDPM or DDIM step is an affine map of x plus independent Gaussian noise, so the mean
  and variance of the generated pixels follow from a scalar recurrence written here from the
  papers' update rules (Ho et al. 2020, Eqs. 6-7; Song et al. 2021, Eq. 12), independently of
  ``GaussianDiffusion``. DDPM over all 1000 steps must also land on N(μ, s²) itself.
* Guidance: with conditional N(μ_c, s²) and unconditional N(μ_u, s²), P2's deformed score
  γ ∇log p(x|y) + (1 − γ) ∇log p(x) is the score of N(γ μ_c + (1 − γ) μ_u, s²): samples at
  γ = 0, 1, 2 must have that mean.
* SAM: two steps on a linear denoiser, computed by hand (closed-form gradients of the MSE,
  perturbation ρ g/‖g‖, gradient at the perturbed point, restore, Adam's update with its
  bias corrections), against :class:`DiffusionModule` under Lightning in float64.
"""

import logging
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mesoinv.models.gaussian_diffusion import GaussianDiffusion
from mesoinv.training.p2_module import DiffusionModule

MU_CONDITIONAL, MU_UNCONDITIONAL, DATA_STD = 1.5, -0.5, 0.5
# 16 × 1 × 32 × 32 independent pixels: standard errors of the mean and of the standard
# deviation ≈ 0.004 and 0.003.
SHAPE = (16, 1, 32, 32)


class ExactGaussianDenoiser(nn.Module):
    """ε*(x_t, t) of per-pixel Gaussian data: N(μ_c, s²) with the condition, N(μ_u, s²)
    without (the keep mask chooses), in the network's calling convention."""

    def __init__(self, diffusion: GaussianDiffusion, mu_conditional: float,
                 mu_unconditional: float, std: float):
        super().__init__()
        self.alphas_cumprod = diffusion.alphas_cumprod
        self.mu = (mu_conditional, mu_unconditional)
        self.std = std

    def forward(self, x_t, t, trace, keep_condition, return_attention=False):
        alpha = self.alphas_cumprod[t.cpu()].to(x_t.dtype).reshape(-1, 1, 1, 1)
        sigma2 = 1.0 - alpha
        mu = torch.where(keep_condition.reshape(-1, 1, 1, 1),
                         torch.tensor(self.mu[0], dtype=x_t.dtype),
                         torch.tensor(self.mu[1], dtype=x_t.dtype))
        epsilon = sigma2.sqrt() * (x_t - alpha.sqrt() * mu) / (alpha * self.std ** 2 + sigma2)
        return (epsilon, None) if return_attention else epsilon


def _schedule(T=1000, beta_start=1e-4, beta_end=0.02):
    betas = np.linspace(beta_start, beta_end, T)
    return betas, np.cumprod(1.0 - betas)


def _posterior_of_x0(alpha, mu, std):
    """x̂₀ = a x + b and ε̂ = c x + d for Gaussian data at noise level ᾱ (exact)."""
    sigma2 = 1.0 - alpha
    denominator = alpha * std ** 2 + sigma2
    a = np.sqrt(alpha) * std ** 2 / denominator
    c = np.sqrt(sigma2) / denominator
    return a, mu - a * np.sqrt(alpha) * mu, c, -c * np.sqrt(alpha) * mu


def ddpm_moments(mu, std):
    """Mean and std of DDPM's output (all T steps, x_T ~ N(0, 1)), by the scalar recurrence
    x_{t−1} = c₀ x̂₀ + c_t x_t + √β̃_t z (Ho et al. 2020, Eqs. 6-7; no noise at t = 0)."""
    betas, alphas_cumprod = _schedule()
    mean, var = 0.0, 1.0
    for t in range(len(betas) - 1, -1, -1):
        alpha, alpha_prev = alphas_cumprod[t], (alphas_cumprod[t - 1] if t else 1.0)
        coef_x0 = betas[t] * np.sqrt(alpha_prev) / (1 - alpha)
        coef_xt = (1 - alpha_prev) * np.sqrt(1 - betas[t]) / (1 - alpha)
        a, b, _, _ = _posterior_of_x0(alpha, mu, std)
        slope, offset = coef_x0 * a + coef_xt, coef_x0 * b
        noise = betas[t] * (1 - alpha_prev) / (1 - alpha) if t else 0.0
        mean, var = slope * mean + offset, slope ** 2 * var + noise
    return mean, np.sqrt(var)


def ddim_moments(mu, std, steps, eta):
    """Mean and std of DDIM's output over ``steps`` evenly spaced timesteps (Song et al. 2021,
    Eq. 12: x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev − c²) ε̂ + c z,
    c = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev), ᾱ_prev = 1 after the last step)."""
    _, alphas_cumprod = _schedule()
    T = len(alphas_cumprod)
    visited = sorted({int(v) for v in np.round(np.linspace(0, T - 1, steps))}, reverse=True)
    mean, var = 0.0, 1.0
    for i, t in enumerate(visited):
        alpha = alphas_cumprod[t]
        alpha_prev = alphas_cumprod[visited[i + 1]] if i + 1 < len(visited) else 1.0
        c = eta * np.sqrt((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev))
        a, b, ca, cb = _posterior_of_x0(alpha, mu, std)
        direction = np.sqrt(max(1 - alpha_prev - c ** 2, 0.0))
        slope = np.sqrt(alpha_prev) * a + direction * ca
        offset = np.sqrt(alpha_prev) * b + direction * cb
        mean, var = slope * mean + offset, slope ** 2 * var + c ** 2
    return mean, np.sqrt(var)


def _sample(sampler, guidance_scale=1.0, seed=3, **options):
    diffusion = GaussianDiffusion()
    denoiser = ExactGaussianDenoiser(diffusion, MU_CONDITIONAL, MU_UNCONDITIONAL, DATA_STD)
    trace = torch.zeros(SHAPE[0], 4)  # the denoiser reads only the keep mask
    x = diffusion.sample(denoiser, trace, SHAPE, sampler=sampler, guidance_scale=guidance_scale,
                         generator=torch.Generator().manual_seed(seed), **options)
    return float(x.double().mean()), float(x.double().std())


def _tolerances(std):
    n = np.prod(SHAPE)
    return 4 * std / np.sqrt(n), 4 * std / np.sqrt(2 * (n - 1))  # 4 standard errors


def test_oracle_recurrence_reaches_the_data_distribution():
    """The oracle itself: DDPM and a 1000-step DDIM reproduce N(μ, s²) up to discretisation,
    while a 10-step DDIM does not (so the comparisons below can tell samplers apart)."""
    mean, std = ddpm_moments(MU_CONDITIONAL, DATA_STD)
    assert mean == pytest.approx(MU_CONDITIONAL, abs=1e-3)
    assert std == pytest.approx(DATA_STD, rel=0.01)
    mean, std = ddim_moments(MU_CONDITIONAL, DATA_STD, 1000, 0.0)
    assert std == pytest.approx(DATA_STD, rel=0.01)
    assert ddim_moments(MU_CONDITIONAL, DATA_STD, 10, 0.0)[1] < 0.8 * DATA_STD


def test_ddpm_samples_the_gaussian_with_the_exact_score():
    mean, std = _sample("ddpm")
    mean_tol, std_tol = _tolerances(DATA_STD)
    expected_mean, expected_std = ddpm_moments(MU_CONDITIONAL, DATA_STD)
    assert mean == pytest.approx(expected_mean, abs=mean_tol)
    assert std == pytest.approx(expected_std, abs=std_tol)
    # ... which is the data distribution itself, to within 1 %.
    assert mean == pytest.approx(MU_CONDITIONAL, abs=mean_tol + 0.01)
    assert std == pytest.approx(DATA_STD, abs=std_tol + 0.005)


@pytest.mark.parametrize("steps, eta", [(50, 0.0), (50, 1.0), (10, 0.0)])
def test_ddim_matches_its_update_rule(steps, eta):
    mean, std = _sample("ddim", steps=steps, eta=eta)
    expected_mean, expected_std = ddim_moments(MU_CONDITIONAL, DATA_STD, steps, eta)
    mean_tol, std_tol = _tolerances(expected_std)
    assert mean == pytest.approx(expected_mean, abs=mean_tol)
    assert std == pytest.approx(expected_std, abs=std_tol)


@pytest.mark.parametrize("sampler, options", [("ddpm", {}), ("ddim", {"steps": 50})])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_guidance_moves_the_mean_as_the_deformed_score_says(sampler, options, gamma):
    mean, std = _sample(sampler, guidance_scale=gamma, **options)
    target = gamma * MU_CONDITIONAL + (1 - gamma) * MU_UNCONDITIONAL
    moments = ddpm_moments if sampler == "ddpm" else (
        lambda mu, s: ddim_moments(mu, s, options["steps"], 0.0))
    expected_mean, expected_std = moments(target, DATA_STD)
    mean_tol, std_tol = _tolerances(expected_std)
    assert mean == pytest.approx(expected_mean, abs=mean_tol)
    # the recurrence's mean is the formula's, up to DDIM's discretisation (0.3 % at 50 steps)
    assert abs(expected_mean - target) < 0.005 * abs(target) + 0.005
    assert std == pytest.approx(expected_std, abs=std_tol)  # guidance keeps the width here


class ExactGaussianOutput(ExactGaussianDenoiser):
    """The exact x̂₀* or v* of the same Gaussian data, from the closed-form posterior of this
    file (x̂₀* = a x + b; v* = √ᾱ ε* − σ x̂₀*), not from ``GaussianDiffusion``."""

    def __init__(self, prediction, *args):
        super().__init__(*args)
        self.prediction = prediction

    def forward(self, x_t, t, trace, keep_condition, return_attention=False):
        alpha = self.alphas_cumprod[t.cpu()].to(x_t.dtype).reshape(-1, 1, 1, 1)
        mu = torch.where(keep_condition.reshape(-1, 1, 1, 1),
                         torch.tensor(self.mu[0], dtype=x_t.dtype),
                         torch.tensor(self.mu[1], dtype=x_t.dtype))
        a = alpha.sqrt() * self.std ** 2 / (alpha * self.std ** 2 + 1.0 - alpha)
        x0 = a * x_t + mu - a * alpha.sqrt() * mu
        epsilon = super().forward(x_t, t, trace, keep_condition)
        out = x0 if self.prediction == "x0" else alpha.sqrt() * epsilon - (1 - alpha).sqrt() * x0
        return (out, None) if return_attention else out


@pytest.mark.parametrize("prediction", ["v", "x0"])
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_v_and_x0_prediction_sample_what_the_exact_output_implies(prediction, gamma):
    """A network that outputs the exact v* or x̂₀* must generate what the exact ε* does: the
    recurrence's moments (DDIM, 50 steps) at the guided mean."""
    diffusion = GaussianDiffusion(prediction=prediction)
    denoiser = ExactGaussianOutput(prediction, diffusion, MU_CONDITIONAL, MU_UNCONDITIONAL,
                                   DATA_STD)
    x = diffusion.sample(denoiser, torch.zeros(SHAPE[0], 4), SHAPE, sampler="ddim", steps=50,
                         guidance_scale=gamma, generator=torch.Generator().manual_seed(3))
    target = gamma * MU_CONDITIONAL + (1 - gamma) * MU_UNCONDITIONAL
    expected_mean, expected_std = ddim_moments(target, DATA_STD, 50, 0.0)
    mean_tol, std_tol = _tolerances(expected_std)
    assert float(x.double().mean()) == pytest.approx(expected_mean, abs=mean_tol)
    assert float(x.double().std()) == pytest.approx(expected_std, abs=std_tol)


@pytest.mark.parametrize("prediction", ["epsilon", "v", "x0"])
def test_training_targets_by_hand(prediction):
    """The loss is zero for the target written from its definition and the noise estimate
    of that target is the drawn ε."""
    diffusion = GaussianDiffusion(prediction=prediction)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 1, 4, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(5, 1, 4, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 998, 999])
    alpha = torch.from_numpy(_schedule()[1][t.numpy()]).reshape(-1, 1, 1, 1)
    by_hand = {"epsilon": noise, "x0": x0,
               "v": alpha.sqrt() * noise - (1 - alpha).sqrt() * x0}[prediction]
    torch.testing.assert_close(diffusion.training_target(x0, t, noise), by_hand)
    x_t = alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise
    torch.testing.assert_close(diffusion.output_to_noise(x_t, t, by_hand), noise)

    def network(x, steps, trace, keep, return_attention=False):
        return by_hand

    loss = diffusion.loss(network, x0, None, t=t, noise=noise)
    assert float(loss) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(prediction="score")


# --- SAM --------------------------------------------------------------------------------------

PIXELS = 6


class LinearDenoiser(nn.Module):
    """ε̂ = W vec(x_t) + b: a denoiser whose MSE gradients have a closed form."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(PIXELS * PIXELS, PIXELS * PIXELS)

    def forward(self, x_t, t, trace, keep_condition, return_attention=False):
        return self.linear(x_t.flatten(1)).reshape(x_t.shape)


def _mse_gradient(weight, bias, x_t, noise):
    """Closed-form ∇ of mean((W x + b − ε)²) over batch and pixels."""
    x = x_t.reshape(len(x_t), -1)
    residual = x @ weight.T + bias - noise.reshape(len(noise), -1)
    n = residual.numel()
    return 2.0 / n * residual.T @ x, 2.0 / n * residual.sum(0)


def _hand_sam_adam(weight, bias, batches, *, rho, lr, betas=(0.9, 0.999), eps=1e-8):
    """Weights after SAM(Adam) steps, one per ``(x_t, noise)`` batch, and the perturbed
    weights at which each step's second gradient was taken."""
    m = [torch.zeros_like(weight), torch.zeros_like(bias)]
    v = [torch.zeros_like(weight), torch.zeros_like(bias)]
    params, perturbed = [weight.clone(), bias.clone()], []
    for step, (x_t, noise) in enumerate(batches, start=1):
        gradient = _mse_gradient(*params, x_t, noise)
        norm = torch.sqrt(sum((g ** 2).sum() for g in gradient))
        shifted = [p + rho * g / norm for p, g in zip(params, gradient)]
        perturbed.append(shifted)
        sharp = _mse_gradient(*shifted, x_t, noise)  # restore: the step starts from params
        for i, g in enumerate(sharp):
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g ** 2
            m_hat = m[i] / (1 - betas[0] ** step)
            v_hat = v[i] / (1 - betas[1] ** step)
            params[i] = params[i] - lr * m_hat / (v_hat.sqrt() + eps)
    return params, perturbed


@pytest.fixture
def quiet_lightning():
    level = logging.getLogger("pytorch_lightning").level
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        yield
    logging.getLogger("pytorch_lightning").setLevel(level)


def test_sam_step_equals_the_hand_computed_step(tmp_path, quiet_lightning):
    torch.manual_seed(0)
    rho, lr, steps = 0.05, 1e-2, 2
    network = LinearDenoiser().double()
    module = DiffusionModule(network, model_name="oracle", optimizer={
        "name": "sam", "learning_rate": lr, "rho": rho}, condition_dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(steps * 4, 1, PIXELS, PIXELS, generator=generator, dtype=torch.float64)
    traces = torch.zeros(steps * 4, 3, dtype=torch.float64)
    draws = [(torch.randint(0, 1000, (4,), generator=generator),
              torch.randn(4, 1, PIXELS, PIXELS, generator=generator, dtype=torch.float64))
             for _ in range(steps)]
    calls = iter(draws)

    def fixed_draws(x0, condition_dropout=0.0, generator=None):  # the test's t and ε
        t, noise = next(calls)
        return t, noise, torch.ones(len(x0), dtype=torch.bool)

    module.diffusion.draw_training_inputs = fixed_draws
    seen = []
    network.register_forward_pre_hook(
        lambda net, args: seen.append([p.detach().clone() for p in net.parameters()]))
    start = [p.detach().clone() for p in network.parameters()]

    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, precision="64-true",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(images, traces), batch_size=4))
    assert trainer.global_step == steps

    batches = [(module.diffusion.q_sample(images[4 * i:4 * i + 4], t, noise), noise)
               for i, (t, noise) in enumerate(draws)]
    expected, perturbed = _hand_sam_adam(*start, batches, rho=rho, lr=lr)
    final = [p.detach() for p in network.parameters()]
    for got, want in zip(final, expected):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=0)
    # The second pass of each step ran at w + ρ g/‖g‖ ...
    assert len(seen) == 2 * steps
    for step in range(steps):
        for got, want in zip(seen[2 * step + 1], perturbed[step]):
            # (the module takes the MSE in float32: agreement to float32 rounding)
            torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-6)
    # ... and the weights after the step are not the perturbed ones (SAM restored before Adam).
    assert not torch.allclose(final[0], perturbed[-1][0], atol=1e-6)
    # A plain Adam step from the same start differs (the perturbation matters).
    plain, _ = _hand_sam_adam(*start, batches, rho=0.0 + 1e-300, lr=lr)
    assert not torch.allclose(plain[0], expected[0], atol=1e-6)
