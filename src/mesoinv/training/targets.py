"""What a model predicts: reading, normalising, mirroring and inverting its targets.

Three kinds, one per P1 task (statistics always from the training split only):

``scalars`` (:class:`ScalarTargets`)
    Per-sample global parameters (s, N_d, rms, ξ), each standardised (P1 Eq. A1).
``fourier_coefficients`` (:class:`FourierTargets`)
    The real and imaginary parts of the N complex coefficients C_j of P1 Eq. (1), each of the
    2 N numbers standardised (A1) with its own training mean and std. The potential is rebuilt
    from them by the simulator's own Eq. (1) (:meth:`RemoteDopantDisorder.potential_meV`), on
    the dataset's grid, in meV. The rebuild needs s: this kind requires a dataset with one
    fixed dopant distance (P1 Sec. IV: s = 50 nm); N_d does not enter V given the C_j.
``potential`` (:class:`PotentialTargets`)
    The potential image V(x, y) in meV, min–max normalised (P1 Eq. A2) with the minimum and
    maximum over every pixel of the training split (one scalar pair).

Mirror augmentation (y → Y − y, valid for a centred QPC at B = 0) acts on each kind: scalars
are ensemble parameters and do not change; the potential image is flipped; the coefficients
go through :func:`mesoinv.physics.disorder.mirror_y_coefficients`, a fixed real linear map of
the 2 N numbers, applied to the standardised batch as one affine map.

Each kind has ``to_dict``/``from_target_dict`` for the model file (plain lists: loadable with
``torch.load(weights_only=True)``).
"""

import netCDF4
import numpy as np
import torch

from ..physics.disorder import FourierModes, RemoteDopantDisorder, mirror_y_coefficients
from ..physics.materials import Material
from .normalization import TargetStandardization

__all__ = ["ScalarTargets", "FourierTargets", "PotentialTargets", "targets_from_dict",
           "training_mean_potential", "TARGET_KINDS"]

TARGET_KINDS = ("scalars", "fourier_coefficients", "potential")


def read_variables(path, names, positions=None) -> np.ndarray:
    """Per-sample 1D variables, shape (samples, len(names)), float64, physical units."""
    with netCDF4.Dataset(path) as ds:
        missing = [n for n in names if n not in ds.variables]
        if missing:
            raise ValueError(f"{path}: no target variable(s) {missing}")
        columns = []
        for n in names:
            values = np.asarray(ds[n][:], dtype=np.float64)
            columns.append(values if positions is None else values[positions])
        return np.stack(columns, axis=-1)


def training_mean_potential(path, positions=None) -> np.ndarray:
    """Pixelwise mean of the stored potentials of a split (or of its rows ``positions``, a
    training subset), (nx, ny) in meV (float64).

    By the linearity of Eq. (1) it equals the potential rebuilt from the training-mean
    coefficients: the evaluation's "training mean" baseline.
    """
    with netCDF4.Dataset(path) as ds:
        var = ds["potential"]
        var.set_auto_maskandscale(False)
        rows = range(var.shape[0]) if positions is None else positions
        total = np.zeros(var.shape[1:], dtype=np.float64)
        for index in rows:
            total += np.asarray(var[index], dtype=np.float64)
        return total / max(len(rows), 1)


class ScalarTargets:
    """Global per-sample parameters, standardised one by one (P1 Eq. A1).

    Parameters
    ----------
    names : list of str
        Stored per-sample variables (``dopant_distance``, ``dopant_density``, ``rms``,
        ``correlation_length``).
    """

    kind = "scalars"
    #: Per-sample image variable streamed with the input (None: targets held in memory).
    image_variable = None

    def __init__(self, names, standardization: TargetStandardization | None = None,
                 long_names=None):
        self.names = list(names)
        self.standardization = standardization
        self.long_names = long_names

    @property
    def n_outputs(self) -> int:
        return len(self.names)

    def fit(self, train_path, info, positions=None) -> "ScalarTargets":
        """Standardisation from the training split (its rows ``positions``: a subset)."""
        values = read_variables(train_path, self.names, positions)
        self.standardization = TargetStandardization.fit(
            self.names, values, [info.variable_units[n] for n in self.names])
        self.long_names = [info.variable_long_names[n] for n in self.names]
        return self

    def load(self, path, positions=None) -> np.ndarray:
        """Normalised targets (samples, n_outputs), float32."""
        return self.standardization(read_variables(path, self.names, positions))

    def truth(self, path, positions=None) -> np.ndarray:
        """Physical targets (samples, n_outputs), float64."""
        return read_variables(path, self.names, positions)

    def invert(self, normalized) -> np.ndarray:
        """Network outputs (samples, n_outputs) → physical units."""
        return self.standardization.invert(normalized)

    def mirror(self, batch: torch.Tensor) -> torch.Tensor:
        """Ensemble parameters are unchanged by y → −y."""
        return batch

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.standardization.to_dict(),
                "long_names": list(self.long_names or self.names)}

    @classmethod
    def from_dict(cls, data: dict) -> "ScalarTargets":
        return cls(data["names"], TargetStandardization.from_dict(data),
                   data.get("long_names"))


class FourierTargets:
    """Re and Im of the Fourier coefficients of P1 Eq. (1), standardised (A1) one by one.

    The output vector is ``[Re C_1 … Re C_N, Im C_1 … Im C_N]`` over the dataset's stored
    half-plane modes (all inside the cutoff 3.5/s for a fixed s).

    Parameters
    ----------
    modes : FourierModes, optional
        Set by :meth:`fit` from the training split.
    physics : dict, optional
        s (nm), ε, m* (kg), q_TF (nm⁻¹), cutoff factor: what Eq. (1) needs besides the C_j.
    """

    kind = "fourier_coefficients"
    image_variable = None

    def __init__(self, modes: FourierModes | None = None, physics: dict | None = None,
                 standardization: TargetStandardization | None = None):
        self.modes = modes
        self.physics = physics
        self.standardization = standardization
        self._affine = None

    @property
    def n_modes(self) -> int:
        return len(self.modes)

    @property
    def n_outputs(self) -> int:
        return 2 * self.n_modes

    @property
    def names(self) -> list:
        labels = [f"({m},{n})" for m, n in zip(self.modes.m, self.modes.n)]
        return [f"Re C{label}" for label in labels] + [f"Im C{label}" for label in labels]

    @staticmethod
    def read_modes(path) -> FourierModes:
        with netCDF4.Dataset(path) as ds:
            return FourierModes(
                m=np.asarray(ds["mode_m"][:], dtype=int), n=np.asarray(ds["mode_n"][:], dtype=int),
                qx_per_nm=np.asarray(ds["qx"][:], dtype=np.float64),
                qy_per_nm=np.asarray(ds["qy"][:], dtype=np.float64),
                length_nm=float(ds.getncattr("length_nm")),
                width_nm=float(ds.getncattr("width_nm")))

    @staticmethod
    def physics_of(metadata: dict, source) -> dict:
        low, high = (float(v) for v in metadata["dopant_distance_range_nm"])
        if low != high:
            raise ValueError(f"{source}: the Fourier-coefficient model needs one fixed dopant "
                             f"distance s to rebuild V(x, y) with Eq. (1); this dataset draws "
                             f"s in [{low}, {high}] nm (use a dataset with a fixed "
                             "dopant_distance_nm, as P1 Sec. IV does)")
        return {"dopant_distance_nm": low,
                "relative_permittivity": float(metadata["relative_permittivity"]),
                "effective_mass_kg": float(metadata["effective_mass_kg"]),
                "thomas_fermi_wavevector_per_nm":
                    float(metadata["thomas_fermi_wavevector_per_nm"]),
                "cutoff_factor": float(metadata["cutoff_factor"]),
                "lattice_constant_nm": float(metadata["lattice_constant_nm"]),
                "nx_sites": int(metadata["nx_sites"]), "ny_sites": int(metadata["ny_sites"])}

    def fit(self, train_path, info, positions=None) -> "FourierTargets":
        """Modes, physics and standardisation from the training split (rows ``positions``)."""
        self.physics = self.physics_of(info.metadata, train_path)
        self.modes = self.read_modes(train_path)
        values = self.truth(train_path, positions)
        self.standardization = TargetStandardization.fit(self.names, values,
                                                         ["1"] * self.n_outputs)
        return self

    def truth(self, path, positions=None) -> np.ndarray:
        """Stored coefficients as (samples, 2 N) real numbers (dimensionless)."""
        with netCDF4.Dataset(path) as ds:
            real = np.asarray(ds["fourier_coefficient_real"][:], dtype=np.float64)
            imag = np.asarray(ds["fourier_coefficient_imag"][:], dtype=np.float64)
        if real.shape[-1] != self.n_modes:
            raise ValueError(f"{path}: {real.shape[-1]} Fourier modes, the model has "
                             f"{self.n_modes}")
        values = np.concatenate([real, imag], axis=-1)
        return values if positions is None else values[positions]

    def load(self, path, positions=None) -> np.ndarray:
        return self.standardization(self.truth(path, positions))

    def invert(self, normalized) -> np.ndarray:
        return self.standardization.invert(normalized)

    def complex_coefficients(self, values) -> np.ndarray:
        """(…, 2 N) real → (…, N) complex."""
        values = np.asarray(values, dtype=np.float64)
        return values[..., :self.n_modes] + 1j * values[..., self.n_modes:]

    @property
    def grid_nm(self):
        a = self.physics["lattice_constant_nm"]
        return (np.arange(self.physics["nx_sites"]) * a, np.arange(self.physics["ny_sites"]) * a)

    def disorder(self) -> RemoteDopantDisorder:
        p = self.physics
        # N_d sets only the statistics of the C_j, not V given them: any positive value.
        return RemoteDopantDisorder(
            dopant_distance_nm=p["dopant_distance_nm"], dopant_density_cm2=1.0,
            material=Material(relative_permittivity=p["relative_permittivity"],
                              effective_mass_kg=p["effective_mass_kg"]),
            cutoff_factor=p["cutoff_factor"],
            thomas_fermi_wavevector_per_nm=p["thomas_fermi_wavevector_per_nm"])

    def potential_meV(self, values) -> np.ndarray:
        """Eq. (1) of coefficients (…, 2 N) on the dataset's grid: (…, nx, ny) in meV."""
        coefficients = self.complex_coefficients(values)
        disorder, (x_nm, y_nm) = self.disorder(), self.grid_nm
        flat = coefficients.reshape(-1, self.n_modes)
        out = np.stack([disorder.potential_meV(self.modes, c, x_nm, y_nm) for c in flat])
        return out.reshape(*coefficients.shape[:-1], len(x_nm), len(y_nm))

    def mirror_matrix(self) -> np.ndarray:
        """Real (2 N, 2 N) map of the coefficients under y → (ny − 1) a − y."""
        y_sum = (self.physics["ny_sites"] - 1) * self.physics["lattice_constant_nm"]
        basis = np.eye(self.n_outputs)
        mirrored = mirror_y_coefficients(self.modes, self.complex_coefficients(basis), y_sum)
        images = np.concatenate([mirrored.real, mirrored.imag], axis=-1)  # row k: M e_k
        return images.T

    def mirror(self, batch: torch.Tensor) -> torch.Tensor:
        """The mirror on standardised targets: ŷ' = D⁻¹(M(Dŷ + μ) − μ), one affine map."""
        if self._affine is None or self._affine[0].device != batch.device:
            matrix = self.mirror_matrix()
            std, mean = self.standardization.std, self.standardization.mean
            a = matrix * std[None, :] / std[:, None]
            b = (matrix @ mean - mean) / std
            self._affine = (torch.as_tensor(a.T, dtype=torch.float32, device=batch.device),
                            torch.as_tensor(b, dtype=torch.float32, device=batch.device))
        a_t, b = self._affine
        return (batch.float() @ a_t + b).to(batch.dtype)

    def to_dict(self) -> dict:
        m = self.modes
        return {"kind": self.kind, **self.standardization.to_dict(),
                "long_names": self.names, "physics": dict(self.physics),
                "modes": {"m": m.m.tolist(), "n": m.n.tolist(), "qx_per_nm": m.qx_per_nm.tolist(),
                          "qy_per_nm": m.qy_per_nm.tolist(), "length_nm": m.length_nm,
                          "width_nm": m.width_nm}}

    @classmethod
    def from_dict(cls, data: dict) -> "FourierTargets":
        m = data["modes"]
        modes = FourierModes(m=np.asarray(m["m"], dtype=int), n=np.asarray(m["n"], dtype=int),
                             qx_per_nm=np.asarray(m["qx_per_nm"], dtype=np.float64),
                             qy_per_nm=np.asarray(m["qy_per_nm"], dtype=np.float64),
                             length_nm=float(m["length_nm"]), width_nm=float(m["width_nm"]))
        return cls(modes, dict(data["physics"]), TargetStandardization.from_dict(data))


class PotentialTargets:
    """The potential image V(x, y) in meV, min–max normalised (P1 Eq. A2).

    ``V̂ = (V − min)/(max − min)`` with min and max over all pixels of all training samples.
    """

    kind = "potential"
    image_variable = "potential"
    names = ["potential"]

    def __init__(self, minimum_meV: float | None = None, maximum_meV: float | None = None):
        self.minimum_meV = minimum_meV
        self.maximum_meV = maximum_meV

    @property
    def n_outputs(self) -> int:
        return 1

    def fit(self, train_path, info, positions=None) -> "PotentialTargets":
        """Minimum and maximum over the training split (its rows ``positions``: a subset)."""
        low, high = np.inf, -np.inf
        with netCDF4.Dataset(train_path) as ds:
            var = ds["potential"]
            var.set_auto_maskandscale(False)
            for index in (range(var.shape[0]) if positions is None else positions):
                image = np.asarray(var[index], dtype=np.float64)
                low, high = min(low, float(image.min())), max(high, float(image.max()))
        if not high > low:
            raise ValueError(f"{train_path}: the training potentials are constant: nothing "
                             "to learn")
        self.minimum_meV, self.maximum_meV = low, high
        return self

    @property
    def scale_meV(self) -> float:
        return self.maximum_meV - self.minimum_meV

    def normalize_image(self, image) -> np.ndarray:
        """V (…, nx, ny) in meV → float32 (…, 1, nx, ny) network target."""
        image = np.asarray(image, dtype=np.float64)
        return ((image - self.minimum_meV) / self.scale_meV).astype(np.float32)[..., None, :, :]

    def truth(self, path, positions=None) -> np.ndarray:
        """Stored potentials (samples, nx, ny) in meV, float64."""
        with netCDF4.Dataset(path) as ds:
            var = ds["potential"]
            var.set_auto_maskandscale(False)
            if positions is None:
                return np.asarray(var[:], dtype=np.float64)
            return np.stack([np.asarray(var[p], dtype=np.float64) for p in positions]) \
                if len(positions) else np.zeros((0, *var.shape[1:]))

    def load(self, path, positions=None) -> np.ndarray:
        """Normalised targets (samples, 1, nx, ny) float32, filled one sample at a time (no
        float64 copy of the split)."""
        with netCDF4.Dataset(path) as ds:
            var = ds["potential"]
            var.set_auto_maskandscale(False)
            rows = range(var.shape[0]) if positions is None else positions
            out = np.empty((len(rows), 1, *var.shape[1:]), dtype=np.float32)
            for row, index in enumerate(rows):
                out[row] = self.normalize_image(np.asarray(var[index], dtype=np.float64))
        return out

    def invert(self, normalized) -> np.ndarray:
        """Network output (…, 1, nx, ny) → V (…, nx, ny) in meV, float64."""
        normalized = np.asarray(normalized, dtype=np.float64)
        return normalized[..., 0, :, :] * self.scale_meV + self.minimum_meV

    def mirror(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flip(-1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "names": self.names, "units": ["meV"],
                "long_names": ["disorder potential V(x, y)"],
                "minimum_meV": self.minimum_meV, "maximum_meV": self.maximum_meV}

    @classmethod
    def from_dict(cls, data: dict) -> "PotentialTargets":
        return cls(data["minimum_meV"], data["maximum_meV"])


def targets_from_dict(data: dict):
    """The target object of a model file's ``targets`` entry (no ``kind``: scalars)."""
    kind = data.get("kind", "scalars")
    classes = {"scalars": ScalarTargets, "fourier_coefficients": FourierTargets,
               "potential": PotentialTargets}
    if kind not in classes:
        raise ValueError(f"unknown target kind {kind!r} (known: {TARGET_KINDS})")
    return classes[kind].from_dict(data)
