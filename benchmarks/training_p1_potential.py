"""Training group, P1 potential models: ``FourierCNN`` and ``EncoderDecoder`` under Lightning vs
a plain PyTorch loop, and prediction (network, Eq. (1) rebuild, whole command).

Rows (keys are stable; docs/benchmarks.md says what each means):

* ``train.<m>.*``          the two P1 potential models, ``m`` = ``fourier`` (the demo's
                           ``p1_fourier``: ``FourierCNN``, 2 N standardised coefficients) and
                           ``encdec`` (``p1_potential``: ``EncoderDecoder``, min-max V image),
                           on the demo geometry with a fixed s (``p1_fixed``), at each model's
                           own batch size: ``a``/``b``/``ratio.overhead``/``check`` as for the
                           parameter CNN (Lightning vs the plain loop, same batches, same start);
                           ``d.predict_images`` (network output per map: coefficients or V);
                           for ``fourier`` also ``d.rebuild`` (Eq. (1) of the predicted
                           coefficients on the grid, ``FourierTargets.potential_meV``),
                           ``d.predict_potential`` (both: V(x, y) in meV, what ``mesoinv
                           predict`` computes) and ``d.rebuild_share``; ``d.predict_dataset``
                           (the whole command on the val split, netCDF written).

They are timed in the repeats of the parameter CNN's demo geometry (``PotentialModels`` is a
companion of ``training_p1_parameters.measure``), after its rows, so machine load hits all
alike. Input data: a pair of splits from the config's ``p1_fixed`` (one dopant distance, as
Eq. (1)'s rebuild needs), with the true coefficients, modes and potentials the targets are
read from.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from types import SimpleNamespace

try:
    from .common import (LoopComparison, P1Config, Row, Stopwatch, Timings, alternating,
                         model_definition, overhead_row, p1_datamodule, p1_model_file,
                         p1_network, progress, rate_row, state_copy, write_splits)
except ImportError:  # pragma: no cover - imported as a top-level module
    from common import (LoopComparison, P1Config, Row, Stopwatch, Timings, alternating,
                        model_definition, overhead_row, p1_datamodule, p1_model_file,
                        p1_network, progress, rate_row, state_copy, write_splits)

#: The P1 potential models (P1 Sec. IV): (row key, entry of common.MODEL_CONFIG); their dataset.
POTENTIAL_MODELS = (("fourier", "p1_fourier"), ("encdec", "p1_potential"))
POTENTIAL_DATASET = "p1_fixed"


class PotentialModels:
    """The P1 potential models, measured as a companion of ``training_p1_parameters.measure``
    (``setup`` once, ``measure_repeat`` in each of its repeats); ``rows`` gives their rows."""

    def __init__(self):
        self.models: list = []

    def setup(self, cfg: P1Config, tmp: Path, tag: str) -> None:
        """Data, networks and model files of the P1 potential models, and empty timings.

        One pair of p1_fixed splits serves both models: (W + T) batches of the larger batch,
        so each run is at most one epoch. The model files hold the initial weights (prediction
        time does not depend on them)."""
        import torch

        from mesoinv.training.p1_data import iter_images

        definitions = [(key, model_definition(cfg.potential_batch, name))
                       for key, name in POTENTIAL_MODELS]
        batch = max(d["batch_size"] for _, d in definitions)
        progress(f"{tag}: simulating {cfg.n_unique} samples ({cfg.config_file}, "
                 f"{POTENTIAL_DATASET}) and writing the splits")
        train, val, _ = write_splits(cfg, tmp, POTENTIAL_DATASET, batch_size=batch,
                                     prefix="bench-fixed")
        for key, definition in definitions:
            ram = p1_datamodule(train, val, definition, "ram")
            torch.manual_seed(cfg.seed)
            network = p1_network(definition, ram)
            maps = list(iter_images(val, ram.val_field_indices))
            maps = (maps * (cfg.n_predict // len(maps) + 1))[:cfg.n_predict]
            model_path = tmp / f"model-{key}.pt"
            self.models.append(SimpleNamespace(
                key=key, definition=definition, val=val, ram=ram, network=network,
                initial_state=state_copy(network), maps=maps, model_path=model_path,
                model=p1_model_file(model_path, network, ram, definition),
                parameters=sum(q.numel() for q in network.parameters()),
                n_outputs=ram.target_set.n_outputs, n_train=ram.info.n_samples,
                n_val=ram.val_info.n_samples, loops=LoopComparison(),
                pred_images=Timings(), rebuild=Timings(), pred_potential=Timings(),
                rebuild_share=[], pred_dataset=Timings()))

    def measure_repeat(self, cfg: P1Config, repeat: int, tmp: Path) -> None:
        """One repeat of every potential model, one model after the other."""
        for p in self.models:
            _potential_repeat(cfg, p, repeat, tmp)

    def rows(self, prefix: str) -> list[Row]:
        """The rows of every potential model (``<prefix>.<key>.*``), in POTENTIAL_MODELS
        order."""
        result: list[Row] = []
        for p in self.models:
            result += _potential_rows(p, prefix)
        return result


def _potential_repeat(cfg: P1Config, p, repeat: int, tmp: Path) -> None:
    """One repeat of one potential model: (a) and (b) back to back, then prediction."""
    from mesoinv.inference.p1_predict import predict_dataset, predict_images

    p.loops.measure(cfg, p.ram, p.network, p.initial_state, p.definition,
                    alternating(repeat, "lightning", "plain"))

    n = len(p.maps)
    targets = p.model.target_set
    with Stopwatch() as images_sw:
        predictions = predict_images(p.model, p.maps)
    p.pred_images.add(images_sw.seconds / n, images_sw.cpu_seconds / n)
    if targets.kind == "fourier_coefficients":
        # What write_potential_predictions does with predict_images' coefficients.
        with Stopwatch() as rebuild_sw:
            potentials = targets.potential_meV(predictions)
        assert potentials.shape == (n, *p.model.inputs["image_shape"]), potentials.shape
        p.rebuild.add(rebuild_sw.seconds / n, rebuild_sw.cpu_seconds / n)
        p.pred_potential.add((images_sw.seconds + rebuild_sw.seconds) / n,
                             (images_sw.cpu_seconds + rebuild_sw.cpu_seconds) / n)
        p.rebuild_share.append(rebuild_sw.cpu_seconds
                               / (images_sw.cpu_seconds + rebuild_sw.cpu_seconds))
    with Stopwatch() as dataset_sw:
        predict_dataset(p.model_path, p.val, tmp / f"pred-{p.key}-{repeat}.nc")
    p.pred_dataset.add(dataset_sw.seconds / p.n_val, dataset_sw.cpu_seconds / p.n_val)


def _potential_rows(p, prefix: str) -> list[Row]:
    """The rows of one P1 potential model (``<prefix>.<key>.*``)."""
    k = f"{prefix}.{p.key}"
    d, arch = p.definition, p.definition["architecture"]
    name, batch = d["name"], d["batch_size"]
    lightning, plain = p.loops.lightning, p.loops.plain
    if d["kind"] == "p1_fourier_cnn":
        network = (f"FourierCNN (conv {'/'.join(map(str, arch['conv_channels']))}, first "
                   f"kernel {arch['first_kernel_size']}, dense {arch['dense_units']})")
        outputs = f"{p.n_outputs} outputs: Re, Im of {p.n_outputs // 2} coefficients"
        predicted = "coefficients"
    else:
        network = (f"EncoderDecoder (encoder {'/'.join(map(str, arch['encoder_channels']))}, "
                   f"{arch['convs_per_block']} convs per block)")
        outputs = "output: the V image, min-max normalised"
        predicted = "V(x, y) in meV (min-max inverted)"
    rows = [
        Row(f"{k}.config.parameters", f"{name}: {network} parameters", p.parameters,
            "parameters", note=f"{d['kind']}; {outputs}"),
        Row(f"{k}.config.batch", f"{name}: batch size", batch, "samples",
            note=f"train split {p.n_train} samples; mirror augmentation off (both loops)"),
        lightning.row(f"{k}.a.lightning", f"{name} (a) Lightning Trainer.fit, "
                      "RegressionModule, ram mode: per step",
                      note="steady state; logger, checkpoints, progress bar off"),
        plain.row(f"{k}.b.plain", f"{name} (b) plain loop, same batches: per step",
                  note="same initial weights, same DataLoader"),
        rate_row(f"{k}.a.lightning_rate", f"{name} (a) Lightning training throughput",
                 lightning, batch, "samples/s"),
        rate_row(f"{k}.b.plain_rate", f"{name} (b) plain-loop training throughput", plain,
                 batch, "samples/s"),
        overhead_row(f"{k}.ratio.overhead", f"{name} (a) / (b) − 1: Lightning's overhead "
                     "per step", lightning, plain, p.loops.paired),
        Row(f"{k}.check.same_losses", f"{name} max |loss (a) − loss (b)| over the steps of a "
            "repeat", max(p.loops.loss_diffs), "1", note="0: same batches, same start, same "
                                                         "arithmetic"),
        p.pred_images.row(f"{k}.d.predict_images", f"{name} (d) predict_images, per map "
                          "(batch 1)", note=f"{1 / p.pred_images.median:,.0f} maps/s; "
                                            f"{len(p.maps)} maps per call; returns {predicted}"),
        rate_row(f"{k}.d.predict_rate", f"{name} (d) predict_images throughput",
                 p.pred_images, 1, "maps/s"),
    ]
    if p.rebuild.wall:
        rows += [
            p.rebuild.row(f"{k}.d.rebuild", f"{name} (d rebuild) V(x, y) from the predicted "
                          "coefficients, Eq. (1) (FourierTargets.potential_meV): per map",
                          note=f"{1 / p.rebuild.median:,.0f} maps/s"),
            p.pred_potential.row(f"{k}.d.predict_potential", f"{name} (d) + (d rebuild): "
                                 "V(x, y) in meV from a map, per map",
                                 note="what mesoinv predict computes, before the netCDF"),
            rate_row(f"{k}.d.predict_potential_rate", f"{name} predict_images + rebuild "
                     "throughput", p.pred_potential, 1, "maps/s"),
            Row(f"{k}.d.rebuild_share", f"{name} rebuild / (predict_images + rebuild)",
                100.0 * statistics.median(p.rebuild_share), "%",
                note=f"median of {len(p.rebuild_share)} per-repeat CPU-time shares"),
        ]
    rows.append(p.pred_dataset.row(
        f"{k}.d.predict_dataset", f"{name} (d') predict_dataset on a split file, per map",
        note=f"{1 / p.pred_dataset.median:,.0f} maps/s; {p.n_val} maps: load model, read, "
             "predict" + (", rebuild" if p.rebuild.wall else "") + ", write netCDF (V, "
             "truth, coefficients)"))
    return rows
