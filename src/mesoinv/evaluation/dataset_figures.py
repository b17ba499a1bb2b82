"""Figures a physicist looks at: a P1 sample (potential and PLDOS, P1 Fig. 2) and a P2 sample
(lattice with antidots, LDOS, G(B); P2 Fig. 1)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on cluster nodes without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ..datasets.netcdf import atomic_path  # noqa: E402
from ..plotting import save_figure  # noqa: E402

__all__ = ["plot_p1_sample", "plot_p2_sample", "plot_sample", "p1_sample_figure",
           "p2_sample_figure", "PLDOS_PERCENTILE"]

#: The PLDOS colour scale ends at this percentile of the map (the brightest pixels, next to the
#: QPC, would otherwise leave the branches black); the colour bar says so and marks the cap.
PLDOS_PERCENTILE = 99.5


def _select_sample(ds, sample_id, path):
    """The sample with this id (not position) of an open dataset, or a clear error."""
    ids = ds["sample_id"].values
    matches = np.flatnonzero(ids == sample_id)
    if len(matches) == 0:
        span = f"ids {ids.min()}…{ids.max()}" if len(ids) else "no samples"
        raise ValueError(f"sample {sample_id} is not in {path} ({span})")
    return ds.isel(sample=int(matches[0]))


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
    return save_figure(p1_sample_figure(dataset_path, sample_id, field_index=field_index), output)


def p1_sample_figure(dataset_path, sample_id: int, *, field_index: int = 0):
    """The figure of :func:`plot_p1_sample`, unsaved (a matplotlib Figure)."""
    with xr.open_dataset(dataset_path) as ds:
        sample = _select_sample(ds, sample_id, dataset_path)
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
    # Saturate the brightest pixels next to the QPC so the branches stay visible; the colour
    # bar's triangle marks the cap and its label gives the true maximum.
    cap = float(np.percentile(pldos, PLDOS_PERCENTILE))
    image = ax_p.imshow(pldos.T, origin="lower", extent=extent, cmap="inferno", vmin=0,
                        vmax=cap)
    fig.colorbar(image, ax=ax_p, extend="max", label="PLDOS (meV⁻¹ per site)")
    ax_p.set_title(f"PLDOS from the QPC, B = {field:g} T\nscale capped at the "
                   f"{PLDOS_PERCENTILE:g}th percentile (max {pldos.max() / cap:.2g}×)")
    for ax in (ax_v, ax_p):
        ax.set_xlabel("x (nm), QPC → drain")
        ax.set_ylabel("y (nm)")
        ax.plot([extent[0], extent[0]], [y[y0] - a / 2, y[y0 + w - 1] + a / 2], color="lime",
                lw=4, solid_capstyle="butt", label="QPC")
    ax_v.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"dataset '{name}', sample {sample_id}")
    return fig


def plot_p2_sample(dataset_path, sample_id: int, output):
    """Draw the lattice with its antidots, the B = 0 LDOS and G(B) of one P2 sample (P2 Fig. 1).

    Parameters
    ----------
    dataset_path : path-like
        netCDF file written by :func:`mesoinv.datasets.netcdf.write_p2_netcdf`.
    sample_id : int
    output : path-like
        PNG to write (atomically).
    """
    return save_figure(p2_sample_figure(dataset_path, sample_id), output)


def p2_sample_figure(dataset_path, sample_id: int):
    """The figure of :func:`plot_p2_sample`, unsaved (a matplotlib Figure)."""
    with xr.open_dataset(dataset_path) as ds:
        sample = _select_sample(ds, sample_id, dataset_path)
        image = sample["ldos"].values.astype(float)
        potential = sample["potential"].values.astype(float)
        conductance = sample["conductance"].values
        fields = ds["field"].values
        centres = np.stack([sample["antidot_x"].values, sample["antidot_y"].values], axis=-1)
        width, length = int(ds.attrs["width_sites"]), int(ds.attrs["length_sites"])
        radius = float(ds.attrs["antidot_radius_sites"])
        pad = int(ds.attrs["ldos_padding_sites"])
        configuration = int(sample["configuration_id"])
        realization = int(sample["potential_realization"])
        amplitude = float(ds.attrs["potential_amplitude_t"])
        name = ds.attrs["dataset_name"]

    from ..physics.nanowire import NanowireGeometry, removed_mask

    removed = removed_mask(NanowireGeometry(width, length, radius), centres)
    fig, (ax_l, ax_d, ax_g) = plt.subplots(1, 3, figsize=(12.6, 4.2), constrained_layout=True,
                                           gridspec_kw={"width_ratios": [1, 1, 1.4]})
    lattice = np.where(removed, np.nan, potential)
    vmax = max(amplitude / 2, 1e-12)
    shown = ax_l.imshow(lattice.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                        extent=(-0.5, width - 0.5, -0.5, length - 0.5))
    # Colour bars below their panels: on the right, the lattice's bar label would sit against
    # the LDOS panel and read as its axis label.
    fig.colorbar(shown, ax=ax_l, location="bottom", shrink=0.8, label="random potential V (t)")
    for cx, cy in centres:
        ax_l.add_patch(plt.Circle((cx, cy), radius, fill=False, color="k", lw=1.5))
    ax_l.set_title(f"lattice {width} × {length}, antidots r = {radius:g}\n"
                   f"configuration {configuration}, realisation {realization}")
    ax_l.set_xlabel("i (across)")
    ax_l.set_ylabel("k (along, transport)")
    shown = ax_d.imshow(image.T, origin="lower", cmap="magma",
                        extent=(-pad - 0.5, width + pad - 0.5, -0.5, length - 0.5))
    fig.colorbar(shown, ax=ax_d, location="bottom", shrink=0.8, label="LDOS (states / t / site)")
    ax_d.set_title("LDOS at B = 0" + (f" (padded by {pad})" if pad else ""))
    ax_d.set_xlabel("i (across)")
    ax_d.set_ylabel("k (along, transport)")
    ax_g.plot(fields, conductance, lw=1.2)
    ax_g.set_xlabel("B (T)")
    ax_g.set_ylabel("G (e²/h)")
    ax_g.set_title("magnetoconductance: the quantum fingerprint")
    ax_g.grid(alpha=0.3)
    fig.suptitle(f"dataset '{name}', sample {sample_id}")
    return fig


def plot_sample(dataset_path, sample_id: int, output, **options):
    """Draw a sample of any dataset kind (dispatch on the file's ``dataset_kind``)."""
    import netCDF4

    with netCDF4.Dataset(dataset_path) as ds:
        kind = ds.getncattr("dataset_kind")
    if kind == "p2_magnetoconductance":
        return plot_p2_sample(dataset_path, sample_id, output)
    return plot_p1_sample(dataset_path, sample_id, output, **options)
