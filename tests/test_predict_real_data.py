"""`mesoinv predict` on measured traces (CSV): field grids written with a few digits,
--resample, --conductance-unit, --device, --ids, the training ensemble in the output, and the
detector's "no antidot found". The tiny P2 model and splits are the fixtures of
tests/test_diffusion_evaluation.py (built once for this module)."""

import netCDF4
import numpy as np
import pytest
import torch

from mesoinv.cli import main
from mesoinv.evaluation.p2_generation.positions import evaluate_positions
from mesoinv.inference.antidot_detector import DEFAULT_MAX_DEPTH, AntidotDetector, read_geometry
from mesoinv.inference.p2_generate import (FIELD_GRID_TOLERANCE, generate_from_csv,
                                           generate_images, load_diffusion_model,
                                           resolve_sampling)
from mesoinv.training.model_file import IncompatibleDataError
from mesoinv.training.p2_readers import load_ldos, read_placements, read_traces
from test_diffusion_evaluation import _write_csv, model_path, splits  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread_quiet")  # tests/conftest.py


def _fields(model_path):
    return np.asarray(load_diffusion_model(model_path).inputs["fields_T"], dtype=np.float64)


def _attrs(path):
    with netCDF4.Dataset(path) as ds:
        return {k: ds.getncattr(k) for k in ds.ncattrs()}, np.asarray(ds["conductance"][:])


# -- field grid -------------------------------------------------------------------------------

def test_a_field_grid_written_with_few_digits_is_the_models(splits, model_path, tmp_path):
    fields = _fields(model_path)
    spacing = np.min(np.diff(fields))
    trace = read_traces(splits["val"])[0]
    # as if written with a few significant digits: off by up to 0.9e-3 of the spacing
    wobble = 0.9 * FIELD_GRID_TOLERANCE * spacing * np.where(np.arange(len(fields)) % 2, 1, -1)
    rounded = _write_csv(tmp_path / "rounded.csv", fields + wobble, {"G": trace})
    path = generate_from_csv(model_path, rounded, tmp_path / "rounded.nc", samples_per_trace=1)
    with netCDF4.Dataset(path) as ds:
        np.testing.assert_array_equal(ds["field"][:], fields)     # the model's grid, snapped
        assert "resampled_from_fields_T" not in ds.ncattrs()
    off = _write_csv(tmp_path / "off.csv", fields + 3 * FIELD_GRID_TOLERANCE * spacing,
                     {"G": trace})
    with pytest.raises(IncompatibleDataError, match="--resample"):
        generate_from_csv(model_path, off, tmp_path / "off.nc")
    assert not (tmp_path / "off.nc").exists()


def test_resample_interpolates_inside_the_measured_range(model_path, tmp_path):
    fields = _fields(model_path)
    measured = np.linspace(fields[0], fields[-1], 3 * len(fields) - 1)
    m = min(load_diffusion_model(model_path).data_metadata["open_channels"])
    assert m >= 1
    linear = m * (0.1 + 0.8 * (measured - measured[0]) / (measured[-1] - measured[0]))
    csv = _write_csv(tmp_path / "fine.csv", measured, {"G": linear})
    output = tmp_path / "fine.nc"
    with pytest.warns(UserWarning, match="interpolated linearly"):
        generate_from_csv(model_path, csv, output, samples_per_trace=1, resample=True)
    attrs, conductance = _attrs(output)
    np.testing.assert_allclose(conductance[0],
                               m * (0.1 + 0.8 * (fields - fields[0]) / (fields[-1] - fields[0])),
                               rtol=1e-12)
    np.testing.assert_allclose(attrs["resampled_from_fields_T"], measured, rtol=1e-15)
    assert "numpy.interp" in attrs["history"] and "--resample" in attrs["history"]
    # the measured range must hold the model's: no extrapolation
    narrow = _write_csv(tmp_path / "narrow.csv", measured[1:], {"G": linear[1:]})
    with pytest.raises(IncompatibleDataError, match="does not extrapolate"):
        generate_from_csv(model_path, narrow, tmp_path / "narrow.nc", resample=True)
    assert not (tmp_path / "narrow.nc").exists()
    # without --resample another grid is refused, naming the option
    with pytest.raises(IncompatibleDataError, match="--resample"):
        generate_from_csv(model_path, csv, tmp_path / "refused.nc")


# -- conductance unit, training ensemble ------------------------------------------------------

def test_conductance_in_2e2_h_is_doubled_recorded_and_bounded(splits, model_path, tmp_path):
    fields = _fields(model_path)
    trace = read_traces(splits["val"])[0]
    csv = _write_csv(tmp_path / "spin.csv", fields, {"G": trace / 2})
    output = tmp_path / "spin.nc"
    generate_from_csv(model_path, csv, output, samples_per_trace=1, conductance_unit="2e2/h")
    attrs, conductance = _attrs(output)
    np.testing.assert_allclose(conductance[0], trace, rtol=1e-15)
    assert attrs["conductance_unit_input"] == "2e2/h"
    assert "multiplied by 2" in attrs["conductance_conversion"]
    # a value fine in e2/h may be impossible in 2e2/h: the bound is checked after conversion
    channels = load_diffusion_model(model_path).data_metadata["open_channels"]
    high = _write_csv(tmp_path / "high.csv", fields,
                      {"G": 0.75 * np.asarray(channels, dtype=float)})
    generate_from_csv(model_path, high, tmp_path / "high_ok.nc", samples_per_trace=1)
    with pytest.raises(ValueError, match="open channel|outside"):
        generate_from_csv(model_path, high, tmp_path / "high.nc", conductance_unit="2e2/h")
    assert not (tmp_path / "high.nc").exists()


def test_training_ensemble_ids_and_device_through_the_cli(splits, model_path, tmp_path,
                                                         capsys):
    fields = _fields(model_path)
    traces = read_traces(splits["val"])
    csv = _write_csv(tmp_path / "three.csv", fields,
                     {"wire A": traces[0], "wire B": traces[1], "wire C": traces[2]})
    output = tmp_path / "out.nc"
    main(["predict", str(model_path), str(csv), "--ids", "1", "-o", str(output),
          "--samples-per-trace", "1", "--device", "auto"])
    err = capsys.readouterr().err
    meta = load_diffusion_model(model_path).data_metadata
    with netCDF4.Dataset(output) as ds:
        assert list(ds["trace_name"][:]) == ["wire B"]
        np.testing.assert_array_equal(ds["sample_id"][:], [1])
        assert ds.device == ("cuda" if torch.cuda.is_available() else "cpu")
        assert float(ds.training_potential_amplitude_t) == float(meta["potential_amplitude_t"])
        assert int(ds.training_realizations_per_configuration) == \
            int(meta["realizations_per_configuration"])
        assert "disorder amplitude" in ds.training_ensemble
        assert ds["antidot_count"].shape == (1, 1)
    assert "disorder amplitude" in err and "antidots:" in err


# -- bad input: one line, nothing written ------------------------------------------------------

@pytest.mark.parametrize("case", ["device gpu", "device cuda", "unit", "unit on netCDF",
                                  "extrapolate", "ids out of range", "evaluate device"])
def test_bad_new_options_give_one_line_and_write_nothing(splits, model_path, tmp_path, capsys,
                                                         case):
    if case == "device cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    fields = _fields(model_path)
    trace = read_traces(splits["val"])[0]
    csv = _write_csv(tmp_path / "t.csv", fields, {"G": trace})
    short = _write_csv(tmp_path / "short.csv", fields[1:], {"G": trace[1:]})
    output, figure = tmp_path / "out.nc", tmp_path / "out.png"
    base = ["predict", str(model_path), str(csv), "-o", str(output), "--figure", str(figure)]
    argv = {"device gpu": base + ["--device", "gpu"],
            "device cuda": base + ["--device", "cuda"],
            "unit": base + ["--conductance-unit", "e2/2h"],
            "unit on netCDF": ["predict", str(model_path), str(splits["val"]), "-o", str(output),
                               "--conductance-unit", "2e2/h"],
            "extrapolate": ["predict", str(model_path), str(short), "-o", str(output),
                            "--resample"],
            "ids out of range": base + ["--ids", "3"],
            "evaluate device": ["evaluate", str(splits["val"]), "--output-dir",
                                str(tmp_path / "ev"), "--device", "tpu"]}[case]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mesoinv: ") and err.count("\n") == 1, err
    assert not output.exists() and not figure.exists() and not (tmp_path / "ev").exists()


# -- detector: "no antidot found" ---------------------------------------------------------------

def test_detector_counts_antidots_and_says_none_found(splits, model_path, tmp_path):
    path = splits["test"]
    with netCDF4.Dataset(path) as ds:
        n = ds.dimensions["sample"].size
    images = load_ldos(path, list(range(n)))
    true = read_placements(path)
    detector = AntidotDetector.from_file(path)
    assert detector.max_depth == DEFAULT_MAX_DEPTH == 0.5
    found = detector.detect(images)
    # every true image: two antidots, the same centres as without the criterion
    assert np.all(found.count == 2) and np.all(found.depth == 0)
    old = AntidotDetector.from_file(path, max_depth=None).detect(images)
    np.testing.assert_array_equal(found.centres, old.centres)
    # fill one hole, then both, with the wire's median LDOS
    geometry, _, p = read_geometry(path)
    W = geometry.width_sites
    filled = np.repeat(images[:1], 2, axis=0)
    wire = filled[:, p:p + W]
    level = np.median(wire[0])
    ii, kk = np.meshgrid(np.arange(W), np.arange(geometry.length_sites), indexing="ij")
    r = geometry.antidot_radius
    for c, (cx, cy) in enumerate(true[0]):
        disk = (ii - cx) ** 2 + (kk - cy) ** 2 <= r * r + 1e-9
        wire[1][disk] = level
        if c == 0:
            wire[0][disk] = level
    filled[:, p:p + W] = wire
    result = detector.detect(filled)
    np.testing.assert_array_equal(result.count, [1, 0])
    assert np.all(np.isfinite(result.centres[0, 0])) and np.all(np.isnan(result.centres[0, 1]))
    np.testing.assert_array_equal(result.centres[0, 0], true[0, 1])
    assert np.all(np.isnan(result.centres[1]))
    # accuracy treats a missing antidot as wrong
    constraints = read_geometry(path)
    scores = evaluate_positions(result.centres, true[:1].repeat(2, 0), geometry,
                                constraints[1])
    for name in ("strict", "mirrors", "classes"):
        assert not getattr(scores, name).correct.any()
        # a missing antidot makes the image wrong and its position error undefined
        assert np.all(np.isnan(getattr(scores, name).error))
    summary = scores.summary()
    assert summary["accuracy_strict"] == 0.0 and summary["both_found_strict"] == 0.0
    assert np.isnan(summary["mean_error_strict_sites"])  # no image with two holes


def test_generated_file_and_figure_say_no_antidot_found(model_path, tmp_path):
    from mesoinv.inference.p2_figures import plot_generated
    from mesoinv.inference.p2_format import read_generated, write_generated

    model = load_diffusion_model(model_path)
    shape = tuple(model.targets["image_shape"])
    flat = np.ones((1, 2) + shape)                   # a uniform wire: no hole anywhere
    p = int(model.data_metadata.get("ldos_padding_sites", 0))
    flat[..., :p, :] = 0
    flat[..., shape[0] - p:, :] = 0
    options = resolve_sampling(model, samples_per_trace=2)
    fields = _fields(model_path)
    output = write_generated(tmp_path / "flat.nc", model, model_path, sample_ids=[0],
                             traces=np.ones((1, len(fields))), fields_T=fields,
                             generated=flat, options=options, input_file="x.csv",
                             input_kind="csv", split="unknown")
    generated = read_generated(output)
    np.testing.assert_array_equal(generated.found_count, [[0, 0]])
    assert np.all(np.isnan(generated.found))
    assert "no antidot found in 2" in generated.attrs["antidot_summary"]
    assert plot_generated(output, tmp_path / "flat.png").stat().st_size > 0


def test_batched_generation_keeps_per_trace_seeding(splits, model_path):
    model = load_diffusion_model(model_path)
    traces = read_traces(splits["val"])[:3]
    options = resolve_sampling(model, samples_per_trace=2)
    together = generate_images(model, traces, [5, 6, 7], options)
    alone = generate_images(model, traces[1:2], [6], options)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-4, atol=1e-6)
    assert not np.allclose(together[0], together[1])
