"""P2 samples: a nanowire with two antidots → magnetoconductance trace G(B) and LDOS image.

Sample ids enumerate (configuration, realisation) pairs: sample ``i`` is realisation
``i % R`` of configuration ``order[i // R]``, with R = ``realizations`` (P2: 5). The
configurations are the symmetry classes of antidot placements
(:func:`mesoinv.physics.antidots.symmetry_classes`), each stored as its canonical
representative; ``configuration_id`` is the class's index in their sorted list (stable for
given geometry and constraints). ``order`` is a permutation of all classes drawn from
``SeedSequence(seed, spawn_key=(0, 0))`` — a stream that no sample uses (samples use
``spawn_key=(sample_id,)``) — so a dataset smaller than the full enumeration is a uniform random
subset of the classes, and growing it keeps every existing sample.

The random onsite potential of a sample is drawn from ``SeedSequence(seed,
spawn_key=(sample_id,))`` (:func:`mesoinv.physics.nanowire.random_potential`: uniform on
[-A/2, A/2] on all W × L sites, units of t). Splits are by configuration by default
(:meth:`P2DatasetSpec.split_unit`): the realisations of one configuration never straddle
train and test. ``split_by: realization`` assigns each sample on its own instead, so a held-out
sample is another potential realisation of a placement seen in training.
"""

import functools
from dataclasses import dataclass, field

import numpy as np

from ..config import NON_SAMPLE_KEYS
from ..physics.antidots import PairConstraints, symmetry_classes
from ..physics.nanowire import NanowireGeometry, pad_image, present_mask, random_potential
from ..physics.rgf import lead_self_energies, ldos, transmission
from .base import ShardedDataset, sample_rng

__all__ = ["P2DatasetSpec", "P2Sample", "P2Simulator"]

@functools.lru_cache(maxsize=8)
def _classes(geometry: NanowireGeometry, constraints: PairConstraints):
    return symmetry_classes(geometry, constraints)


@dataclass(frozen=True)
class P2DatasetSpec(ShardedDataset):
    """Everything that defines a P2 dataset, from one validated config entry.

    Energies and potentials are in units of the hopping t; fields in tesla for the stated
    lattice constant (and as flux per plaquette φ = B a² e/h).
    """

    name: str
    config: dict = field(repr=False)
    seed: int
    n_samples: int | None
    shard_size: int | None
    geometry: NanowireGeometry
    constraints: PairConstraints
    energy_t: float
    fields_T: tuple
    potential_amplitude_t: float
    realizations: int
    ldos_padding_sites: int
    storage_dtype: str
    split_by: str = "configuration"

    @classmethod
    def from_config(cls, name: str, entry: dict) -> "P2DatasetSpec":
        """Build from a validated dataset entry or definition (see P1DatasetSpec.from_config)."""
        if entry["kind"] != "p2_magnetoconductance":
            raise ValueError(f"dataset '{name}' is of kind {entry['kind']!r}, "
                             "not 'p2_magnetoconductance'")
        g, t, d, a = entry["geometry"], entry["transport"], entry["disorder"], entry["antidots"]
        low, high = t["field_range_T"]
        return cls(
            name=name,
            config={k: v for k, v in entry.items() if k not in NON_SAMPLE_KEYS + ("name",)},
            seed=int(entry["seed"]),
            n_samples=entry.get("n_samples"),
            shard_size=entry.get("shard_size"),
            geometry=NanowireGeometry(width_sites=g["width_sites"],
                                      length_sites=g["length_sites"],
                                      antidot_radius=float(g["antidot_radius_sites"]),
                                      lattice_constant_nm=float(g["lattice_constant_nm"])),
            constraints=PairConstraints(margin_x=a["margin_x_sites"],
                                        margin_y=a["margin_y_sites"],
                                        min_separation=float(a["min_separation_sites"]),
                                        half_integer_centres=a["half_integer_centres"]),
            energy_t=float(t["energy_t"]),
            fields_T=tuple(np.linspace(low, high, t["n_fields"]).tolist()),
            potential_amplitude_t=float(d["amplitude_t"]),
            realizations=int(d["realizations"]),
            ldos_padding_sites=int(entry["ldos_padding_sites"]),
            storage_dtype=entry["storage_dtype"],
            split_by=entry.get("split_by", "configuration"),
        )

    # -- configurations -----------------------------------------------------------------------
    @property
    def classes(self):
        """All symmetry classes (canonical representatives, sizes), cached per process."""
        return _classes(self.geometry, self.constraints)

    @property
    def n_configurations(self) -> int:
        return len(self.classes)

    @property
    def max_samples(self) -> int:
        """Samples that exist: every class × every realisation (ids 0 … max_samples − 1)."""
        return self.n_configurations * self.realizations

    @functools.cached_property
    def configuration_order(self) -> np.ndarray:
        """Class indices in the order the dataset uses them (a seeded permutation)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed,
                                                                         spawn_key=(0, 0))))
        return rng.permutation(self.n_configurations)

    def configuration_of(self, sample_id: int) -> tuple[int, int]:
        """(configuration_id, realisation) of a sample."""
        index, realization = divmod(int(sample_id), self.realizations)
        if index >= self.n_configurations:
            raise ValueError(f"sample {sample_id} needs configuration #{index}, but there are "
                             f"only {self.n_configurations} classes × {self.realizations} "
                             "realisations")
        return int(self.configuration_order[index]), realization

    def split_unit(self, sample_id: int) -> int:
        """The unit assigned to a split: the configuration (all realisations of a class go to
        the same split; the default) or, with ``split_by: realization``, the sample itself."""
        if self.split_by == "realization":
            return int(sample_id)
        return self.configuration_of(sample_id)[0]

    @property
    def fluxes_per_plaquette(self) -> np.ndarray:
        return self.geometry.flux_per_plaquette(np.array(self.fields_T))


@dataclass
class P2Sample:
    """One simulated P2 sample (arrays in float64; energies in units of t)."""

    sample_id: int
    configuration_id: int
    potential_realization: int
    antidot_centres: np.ndarray  # (2, 2): [[cx1, cy1], [cx2, cy2]] in sites
    potential_t: np.ndarray  # (x, y) = (W, L)
    conductance: np.ndarray  # (field,), e²/h, spinless
    ldos_per_t: np.ndarray  # (W + 2 pad, L), states per t per site, 0 on removed sites


class P2Simulator:
    """Simulates samples of one P2 dataset; lead self-energies for all fields once."""

    def __init__(self, spec: P2DatasetSpec):
        self.spec = spec
        width = spec.geometry.width_sites
        self.leads = lead_self_energies(width, spec.fluxes_per_plaquette, energy=spec.energy_t)
        self.leads_zero_field = lead_self_energies(width, [0.0], energy=spec.energy_t)

    def simulate(self, sample_id: int) -> P2Sample:
        """G(B) trace and B = 0 LDOS of one sample."""
        spec = self.spec
        configuration_id, realization = spec.configuration_of(sample_id)
        centres = np.asarray(spec.classes.representatives[configuration_id], dtype=float)
        potential = random_potential(sample_rng(spec.seed, sample_id), spec.geometry,
                                     spec.potential_amplitude_t)
        present = present_mask(spec.geometry, centres)
        conductance = transmission(present, potential, self.leads)
        image = ldos(present, potential, self.leads_zero_field)[0]
        if spec.ldos_padding_sites:
            image = pad_image(image, spec.geometry.width_sites + 2 * spec.ldos_padding_sites)
        if not (np.all(np.isfinite(conductance)) and np.all(np.isfinite(image))):
            raise FloatingPointError("non-finite conductance or LDOS")
        return P2Sample(sample_id=int(sample_id), configuration_id=configuration_id,
                        potential_realization=realization, antidot_centres=centres,
                        potential_t=potential, conductance=conductance, ldos_per_t=image)

    def file_metadata(self) -> dict:
        """What :func:`mesoinv.datasets.netcdf.write_p2_netcdf` needs beyond the samples."""
        return {"open_channels": np.asarray(self.leads.n_open).tolist()}
