"""Command line: ``mesoinv simulate``, ``plot-sample``, ``check-config``, ``train``, ``predict``,
``evaluate``.

Examples
--------
Simulate samples 5…9 of the demo dataset ``p1_varying`` into one file::

    mesoinv simulate --config config/config.yaml --dataset p1_varying --ids 5:10 -o s.nc

Draw sample 7 (potential and PLDOS)::

    mesoinv plot-sample s.nc --sample-id 7 -o sample7.png

Train a model of the config (splits from results/datasets/), then predict test samples::

    mesoinv train --config config/config.yaml --model p1_rms_xi -o model.pt
    mesoinv predict model.pt results/datasets/p1_varying/p1_varying-test.nc --ids 0:50 -o p.nc

``simulate``, ``predict`` and ``evaluate`` never write onto an existing file unless given
``--force``, and never onto one of their inputs (the model, the data), not even with it; every
output is checked writable before any work, and the outputs of one command appear together or
not at all.
"""

import argparse
import os
import sys

# No numpy (nor anything that loads it) at import: `mesoinv simulate` pins the BLAS/OpenMP
# threads first (see main), which BLAS reads once, when numpy loads.
from .config import ConfigError, load_config

__all__ = ["main", "parse_ids", "PINNED_THREAD_VARIABLES"]

#: Set to 1 by `mesoinv simulate` before numpy loads: the same summation order, hence the same
#: bytes, as inside the workflow's shard jobs (whose rule exports them too), whatever the shell
#: has set. MUMPS is sequential anyway; BLAS threads would only reorder numpy's sums.
PINNED_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _pin_threads(command: str | None) -> None:
    if command != "simulate":
        return
    changed = {name: os.environ.get(name) for name in PINNED_THREAD_VARIABLES
               if os.environ.get(name) != "1"}
    for name in PINNED_THREAD_VARIABLES:
        os.environ[name] = "1"
    if changed and "numpy" in sys.modules:  # called from a process that already loaded numpy
        print(f"mesoinv: warning: numpy was loaded before {', '.join(changed)} could be "
              "pinned to 1; the bytes may differ in the last digits from the workflow's",
              file=sys.stderr)


#: Most ids one command takes (a shard is at most 1,000,000 samples by the config schema); the
#: count is checked before any list is built, so '0:1000000000' is refused, not materialized.
MAX_IDS = 1_000_000


def parse_ids(text: str) -> list[int]:
    """Parse ``"0:100"`` (half-open), ``"3"``, ``"1,4,9"`` or mixes such as ``"0:5,10,20:22"``."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                start, stop = (int(v) for v in part.split(":"))
                if stop <= start:
                    raise ValueError
            else:
                start = int(part)
                stop = start + 1
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad id list {text!r}: use e.g. '0:100' (half-open), '7' or '1,4,9'") from None
        if start < 0:
            raise argparse.ArgumentTypeError(f"bad id list {text!r}: ids are non-negative")
        ranges.append(range(start, stop))
    count = sum(len(r) for r in ranges)
    if count > MAX_IDS:
        raise argparse.ArgumentTypeError(
            f"the id list {text!r} holds {count:,} ids, more than the {MAX_IDS:,} one command "
            "takes: simulate a dataset in shards (--shard, or the workflow)")
    ids = [i for r in ranges for i in r]
    if not ids:
        raise argparse.ArgumentTypeError("the id list is empty")
    if len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"the id list {text!r} has duplicates")
    return ids


def _simulate(args):
    import logging

    from .datasets import dataset_spec, mpi_world, simulate_shard

    # Check the MPI wiring first: a mis-wired launch must stop before any rank writes.
    comm = mpi_world(args.expect_ranks)
    rank, size = comm.Get_rank(), comm.Get_size()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s rank {rank}/{size} %(levelname)s %(message)s")
    if args.dataset_definition:
        if args.config or args.dataset:
            raise SystemExit("mesoinv simulate: --dataset-definition replaces --config/--dataset")
        import json

        from .datasets.kinds import spec_from_entry

        with open(args.dataset_definition) as handle:
            definition = json.load(handle)
        spec = spec_from_entry(definition["name"], definition)
    else:
        if not (args.config and args.dataset):
            raise SystemExit("mesoinv simulate: give --config and --dataset "
                             "(or --dataset-definition)")
        spec = dataset_spec(load_config(args.config), args.dataset)
    if (args.ids is None) == (args.shard is None):
        raise SystemExit("mesoinv simulate: give exactly one of --ids or --shard")
    from .datasets.integrity import check_outputs

    # Every rank sees the same files and refuses alike, before any sample is computed.
    check_outputs([args.output], inputs=[("config file", args.config),
                                         ("dataset definition", args.dataset_definition)],
                  force=args.force)
    ids = args.ids if args.ids is not None else list(spec.shard_ids(args.shard))
    try:
        counts = simulate_shard(spec, ids, args.output, comm=comm,
                                progress=not args.no_progress, on_failure=args.on_sample_failure)
    except Exception as error:
        # the other ranks would wait forever in a collective call (unless all of them stopped)
        if size > 1 and not getattr(error, "raised_on_all_ranks", False):
            logging.getLogger("mesoinv").exception("rank %d failed; aborting all ranks", rank)
            comm.Abort(1)
        raise
    if rank == 0:
        print(f"wrote {len(ids) - len(counts['failed'])} samples of '{spec.name}' to {args.output} "
              f"({counts['computed']} computed on {counts['ranks']} ranks, "
              f"{counts['reused']} reused from an interrupted run)", file=sys.stderr)
        for sample_id, reason in counts["failed"].items():
            print(f"WARNING: sample {sample_id} failed and is left out: {reason}", file=sys.stderr)


def _plot_sample(args):
    from .evaluation.dataset_figures import plot_sample

    path = plot_sample(args.dataset_file, args.sample_id, args.output,
                       field_index=args.field_index)
    print(f"wrote {path}", file=sys.stderr)


def _check_config(args):
    config = load_config(args.config)
    for name, entry in config["datasets"].items():
        print(f"{name}: {entry['kind']}, {entry['n_samples']} samples, "
              f"shards of {entry['shard_size']}")
    print(f"{args.config}: valid")


def _train(args):
    import json
    import logging
    from pathlib import Path

    from .training.train_p1 import train_model
    from .training.trainer import write_training_outputs

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    if args.definition:
        if args.config or args.model:
            raise SystemExit("mesoinv train: --definition replaces --config/--model")
        definition = json.loads(Path(args.definition).read_text())
    else:
        if not (args.config and args.model):
            raise SystemExit("mesoinv train: give --config and --model (or --definition)")
        config = load_config(args.config)
        if args.model not in config["models"]:
            known = ", ".join(sorted(config["models"])) or "none"
            raise ConfigError(f"models.{args.model}", f"no such model (known: {known})")
        definition = {**config["models"][args.model], "name": args.model}
    dataset = definition["dataset"]
    base = Path("results/datasets") / dataset
    train = args.train or base / f"{dataset}-train.nc"
    val = args.val or base / f"{dataset}-val.nc"
    for path in (train, val):
        if not Path(path).is_file():
            raise FileNotFoundError(f"split file {path} does not exist (run the workflow's "
                                    f"split_dataset for '{dataset}' first)")
    state = args.state_dir or Path("results/training") / definition["name"]
    trainer = train_model
    if definition.get("kind") == "p2_diffusion":
        from .training.train_p2 import train_diffusion_model as trainer
    trainer(definition, train_path=train, val_path=val, output=args.output,
            state_root=state, progress=False if args.no_progress else None,
            threads=args.threads)
    out = Path(args.output)
    write_training_outputs(out, args.metrics_csv or out.with_name("training_metrics.csv"),
                           args.loss_curve or out.with_name("loss_curve.png"))
    print(f"wrote {args.output}", file=sys.stderr)


def _generate(args, device):
    """`mesoinv predict` with a P2 diffusion model: LDOS images (maps) generated from G(B)
    traces."""
    from pathlib import Path

    from .inference.p2_generate import conductance_factor, generate_from_csv, generate_from_dataset

    options = {"samples_per_trace": args.samples_per_trace, "sampler": args.sampler,
               "steps": args.steps, "guidance_scale": args.guidance_scale, "seed": args.seed,
               "figure": args.figure, "force": args.force, "device": device, "ids": args.ids}
    if Path(args.input).suffix.lower() == ".csv":
        return generate_from_csv(args.model, args.input, args.output, resample=args.resample,
                                 conductance_unit=args.conductance_unit or "e2/h", **options)
    csv_flags = [flag for flag, value in (("--resample", args.resample or None),
                                          ("--conductance-unit", args.conductance_unit))
                 if value is not None and value != "e2/h"]
    if csv_flags:
        conductance_factor(args.conductance_unit)      # an unknown unit is named first
        raise ValueError(f"{', '.join(csv_flags)} apply to a CSV of measured traces; a netCDF "
                         "dataset file is on the model's field grid, in e2/h")
    return generate_from_dataset(args.model, args.input, args.output, **options)


def _generation_summary(path) -> None:
    """The stderr summary of a generated file: training ensemble, units, antidots found."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    lines = [f"model: {attrs.get('training_ensemble', 'training ensemble not recorded')}",
             f"device: {attrs.get('device', 'cpu')}; conductance unit of the input: "
             f"{attrs.get('conductance_unit_input', 'e2/h')}"
             + (f" ({attrs['conductance_conversion']})" if "conductance_conversion" in attrs
                and attrs.get("conductance_unit_input") != "e2/h" else ""),
             f"antidots: {attrs.get('antidot_summary', '')}"]
    if "history" in attrs:
        lines.append(f"resampled: {attrs['history']}")
    for line in lines:
        print(line, file=sys.stderr)


def _predict(args):
    from pathlib import Path

    from .inference.devices import resolve_device
    from .inference.p1_predict import predict_dataset, predict_npy
    from .training.model_file import load_model_file

    diffusion_flags = [flag for flag, value in (
        ("--samples-per-trace", args.samples_per_trace), ("--sampler", args.sampler),
        ("--steps", args.steps), ("--guidance-scale", args.guidance_scale),
        ("--seed", args.seed), ("--resample", args.resample or None),
        ("--conductance-unit", args.conductance_unit)) if value is not None]
    from .datasets.integrity import check_outputs

    # Before the model is even loaded: an output that is an input, exists, or cannot be
    # written stops the command at once; so does an unknown or absent device.
    check_outputs([args.output, args.figure],
                  inputs=[("model file", args.model), ("input file", args.input)],
                  force=args.force)
    device = resolve_device(args.device)
    if args.conductance_unit is not None:
        from .inference.p2_generate import conductance_factor

        conductance_factor(args.conductance_unit)
    if load_model_file(args.model).is_diffusion:
        map_flags = [flag for flag, value in (
            ("--lattice-constant-nm", args.lattice_constant_nm), ("--energy-meV", args.energy_meV),
            ("--fields-T", args.fields_T)) if value is not None]
        if map_flags:
            raise ValueError(f"{', '.join(map_flags)} describe .npy PLDOS maps for P1 models; "
                             "a P2 model reads traces (their field grid is checked against "
                             "the model's)")
        path = _generate(args, device)
        print(f"wrote {path}", file=sys.stderr)
        _generation_summary(path)
        return
    if diffusion_flags:
        raise ValueError(f"{', '.join(diffusion_flags)} apply to P2 diffusion models only")
    if Path(args.input).suffix == ".npy":
        missing = [flag for flag, value in (("--lattice-constant-nm", args.lattice_constant_nm),
                                            ("--energy-meV", args.energy_meV),
                                            ("--fields-T", args.fields_T)) if value is None]
        if missing:
            raise ValueError(f"a .npy input needs {', '.join(missing)} (the physics of the "
                             "maps, checked against the model's training data)")
        if args.ids is not None:
            raise ValueError("--ids selects samples of a netCDF input, not of a .npy array")
        path = predict_npy(args.model, args.input, args.output,
                           lattice_constant_nm=args.lattice_constant_nm,
                           energy_meV=args.energy_meV, fields_T=args.fields_T,
                           figure=args.figure, force=args.force, device=device)
    else:
        path = predict_dataset(args.model, args.input, args.output, ids=args.ids,
                               figure=args.figure, force=args.force, device=device)
    print(f"wrote {path}", file=sys.stderr)


#: Files `mesoinv evaluate` writes for a parameter model
#: (:func:`mesoinv.evaluation.p1_parameters.evaluate.evaluate_parameter_model`), unless that
#: module lists them itself as ``OUTPUT_FILES`` (the other two evaluations do).
PARAMETER_EVALUATION_FILES = {"metrics": "metrics.csv", "paper_comparison": "paper_comparison.csv",
                              "predicted_vs_true": "predicted_vs_true.png",
                              "error_histograms": "error_histograms.png",
                              "error_correlation": "error_correlation.png"}


def _evaluate(args):
    from pathlib import Path

    import netCDF4

    from .datasets.integrity import check_outputs
    from .datasets.netcdf import staged_directory
    from .inference.p1_formats import POTENTIAL_PREDICTIONS_FORMAT_VERSION
    from .inference.devices import resolve_device
    from .inference.p2_format import GENERATED_FORMAT_VERSION

    device = resolve_device(args.device)
    if not Path(args.predictions).is_file():
        raise FileNotFoundError(f"predictions file {args.predictions} does not exist")
    with netCDF4.Dataset(args.predictions) as ds:
        version = getattr(ds, "format_version", None)
    if version == GENERATED_FORMAT_VERSION:
        from .evaluation.p2_generation import evaluate as module

        missing = [flag for flag, value in (("--model", args.model), ("--dataset", args.dataset))
                   if value is None]
        if missing:
            raise ValueError(f"evaluating generated LDOS images needs {', '.join(missing)} "
                             "(the model file for the baselines, snapshots, attention and "
                             "score field; the dataset split for the truth)")

        def run(directory):
            return module.evaluate_diffusion_model(args.predictions, directory,
                                                   model_path=args.model,
                                                   dataset_path=args.dataset,
                                                   train_path=args.train, device=device)
    elif version == POTENTIAL_PREDICTIONS_FORMAT_VERSION:
        from .evaluation.p1_potential import evaluate as module

        def run(directory):
            return module.evaluate_potential_model(args.predictions, directory,
                                                   dataset_path=args.dataset,
                                                   physics_samples=args.physics_samples)
    else:
        from .evaluation.p1_parameters import evaluate as module

        def run(directory):
            return module.evaluate_parameter_model(args.predictions, directory,
                                                   dataset_path=args.dataset,
                                                   train_path=args.train)
    output_dir = Path(args.output_dir)
    names = getattr(module, "OUTPUT_FILES", PARAMETER_EVALUATION_FILES)
    # Before any work: no output may be an input or (without --force) an existing file.
    check_outputs([output_dir / name for name in names.values()],
                  inputs=[("predictions file", args.predictions),
                          ("dataset file", args.dataset), ("model file", args.model),
                          ("training split", args.train)], force=args.force)
    # Written into a staging directory, then moved into place together (or not at all).
    with staged_directory(output_dir, overwrite=args.force) as stage:
        paths = run(stage)
    for path in paths.values():
        print(f"wrote {output_dir / Path(path).name}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesoinv", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    simulate = sub.add_parser("simulate", help="simulate sample ids of a dataset into a netCDF file")
    simulate.add_argument("--config", help="workflow config (YAML)")
    simulate.add_argument("--dataset", help="dataset name in the config")
    simulate.add_argument("--dataset-definition",
                          help="definition.json written by the workflow (instead of "
                               "--config/--dataset)")
    simulate.add_argument("--ids", type=parse_ids, help="ids: '0:100', '7', '1,4,9'")
    simulate.add_argument("--shard", type=int, help="shard number (ids from shard_size)")
    simulate.add_argument("-o", "--output", required=True, help="netCDF file to write")
    simulate.add_argument("--force", action="store_true",
                          help="replace an existing output file (never an input)")
    simulate.add_argument("--no-progress", action="store_true", help="no progress bar")
    simulate.add_argument("--on-sample-failure", choices=("fail", "skip"), default="fail",
                          help="after one retry, fail the job (default) or leave the sample out")
    simulate.add_argument("--expect-ranks", type=int,
                          help="MPI ranks the job was launched with; stop if the MPI world differs")
    simulate.set_defaults(func=_simulate)

    plot = sub.add_parser("plot-sample", help="figure of one sample, any dataset kind (PNG)")
    plot.add_argument("dataset_file", help="netCDF file of the dataset or a shard")
    plot.add_argument("--sample-id", type=int, required=True)
    plot.add_argument("--field-index", type=int, default=0, help="PLDOS field channel (P1)")
    plot.add_argument("-o", "--output", required=True, help="PNG to write")
    plot.set_defaults(func=_plot_sample)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("config")
    check.set_defaults(func=_check_config)

    train = sub.add_parser("train", help="train a model of the config (resumes interrupted runs)")
    train.add_argument("--config", help="workflow config (YAML)")
    train.add_argument("--model", help="model name in the config's models section")
    train.add_argument("--definition", help="definition.json written by the workflow "
                                            "(instead of --config/--model)")
    train.add_argument("--train", help="training split (default results/datasets/<d>/<d>-train.nc)")
    train.add_argument("--val", help="validation split (default …/<d>-val.nc)")
    train.add_argument("--state-dir", help="resumable state (default results/training/<model>)")
    train.add_argument("-o", "--output", required=True, help="model file to write")
    train.add_argument("--loss-curve", help="PNG of the loss curve (default beside the model)")
    train.add_argument("--metrics-csv", help="CSV of the logged losses (default beside the model)")
    train.add_argument("--threads", type=int, help="CPU threads for torch")
    train.add_argument("--no-progress", action="store_true", help="log lines, no progress bar")
    train.set_defaults(func=_train)

    predict = sub.add_parser(
        "predict", help="apply a trained model: P1 models to PLDOS maps, P2 diffusion models "
                        "to G(B) traces (LDOS images and antidot positions)")
    predict.add_argument("model", help="model file (model.pt)")
    predict.add_argument("input", help="P1: PLDOS maps, a netCDF file in the dataset format or a "
                                       ".npy array; P2: G(B) traces, a netCDF file in the "
                                       "dataset format or a CSV (field_T, then one conductance "
                                       "column per trace)")
    predict.add_argument("--ids", type=parse_ids,
                         help="sample ids of a netCDF input, or trace columns of a CSV "
                              "(0 = the first after field_T)")
    predict.add_argument("--lattice-constant-nm", type=float, help="P1: for a .npy input")
    predict.add_argument("--energy-meV", type=float, help="P1: Fermi energy, for a .npy input")
    predict.add_argument("--fields-T", type=float, nargs="+",
                         help="P1: field of each channel of a .npy input")
    predict.add_argument("-o", "--output", required=True,
                         help="netCDF to write: P1 predictions, or P2 generated LDOS images")
    predict.add_argument("--figure", help="PNG: the first map and its predictions (vs truth if "
                                          "known), or the first trace and its generated images")
    predict.add_argument("--force", action="store_true",
                         help="replace existing output files (never the model or the input)")
    predict.add_argument("--device", default="cpu", metavar="auto|cpu|cuda",
                         help="where the network runs: auto (cuda if torch sees a GPU, else "
                              "cpu), cpu (default) or cuda (an error without a GPU); P2's noise "
                              "is drawn on the CPU with per-trace seeds either way")
    predict.add_argument("--resample", action="store_true",
                         help="P2, CSV traces: interpolate (linearly) a trace measured on another "
                              "field grid onto the model's, inside the measured range only; "
                              "recorded in the output. Without it a grid must match the "
                              "model's within 1e-3 of the grid spacing")
    predict.add_argument("--conductance-unit", metavar="e2/h|2e2/h",
                         help="P2, CSV traces: unit of the conductance columns, e2/h (default, "
                              "spinless, as the datasets) or 2e2/h (spin-degenerate "
                              "measurements; multiplied by 2 to e2/h); recorded in the output")
    predict.add_argument("--samples-per-trace", type=int,
                         help="P2 diffusion models: LDOS images generated per trace")
    predict.add_argument("--sampler", choices=("ddpm", "ddim"),
                         help="P2: ancestral DDPM (every step) or deterministic DDIM")
    predict.add_argument("--steps", type=int, help="P2: DDIM steps")
    predict.add_argument("--guidance-scale", type=float,
                         help="P2's gamma: gamma eps(x, y) + (1 - gamma) eps(x); 0 ignores the trace")
    predict.add_argument("--seed", type=int, help="P2: sampling seed")
    predict.set_defaults(func=_predict)

    evaluate = sub.add_parser("evaluate", help="metrics and figures of a predictions file")
    evaluate.add_argument("predictions", help="netCDF written by mesoinv predict")
    evaluate.add_argument("--output-dir", required=True)
    evaluate.add_argument("--force", action="store_true",
                          help="replace existing metrics and figures in the output directory")
    evaluate.add_argument("--dataset", help="the dataset file predicted (adds the Bayes ceiling "
                                            "from the true potentials to the metrics; "
                                            "for potential models: the input PLDOS and the "
                                            "physics-consistency check)")
    evaluate.add_argument("--model", help="P2: the model file (baselines, snapshots, attention, "
                                          "score field)")
    evaluate.add_argument("--train", help="the training split: P2's trace-blind baseline; for P1 "
                                          "parameter models (with --dataset) the ridge "
                                          "power-spectrum and nearest-training-map baselines")
    evaluate.add_argument("--device", default="cpu", metavar="auto|cpu|cuda",
                          help="P2: where the network runs for the trace-blind baseline, "
                               "snapshots and score field: auto (cuda if available), cpu "
                               "(default) or cuda (an error without a GPU)")
    evaluate.add_argument("--physics-samples", type=int, default=100,
                          help="potential models: test samples whose PLDOS is recomputed by the "
                               "simulator from the predicted potential (default 100)")
    evaluate.set_defaults(func=_evaluate)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _pin_threads(args.command)  # before anything loads numpy
    from .datasets.shards import MPIWiringError

    try:
        args.func(args)
    except ConfigError as error:
        parser.exit(2, f"mesoinv: invalid configuration: {error}\n")
    except MPIWiringError as error:
        parser.exit(2, f"mesoinv: MPI launch error: {error}\n")
    except RuntimeError as error:  # e.g. a sample that failed twice, or an unwritable output
        parser.exit(1, f"mesoinv: {error}\n")
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"mesoinv: {error}\n")
    except OSError as error:  # read-only, full disk, a directory in the way: path and cause
        parser.exit(1, f"mesoinv: {error}\n")


if __name__ == "__main__":
    main()
