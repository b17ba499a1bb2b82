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


# -- P2 diffusion models --------------------------------------------------------------------

W, L, RADIUS, PAD = 10, 12, 2.0, 1
PLACEMENT = np.array([[3.0, 3.0], [6.0, 8.0]])        # [[cx, cy], ...], site indices


def _wire_image(placement=PLACEMENT, level=1.0, holes=0.0, seed=0):
    """(image_x, y) LDOS of the tiny wire: ``level`` × noise on the wire, ``holes`` × level in
    the antidot disks, zero padding."""
    from mesoinv.inference.antidot_detector import disk_offsets

    rng = np.random.default_rng(seed)
    image = np.zeros((W + 2 * PAD, L))
    image[PAD:PAD + W] = level * rng.uniform(0.8, 1.2, (W, L))
    for cx, cy in np.asarray(placement).reshape(-1, 2):
        for a, b in disk_offsets(RADIUS, 0, 0) + (int(cx), int(cy)):
            image[PAD + a, b] *= holes
    return image


def _detector():
    from mesoinv.inference.antidot_detector import AntidotDetector
    from mesoinv.physics.antidots import PairConstraints
    from mesoinv.physics.nanowire import NanowireGeometry

    return AntidotDetector(NanowireGeometry(W, L, RADIUS), PairConstraints(margin_x=1),
                           PAD, max_depth=0.5)


def test_depth_figure_counts_what_the_detector_counts(tmp_path, captured):
    from mesoinv.evaluation.p2_generation import figures

    figs = captured(figures)
    detector = _detector()
    true = np.stack([_wire_image(seed=s) for s in range(3)])
    # per trace: two clean holes, two faint dips (depth ≈ 0.7), one hole and one dip
    generated = np.stack([
        np.stack([_wire_image(seed=10), _wire_image(holes=0.35, seed=11)]),
        np.stack([_wire_image(holes=0.35, seed=12), _wire_image(seed=13)]),
        np.stack([_wire_image(PLACEMENT[:1], seed=14), _wire_image(seed=15, holes=0.2)]),
    ])
    generated[2, 0] = np.minimum(generated[2, 0], _wire_image(PLACEMENT[1:], holes=0.35,
                                                              seed=14))
    depths = figures.hole_depths(detector, generated, true, np.repeat(PLACEMENT[None], 3, 0))
    detection = detector.detect(generated)
    assert depths.found.sum() == detection.count.sum()
    assert 0 < depths.found.sum() < depths.found.size       # some rejected, some found
    np.testing.assert_array_equal(depths.true_holes, 0.0)   # true holes are clean
    assert np.all(depths.true_nearest_non_hole > 0.5)
    figures.plot_depth_distribution(depths, "test", tmp_path / "depths.png")
    left, right = figs[-1].axes[:2]
    found_bars, rejected_bars = left.containers[:2]
    assert sum(bar.get_height() for bar in found_bars) == detection.count.sum()
    assert (sum(bar.get_height() for bar in rejected_bars)
            == detection.count.size * 2 - detection.count.sum())
    for ax in (left, right):
        assert any(np.allclose(line.get_xdata(), 0.5) for line in ax.get_lines()), \
            "the threshold must be drawn"
    assert (tmp_path / "depths.png").stat().st_size > 0


def test_snapshots_are_in_wire_sites_with_the_antidots_overlaid(tmp_path, captured):
    from matplotlib.patches import Circle

    from mesoinv.evaluation.p2_generation import figures
    from mesoinv.inference.p2_figures import image_extent

    figs = captured(figures)
    rng = np.random.default_rng(0)
    shape = (W + 2 * PAD, L)
    snaps = [figures.Snapshot(i, 900 - 300 * i, rng.normal(size=shape), rng.normal(size=shape),
                              None) for i in range(3)]
    found = np.array([[3.0, 3.0], [np.nan, np.nan]])
    figures.plot_snapshots(snaps, 3, rng.uniform(-1, 1, shape), PLACEMENT, RADIUS, PAD, "t",
                           tmp_path / "s.png", final=rng.uniform(-1, 1, shape), found=found)
    fig = figs[-1]
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 2 * len(snaps) + 2
    for ax in panels:
        assert ax.get_images()[0].get_extent() == list(image_extent(shape, PAD))
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        assert sum(c.get_linestyle() == "--" for c in circles) == 2, "true antidots dashed"
    final = next(ax for ax in panels if ax.get_title().startswith("generated image"))
    assert sum(c.get_linestyle() == "-" for c in final.patches) == 1    # one found
    assert "1 antidot found" in final.get_title()
    assert any(ax.get_xlabel() == "i (sites)" for ax in panels)


def test_score_field_names_wire_sites_and_draws_arrowheads(tmp_path, captured):
    from matplotlib.quiver import Quiver

    from mesoinv.evaluation.p2_generation import figures

    figs = captured(figures)
    rng = np.random.default_rng(0)
    shape = (W + 2 * PAD, L)
    x0 = rng.uniform(-1, 1, shape)
    x_t = 0.9 * x0 + 0.3 * rng.normal(size=(20,) + shape)
    field = {"t": 99, "sigma": 0.3, "sqrt_alpha_bar": 0.9, "x0": x0, "x_t": x_t,
             "score": -(x_t - 0.9 * x0) / 0.09, "cosine": 1.0}
    pairs = [((PAD + 3, 3), (PAD + 6, 8), "both inside"), ((PAD + 3, 3), (PAD + 0, 0), "mixed")]
    figures.plot_score(field, pairs, "t", tmp_path / "score.png", padding=PAD)
    axes = figs[-1].axes
    assert axes[0].get_xlabel().startswith("LDOS at site (i, k) = (3, 3)")
    assert axes[0].get_ylabel().startswith("LDOS at site (i, k) = (6, 8)")
    assert "(i, k) = (0, 0)" in axes[1].get_ylabel()          # padding column 1 is i = 0
    quivers = [c for ax in axes for c in ax.collections if isinstance(c, Quiver)]
    assert quivers and all(q.headlength > 0 and q.headwidth > 1 for q in quivers)
    # the zoom row holds every arrowhead (x_t + σ² s) within its limits
    zoom = [ax for ax in axes if ax.get_title() == "zoom on the arrowheads"]
    assert len(zoom) == len(pairs)
    tips = x_t + 0.09 * field["score"]
    (a, b, _) = pairs[0]
    low, high = zoom[0].get_xlim()
    assert low <= tips[:, a[0], a[1]].min() and tips[:, a[0], a[1]].max() <= high


def test_attention_maxima_are_counted_on_and_off_the_antidots():
    from mesoinv.evaluation.p2_generation import figures

    shape = (12, 12)                     # 3 × 3 tokens of 4 × 4 pixels, no padding
    placement = np.array([[1.0, 1.0], [9.0, 9.0]])
    importance = np.ones((2, 9))
    importance[0, 0] = 5.0               # head 1: the cell at (0, 0) holds an antidot
    importance[1, 4] = 5.0               # head 2: the centre cell holds none
    snaps = [figures.Snapshot(0, 0, np.zeros(shape), np.zeros(shape), importance)]
    on, chance = figures.attention_on_antidots(snaps, shape, placement, 1.0, 0)
    np.testing.assert_array_equal(on[:, 0], [True, False])
    assert chance == pytest.approx(2 / 9)


def test_prediction_example_shares_an_unsaturated_ldos_scale(tmp_path, captured):
    import netCDF4

    from mesoinv.inference import p2_figures

    figs = captured(p2_figures)
    shape = (W + 2 * PAD, L)
    true = _wire_image()
    draws = np.stack([3.0 * _wire_image(seed=1), 2.0 * _wire_image(seed=2)])   # brighter
    path = tmp_path / "generated.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for name, size in (("trace", 1), ("draw", 2), ("image_x", shape[0]), ("y", shape[1]),
                           ("antidot", 2), ("field", 5)):
            ds.createDimension(name, size)

        def put(name, dims, data, dtype="f8"):
            ds.createVariable(name, dtype, dims)[...] = data
        put("field", ("field",), np.linspace(0, 1, 5))
        put("conductance", ("trace", "field"), np.ones((1, 5)))
        put("generated_ldos", ("trace", "draw", "image_x", "y"), draws[None])
        put("generated_ldos_mean", ("trace", "image_x", "y"), draws.mean(0)[None])
        put("generated_ldos_std", ("trace", "image_x", "y"), draws.std(0)[None])
        put("antidot_x", ("trace", "draw", "antidot"), np.full((1, 2, 2), np.nan))
        put("antidot_y", ("trace", "draw", "antidot"), np.full((1, 2, 2), np.nan))
        put("antidot_count", ("trace", "draw"), np.zeros((1, 2)), "i4")
        put("ldos_true", ("trace", "image_x", "y"), true[None])
        put("antidot_x_true", ("trace", "antidot"), PLACEMENT[None, :, 0])
        put("antidot_y_true", ("trace", "antidot"), PLACEMENT[None, :, 1])
        names = ds.createVariable("trace_name", str, ("trace",))
        names[0] = "sample 0"
        ds.setncatts({"ldos_padding_sites": PAD, "antidot_radius_sites": RADIUS,
                      "guidance_scale": 1.0, "model_name": "m", "sampler": "ddim",
                      "steps": 10, "seed": 0})
    p2_figures.plot_generated(path, tmp_path / "example.png")
    ldos = _images(figs[-1], "inferno")
    assert len(ldos) == 4                                  # true, two draws, mean
    assert len({im.get_clim() for im in ldos}) == 1
    top = ldos[0].get_clim()[1]
    assert top >= max(float(np.max(im.get_array())) for im in ldos)   # nothing saturates
    assert top == pytest.approx(float(draws.max()))


# -- loss curves ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, words", [
    ("p1_parameter_cnn", "standardised targets"),
    ("p1_fourier_cnn", "standardised Fourier coefficients"),
    ("p1_encoder_decoder", "min–max normalised potential"),
    ("p2_diffusion", "noise-prediction"),
])
def test_loss_curve_names_the_loss_of_each_model_kind(tmp_path, captured, kind, words):
    from mesoinv.training import loss_curve

    figs = captured(loss_curve)
    metrics = pd.DataFrame({"step": [1, 2, 3], "train_loss_step": [1.0, 0.5, 0.3],
                            "val_loss": [np.nan, 0.6, np.nan]})
    loss_curve.plot_loss_curve(metrics, tmp_path / "loss.png", model_kind=kind)
    label = figs[-1].axes[0].get_ylabel()
    assert words in label
    if kind != "p1_parameter_cnn":
        assert "standardised targets" not in label
