"""P1 training at the paper's scale on one GPU (issue 19, item 5): one prepared script for a
GPU machine, with the workflow's own training path.

P1 trains on 57,600 PLDOS maps of 1280 × 960 nm (256 × 192 sites, ``config/paper.yaml``).
What one GPU makes of that is measured with :func:`mesoinv.training.train_p1.train_model`,
the function ``mesoinv train`` calls (Lightning, the data module, checkpoints, validation, the
model file), at the paper models' architectures and batch sizes, nothing re-implemented.

Two phases, because the GPU machine has no Kwant (nothing can be installed there but carried
wheels; training and prediction import without Kwant):

``prepare`` (here, with Kwant and MUMPS)::

    .venv/bin/python benchmarks/gpu_paper_scale.py prepare --out .gpubench

simulates ``--n-unique`` distinct samples of ``config/paper.yaml``'s ``p1_varying`` and
``p1_fixed`` in the exact split format (``write_p1_netcdf``) and writes the paper models'
validated definitions (``definitions.json``).

``run`` (on the GPU machine; netCDF4 and cftime carried as wheels)::

    python3 benchmarks/gpu_paper_scale.py run --seeds .gpubench --out $OUT

tiles the seeds into split files of the size each row needs (every stored variable, sample
ids renumbered, the seeds' maps repeated: a step's cost does not depend on the values; the
files carry ``benchmark_tiled_from`` and no checksums) and times ``train_model``:

(a) ``p1_s_nd`` (``ParameterCNN``, batch 32) over the paper's split sizes, 57,600 training
    and 7,200 validation maps, one epoch each in ``32-true`` and in ``bf16-mixed`` (what
    ``precision: auto`` picks on this GPU), data mode ``auto``: the whole call (reading the
    files and fitting the statistics, moving the data to the GPU, the epoch, validation, the
    model file) and the steady-state seconds per optimizer step (between the end of step W
    and the end of step W + T, as the CPU rows of ``training.py`` time them);
(b) ``p1_fourier`` (``FourierCNN``, batch 128) and ``p1_potential`` (``EncoderDecoder``,
    batch 8) in both precisions on a smaller tiled ``p1_fixed`` split, steady state only;
(c) every model in ``32-true`` on this machine's CPU cores (a subprocess that cannot see the
    GPU: ``CUDA_VISIBLE_DEVICES=''``, torch threads = the cores), a few steps each, for the
    GPU-over-CPU ratio measured in the same run.

From the steady-state step it projects the paper's whole training (its epochs × steps per
epoch; validation and start-up excluded). Writes ``gpu_paper_scale.json`` and
``gpu_paper_scale.md`` (the table of docs/benchmarks.md) under ``--out``. ``--quick`` runs
the same path with tiny splits (the CPU, on this machine: a check of the script).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from benchmarks.common import (REPO_ROOT, Row, machine_description, machine_markdown,  # noqa: E402
                               steady_state, step_clock, table_markdown)

#: The paper models timed, their dataset in config/paper.yaml.
MODELS = {"p1_s_nd": "p1_varying", "p1_fourier": "p1_fixed", "p1_potential": "p1_fixed"}

#: P1's training set (Sec. III): 57,600 maps of p1_varying (80 % of 72,000), 7,200 for
#: validation; p1_fixed's split of 88,000 maps at the same fractions: 70,400 training maps.
PAPER_TRAIN = {"p1_varying": 57_600, "p1_fixed": 70_400}
PAPER_VAL = 7_200


def log(message: str) -> None:
    print(f"[gpu_paper_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


# -- prepare (with Kwant) ----------------------------------------------------------------------

def prepare(out: Path, n_unique: int, config: str) -> None:
    """Seed splits of ``n_unique`` simulated samples per dataset and the models' definitions."""
    from mesoinv.config import load_config
    from mesoinv.datasets import P1Simulator, dataset_spec
    from mesoinv.datasets.netcdf import write_p1_netcdf

    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(REPO_ROOT / config)
    definitions = {name: {**cfg["models"][name], "name": name} for name in MODELS}
    for dataset in sorted(set(MODELS.values())):
        spec = dataset_spec(cfg, dataset)
        simulator = P1Simulator(spec)
        started = time.perf_counter()
        samples = [simulator.simulate(i) for i in range(n_unique)]
        log(f"{dataset}: {n_unique} samples of {spec.geometry.nx} × {spec.geometry.ny} sites "
            f"simulated in {time.perf_counter() - started:.0f} s")
        write_p1_netcdf(out / f"{dataset}-seed.nc", spec, samples,
                        **simulator.file_metadata(), extra_attributes={"split": "train"})
    (out / "definitions.json").write_text(json.dumps(
        {"config": config, "definitions": definitions}, indent=2, sort_keys=True))
    log(f"wrote {out}")


# -- run (on the GPU machine) ------------------------------------------------------------------

#: Stored variables a model's training never reads, left out of the tiled files (p1_s_nd reads
#: the PLDOS and its two targets, not the potential: 12.7 GB less to write and read).
UNREAD = {"p1_varying": ("potential",), "p1_fixed": ()}


def tile_split(seed: Path, path: Path, n: int, split: str, block: int = 512,
               drop=()) -> Path:
    """A split file of ``n`` samples: every variable of ``seed`` but ``drop``, the per-sample
    ones tiled (sample k holds seed sample k mod n_seed), ``sample_id`` = 0 … n − 1, no
    checksums."""
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(seed) as src, netCDF4.Dataset(path, "w", format="NETCDF4") as dst:
        n_seed = src.dimensions["sample"].size
        for name, dim in src.dimensions.items():
            dst.createDimension(name, n if name == "sample" else dim.size)
        per_sample = []
        for name, var in src.variables.items():
            if name == "sample_checksum" or name in drop:
                continue
            var.set_auto_maskandscale(False)
            chunks = var.chunking()
            out = dst.createVariable(name, var.dtype, var.dimensions,
                                     chunksizes=None if chunks == "contiguous" else chunks)
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs()})
            if var.dimensions[:1] == ("sample",):
                per_sample.append((name, var[:], out))
            else:
                out[:] = var[:]
        for start in range(0, n, block):
            rows = np.arange(start, min(n, start + block))
            for name, values, out in per_sample:
                out[start:rows[-1] + 1] = rows if name == "sample_id" else values[rows % n_seed]
        dst.setncatts({**{k: src.getncattr(k) for k in src.ncattrs()}, "split": split,
                       "benchmark_tiled_from": f"{seed.name}: {n_seed} distinct samples"})
    return path


def time_train_model(definition: dict, train: Path, val: Path, state: Path, warmup: int,
                     timed: int, threads: int | None = None) -> dict:
    """One ``train_model`` call: whole-call seconds, steady-state step (wall s), losses,
    device facts."""
    import torch

    from mesoinv.training.train_p1 import train_model

    clock = step_clock()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    record = train_model(definition, train_path=train, val_path=val, output=state / "model.pt",
                         state_root=state, progress=False, threads=threads,
                         extra_callbacks=[clock])
    whole = time.perf_counter() - started
    steps = len(clock.stamps)
    timed = min(timed, steps - warmup)
    wall, _ = steady_state(clock.stamps, warmup, timed)
    first_step = clock.stamps[0][0] - started
    return {"model": definition["name"], "precision": record["precision"],
            "accelerator": record["accelerator"], "data_mode": record.get("data_mode"),
            "batch_size": definition["batch_size"], "steps": steps, "warmup": warmup,
            "timed": timed, "step_s": wall, "samples_per_s": definition["batch_size"] / wall,
            "whole_call_s": whole, "until_first_step_s": first_step,
            "after_last_step_s": started + whole - clock.stamps[-1][0] if steps else None,
            "first_loss": clock.losses[0], "last_loss": clock.losses[-1],
            "n_train": record.get("n_train"),
            "peak_gpu_memory_GiB": (torch.cuda.max_memory_allocated() / 2**30
                                    if torch.cuda.is_available() else None)}


def run_cpu_rows(seeds: Path, work: Path, definitions: dict, quick: bool) -> list[dict]:
    """Row (c): every model, 32-true, on the machine's CPU cores, in this process (called in a
    subprocess that cannot see the GPU)."""
    import torch

    threads = os.cpu_count() or 1
    results = []
    for name, dataset in MODELS.items():
        definition = dict(definitions[name], precision="32-true", max_epochs=1,
                          data_mode="ram", early_stopping=None)
        batch = definition["batch_size"] = 4 if quick else definition["batch_size"]
        warmup, timed = 1, (1 if quick else 3)
        seed, drop = seeds / f"{dataset}-seed.nc", UNREAD[dataset]
        train = tile_split(seed, work / f"cpu-{name}-train.nc", (warmup + timed) * batch,
                           "train", drop=drop)
        val = tile_split(seed, work / f"cpu-{name}-val.nc", batch, "val", drop=drop)
        log(f"CPU {name}: {warmup + timed} steps of {batch}, {threads} threads")
        row = time_train_model(definition, train, val, work / f"state-cpu-{name}", warmup,
                               timed, threads=threads)
        row["threads"] = torch.get_num_threads()
        results.append(row)
    return results


def run(seeds: Path, out: Path, quick: bool, cpu_timeout: float = 150) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-paper-scale-"))
    setup = json.loads((seeds / "definitions.json").read_text())
    definitions = setup["definitions"]
    gpu = torch.cuda.is_available()
    results = {"gpu": torch.cuda.get_device_name(0) if gpu else None,
               "torch": torch.__version__, "cuda": torch.version.cuda, "quick": quick,
               "config": setup["config"], "machine": machine_description(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gpu_rows": [], "cpu_rows": [],
               "errors": []}

    def save():
        (out / "gpu_paper_scale.json").write_text(json.dumps(results, indent=2, default=str))

    n_train = {"p1_varying": 256 if quick else PAPER_TRAIN["p1_varying"],
               "p1_fixed": 128 if quick else 8_960}
    n_val = 64 if quick else PAPER_VAL
    files = {}
    for dataset in ("p1_varying", "p1_fixed"):
        started = time.perf_counter()
        seed = seeds / f"{dataset}-seed.nc"
        files[dataset] = (tile_split(seed, work / f"{dataset}-train.nc", n_train[dataset],
                                     "train", drop=UNREAD[dataset]),
                          tile_split(seed, work / f"{dataset}-val.nc",
                                     n_val if dataset == "p1_varying" else 256, "val",
                                     drop=UNREAD[dataset]))
        results[f"tile_{dataset}_s"] = time.perf_counter() - started
        log(f"tiled {dataset}: {n_train[dataset]} training maps in "
            f"{results[f'tile_{dataset}_s']:.0f} s")
    save()

    for name, dataset in MODELS.items():
        for precision in ("bf16-mixed", "32-true") if gpu else ("32-true",):
            definition = dict(definitions[name], precision=precision, max_epochs=1,
                              data_mode="auto", early_stopping=None)
            if quick:
                definition["batch_size"] = 4
            steps = math.ceil(n_train[dataset] / definition["batch_size"])
            warmup = min(20, max(1, steps // 10))
            log(f"GPU {name} {precision}: {steps} steps of {definition['batch_size']}")
            try:
                row = time_train_model(definition, *files[dataset],
                                       work / f"state-{name}-{precision}", warmup,
                                       steps - warmup - 1)
            except Exception as error:  # keep the other rows
                results["errors"].append(f"{name} {precision}: {type(error).__name__}: {error}")
                log(results["errors"][-1])
                continue
            results["gpu_rows"].append(row)
            log(f"  {row['step_s'] * 1e3:.2f} ms/step, {row['samples_per_s']:.0f} samples/s, "
                f"whole call {row['whole_call_s']:.1f} s")
            save()
    # (c) last (the GPU rows matter most), in a subprocess that cannot see the GPU.
    log("CPU rows (subprocess)")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(variable, None)
    cpu_json = work / "cpu_rows.json"
    try:
        done = subprocess.run([sys.executable, __file__, "cpu-rows", "--seeds", str(seeds),
                               "--out", str(cpu_json)] + (["--quick"] if quick else []),
                              env=env, capture_output=True, text=True, timeout=cpu_timeout)
    except subprocess.TimeoutExpired as error:
        results["errors"].append(f"CPU rows: no result within {cpu_timeout} s")
        (out / "cpu_rows.log").write_text(str(error.stderr or ""))
    else:
        (out / "cpu_rows.log").write_text(done.stdout + done.stderr)
        if done.returncode == 0:
            results["cpu_rows"] = json.loads(cpu_json.read_text())
        else:
            results["errors"].append(f"CPU rows failed (exit {done.returncode}): "
                                     f"{done.stderr[-2000:]}")
    save()

    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save()
    (out / "gpu_paper_scale.md").write_text(markdown(results, definitions))
    log("done")


# -- table -------------------------------------------------------------------------------------

def paper_steps(definition: dict, dataset: str) -> int:
    """Optimizer steps of the paper's whole training: epochs × ⌈training maps / batch⌉."""
    return definition["max_epochs"] * math.ceil(PAPER_TRAIN[dataset] / definition["batch_size"])


def _gib(value) -> str:
    return "n/a" if value is None else f"{value:.1f} GiB"


def rows(results: dict, definitions: dict) -> list[Row]:
    cpu = {r["model"]: r for r in results["cpu_rows"]}
    table = []
    for name, dataset in MODELS.items():
        definition = definitions[name]
        total_steps = paper_steps(definition, dataset)
        c = cpu.get(name)
        if c:
            table.append(Row(f"gpu.{name}.cpu.step", f"{name}: CPU 32-true, seconds per step",
                             c["step_s"], "s", n=c["timed"],
                             note=f"{c['threads']} threads, batch {c['batch_size']}; "
                                  f"{c['samples_per_s']:.1f} samples/s; paper training "
                                  f"({total_steps} steps) ≈ {c['step_s'] * total_steps / 3600:.1f} h"))
        for r in results["gpu_rows"]:
            if r["model"] != name:
                continue
            tag = r["precision"]
            note = (f"batch {r['batch_size']}, {r['samples_per_s']:.0f} samples/s, data mode "
                    f"{r['data_mode']}; steps {r['warmup'] + 1}…{r['warmup'] + r['timed']} of "
                    f"{r['steps']} timed; loss {r['first_loss']:.3g} → {r['last_loss']:.3g}; "
                    f"peak GPU memory {_gib(r['peak_gpu_memory_GiB'])}; paper training "
                    f"({total_steps} steps) ≈ {r['step_s'] * total_steps / 60:.1f} min")
            table.append(Row(f"gpu.{name}.{tag}.step", f"{name}: GPU {tag}, seconds per step",
                             r["step_s"], "s", n=r["timed"], note=note))
            if c:
                table.append(Row(f"gpu.{name}.{tag}.over_cpu",
                                 f"{name}: GPU {tag} over the CPU's {c['threads']} threads "
                                 "(time per sample)", (c["step_s"] / c["batch_size"])
                                 / (r["step_s"] / r["batch_size"]), "×"))
            if name == "p1_s_nd":
                table.append(Row(f"gpu.{name}.{tag}.whole_epoch",
                                 f"{name}: GPU {tag}, whole train_model call, one epoch of "
                                 f"{r['n_train']} maps + validation", r["whole_call_s"], "s",
                                 note=f"{r['until_first_step_s']:.1f} s until the first step "
                                      "(reading, statistics, data to the GPU), "
                                      f"{r['after_last_step_s']:.1f} s after the last "
                                      "(validation, model file)"))
        precisions = {r["precision"]: r for r in results["gpu_rows"] if r["model"] == name}
        if {"32-true", "bf16-mixed"} <= set(precisions):
            table.append(Row(f"gpu.{name}.bf16_over_fp32", f"{name}: bf16-mixed over 32-true",
                             precisions["32-true"]["step_s"] / precisions["bf16-mixed"]["step_s"],
                             "×"))
    return table


def markdown(results: dict, definitions: dict) -> str:
    head = (f"GPU: {results['gpu']}; torch {results['torch']} (CUDA {results['cuda']}); "
            f"{results['started']} → {results.get('finished')}; config {results['config']}"
            + ("; QUICK (a check of the script, not a measurement)" if results["quick"] else ""))
    errors = "".join(f"\n- error: {e}" for e in results["errors"])
    return (head + "\n\n" + machine_markdown(results["machine"]) + "\n\n"
            + table_markdown(rows(results, definitions)) + errors + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=["prepare", "run", "cpu-rows", "table"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=Path, default=Path(".gpubench"))
    parser.add_argument("--n-unique", type=int, default=8)
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.phase == "prepare":
        prepare(args.out, args.n_unique, args.config)
    elif args.phase == "run":
        run(args.seeds, args.out, args.quick)
    elif args.phase == "cpu-rows":
        definitions = json.loads((args.seeds / "definitions.json").read_text())["definitions"]
        work = Path(tempfile.mkdtemp(prefix="gpu-paper-scale-cpu-"))
        args.out.write_text(json.dumps(run_cpu_rows(args.seeds, work, definitions, args.quick),
                                       default=str))
    else:  # table: redo the markdown from a results file
        results = json.loads((args.out / "gpu_paper_scale.json").read_text())
        definitions = json.loads((args.seeds / "definitions.json").read_text())["definitions"]
        (args.out / "gpu_paper_scale.md").write_text(markdown(results, definitions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
