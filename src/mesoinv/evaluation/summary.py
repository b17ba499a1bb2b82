"""Dataset summary table (pandas) for the report."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["dataset_summary", "models_summary", "write_table"]


def dataset_summary(files) -> pd.DataFrame:
    """One row per (dataset, split) file: counts, parameter ranges, disorder statistics.

    Parameters
    ----------
    files : iterable of path-like
        Split files written by :func:`mesoinv.datasets.aggregate.write_splits`.
    """
    rows = []
    for path in files:
        path = Path(path)
        with xr.open_dataset(path) as ds:
            n = ds.sizes["sample"]

            def span(name, scale=1.0, fmt="{:.3g}"):
                if n == 0:
                    return "–"
                values = ds[name].values * scale
                return f"{fmt.format(values.min())} – {fmt.format(values.max())}"

            def span_int(values):
                return f"{values.min()}" if values.min() == values.max() else \
                    f"{values.min()} – {values.max()}"

            def mean_std(name):
                if n == 0:
                    return "–"
                values = ds[name].values
                return f"{values.mean():.3g} ± {values.std():.2g}"

            common = {
                "dataset": ds.attrs["dataset_name"],
                "kind": ds.attrs["dataset_kind"],
                "split": ds.attrs.get("split", "–"),
                "samples": n,
                "failed, left out": len(json.loads(ds.attrs.get("failed_samples", "[]"))),
            }
            if ds.attrs["dataset_kind"] == "p2_magnetoconductance":
                specific = {
                    "region (sites)": f"{ds.sizes['x']} × {ds.sizes['y']}",
                    "configurations": (len(np.unique(ds["configuration_id"].values))
                                       if n else 0),
                    "fields (T)": (f"{ds['field'].values[0]:g} – {ds['field'].values[-1]:g} "
                                   f"({ds.sizes['field']})"),
                    "open channels": span_int(ds["open_channels"].values),
                    "G (e²/h)": mean_std("conductance"),
                }
            else:
                specific = {
                    "region (sites)": f"{ds.sizes['x']} × {ds.sizes['y']}",
                    "fields (T)": ", ".join(f"{b:g}" for b in ds["field"].values),
                    "QPC modes": ", ".join(str(m) for m in ds["qpc_open_modes"].values),
                    "s (nm)": span("dopant_distance", fmt="{:.1f}"),
                    "N_d (1e12 cm⁻²)": span("dopant_density", 1e-12, "{:.2f}"),
                    "rms (meV)": mean_std("rms"),
                    "ξ (nm)": mean_std("correlation_length"),
                    "Fourier modes": ds.sizes["mode"],
                }
            rows.append({
                **common, **specific,
                "size (MB)": round(path.stat().st_size / 1e6, 2),
                "config sha256": ds.attrs["sample_config_sha256"][:12],
                "code version": ds.attrs["code_version"],
                "packages": ", ".join(f"{k} {v}" for k, v in
                                      json.loads(ds.attrs["package_versions"]).items()),
            })
    # Columns of one kind are empty for the other: show a dash, not NaN; provenance last.
    table = pd.DataFrame(rows, dtype=object).fillna("–")
    provenance = ["size (MB)", "config sha256", "code version", "packages"]
    return table[[c for c in table.columns if c not in provenance]
                 + [c for c in provenance if c in table.columns]]


def models_summary(metric_files) -> pd.DataFrame:
    """Every model's metrics rows (``metrics.csv`` of ``mesoinv evaluate``) in one table.

    Parameters
    ----------
    metric_files : iterable of path-like
        One CSV per model; rows per (target, predictor) with the split and the command.
    """
    frames = [pd.read_csv(path) for path in metric_files]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def write_table(table: pd.DataFrame, csv_path, html_path):
    """A report table as CSV (for scripts) and HTML (for ``snakemake --report``), atomically."""
    from ..datasets.netcdf import atomic_path

    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(html_path) as tmp:
        tmp.write_text(table.to_html(index=False, border=0, classes="table table-striped"))
