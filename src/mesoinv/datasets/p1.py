"""P1 samples: remote-dopant disorder → PLDOS from a QPC.

A sample is a pure function of (dataset seed, sample id, dataset configuration): its random
numbers come from ``numpy.random.SeedSequence(seed, spawn_key=(sample_id,))`` alone, drawn in
a fixed order (s, then N_d, then Re C_j for all modes, then Im C_j), so computing ids 5…9 on
their own gives the same bytes as computing them among 0…99, on any number of processes.

The Fourier modes are those of the box L × W inside the *largest* cutoff of the dataset,
3.5/s_min, so every sample of a dataset shares one ``mode`` axis. A sample uses only the
modes inside its own cutoff 3.5/s; its coefficients outside are stored as 0 (they do not
enter its potential).
"""

from dataclasses import dataclass, field

import numpy as np

from ..config import NON_SAMPLE_KEYS, parameter_range
from .base import ShardedDataset, sample_rng
from ..physics.disorder import (FourierModes, RemoteDopantDisorder, draw_fourier_coefficients,
                                fourier_modes)
from ..physics.materials import Material, flux_per_plaquette, hopping_meV
from ..physics.pldos import PLDOSSolver
from ..physics.qpc import QPCGeometry, make_qpc_system

__all__ = ["P1DatasetSpec", "P1Sample", "P1Simulator", "sample_rng", "draw_disorder"]


@dataclass(frozen=True)
class P1DatasetSpec(ShardedDataset):
    """Everything that defines a P1 dataset, from one validated config entry.

    Attributes are in the units of their names; ``config`` is the validated entry itself
    (stored in the netCDF files, so a dataset can be rebuilt from its own attributes).
    """

    name: str
    config: dict = field(repr=False)
    seed: int
    n_samples: int | None
    shard_size: int | None
    geometry: QPCGeometry
    material: Material
    energy_meV: float
    magnetic_fields_T: tuple
    dopant_distance_range_nm: tuple
    dopant_density_range_cm2: tuple
    cutoff_factor: float
    thomas_fermi_wavevector_per_nm: float | None
    ordering: str
    storage_dtype: str

    @classmethod
    def from_config(cls, name: str, entry: dict) -> "P1DatasetSpec":
        """Build from a validated dataset entry, or from a dataset definition (no n_samples).

        ``entry`` is ``config["datasets"][name]`` of a config validated by
        :func:`mesoinv.config.validate_config`, or what :func:`mesoinv.config.dataset_definition`
        returns (then ``n_samples`` and ``shard_size`` are None).
        """
        if entry["kind"] != "p1_pldos":
            raise ValueError(f"dataset '{name}' is of kind {entry['kind']!r}, not 'p1_pldos'")
        disorder = entry["disorder"]
        return cls(
            name=name,
            config={k: v for k, v in entry.items()
                    if k not in NON_SAMPLE_KEYS + ("name",)},
            seed=int(entry["seed"]),
            n_samples=entry.get("n_samples"),
            shard_size=entry.get("shard_size"),
            geometry=QPCGeometry.from_nm(**entry["geometry"]),
            material=Material(**entry["material"]),
            energy_meV=float(entry["transport"]["energy_meV"]),
            magnetic_fields_T=tuple(float(b) for b in entry["transport"]["magnetic_fields_T"]),
            dopant_distance_range_nm=parameter_range(disorder["dopant_distance_nm"]),
            dopant_density_range_cm2=parameter_range(disorder["dopant_density_cm2"]),
            cutoff_factor=float(disorder["cutoff_factor"]),
            thomas_fermi_wavevector_per_nm=disorder["thomas_fermi_wavevector_per_nm"],
            ordering=entry["solver"]["ordering"],
            storage_dtype=entry["storage_dtype"],
        )

    @property
    def hopping_meV(self) -> float:
        """t = ħ²/(2m*a²) in meV."""
        return hopping_meV(self.geometry.lattice_constant_nm, self.material.effective_mass_kg)

    @property
    def fluxes_per_plaquette(self) -> np.ndarray:
        """φ = B a² e/h for each field."""
        return flux_per_plaquette(np.array(self.magnetic_fields_T), self.geometry.lattice_constant_nm)

    def disorder(self, dopant_distance_nm: float, dopant_density_cm2: float) -> RemoteDopantDisorder:
        """The disorder model of one sample."""
        return RemoteDopantDisorder(
            dopant_distance_nm=dopant_distance_nm, dopant_density_cm2=dopant_density_cm2,
            material=self.material, cutoff_factor=self.cutoff_factor,
            thomas_fermi_wavevector_per_nm=self.thomas_fermi_wavevector_per_nm)

    @property
    def modes(self) -> FourierModes:
        """The dataset's shared mode set: |q| < cutoff_factor / s_min."""
        s_min = self.dopant_distance_range_nm[0]
        return fourier_modes(self.geometry.length_nm, self.geometry.width_nm,
                             self.cutoff_factor / s_min)


def _uniform(rng, low_high):
    low, high = low_high
    # Always consume one draw, so fixing a parameter does not shift the rest of the stream.
    return low + (high - low) * rng.random()


def draw_disorder(spec: P1DatasetSpec, sample_id: int, modes: FourierModes | None = None):
    """The random part of sample ``sample_id``: (s in nm, N_d in cm⁻², coefficients).

    Returns
    -------
    dopant_distance_nm, dopant_density_cm2 : float
    coefficients : complex ndarray, shape (len(modes),)
        C_j, zero for modes at or beyond this sample's cutoff.
    """
    modes = spec.modes if modes is None else modes
    rng = sample_rng(spec.seed, sample_id)
    s = _uniform(rng, spec.dopant_distance_range_nm)
    n_d = _uniform(rng, spec.dopant_density_range_cm2)
    disorder = spec.disorder(s, n_d)
    sigma = disorder.coefficient_sigma(spec.geometry.length_nm, spec.geometry.width_nm)
    coefficients = draw_fourier_coefficients(rng, len(modes), sigma)
    coefficients[modes.q_per_nm >= disorder.cutoff_per_nm] = 0
    return s, n_d, coefficients


@dataclass
class P1Sample:
    """One simulated sample (arrays in float64; units in the names)."""

    sample_id: int
    dopant_distance_nm: float
    dopant_density_cm2: float
    rms_meV: float
    correlation_length_nm: float
    fourier_coefficients: np.ndarray  # complex, (mode,)
    potential_meV: np.ndarray  # (x, y)
    pldos_per_meV: np.ndarray  # (field, x, y), meV⁻¹ per site


class P1Simulator:
    """Simulates samples of one P1 dataset; builds the Kwant system and solver once.

    Parameters
    ----------
    spec : P1DatasetSpec
    """

    def __init__(self, spec: P1DatasetSpec):
        self.spec = spec
        self.modes = spec.modes
        self.system = make_qpc_system(spec.geometry)
        self.solver = PLDOSSolver(
            self.system, (spec.geometry.nx, spec.geometry.ny), energy_meV=spec.energy_meV,
            hopping_meV=spec.hopping_meV, fluxes_per_plaquette=spec.fluxes_per_plaquette,
            ordering=spec.ordering)

    @property
    def open_modes(self) -> list[int]:
        """Open QPC channels at each field."""
        return self.solver.open_modes

    def file_metadata(self) -> dict:
        """What :func:`mesoinv.datasets.netcdf.write_p1_netcdf` needs beyond the samples."""
        return {"open_modes": self.open_modes}

    def potential(self, sample_id: int):
        """(s, N_d, coefficients, V in meV on the sites) of a sample, without transport."""
        s, n_d, coefficients = draw_disorder(self.spec, sample_id, self.modes)
        disorder = self.spec.disorder(s, n_d)
        g = self.spec.geometry
        return s, n_d, coefficients, disorder.potential_meV(self.modes, coefficients, g.x_nm, g.y_nm)

    def simulate(self, sample_id: int) -> P1Sample:
        """Potential and PLDOS of one sample."""
        s, n_d, coefficients, potential = self.potential(sample_id)
        disorder = self.spec.disorder(s, n_d)
        return P1Sample(
            sample_id=int(sample_id),
            dopant_distance_nm=s,
            dopant_density_cm2=n_d,
            rms_meV=disorder.rms_meV,
            correlation_length_nm=disorder.correlation_length_nm,
            fourier_coefficients=coefficients,
            potential_meV=potential,
            pldos_per_meV=self.solver(potential),
        )
