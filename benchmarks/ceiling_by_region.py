"""The Bayes ceiling of the P1 parameter targets against the region size, from prior draws.

For each region (the demo's 320 × 240 nm, the medium 640 × 480 nm, P1's 1280 × 960 nm; the
demo's a = 5 nm, s ∈ [40, 70] nm, N_d ∈ [0.6, 1.5]·10¹² cm⁻²), draw N samples of the demo's
``p1_varying`` disorder at that size (no PLDOS is needed: the ceiling uses the potential), and
report the R² of the posterior mean of s, N_d, rms and ξ
(:func:`mesoinv.evaluation.p1_parameters.posterior.potential_posterior`) and the coverage of
its central 90 % interval for N_d. Sampling error of an R² from N draws ≈ ±2/√N · (1 − R²)…

    python benchmarks/ceiling_by_region.py [--draws 200] [-o table.md]

The table goes to docs/models.md ("How much information a map holds").
"""

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np

from mesoinv.config import load_config, validate_config
from mesoinv.datasets import dataset_spec, draw_disorder, write_p1_netcdf
from mesoinv.datasets.p1 import P1Sample
from mesoinv.evaluation.p1_parameters.posterior import potential_posterior

TARGETS = ["dopant_distance", "dopant_density", "rms", "correlation_length"]
REGIONS = {"320 × 240 nm (demo)": (320.0, 240.0), "640 × 480 nm (medium)": (640.0, 480.0),
           "1280 × 960 nm (P1)": (1280.0, 960.0)}


def region_ceiling(length_nm: float, width_nm: float, draws: int, directory: Path) -> dict:
    config = copy.deepcopy(load_config("config/config.yaml"))
    entry = config["datasets"]["p1_varying"]
    entry["geometry"] = dict(entry["geometry"], length_nm=length_nm, width_nm=width_nm)
    entry["n_samples"] = draws
    config = validate_config(config)
    spec = dataset_spec(config, "p1_varying")
    modes, g = spec.modes, spec.geometry
    samples, shapes = [], {}
    for sample_id in range(draws):
        s, n_d, coefficients = draw_disorder(spec, sample_id, modes)
        key = round(s, 6)
        if key not in shapes:
            base = spec.disorder(s, 1e12)
            shapes[key] = (base.rms_meV, base.correlation_length_nm)
        # The ceiling reads only the coefficients; the potential and PLDOS stay zero.
        samples.append(P1Sample(sample_id, s, n_d, shapes[key][0] * np.sqrt(n_d / 1e12),
                                shapes[key][1], coefficients, np.zeros((g.nx, g.ny)),
                                np.zeros((1, g.nx, g.ny))))
    path = directory / f"draws-{int(length_nm)}.nc"
    write_p1_netcdf(path, spec, samples, open_modes=[3])
    truth = np.array([[x.dopant_distance_nm, x.dopant_density_cm2, x.rms_meV,
                       x.correlation_length_nm] for x in samples])
    posterior = potential_posterior(path, TARGETS)
    r2 = 1 - np.mean((posterior.means - truth) ** 2, axis=0) / np.var(truth, axis=0)
    low, high = posterior.quantiles[:, 1, 0], posterior.quantiles[:, 1, 1]
    coverage = float(np.mean((low <= truth[:, 1]) & (truth[:, 1] <= high)))
    return {"modes": len(modes), **dict(zip(TARGETS, r2)), "coverage_nd_90": coverage}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    lines = [f"| region | modes | R² ceiling s | N_d | rms | ξ | 90 % interval covers N_d |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (length, width) in REGIONS.items():
            row = region_ceiling(length, width, args.draws, Path(tmp))
            lines.append(f"| {name} | {row['modes']} | {row['dopant_distance']:.3f} | "
                         f"{row['dopant_density']:.2f} | {row['rms']:.2f} | "
                         f"{row['correlation_length']:.3f} | {row['coverage_nd_90']:.0%} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    if args.output:
        args.output.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
