"""Figures of generated LDOS images (``mesoinv predict --figure`` with a P2 diffusion model),
and the drawing helpers the P2 evaluation figures share with them.

Images are drawn as stored, ``(image_x, y)`` transposed so that the wire runs upwards, on axes
in site indices (i across the wire, the p padding columns at i < 0 and i ≥ W; k along it).
"""

from pathlib import Path

import netCDF4
import numpy as np

from ..plotting import plt, save_figure

__all__ = ["plot_generated", "image_extent", "draw_antidots"]


def image_extent(shape, padding: int) -> tuple[float, float, float, float]:
    """``imshow`` extent of an image ``(image_x, y)`` of ``shape`` with ``padding`` columns on
    each side, in site indices (i from −p, k from 0; pixel centres on integers)."""
    height, width = shape
    return (-padding - 0.5, height - padding - 0.5, -0.5, width - 0.5)


def draw_antidots(ax, centres, radius, color="cyan", linestyle="--", linewidth=1.1):
    """Circles of ``radius`` (sites) around antidot centres ``[[cx, cy], ...]`` (site
    indices) on axes drawn with :func:`image_extent`."""
    from matplotlib.patches import Circle

    for cx, cy in np.asarray(centres, dtype=np.float64).reshape(-1, 2):
        if not (np.isfinite(cx) and np.isfinite(cy)):   # "no antidot found"
            continue
        ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor=color, lw=linewidth,
                            linestyle=linestyle))


def plot_generated(generated_path, output, *, trace: int = 0) -> Path:
    """One trace of a generated file: G(B), the true LDOS where known, up to three draws, the
    mean and the spread over the draws; found antidots as solid circles, true ones dashed.

    The true and generated LDOS images share one colour scale from 0 to the largest value of
    any of them (nothing saturates; the bar states the cap); the spread has its own.

    ``trace`` is the position in the file (not the sample id).
    """
    with netCDF4.Dataset(generated_path) as ds:
        n = ds.dimensions["trace"].size
        if not 0 <= trace < n:
            raise ValueError(f"{generated_path}: no trace at position {trace} ({n} traces)")
        fields = np.asarray(ds["field"][:])
        conductance = np.asarray(ds["conductance"][trace])
        draws = np.asarray(ds["generated_ldos"][trace], dtype=np.float64)
        mean = np.asarray(ds["generated_ldos_mean"][trace], dtype=np.float64)
        std = np.asarray(ds["generated_ldos_std"][trace], dtype=np.float64)
        found = np.stack([np.asarray(ds["antidot_x"][trace]), np.asarray(ds["antidot_y"][trace])],
                         axis=-1)
        true = (np.asarray(ds["ldos_true"][trace], dtype=np.float64)
                if "ldos_true" in ds.variables else None)
        true_pos = (np.stack([np.asarray(ds["antidot_x_true"][trace]),
                              np.asarray(ds["antidot_y_true"][trace])], axis=-1)
                    if "antidot_x_true" in ds.variables else None)
        name = str(ds["trace_name"][trace])
        counts = (np.asarray(ds["antidot_count"][trace]) if "antidot_count" in ds.variables
                  else np.isfinite(found).all(-1).sum(-1))
        a = {k: ds.getncattr(k) for k in ds.ncattrs()}
    p = int(a.get("ldos_padding_sites", 0))
    radius = float(a.get("antidot_radius_sites", 0.0))
    height, width = draws.shape[-2:]
    extent = image_extent((height, width), p)
    shown = min(3, len(draws))
    images = []
    if true is not None:
        images.append(("true LDOS", true, "inferno", true_pos, None))
    for d in range(shown):
        label = {0: ": no antidot found", 1: ": 1 antidot found"}.get(int(counts[d]), "")
        images.append((f"draw {d}{label}", draws[d], "inferno", true_pos, found[d]))
    images.append((f"mean of {len(draws)} draws", mean, "inferno", true_pos, None))
    images.append(("std over draws", std, "viridis", true_pos, None))
    # One LDOS colour scale for the true and the generated images, 0 … the largest value of
    # any image drawn: nothing saturates (generated images may be brighter than the truth;
    # the sampler clips x̂₀ at the training maximum).
    ldos_images = [image for _, image, cmap, _, _ in images if cmap == "inferno"]
    vmax = max(float(np.max(image)) for image in ldos_images) or 1.0
    rows = 2 if len(images) + 1 > 3 else 1
    columns = -(-(len(images) + 1) // rows)
    fig, axes = plt.subplots(rows, columns, figsize=(min(12.4, 3.1 * columns + 1.6),
                                                     3.2 * rows + 0.4),
                             constrained_layout=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot(fields, conductance, lw=1.0)
    ax.set_xlabel("B (T)")
    ax.set_ylabel("G (e²/h)")
    ax.set_title(f"trace: {name}", fontsize=9)
    ax.set_box_aspect(1)
    ldos_axes, mesh_ldos = [], None
    for ax, (title, image, cmap, truth, detected) in zip(axes.ravel()[1:], images):
        options = {"vmin": 0.0, "vmax": vmax} if cmap == "inferno" else {}
        mesh = ax.imshow(image.T, origin="lower", cmap=cmap, extent=extent, aspect="equal",
                         **options)
        if truth is not None:
            draw_antidots(ax, truth, radius, "cyan", "--")
        if detected is not None:
            draw_antidots(ax, detected, radius, "lime", "-")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("i (sites)")
        ax.set_ylabel("k (sites)")
        if cmap == "inferno":
            ldos_axes.append(ax)
            mesh_ldos = mesh
        else:
            fig.colorbar(mesh, ax=ax, shrink=0.8, location="bottom", label="std of LDOS (t⁻¹)")
    for ax in axes.ravel()[len(images) + 1:]:
        ax.set_axis_off()
    fig.colorbar(mesh_ldos, ax=ldos_axes, shrink=0.8,
                 label=f"LDOS (t⁻¹), one scale: 0 … {vmax:.3g} = largest value shown")
    guidance = float(a["guidance_scale"])
    fig.suptitle(f"{a['model_name']}: {a['sampler']} {int(a['steps'])} steps, γ = {guidance:g}, "
                 f"seed {int(a['seed'])}; found antidots solid (lime), true dashed (cyan)",
                 fontsize=9)
    return save_figure(fig, output)
