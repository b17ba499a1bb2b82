"""Figures that do not mislead: shared colour scales where panels are compared, baselines
drawn, axes in the stated units, the LDOS colour range not saturated, the loss named per model
kind, and P2's hole-depth figure counting what the detector counts. Tiny synthetic inputs;
each figure is captured before it is written (and still written, so it is a valid PNG)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from mesoinv import plotting
from mesoinv.inference.p1_formats import PotentialPredictions
from mesoinv.physics.disorder import (RemoteDopantDisorder, draw_fourier_coefficients,
                                      fourier_modes)
from mesoinv.physics.materials import GAAS


@pytest.fixture
def captured(monkeypatch):
    """``captured(module)``: the figures that ``module`` hands to ``save_figure``, in order
    (each still written to its PNG)."""
    figures = []

    def patch(module):
        def keep(fig, output):
            figures.append(fig)
            return plotting.save_figure(fig, output)
        monkeypatch.setattr(module, "save_figure", keep)
        return figures
    return patch


def _images(fig, cmap=None):
    return [im for ax in fig.axes for im in ax.get_images()
            if cmap is None or im.get_cmap().name == cmap]


# -- P1 potential models ------------------------------------------------------------------

A_NM, NX, NY, S_NM = 5.0, 16, 12, 15.0


def _potential_predictions(seed=0, noise=0.2, n=9) -> PotentialPredictions:
    """A tiny evaluated predictions object: Eq. 1 potentials, a noisy prediction whose error
    grows from row to row (so that a per-row scale would differ)."""
    from mesoinv.evaluation.p1_potential.projection import potential_from_coefficients

    rng = np.random.default_rng(seed)
    disorder = RemoteDopantDisorder(S_NM, 1e12, GAAS)
    modes = fourier_modes(NX * A_NM, NY * A_NM, disorder.cutoff_per_nm)
    sigma = disorder.coefficient_sigma(NX * A_NM, NY * A_NM)
    x_nm, y_nm = np.arange(NX) * A_NM, np.arange(NY) * A_NM
    true_c = np.stack([draw_fourier_coefficients(rng, len(modes), sigma) for _ in range(n)])
    true_v = potential_from_coefficients(true_c, modes, disorder, x_nm, y_nm)
    scale = noise * true_v.std() * np.linspace(0.3, 3.0, n)[:, None, None]
    predicted = true_v + scale * rng.normal(size=true_v.shape)
    metadata = {"lattice_constant_nm": A_NM, "nx_sites": NX, "ny_sites": NY,
                "qpc_first_y_site": 2, "qpc_width_sites": 8, "cutoff_factor": 3.5,
                "effective_mass_kg": GAAS.effective_mass_kg,
                "relative_permittivity": GAAS.relative_permittivity,
                "thomas_fermi_wavevector_per_nm": GAAS.thomas_fermi_wavevector_per_nm,
                "dopant_density_range_cm2": [1e12, 1e12]}
    return PotentialPredictions(
        path=Path("synthetic.nc"), model_name="synthetic", model_kind="p1_encoder_decoder",
        model_file="model.pt", split="test", input_file="tiny-test.nc",
        training_dataset="tiny", command="test", code_version="test",
        sample_id=np.arange(n, dtype=np.int64) + 100, x_nm=x_nm, y_nm=y_nm,
        potential_meV=predicted, potential_true_meV=true_v,
        training_mean_potential_meV=np.zeros((NX, NY)), modes=modes,
        coefficients_true=true_c, coefficients_predicted=None, n_train=50, metadata=metadata,
        dopant_distance_nm=S_NM, coefficient_sigma=sigma)


def _coefficient_table(p, scale):
    """coefficient_errors-like table with the model's MSE/σ² = scale × a ramp in |q|."""
    q = p.modes.q_per_nm
    ramp = scale * (0.05 + q / q.max())
    return pd.DataFrame({"qx_per_nm": p.modes.qx_per_nm, "qy_per_nm": p.modes.qy_per_nm,
                         "q_per_nm": q, "mse_real_over_sigma2": ramp,
                         "mse_imag_over_sigma2": 1.3 * ramp,
                         "training_mean_mse_real_over_sigma2": np.full(len(q), 1.02),
                         "training_mean_mse_imag_over_sigma2": np.full(len(q), 0.97),
                         "coefficient_source": "synthetic"})


def test_coefficient_errors_share_one_fixed_log_range_and_draw_the_baseline(tmp_path,
                                                                            captured):
    from mesoinv.evaluation.p1_potential import figures

    figs = captured(figures)
    p = _potential_predictions()
    limits, values = [], []
    for scale in (0.01, 0.2):          # two "models" with different ranges of errors
        table = _coefficient_table(p, scale)
        values.append(table.filter(like="mse").to_numpy())
        figures.plot_coefficient_errors(p, tmp_path / f"c{scale}.png", table=table)
        fig = figs[-1]
        maps = [ax for ax in fig.axes if ax.collections and ax.get_xlabel() == "q_x (nm⁻¹)"]
        assert len(maps) == 2
        norms = {(c.norm.vmin, c.norm.vmax) for ax in maps for c in ax.collections
                 if c.get_array() is not None}
        assert len(norms) == 1, "Re and Im panels must share one colour range"
        (vmin, vmax), = norms
        profile = next(ax for ax in fig.axes if ax.get_xlabel() == "|q| (nm⁻¹)")
        assert profile.get_yscale() == "log"
        assert profile.get_ylim() == pytest.approx((vmin, vmax))
        baseline = [line for line in profile.get_lines()
                    if np.allclose(line.get_ydata(), 1.0)]
        assert baseline, "the zero predictor's value 1 must be drawn as a line"
        limits.append((vmin, vmax))
    assert limits[0] == limits[1], "two models' figures must use the same range"
    assert limits[0][0] <= min(v.min() for v in values)
    assert limits[0][1] >= max(v.max() for v in values)
    assert (tmp_path / "c0.01.png").stat().st_size > 0
    # a value beyond the fixed range widens it to whole decades, never clips it
    assert figures.coefficient_error_range([1e-5, 12.0]) == (1e-5, 100.0)


def test_examples_and_error_map_share_their_colour_scales(tmp_path, captured):
    from mesoinv.evaluation.p1_potential import figures

    figs = captured(figures)
    p = _potential_predictions()
    figures.plot_examples(p, tmp_path / "examples.png")
    fig = figs[-1]
    errors = _images(fig, "PuOr_r")
    assert len(errors) == 3
    clims = {im.get_clim() for im in errors}
    assert len(clims) == 1, "one error scale for the three rows"
    (low, high), = clims
    assert low == -high
    largest = max(float(np.max(np.abs(im.get_array()))) for im in errors)
    assert high == pytest.approx(largest)
    assert len({im.get_clim() for im in _images(fig, "RdBu_r")}) == 1
    labels = [ax.get_xlabel() for ax in fig.axes if not ax.get_images()]   # colour bars
    assert any("meV" in label and "V_pred − V_true" in label for label in labels)

    figures.plot_error_map(p, tmp_path / "error_map.png")
    maps = _images(figs[-1], "viridis")
    assert len(maps) == 2
    assert len({im.get_clim() for im in maps}) == 1, "model and baseline on one scale"
    assert maps[0].get_clim()[0] == 0.0


def test_pldos_consistency_labels_the_worst_samples(tmp_path, captured):
    from mesoinv.evaluation.p1_potential import figures
    from mesoinv.evaluation.p1_potential.consistency import (POTENTIAL_SOURCES,
                                                             PLDOSConsistency)

    figs = captured(figures)
    rng = np.random.default_rng(1)
    k = 12
    r_p = {source: rng.uniform(0.5, 1.0, (k, 1)) for source in POTENTIAL_SOURCES}
    r_p["model"][4, 0] = 0.016            # one sample whose PLDOS is not reproduced
    maps = {key: rng.uniform(0, 1e-3, (NX, NY)) for key in ("stored",) + POTENTIAL_SOURCES}
    consistency = PLDOSConsistency(
        model_name="synthetic", split="test", dataset="tiny", command="test",
        fields_T=np.array([0.0]), sample_id=np.arange(k) + 100, r_p=r_p,
        mse={s: np.zeros((k, 1)) for s in POTENTIAL_SOURCES},
        mean_square_stored=np.ones((k, 1)),
        example={"sample_id": 101, **maps, "field_T": 0.0},
        frame={"x_nm": np.arange(NX) * A_NM, "y_nm": np.arange(NY) * A_NM, "a": A_NM,
               "qpc_first_y_site": 2, "qpc_width_sites": 8})
    figures.plot_pldos_consistency(consistency, tmp_path / "c.png")
    texts = [t.get_text() for ax in figs[-1].axes for t in ax.texts]
    assert any(t.startswith("sample 104: 0.016") for t in texts)
    ticks = [t.get_text() for ax in figs[-1].axes for t in ax.get_yticklabels()]
    assert any("min 0.016" in t for t in ticks)
