#!/usr/bin/env python
"""Run the mesoinv benchmarks and write a Markdown report.

    python benchmarks/run.py                      # all groups, full size (P1: ~1.5 min)
    python benchmarks/run.py --quick              # tiny problems, 1–2 repeats: seconds
    python benchmarks/run.py --only p1_pldos --output docs/benchmarks-run.md
    python benchmarks/run.py --only training.speed   # a part of a group alone

The report (machine description + one table per group) goes to ``--output`` (default
benchmarks/results/latest.md, git-ignored) and to stdout; progress goes to stderr.

Adding a group: write a function ``run(quick: bool) -> list[Row]`` (see benchmarks/common.py
for Row and the timing helpers) and add one line to GROUPS below. docs/benchmarks.md says
what each row means.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Kwant's MUMPS is sequential and production runs one rank per core with these set to 1, so
# the benchmarks do too (before numpy is imported). An explicit setting in the environment wins
# and is shown in the report.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from benchmarks import common, p1_pldos, p2_magnetoconductance, training, workflow  # noqa: E402

#: name → function(quick) returning the group's rows.
GROUPS = {
    "p1_pldos": p1_pldos.run,
    "p2_magnetoconductance": p2_magnetoconductance.run,
    "workflow": workflow.run,
    "training": training.run,
}

#: Parts of a group that ``--only`` can run alone (not in the default run: their group runs
#: them).
PARTS = {
    "training.speed": training.run_speed,
}

DEFAULT_OUTPUT = _REPO_ROOT / "benchmarks" / "results" / "latest.md"


def report_markdown(info, tables, *, quick: bool, seconds: float) -> str:
    parts = [
        "# mesoinv benchmark results",
        "",
        f"Mode: {'--quick (tiny problems; numbers mean nothing)' if quick else 'full'}; "
        f"total wall time {seconds:.0f} s. Timings are wall-clock seconds per sample: median "
        "and min over n repeats. Ratios are of medians. PASS/MISS compare with the targets "
        "(informative). Row meanings: docs/benchmarks.md.",
        "",
        "## Machine",
        "",
        common.machine_markdown(info),
    ]
    for name, rows in tables:
        parts += ["", f"## {name}", "", common.table_markdown(rows)]
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny problems and 1–2 repeats (a smoke test; seconds)")
    parser.add_argument("--only", action="append", choices=sorted({**GROUPS, **PARTS}),
                        metavar="GROUP",
                        help=f"run only this group (repeatable); groups: {', '.join(GROUPS)}; "
                             f"parts of a group: {', '.join(PARTS)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="Markdown report path (default "
                             f"{DEFAULT_OUTPUT.relative_to(_REPO_ROOT)})")
    args = parser.parse_args(argv)

    selected = args.only or list(GROUPS)
    start = time.perf_counter()
    info = common.machine_description()
    tables = []
    for name in selected:
        print(f"[run] group {name}", file=sys.stderr, flush=True)
        tables.append((name, {**GROUPS, **PARTS}[name](quick=args.quick)))
    report = report_markdown(info, tables, quick=args.quick,
                             seconds=time.perf_counter() - start)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    print(f"[run] written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
