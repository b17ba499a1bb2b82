"""The loss curve of a training run (train and validation loss against the optimizer step),
its y axis named after the loss of the model kind (:data:`LOSS_LABELS`)."""

import numpy as np

from ..plotting import plt, save_figure

__all__ = ["plot_loss_curve", "LOSS_LABELS", "loss_label"]

#: What each model kind's training loss is (the y label of its loss curve).
LOSS_LABELS = {
    "p1_parameter_cnn": "MSE of the standardised targets (1)",
    "p1_fourier_cnn": "MSE of the standardised Fourier coefficients (1)",
    "p1_encoder_decoder": "MSE of the min–max normalised potential (1)",
    "p2_diffusion": "noise-prediction MSE, mean (ε̂ − ε)² (1)",
}


def loss_label(model_kind: str | None) -> str:
    """The y label of a loss curve for ``model_kind`` (:data:`LOSS_LABELS`); a kind not
    listed gets the neutral "training loss"."""
    return LOSS_LABELS.get(str(model_kind), "training loss (1)")


def plot_loss_curve(metrics, output, *, title="", model_kind: str | None = None):
    """Draw training (per step and per epoch) and validation loss from the CSV-logger table.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Columns ``step`` and any of ``train_loss_step``, ``train_loss_epoch``, ``val_loss``,
        ``run`` (a resumed run starts a new ``run``; resumption points are marked).
    output : path-like
        PNG to write.
    title : str
    model_kind : str, optional
        Names the loss on the y axis (:func:`loss_label`).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    styles = {"train_loss_step": dict(color="0.6", lw=0.8, label="train (per step)"),
              "train_loss_epoch": dict(color="C0", marker="o", label="train (epoch mean)"),
              "val_loss": dict(color="C1", marker="s", label="validation")}
    drawn = False
    for column, style in styles.items():
        if column in metrics:
            rows = metrics[["step", column]].dropna()
            rows = rows.drop_duplicates("step", keep="last").sort_values("step")
            if len(rows):
                ax.plot(rows["step"], rows[column], **style)
                drawn = True
    if "run" in metrics and metrics["run"].nunique() > 1:
        for run, rows in metrics.groupby("run"):
            if run > metrics["run"].min():
                ax.axvline(rows["step"].min(), color="k", ls=":", lw=0.8)
        ax.plot([], [], color="k", ls=":", lw=0.8, label="resumed")
    if drawn:
        values = metrics.filter(like="loss").to_numpy(dtype=float)
        if np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no logged loss", ha="center", transform=ax.transAxes)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(loss_label(model_kind))
    ax.set_title(title, fontsize=9)
    return save_figure(fig, output)
