"""P1's statements about the reconstruction of the potential (Sec. IV) beside ours.

:data:`PAPER_RECONSTRUCTION` holds the paper's numbers (constants copied from the paper);
:func:`paper_comparison` puts them beside the r_P statistics of
:func:`mesoinv.evaluation.p1_potential.metrics.reconstruction_metrics`.
"""

import math
from dataclasses import dataclass

import pandas as pd

__all__ = ["PaperReconstruction", "PAPER_RECONSTRUCTION", "paper_comparison"]


@dataclass(frozen=True)
class PaperReconstruction:
    """What P1 Sec. IV states about one reconstruction method (constants from the paper).

    Attributes
    ----------
    method : str
    statement : str
        The paper's words about r_P.
    r_p_typical : float
        Typical r_P the paper quotes (NaN if none).
    r_p_bound : float
        The bound the paper states: rare cases below it (Fourier) or all samples above it
        (encoder-decoder).
    bound_meaning : str
    n_samples, n_test : int
        Dataset size (train + test) and test samples of Figs. 4, 6, 8.
    sites : str
        Lattice of the PLDOS and potential images (nx × ny).
    dopant_distance_nm, dopant_density_cm2 : float
        The fixed s and N_d of the dataset.
    source : str
    """

    method: str
    statement: str
    r_p_typical: float
    r_p_bound: float
    bound_meaning: str
    n_samples: int = 88000
    n_test: int = 3000
    sites: str = "256 × 192"
    dopant_distance_nm: float = 50.0
    dopant_density_cm2: float = 1e12
    source: str = ""


#: P1's results per model kind. Sec. IV A: "88.000 samples ... fixed distance s = 50 nm and a
#: fixed density at N_d = 10^12 cm^-2"; L × W = 1.28 µm × 0.96 µm at a = 5 nm (256 × 192
#: sites); Figs. 4 and 6: "3000 test samples"; Sec. IV C: "the direct results of the
#: convolutional encoder-decoder network (right panel) are considerably more accurate (with
#: r_P > 0.99 and thus almost perfect correlation in all cases) than the potential
#: reconstructed from the Fourier coefficients (left panel; typically r_P ≈ 0.95, and rare
#: cases with r_P < 0.9)".
PAPER_RECONSTRUCTION = {
    "p1_fourier_cnn": PaperReconstruction(
        method="Fourier coefficients by a CNN, V from Eq. 1 (P1 Sec. IV A)",
        statement="typically r_P ≈ 0.95, rare cases with r_P < 0.9",
        r_p_typical=0.95, r_p_bound=0.9, bound_meaning="rarely below",
        source="P1 Sec. IV A, IV C, Figs. 4, 5, 6 (left), 8 (left)"),
    "p1_encoder_decoder": PaperReconstruction(
        method="V directly by a convolutional encoder-decoder (P1 Sec. IV B)",
        statement="r_P > 0.99 for all test samples (almost perfect correlation)",
        r_p_typical=math.nan, r_p_bound=0.99, bound_meaning="all samples above",
        source="P1 Sec. IV B, IV C, Figs. 6 (right), 7, 8 (right)"),
}


def paper_comparison(metrics: pd.DataFrame) -> pd.DataFrame:
    """Our r_P statistics beside P1's statements, one row per model (predictor ``model``).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Output of :func:`.metrics.reconstruction_metrics` (possibly several models concatenated).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``model_kind``, ``method``, ``split``; ours: ``n`` (evaluated
        samples), ``n_train``, ``sites`` ("nx × ny"), ``dopant_distance_nm``, ``r_p_median``,
        ``r_p_q05``, ``r_p_min``, ``fraction_r_p_above_0_9``, ``fraction_r_p_above_0_99``,
        ``relative_rmse``, ``training_mean_r_p_median`` (the baseline's); the paper's:
        ``paper_statement``, ``paper_r_p_typical``, ``paper_r_p_bound``,
        ``paper_bound_meaning``, ``paper_n_samples`` (train + test), ``paper_n_test``,
        ``paper_sites``, ``paper_dopant_distance_nm``, ``paper_dopant_density_cm2``,
        ``paper_source``.

    Notes
    -----
    The paper trains on 88,000 samples of 256 × 192 sites; a demo trains on far fewer and
    smaller maps, so the comparison says how far the demo is from the paper's regime, not
    whether the method works.
    """
    rows = []
    for _, row in metrics[metrics["predictor"] == "model"].iterrows():
        paper = PAPER_RECONSTRUCTION.get(row.get("model_kind"))
        base = metrics[(metrics["predictor"] == "training_mean_potential")
                       & (metrics["model"] == row["model"]) & (metrics["split"] == row["split"])]
        rows.append({
            "model": row["model"], "model_kind": row.get("model_kind", ""),
            "method": paper.method if paper else "", "split": row["split"],
            "n": row["n"], "n_train": row.get("n_train"),
            "sites": f"{row['nx_sites']} × {row['ny_sites']}",
            "dopant_distance_nm": row.get("dopant_distance_nm", math.nan),
            "r_p_median": row["r_p_median"], "r_p_q05": row["r_p_q05"],
            "r_p_min": row["r_p_min"],
            "fraction_r_p_above_0_9": row["fraction_r_p_above_0_9"],
            "fraction_r_p_above_0_99": row["fraction_r_p_above_0_99"],
            "relative_rmse": row["relative_rmse"],
            "training_mean_r_p_median": (float(base["r_p_median"].iloc[0]) if len(base)
                                         else math.nan),
            "paper_statement": paper.statement if paper else "not in P1",
            "paper_r_p_typical": paper.r_p_typical if paper else math.nan,
            "paper_r_p_bound": paper.r_p_bound if paper else math.nan,
            "paper_bound_meaning": paper.bound_meaning if paper else "",
            "paper_n_samples": paper.n_samples if paper else pd.NA,
            "paper_n_test": paper.n_test if paper else pd.NA,
            "paper_sites": paper.sites if paper else "",
            "paper_dopant_distance_nm": paper.dopant_distance_nm if paper else math.nan,
            "paper_dopant_density_cm2": paper.dopant_density_cm2 if paper else math.nan,
            "paper_source": paper.source if paper else "",
        })
    return pd.DataFrame(rows)
