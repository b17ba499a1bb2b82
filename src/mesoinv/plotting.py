"""Plotting helpers shared by every stage that draws figures (datasets, training, inference,
evaluation): the Agg backend for batch jobs and an atomic PNG writer."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs (SLURM, Snakemake) have no display
import matplotlib.pyplot as plt  # noqa: E402

from .datasets.netcdf import atomic_path  # noqa: E402

__all__ = ["plt", "save_figure", "FIGURE_DPI"]

FIGURE_DPI = 110


def save_figure(fig, output) -> Path:
    """Write a figure as PNG, atomically (a killed job leaves no half-written image), and free
    it. Returns the output path."""
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=FIGURE_DPI, format="png")
    plt.close(fig)
    return output
