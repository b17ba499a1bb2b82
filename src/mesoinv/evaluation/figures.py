"""Figures a physicist looks at: P1 sample (potential and PLDOS side by side, P1 Fig. 2)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ..datasets.netcdf import atomic_path  # noqa: E402

__all__ = ["plot_p1_sample"]


def plot_p1_sample(dataset_path, sample_id: int, output, *, field_index: int = 0):
    """Draw the potential (meV and units of t) and the PLDOS of one sample (P1 Fig. 2).

    Parameters
    ----------
    dataset_path : path-like
        netCDF file written by :func:`mesoinv.datasets.write_p1_netcdf`.
    sample_id : int
        The sample's id (not its position in the file).
    output : path-like
        PNG to write (atomically).
    field_index : int
        Which field channel of the PLDOS to draw.
    """
    with xr.open_dataset(dataset_path) as ds:
        matches = np.flatnonzero(ds["sample_id"].values == sample_id)
        if len(matches) == 0:
            ids = ds["sample_id"].values
            raise ValueError(f"sample {sample_id} is not in {dataset_path} "
                             f"(ids {ids.min()}…{ids.max()})")
        sample = ds.isel(sample=int(matches[0]))
        potential = sample["potential"].values.astype(float)
        pldos = sample["pldos"].isel(field=field_index).values.astype(float)
        x, y = ds["x"].values, ds["y"].values
        field = float(ds["field"].values[field_index])
        t = float(ds.attrs["hopping_meV"])
        a = float(ds.attrs["lattice_constant_nm"])
        y0, w = int(ds.attrs["qpc_first_y_site"]), int(ds.attrs["qpc_width_sites"])
        s = float(sample["dopant_distance"])
        n_d = float(sample["dopant_density"])
        rms = float(sample["rms"])
        xi = float(sample["correlation_length"])
        name = ds.attrs["dataset_name"]

    extent = (x[0] - a / 2, x[-1] + a / 2, y[0] - a / 2, y[-1] + a / 2)
    fig, (ax_v, ax_p) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    vmax = np.max(np.abs(potential))
    image = ax_v.imshow(potential.T, origin="lower", extent=extent, cmap="RdBu_r",
                        vmin=-vmax, vmax=vmax)
    fig.colorbar(image, ax=ax_v, label=f"V (meV);  t = {t:.2f} meV")
    ax_v.set_title(f"potential: s = {s:.1f} nm, N_d = {n_d:.3g} cm⁻²\n"
                   f"rms = {rms:.2f} meV, ξ = {xi:.0f} nm (ensemble)")
    # Saturate the brightest pixels next to the QPC so the branches stay visible.
    image = ax_p.imshow(pldos.T, origin="lower", extent=extent, cmap="inferno", vmin=0,
                        vmax=np.percentile(pldos, 99.5))
    fig.colorbar(image, ax=ax_p, label="PLDOS (meV⁻¹ per site)")
    ax_p.set_title(f"PLDOS from the QPC, B = {field:g} T")
    for ax in (ax_v, ax_p):
        ax.set_xlabel("x (nm), QPC → drain")
        ax.set_ylabel("y (nm)")
        ax.plot([extent[0], extent[0]], [y[y0] - a / 2, y[y0 + w - 1] + a / 2], color="lime",
                lw=4, solid_capstyle="butt", label="QPC")
    ax_v.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"dataset '{name}', sample {sample_id}")
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return output
