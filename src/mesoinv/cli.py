"""Command line: ``mesoinv simulate``, ``mesoinv plot-sample``, ``mesoinv check-config``.

Examples
--------
Simulate samples 5…9 of the demo dataset ``p1_varying`` into one file::

    mesoinv simulate --config config/config.yaml --dataset p1_varying --ids 5:10 -o s.nc

Draw sample 7 (potential and PLDOS)::

    mesoinv plot-sample s.nc --sample-id 7 -o sample7.png
"""

import argparse
import sys

from .config import ConfigError, load_config
from .datasets.shards import MPIWiringError

__all__ = ["main", "parse_ids"]


def parse_ids(text: str) -> list[int]:
    """Parse ``"0:100"`` (half-open), ``"3"``, ``"1,4,9"`` or mixes such as ``"0:5,10,20:22"``."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                start, stop = (int(v) for v in part.split(":"))
                if stop <= start:
                    raise ValueError
                ids.extend(range(start, stop))
            else:
                ids.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad id list {text!r}: use e.g. '0:100' (half-open), '7' or '1,4,9'") from None
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
    ids = args.ids if args.ids is not None else list(spec.shard_ids(args.shard))
    try:
        counts = simulate_shard(spec, ids, args.output, comm=comm,
                                progress=not args.no_progress, on_failure=args.on_sample_failure)
    except Exception:
        if size > 1:  # the other ranks would wait forever in a collective call
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
    from .evaluation.figures import plot_sample

    path = plot_sample(args.dataset_file, args.sample_id, args.output,
                       field_index=args.field_index)
    print(f"wrote {path}", file=sys.stderr)


def _check_config(args):
    config = load_config(args.config)
    for name, entry in config["datasets"].items():
        print(f"{name}: {entry['kind']}, {entry['n_samples']} samples, "
              f"shards of {entry['shard_size']}")
    print(f"{args.config}: valid")


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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConfigError as error:
        parser.exit(2, f"mesoinv: invalid configuration: {error}\n")
    except MPIWiringError as error:
        parser.exit(2, f"mesoinv: MPI launch error: {error}\n")
    except RuntimeError as error:  # e.g. a sample that failed twice, named in the message
        parser.exit(1, f"mesoinv: {error}\n")
    except ValueError as error:
        parser.exit(2, f"mesoinv: {error}\n")


if __name__ == "__main__":
    main()
