"""Environment checks: pins in sync (pyproject.toml vs envs/mesoinv.yaml), installed versions,
Kwant with MUMPS, a working MPI launcher, and the README/CI test command. Fast, no network."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONDA_ENV = ROOT / "envs" / "mesoinv.yaml"
TEST_COMMAND = "./scripts/run-tests"

# conda-forge name -> PyPI name, where they differ (compared after normalisation).
CONDA_TO_PIP = {
    "pytorch": "torch",
    "netcdf4": "netCDF4",
    "pyyaml": "PyYAML",
    "matplotlib-base": "matplotlib",
}
# conda entries that are not Python distributions of the project.
CONDA_ONLY = {"python", "pip"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", req)
        assert m, f"not an exact pin: {req!r} (this project pins every dependency exactly)"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def _pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)["project"]


def runtime_pins() -> dict[str, str]:
    return _pins(_pyproject()["dependencies"])


def all_pins() -> dict[str, str]:
    project = _pyproject()
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return _pins(reqs)


def conda_pins() -> dict[str, str]:
    """Packages of envs/mesoinv.yaml by (normalised) PyPI name -> version ('' when unpinned)."""
    env = yaml.safe_load(CONDA_ENV.read_text())
    pins: dict[str, str] = {}

    def add(name: str, version: str) -> None:
        key = _norm(CONDA_TO_PIP.get(name, name))
        assert key not in pins, f"{name} listed twice in {CONDA_ENV.name}"
        pins[key] = version

    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+))?", req.strip())
                assert m, f"unexpected pip entry {req!r}"
                add(m.group(1), m.group(2) or "")
            continue
        m = re.fullmatch(r"(?:[\w-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\s*=+\s*([^=\s]+))?(?:=\S+)?",
                         dep.strip())
        assert m, f"unexpected conda entry {dep!r}"
        if m.group(1) in CONDA_ONLY:
            continue
        add(m.group(1), m.group(2) or "")
    return pins


# ---------------------------------------------------------------------------------------------
# (a) pyproject.toml <-> envs/mesoinv.yaml
# ---------------------------------------------------------------------------------------------
def test_conda_env_is_conda_forge_python311():
    env = yaml.safe_load(CONDA_ENV.read_text())
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]


def test_every_runtime_pin_is_in_conda_env():
    conda = conda_pins()
    missing = sorted(set(runtime_pins()) - set(conda))
    assert not missing, f"pinned in pyproject.toml but absent from {CONDA_ENV.name}: {missing}"
    wrong = {n: (v, conda[n]) for n, v in runtime_pins().items() if conda[n] != v}
    assert not wrong, f"pyproject pin vs conda pin differ: {wrong}"


def test_conda_env_pins_nothing_differently():
    pins = all_pins()
    conda = conda_pins()
    unknown = sorted(set(conda) - set(pins))
    assert not unknown, (
        f"{CONDA_ENV.name} lists packages that pyproject.toml does not pin: {unknown} "
        "(add them to pyproject.toml, or to CONDA_TO_PIP if only the name differs)"
    )
    wrong = {n: (pins[n], v) for n, v in conda.items() if v != pins[n]}
    assert not wrong, f"pyproject pin vs conda pin differ: {wrong}"


# ---------------------------------------------------------------------------------------------
# (b) the running interpreter has exactly the pinned versions
# ---------------------------------------------------------------------------------------------
def _installed_version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        if name == "mpich":  # conda's mpich is a C library, not a Python distribution
            from mpi4py import MPI

            m = re.search(r"MPICH Version:\s*(\S+)", MPI.Get_library_version())
            if m:
                return m.group(1)
        raise


@pytest.mark.parametrize("name,pinned", sorted(all_pins().items()))
def test_installed_version_matches_pin(name, pinned):
    try:
        installed = _installed_version(name)
    except md.PackageNotFoundError:
        pytest.fail(f"{name}=={pinned} is pinned but not installed (run scripts/bootstrap.sh)")
    if name == "torch":
        installed = installed.split("+", 1)[0]  # local build tag, e.g. 2.13.0+cpu
    assert installed == pinned, f"{name}: installed {installed}, pyproject pins {pinned}"


# ---------------------------------------------------------------------------------------------
# (c) Kwant uses MUMPS
# ---------------------------------------------------------------------------------------------
def test_kwant_has_mumps():
    import kwant.linalg.mumps  # noqa: F401  (ImportError: Kwant built without MUMPS)
    import kwant.solvers.default as default

    solver_module = getattr(default, "smodule", None)
    name = solver_module.__name__ if solver_module else type(default.smatrix.__self__).__module__
    assert "mumps" in name, f"Kwant's default solver is {name}, not MUMPS (see docs/install.md)"


# ---------------------------------------------------------------------------------------------
# (d) mpiexec next to the interpreter starts a 2-rank world
# ---------------------------------------------------------------------------------------------
def test_mpiexec_two_ranks():
    mpiexec = Path(sys.executable).parent / "mpiexec"
    assert mpiexec.exists(), f"no mpiexec next to {sys.executable} (the mpich package provides it)"
    # Rank 0 gathers (rank, size) from every rank and prints once: the ranks' own prints would
    # interleave on the launcher's stdout, and the gather also proves the ranks communicate.
    code = (
        "from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "r = c.gather((c.Get_rank(), c.Get_size())); "
        "print(sorted(r)) if c.Get_rank() == 0 else None"
    )
    proc = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "[(0, 2), (1, 2)]", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# (e) one test command: README and CI
# ---------------------------------------------------------------------------------------------
def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^\s*(exec\s+)?{re.escape(TEST_COMMAND)}\s*$", ci, re.M), ci


def test_readme_shows_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert TEST_COMMAND in readme


def test_entry_scripts_are_executable():
    for rel in ("scripts/bootstrap.sh", "scripts/run-demo", "scripts/run-tests"):
        assert os.access(ROOT / rel, os.X_OK), f"{rel} is not executable (git update-index --chmod=+x)"
