"""The example figure of ``mesoinv predict --figure`` for P1 models: the first input map
with its predictions (parameter models), or the input PLDOS, the predicted potential and,
where known, the true potential and the error (potential models).

Units: PLDOS in meV⁻¹ per site, potentials in meV, lengths in nm (in sites when a ``.npy``
input gives no lattice constant).
"""

import json

import netCDF4
import numpy as np

from ..plotting import plt, save_figure

__all__ = ["plot_parameter_prediction", "plot_potential_prediction"]


def plot_parameter_prediction(predictions_path, first_map, lattice_constant_nm, output):
    """The first map with its predicted (and true) parameters, and predicted against true
    values of every target whose truth is stored.

    Parameters
    ----------
    predictions_path : path-like
        File of format ``mesoinv-predictions-1``.
    first_map : ndarray, shape (channels, nx, ny), or None
        The first sample's input PLDOS (meV⁻¹ per site); its first channel is drawn.
    lattice_constant_nm : float or None
        Axes in nm; in sites when None.
    output : path-like
        PNG (written atomically).
    """
    with netCDF4.Dataset(predictions_path) as ds:
        names = json.loads(ds.targets)
        units = json.loads(ds.target_units)
        pred = {n: np.asarray(ds[n][:]) for n in names}
        true = {n: np.asarray(ds[f"{n}_true"][:]) for n in names if f"{n}_true" in ds.variables}
        sample_ids = np.asarray(ds["sample_id"][:])
        model_name = ds.model_name
    panels = 1 + (len(true) if true else 0)
    fig, axes = plt.subplots(1, panels, figsize=(min(4.2 * panels, 12.6), 3.8),
                             constrained_layout=True, squeeze=False)
    ax = axes[0, 0]
    if first_map is not None:
        a = lattice_constant_nm or 1.0
        image = np.asarray(first_map)[0]
        mesh = ax.imshow(image.T, origin="lower", cmap="inferno", aspect="equal",
                         extent=(0, image.shape[0] * a, 0, image.shape[1] * a),
                         vmax=np.percentile(image, 99.5))
        fig.colorbar(mesh, ax=ax, label="PLDOS (meV⁻¹ per site)", extend="max", shrink=0.8)
        ax.set_xlabel("x (nm)" if lattice_constant_nm else "x (sites)")
        ax.set_ylabel("y (nm)" if lattice_constant_nm else "y (sites)")
    text = "\n".join(f"{n} = {pred[n][0]:.4g} {units[n]}"
                     + (f" (true {true[n][0]:.4g})" if n in true else "") for n in names)
    ax.set_title(f"sample {sample_ids[0] if len(sample_ids) else '-'}: {model_name}\n{text}",
                 fontsize=8)
    for k, n in enumerate(true, start=1):
        ax = axes[0, k]
        ax.scatter(true[n], pred[n], s=6, alpha=0.6)
        low, high = float(np.min(true[n])), float(np.max(true[n]))
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.set_xlabel(f"true {n} ({units[n]})")
        ax.set_ylabel(f"predicted {n} ({units[n]})")
    return save_figure(fig, output)


def plot_potential_prediction(predictions_path, first_map, output):
    """Input PLDOS, predicted V and, where known, true V and the error, of the first sample.

    Parameters
    ----------
    predictions_path : path-like
        File of format ``mesoinv-potential-predictions-1``.
    first_map : ndarray, shape (channels, nx, ny), or None
        The first sample's input PLDOS (meV⁻¹ per site); its first channel is drawn.
    output : path-like
        PNG (written atomically).
    """
    with netCDF4.Dataset(predictions_path) as ds:
        x_nm, y_nm = np.asarray(ds["x"][:]), np.asarray(ds["y"][:])
        predicted = np.asarray(ds["potential"][0]) if len(ds["sample_id"]) else None
        true = np.asarray(ds["potential_true"][0]) if "potential_true" in ds.variables \
            and len(ds["sample_id"]) else None
        sample_id = int(ds["sample_id"][0]) if len(ds["sample_id"]) else None
        model_name, kind = ds.model_name, ds.model_kind
    extent = (x_nm[0], x_nm[-1], y_nm[0], y_nm[-1])
    panels = [("input PLDOS", first_map[0] if first_map is not None else None, "inferno",
               "PLDOS (meV⁻¹ per site)")]
    limit = float(np.max(np.abs(predicted))) if predicted is not None else 1.0
    if true is not None:
        limit = max(limit, float(np.max(np.abs(true))))
    panels.append(("predicted V", predicted, "RdBu_r", "V (meV)"))
    if true is not None:
        panels += [("true V", true, "RdBu_r", "V (meV)"),
                   ("predicted − true", predicted - true, "PuOr_r", "ΔV (meV)")]
    # two rows of two when the error is drawn: readable in a 1400-px window
    rows, columns = (2, 2) if len(panels) == 4 else (1, len(panels))
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.3 * rows + 0.3),
                             constrained_layout=True, squeeze=False)
    for ax, (title, image, cmap, label) in zip(axes.ravel(), panels):
        if image is None:
            ax.set_axis_off()
            continue
        options = {}
        if cmap == "RdBu_r":
            options = {"vmin": -limit, "vmax": limit}
        elif cmap == "PuOr_r":
            err = float(np.max(np.abs(image))) or 1.0
            options = {"vmin": -err, "vmax": err}
        else:
            options = {"vmax": float(np.percentile(image, 99.5))}
        mesh = ax.imshow(np.asarray(image).T, origin="lower", cmap=cmap, extent=extent,
                         aspect="equal", **options)
        fig.colorbar(mesh, ax=ax, label=label, shrink=0.8,
                     extend="max" if cmap == "inferno" else "neither")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
    if true is not None and predicted is not None:
        r = np.corrcoef(predicted.ravel(), true.ravel())[0, 1]
        fig.suptitle(f"{model_name} ({kind}), sample {sample_id}: r_P = {r:.3f}", fontsize=10)
    else:
        fig.suptitle(f"{model_name} ({kind}), sample {sample_id}", fontsize=10)
    return save_figure(fig, output)
