"""netCDF files of P1 and P2 samples (formats described in docs/dataset-format.md).

Files are written under a temporary name in the destination directory and renamed into place
only when complete and closed, so a killed job never leaves a plausible-looking partial file.
Every variable carries HDF5's fletcher32 checksum, and every sample a blake2b-64 digest of its
stored values (``sample_checksum``, :mod:`.integrity`). Read them with
``xarray.open_dataset(path)``.
"""

import glob
import json
import os
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import netCDF4
import numpy as np

from .. import __version__
from .integrity import (CHECKSUM_VARIABLE, OutputError, check_writable, describe_io_error,
                        remove_stale_temporaries, sample_digest)

__all__ = ["write_p1_netcdf", "read_p1_sample", "read_p1_metadata", "write_p2_netcdf",
           "read_p2_sample", "read_p2_metadata", "atomic_path", "atomic_outputs",
           "staged_directory", "code_version",
           "package_versions", "FORMAT_VERSION", "P2_FORMAT_VERSION", "p1_stored_values",
           "p2_stored_values", "get_attribute", "attribute_value"]

#: Version of the file layout; bump on any incompatible change of names, dims or units.
#: 2: per-sample ``sample_checksum`` and fletcher32 on every variable (the validation requires
#: them); version-1 files read as before (nothing else changed).
FORMAT_VERSION = "mesoinv-p1-2"

_PACKAGES = ("numpy", "scipy", "kwant", "netCDF4", "mpi4py")


def get_attribute(ds, name, default=None):
    """A global (or variable) netCDF attribute, or ``default`` when it is absent."""
    return ds.getncattr(name) if name in ds.ncattrs() else default


def attribute_value(value):
    """A value netCDF can store as an attribute: arrays become lists, numpy scalars Python
    scalars (netCDF4 writes both back as the same attribute types)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def package_versions() -> dict:
    """Versions of the packages that determine the numbers in a file."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def code_version() -> str:
    """mesoinv's version, plus the git commit (and '-dirty') when run from a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty",
                                 "--abbrev=12"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    if commit.returncode != 0 or not commit.stdout.strip():
        return __version__
    return f"{__version__}+g{commit.stdout.strip()}"


def _is_write_error(error, tmp) -> bool:
    """An error of writing ``tmp`` (not of reading an input inside the block)."""
    if isinstance(error, OSError):
        return error.filename is None or Path(str(error.filename)).name == tmp.name
    return isinstance(error, RuntimeError) and ("NetCDF" in str(error) or "HDF" in str(error))


class atomic_path:
    """Context manager yielding a temporary path that is renamed to ``path`` on success.

    On entry the output is checked (not a directory, its directory writable: an
    :class:`~.integrity.OutputError` otherwise, before any work), and temporary files of dead
    processes for the same output (a killed or failed earlier run) are removed. On an
    exception, or if the final rename fails, the temporary file is removed and nothing appears
    under ``path``; write failures (full disk, read-only file system, netCDF's bare
    "HDF error") become one :class:`~.integrity.OutputError` naming the path and the cause.

    ``fsync=True`` flushes the file to the disk before the rename and the directory after it,
    so that not even a node dying right after the rename leaves an empty or truncated file
    under ``path`` (training checkpoints: :class:`mesoinv.training.trainer.AtomicCheckpointIO`).
    """

    def __init__(self, path, *, fsync: bool = False):
        self.path = Path(path)
        self.tmp = _temporary_name(self.path)
        self.fsync = fsync

    def __enter__(self):
        check_writable(self.path)
        remove_stale_temporaries(self.path.parent, f".{glob.escape(self.path.name)}.tmp-*")
        return self.tmp

    def _fail(self, error):
        raise OutputError(f"cannot write {self.path}: "
                          f"{describe_io_error(error, self.path.parent)}") from error

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                if self.fsync:
                    _sync(self.tmp)
                os.replace(self.tmp, self.path)
            except OSError as error:
                self.tmp.unlink(missing_ok=True)
                self._fail(error)
            if self.fsync:
                _sync(self.path.parent, directory=True)
            return False
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if _is_write_error(exc, self.tmp):
            self._fail(exc)
        return False


def _sync(path, directory=False):
    """fsync a file (errors propagate) or a directory (best effort: not every file system
    can)."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _commit(pairs):
    """Rename every (temporary, final) pair into place; if one rename fails, remove the finals
    already renamed and every temporary file left, and raise one OutputError."""
    placed = []
    for tmp, path in pairs:
        try:
            os.replace(tmp, path)
        except OSError as error:
            for done in placed:
                done.unlink(missing_ok=True)
            for left, _ in pairs:
                if left.is_dir() and not left.is_symlink():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
            names = ", ".join(str(p) for _, p in pairs)
            raise OutputError(f"cannot write {path}: {describe_io_error(error, path.parent)} "
                              f"(none of {names} was written)") from error
        placed.append(path)


class atomic_outputs:
    """The outputs of one command, written together or not at all.

    Yields one temporary path per output (``None`` stays ``None``), beside its output; the
    block writes them with any writer (an :class:`atomic_path` inside included). When the
    block succeeds every temporary file is renamed into place; if a rename fails, the outputs
    already renamed are removed again. When the block fails, every temporary file is removed
    and no output appears, so a predictions file never stands without the figure that was
    asked for with it. Each output is checked writable on entry; errors name the output,
    never its temporary name.
    """

    def __init__(self, *paths):
        self.paths = [None if p is None else Path(p) for p in paths]
        self.tmps = [None if p is None else _temporary_name(p) for p in self.paths]

    def __enter__(self):
        for path in self.paths:
            if path is None:
                continue
            check_writable(path)
            name = glob.escape(path.name)
            remove_stale_temporaries(path.parent, f".{name}.tmp-*")
            remove_stale_temporaries(path.parent, f"..{name}.tmp-*")  # an atomic_path inside
        return list(self.tmps)

    def _pairs(self):
        return [(t, p) for t, p in zip(self.tmps, self.paths) if p is not None]

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            missing = [p for t, p in self._pairs() if not t.exists()]
            if missing:
                for t, _ in self._pairs():
                    t.unlink(missing_ok=True)
                raise OutputError(f"cannot write {missing[0]}: nothing was written to it")
            _commit(self._pairs())
            return False
        for tmp, _ in self._pairs():
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        message = str(exc)
        renamed = message
        for tmp, path in self._pairs():
            renamed = renamed.replace(str(tmp), str(path))
        if isinstance(exc, OutputError) and renamed != message:
            raise OutputError(renamed) from exc
        pairs = self._pairs()
        named = [p for t, p in pairs
                 if isinstance(exc, OSError) and exc.filename is not None
                 and Path(str(exc.filename)).name in (t.name, p.name)]
        if named or any(_is_write_error(exc, t) for t, _ in pairs):
            paths = named or [p for _, p in pairs]  # an error that does not say which file
            raise OutputError(f"cannot write {', '.join(str(p) for p in paths)}: "
                              f"{describe_io_error(exc, paths[0].parent)}") from exc
        return False


class staged_directory:
    """Files written into a directory together or not at all (``mesoinv evaluate``).

    Yields a hidden staging directory inside ``directory``; the block writes its files there
    (under their final names). When the block succeeds, every file of the staging directory
    moves into ``directory`` (renames within one file system; on a failed rename the ones
    already moved are removed again) and the staging directory goes; when it fails, the
    staging directory is removed and ``directory`` is unchanged. Staging directories of dead
    processes are removed on entry.

    Parameters
    ----------
    directory : path-like
        Created if needed.
    overwrite : bool
        Replace files that exist in ``directory`` (``--force``); otherwise a file the block
        wrote that exists there by then is refused (nothing moves).
    """

    def __init__(self, directory, *, overwrite: bool = False):
        self.directory = Path(directory)
        self.stage = self.directory / f".staged.tmp-{os.getpid()}"
        self.overwrite = overwrite

    def __enter__(self):
        check_writable(self.directory / ".staged")
        remove_stale_temporaries(self.directory, ".staged.tmp-*")
        shutil.rmtree(self.stage, ignore_errors=True)
        try:
            self.stage.mkdir()
        except OSError as error:
            raise OutputError(f"cannot write into {self.directory}: "
                              f"{describe_io_error(error, self.directory)}") from None
        return self.stage

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            if isinstance(exc, OutputError) and str(self.stage) in str(exc):
                raise OutputError(str(exc).replace(str(self.stage), str(self.directory))) \
                    from exc
            return False
        pairs = [(f, self.directory / f.name) for f in sorted(self.stage.iterdir())]
        existing = [p for _, p in pairs if p.exists() or p.is_symlink()]
        if existing and not self.overwrite:
            shutil.rmtree(self.stage, ignore_errors=True)
            raise OutputError(f"refusing to overwrite existing {existing[0]} (give --force to "
                              "replace it); nothing was written")
        try:
            _commit(pairs)
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)
        return False


def _variable(ds, name, dtype, dims, data, *, units, long_name, chunks=None, **attrs):
    # fletcher32: HDF5 checksums every chunk and refuses to read a corrupted one.
    var = ds.createVariable(name, dtype, dims, chunksizes=chunks, fletcher32=True)
    var.units = units
    var.long_name = long_name
    for key, value in attrs.items():
        setattr(var, key, value)
    if data is not None:
        var[...] = data
    return var


def write_p1_netcdf(path, spec, samples, *, open_modes, extra_attributes=None):
    """Write P1 samples to a netCDF-4 file, atomically, one sample at a time.

    Parameters
    ----------
    path : path-like
        Destination; it appears only once the file is complete.
    spec : mesoinv.datasets.p1.P1DatasetSpec
    samples : sized iterable of mesoinv.datasets.p1.P1Sample
        Written in the given order (callers sort by id); iterated once, so a lazy sequence keeps
        memory at one sample.
    open_modes : sequence of int
        Open QPC channels at each field.
    extra_attributes : dict, optional
        Further global attributes (e.g. the split of a merged file).
    """
    g = spec.geometry
    modes = spec.modes
    store = np.dtype(spec.storage_dtype)
    n = len(samples)
    fields = np.array(spec.magnetic_fields_T, dtype=float)

    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("sample", n)
            ds.createDimension("field", len(fields))
            ds.createDimension("x", g.nx)
            ds.createDimension("y", g.ny)
            ds.createDimension("mode", len(modes))

            _variable(ds, "x", "f8", ("x",), g.x_nm, units="nm",
                      long_name="x of the site, along transport from the QPC (x=0) to the drain")
            _variable(ds, "y", "f8", ("y",), g.y_nm, units="nm",
                      long_name="y of the site, across the region")
            _variable(ds, "field", "f8", ("field",), fields, units="T",
                      long_name="perpendicular magnetic field B_z")
            _variable(ds, "flux_per_plaquette", "f8", ("field",), spec.fluxes_per_plaquette,
                      units="1", long_name="magnetic flux per lattice plaquette B a^2 e/h, in flux quanta h/e")
            _variable(ds, "qpc_open_modes", "i4", ("field",), np.asarray(open_modes, np.int32),
                      units="1", long_name="open channels of the QPC lead at the Fermi energy")
            _variable(ds, "qx", "f8", ("mode",), modes.qx_per_nm, units="nm-1",
                      long_name="x component of the Fourier mode's wave vector, 2 pi m / L")
            _variable(ds, "qy", "f8", ("mode",), modes.qy_per_nm, units="nm-1",
                      long_name="y component of the Fourier mode's wave vector, 2 pi n / W")
            _variable(ds, "mode_m", "i4", ("mode",), modes.m.astype(np.int32), units="1",
                      long_name="integer index m of q_x = 2 pi m / L")
            _variable(ds, "mode_n", "i4", ("mode",), modes.n.astype(np.int32), units="1",
                      long_name="integer index n of q_y = 2 pi n / W")

            variables = {
                "sample_id": _variable(ds, "sample_id", "i8", ("sample",), None, units="1",
                                       long_name="sample id within the dataset"),
                "dopant_distance": _variable(
                    ds, "dopant_distance", "f8", ("sample",), None, units="nm",
                    long_name="distance s between dopant plane and 2DEG"),
                "dopant_density": _variable(
                    ds, "dopant_density", "f8", ("sample",), None, units="cm-2",
                    long_name="areal density N_d of ionised dopants"),
                "rms": _variable(
                    ds, "rms", "f8", ("sample",), None, units="meV",
                    long_name="root mean square sqrt(C(0)) of the disorder (ensemble, Eq. 4-5)"),
                "correlation_length": _variable(
                    ds, "correlation_length", "f8", ("sample",), None, units="nm",
                    long_name="correlation length xi, C(xi)/C(0) = 1/2 (ensemble, Eq. 4)"),
                "fourier_coefficient_real": _variable(
                    ds, "fourier_coefficient_real", "f8", ("sample", "mode"), None, units="1",
                    long_name="real part of the Fourier coefficient C_j (Eq. 1)"),
                "fourier_coefficient_imag": _variable(
                    ds, "fourier_coefficient_imag", "f8", ("sample", "mode"), None, units="1",
                    long_name="imaginary part of the Fourier coefficient C_j (Eq. 1)"),
                "potential": _variable(
                    ds, "potential", store, ("sample", "x", "y"), None, units="meV",
                    long_name="disorder potential energy V of an electron",
                    chunks=(1, g.nx, g.ny)),
                "pldos": _variable(
                    ds, "pldos", store, ("sample", "field", "x", "y"), None, units="meV-1",
                    chunks=(1, len(fields), g.nx, g.ny),
                    long_name="partial local density of states from the QPC lead, per site",
                    normalisation="sum over QPC modes of |psi|^2/(2 pi), Kwant's unit-current "
                                  "scattering states; divide by a^2 for per nm^2"),
            }
            _write_samples(ds, samples, n, variables, lambda sample: p1_stored_values(spec, sample))
            ds.setncatts({**_global_attributes(spec), **(extra_attributes or {})})
    return Path(path)


def _checksum_variable(ds):
    return _variable(ds, CHECKSUM_VARIABLE, "u8", ("sample",), None, units="1",
                     long_name="blake2b-64 digest of this sample's stored values",
                     digest="blake2b, digest_size 8, little-endian, over each per-sample "
                            "variable in sorted name order: '<name>:<dtype>:<shape>;' then its "
                            "raw bytes (mesoinv.datasets.integrity.sample_digest)")


def _write_samples(ds, samples, n, variables, stored_values):
    """Write each sample's stored values and its digest (one sample in memory at a time)."""
    checksum = _checksum_variable(ds)
    written = 0
    for index, sample in enumerate(samples):
        values = stored_values(sample)
        for name, variable in variables.items():
            variable[index] = values[name]
        checksum[index] = sample_digest(values)
        written += 1
    if written != n:
        raise ValueError(f"expected {n} samples, got {written}")


def p1_stored_values(spec, sample) -> dict:
    """{variable: value as stored} of one P1 sample (what :func:`sample_digest` covers)."""
    store = np.dtype(spec.storage_dtype)
    coefficients = np.asarray(sample.fourier_coefficients)
    return {
        "sample_id": np.int64(sample.sample_id),
        "dopant_distance": np.float64(sample.dopant_distance_nm),
        "dopant_density": np.float64(sample.dopant_density_cm2),
        "rms": np.float64(sample.rms_meV),
        "correlation_length": np.float64(sample.correlation_length_nm),
        "fourier_coefficient_real": np.ascontiguousarray(np.real(coefficients), dtype=np.float64),
        "fourier_coefficient_imag": np.ascontiguousarray(np.imag(coefficients), dtype=np.float64),
        "potential": np.asarray(sample.potential_meV).astype(store),
        "pldos": np.asarray(sample.pldos_per_meV).astype(store),
    }


def read_p1_sample(ds, index):
    """Sample at position ``index`` of an open P1 file (netCDF4, auto-masking off), as stored."""
    from .p1 import P1Sample

    return P1Sample(
        sample_id=int(ds["sample_id"][index]),
        dopant_distance_nm=float(ds["dopant_distance"][index]),
        dopant_density_cm2=float(ds["dopant_density"][index]),
        rms_meV=float(ds["rms"][index]),
        correlation_length_nm=float(ds["correlation_length"][index]),
        fourier_coefficients=(ds["fourier_coefficient_real"][index]
                              + 1j * ds["fourier_coefficient_imag"][index]),
        potential_meV=ds["potential"][index],
        pldos_per_meV=ds["pldos"][index])


def read_p1_metadata(ds) -> dict:
    """The keyword arguments of :func:`write_p1_netcdf` beyond the samples, from an open file."""
    return {"open_modes": np.asarray(ds["qpc_open_modes"][:]).tolist()}


def _global_attributes(spec) -> dict:
    g = spec.geometry
    return {
        "title": f"mesoinv P1 dataset '{spec.name}': remote-dopant disorder and QPC PLDOS",
        "format_version": FORMAT_VERSION,
        "dataset_name": spec.name,
        "dataset_kind": "p1_pldos",
        "seed": np.int64(spec.seed),
        "sample_rng": "numpy PCG64(SeedSequence(seed, spawn_key=(sample_id,)))",
        "lattice": "square, one orbital per site",
        "lattice_constant_nm": g.lattice_constant_nm,
        "nx_sites": np.int32(g.nx),
        "ny_sites": np.int32(g.ny),
        "length_nm": g.length_nm,
        "width_nm": g.width_nm,
        "qpc_lead": "lead 0: sites x <= -1, y sites qpc_first_y_site ... qpc_first_y_site + "
                    "qpc_width_sites - 1, translation (-1, 0); source of the PLDOS",
        "qpc_first_y_site": np.int32(g.qpc_first_y),
        "qpc_width_sites": np.int32(g.qpc_width),
        "drain_lead": "lead 1: sites x >= nx_sites, all ny_sites rows, translation (+1, 0)",
        "hamiltonian": "onsite 4t + V(x, y), hopping -t exp(2 pi i phi k (i_to - i_from)), "
                       "Landau gauge A = (-B y, 0); leads: onsite 4t",
        "hopping_meV": spec.hopping_meV,
        "energy_meV": spec.energy_meV,
        "relative_permittivity": spec.material.relative_permittivity,
        "effective_mass_kg": spec.material.effective_mass_kg,
        "thomas_fermi_wavevector_per_nm": spec.disorder(
            spec.dopant_distance_range_nm[0], spec.dopant_density_range_cm2[0]).q_tf_per_nm,
        "cutoff_factor": spec.cutoff_factor,
        "dopant_distance_range_nm": np.array(spec.dopant_distance_range_nm),
        "dopant_density_range_cm2": np.array(spec.dopant_density_range_cm2),
        "potential_convention": "V(r) = -(e^2/(2 eps eps0 L W)) sum_{j != 0} exp(-q_j s)/(q_j + "
                                "q_TF) C_j exp(-i q_j . r), C_{-j} = conj(C_j); stored modes: "
                                "half plane, coefficients 0 beyond the sample's cutoff",
        "mumps_ordering": spec.ordering,
        "storage_dtype": spec.storage_dtype,
        "sample_config_sha256": spec.config_hash,
        "dataset_config_json": json.dumps(spec.config, sort_keys=True),
        "code_version": code_version(),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "Conventions": "CF-1.10 (units and long_name on every variable)",
    }


# -- P2: nanowire with two antidots ----------------------------------------------------------

#: Version of the P2 file layout (2: per-sample checksums and fletcher32, as P1's version 2).
P2_FORMAT_VERSION = "mesoinv-p2-2"


def write_p2_netcdf(path, spec, samples, *, open_channels, extra_attributes=None):
    """Write P2 samples to a netCDF-4 file, atomically, one sample at a time.

    Parameters
    ----------
    path : path-like
    spec : mesoinv.datasets.p2.P2DatasetSpec
    samples : sized iterable of mesoinv.datasets.p2.P2Sample
    open_channels : sequence of int
        Open channels of the clean leads at each field.
    extra_attributes : dict, optional
    """
    g = spec.geometry
    store = np.dtype(spec.storage_dtype)
    n = len(samples)
    fields = np.array(spec.fields_T, dtype=float)
    image_width = g.width_sites + 2 * spec.ldos_padding_sites
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("sample", n)
            ds.createDimension("field", len(fields))
            ds.createDimension("x", g.width_sites)
            ds.createDimension("y", g.length_sites)
            ds.createDimension("image_x", image_width)
            ds.createDimension("antidot", 2)
            _variable(ds, "x", "f8", ("x",), np.arange(g.width_sites) - g.x_origin, units="1",
                      long_name="x of the site across the wire, in lattice constants from its axis")
            _variable(ds, "y", "f8", ("y",), np.arange(g.length_sites), units="1",
                      long_name="y of the site along the wire (transport), in lattice constants")
            _variable(ds, "image_x", "f8", ("image_x",),
                      np.arange(image_width) - spec.ldos_padding_sites - g.x_origin, units="1",
                      long_name="x of an LDOS image column, in lattice constants (padding "
                                "columns lie outside the wire)")
            _variable(ds, "field", "f8", ("field",), fields, units="T",
                      long_name="perpendicular magnetic field B_z")
            _variable(ds, "flux_per_plaquette", "f8", ("field",), spec.fluxes_per_plaquette,
                      units="1", long_name="magnetic flux per lattice plaquette B a^2 e/h, in "
                                           "flux quanta h/e")
            _variable(ds, "open_channels", "i4", ("field",), np.asarray(open_channels, np.int32),
                      units="1", long_name="open channels of the clean leads at the Fermi energy")
            variables = {
                "sample_id": _variable(ds, "sample_id", "i8", ("sample",), None, units="1",
                                       long_name="sample id within the dataset"),
                "configuration_id": _variable(
                    ds, "configuration_id", "i8", ("sample",), None, units="1",
                    long_name="index of the antidot symmetry class (canonical representative)"),
                "potential_realization": _variable(
                    ds, "potential_realization", "i4", ("sample",), None, units="1",
                    long_name="index of the random-potential realisation of this configuration"),
                "antidot_x": _variable(
                    ds, "antidot_x", "f8", ("sample", "antidot"), None, units="1",
                    long_name="antidot centre, site index i across the wire"),
                "antidot_y": _variable(
                    ds, "antidot_y", "f8", ("sample", "antidot"), None, units="1",
                    long_name="antidot centre, site index k along the wire"),
                "potential": _variable(
                    ds, "potential", store, ("sample", "x", "y"), None, units="t",
                    long_name="random onsite potential, in units of the hopping t",
                    chunks=(1, g.width_sites, g.length_sites)),
                "conductance": _variable(
                    ds, "conductance", "f8", ("sample", "field"), None, units="e2/h",
                    long_name="two-terminal conductance G(B), spinless, in units of e^2/h"),
                "ldos": _variable(
                    ds, "ldos", store, ("sample", "image_x", "y"), None, units="t-1",
                    long_name="local density of states at B = 0, states per t per site; 0 on "
                              "antidot sites and padding",
                    chunks=(1, image_width, g.length_sites)),
            }
            _write_samples(ds, samples, n, variables, lambda sample: p2_stored_values(spec, sample))
            ds.setncatts({**_p2_global_attributes(spec), **(extra_attributes or {})})
    return Path(path)


def p2_stored_values(spec, sample) -> dict:
    """{variable: value as stored} of one P2 sample (what :func:`sample_digest` covers)."""
    store = np.dtype(spec.storage_dtype)
    centres = np.asarray(sample.antidot_centres, dtype=np.float64)
    return {
        "sample_id": np.int64(sample.sample_id),
        "configuration_id": np.int64(sample.configuration_id),
        "potential_realization": np.int32(sample.potential_realization),
        "antidot_x": np.ascontiguousarray(centres[:, 0]),
        "antidot_y": np.ascontiguousarray(centres[:, 1]),
        "potential": np.asarray(sample.potential_t).astype(store),
        "conductance": np.asarray(sample.conductance, dtype=np.float64),
        "ldos": np.asarray(sample.ldos_per_t).astype(store),
    }


def read_p2_sample(ds, index):
    """Sample at position ``index`` of an open P2 file (netCDF4, auto-masking off), as stored."""
    from .p2 import P2Sample

    return P2Sample(
        sample_id=int(ds["sample_id"][index]),
        configuration_id=int(ds["configuration_id"][index]),
        potential_realization=int(ds["potential_realization"][index]),
        antidot_centres=np.stack([ds["antidot_x"][index], ds["antidot_y"][index]], axis=-1),
        potential_t=ds["potential"][index],
        conductance=ds["conductance"][index],
        ldos_per_t=ds["ldos"][index])


def read_p2_metadata(ds) -> dict:
    """The keyword arguments of :func:`write_p2_netcdf` beyond the samples, from an open file."""
    return {"open_channels": np.asarray(ds["open_channels"][:]).tolist()}


def _p2_global_attributes(spec) -> dict:
    g, c = spec.geometry, spec.constraints
    return {
        "title": f"mesoinv P2 dataset '{spec.name}': nanowire with two antidots, G(B) and LDOS",
        "format_version": P2_FORMAT_VERSION,
        "dataset_name": spec.name,
        "dataset_kind": "p2_magnetoconductance",
        "seed": np.int64(spec.seed),
        "sample_rng": "numpy PCG64(SeedSequence(seed, spawn_key=(sample_id,))); configuration "
                      "order: permutation from SeedSequence(seed, spawn_key=(0, 0))",
        "lattice": "square, one orbital per site, a = 1 in site units",
        "lattice_constant_nm": g.lattice_constant_nm,
        "width_sites": np.int32(g.width_sites),
        "length_sites": np.int32(g.length_sites),
        "antidot_radius_sites": float(g.antidot_radius),
        "antidot_rule": "site (i, k) removed if (i - cx)^2 + (k - cy)^2 <= r^2",
        "leads": "lead 0: y < 0, lead 1: y >= length_sites, clean wire of the full width; "
                 "conductance = transmission from lead 0 to lead 1",
        "hamiltonian": "onsite 4 + V(i, k), hopping -1 along x, -exp(-2 pi i phi x) along +y "
                       "(Landau gauge A = (0, B x), x from the wire axis); units of t",
        "energy_t": spec.energy_t,
        "potential_amplitude_t": spec.potential_amplitude_t,
        "potential_distribution": "uniform on [-A/2, A/2] on every site (ignored on antidots)",
        "realizations_per_configuration": np.int32(spec.realizations),
        "n_configurations": np.int64(spec.n_configurations),
        "antidot_margin_x_sites": np.int32(c.margin_x),
        "antidot_margin_y_sites": np.int32(c.margin_y),
        "antidot_min_separation_sites": float(c.min_separation),
        "antidot_half_integer_centres": np.int32(c.half_integer_centres),
        "ldos_padding_sites": np.int32(spec.ldos_padding_sites),
        "storage_dtype": spec.storage_dtype,
        "sample_config_sha256": spec.config_hash,
        "dataset_config_json": json.dumps(spec.config, sort_keys=True),
        "code_version": code_version(),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "Conventions": "CF-1.10 (units and long_name on every variable; t = hopping energy)",
    }
