"""Helpers for tests that run the project's Snakefile in a scratch directory.

Imported by the test modules as ``from snakemake_runs import job_counts`` (pytest puts
``tests/`` on ``sys.path``, as for ``slurm_cluster``)."""
from __future__ import annotations

import re

__all__ = ["job_counts"]


def job_counts(text: str) -> dict[str, int]:
    """{rule: count} from the "Job stats" table of a Snakemake log; empty when the log says
    there is nothing to be done.

    Parameters
    ----------
    text : str
        Snakemake's standard output and error together (a dry run or a real run).
    """
    if "Nothing to be done" in text:
        return {}
    if "Job stats:" not in text:
        raise AssertionError(f"no 'Job stats' table in the Snakemake log:\n{text[-4000:]}")
    table = text.split("Job stats:")[1].split("\n\n")[0]
    counts = {}
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts
