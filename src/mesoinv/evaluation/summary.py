"""Summary tables for the report: the datasets, and every model's metric rows."""

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["dataset_summary", "models_summary", "write_table", "write_dataset_tables",
           "PROVENANCE_COLUMNS"]

#: Columns of the dataset table that say where a file comes from: in the CSV, and in the
#: report's second table (one row per dataset), not in the main table, where they wrapped.
PROVENANCE_COLUMNS = ["size (MB)", "config sha256", "code version", "packages"]


def _mean_std(values) -> str:
    """'mean ± std' to 3 and 2 significant digits; a constant column (a fixed parameter, whose
    float std is round-off such as 2.2e-16) shows its value alone."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return "–"
    mean, std = float(values.mean()), float(values.std())
    if std <= 1e-9 * max(abs(mean), 1e-300):
        return f"{mean:.3g} (all equal)"
    return f"{mean:.3g} ± {std:.2g}"


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
                low, high = fmt.format(values.min()), fmt.format(values.max())
                return low if low == high else f"{low} – {high}"

            def span_int(values):
                return f"{values.min()}" if values.min() == values.max() else \
                    f"{values.min()} – {values.max()}"

            def mean_std(name):
                return _mean_std(ds[name].values) if n else "–"

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
    provenance = PROVENANCE_COLUMNS
    return table[[c for c in table.columns if c not in provenance]
                 + [c for c in provenance if c in table.columns]]


def write_dataset_tables(table: pd.DataFrame, csv_path, html_path):
    """The dataset summary: CSV with every column; HTML with the physics table and, below it,
    the provenance once per dataset (total size, config hash, code and package versions)."""
    from ..datasets.netcdf import atomic_path

    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    main = table[[c for c in table.columns if c not in PROVENANCE_COLUMNS]]
    rows = []
    for name, group in table.groupby("dataset", sort=False):
        first = group.iloc[0]
        rows.append({"dataset": name,
                     "files (MB)": round(float(pd.to_numeric(group["size (MB)"]).sum()), 2),
                     "config sha256": first["config sha256"],
                     "code version": first["code version"],
                     "packages": first["packages"]})
    provenance = pd.DataFrame(rows)
    html = ("<h4>Datasets</h4>\n"
            + main.to_html(index=False, border=0, classes="table table-striped")
            + "\n<h4>Provenance (one row per dataset; every column per file in datasets.csv)</h4>\n"
            + provenance.to_html(index=False, border=0, classes="table table-striped"))
    with atomic_path(html_path) as tmp:
        tmp.write_text(html)


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


def write_table(table: pd.DataFrame, csv_path, html_path, *, paper: pd.DataFrame | None = None,
                title: str = ""):
    """A models table as CSV (every column at full precision, for scripts) and as readable
    HTML for ``snakemake --report``: units in the headers, intervals in the cells, the paper
    comparison below, the commands in a collapsible provenance section
    (:mod:`mesoinv.evaluation.tables`). Both written atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`models_summary` of ``metrics.csv`` files.
    csv_path, html_path : path-like
    paper : pandas.DataFrame, optional
        :func:`models_summary` of the models' ``paper_comparison.csv`` files.
    title : str
        Heading of the HTML page.
    """
    from ..datasets.netcdf import atomic_path
    from .tables import fragment, metrics_table_html, paper_table_html, provenance_html

    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    body = [f"<h3>{html.escape(title)}</h3>" if title else "", metrics_table_html(table)]
    if paper is not None and not paper.empty:
        body += ["<h4>Against the paper</h4>", paper_table_html(paper)]
    body.append(provenance_html(table))
    with atomic_path(html_path) as tmp:
        tmp.write_text(fragment("\n".join(body)), encoding="utf-8")
