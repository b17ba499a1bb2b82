"""The library's layout, read from its own source: stages import only earlier stages.

``physics → datasets → models → training → inference → evaluation → cli``, with two
top-level utilities: ``config`` (schema validation; it reads physics constants) and
``plotting`` (the atomic PNG writer; it uses the datasets' atomic file writer). Every import
is checked, including the local ones inside functions, since a lazy import is still an arrow.
"""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "mesoinv"

# Position of each stage; a module may import its own stage and any earlier one.
STAGE_ORDER = {
    "__init__": 0,       # the version string only
    "lazy_exports": 0,   # PEP 562 attributes of the physics and datasets packages
    "physics": 1,
    "config": 2,         # imports physics lazily (geometry checks); datasets read it
    "config_sweeps": 2,  # the config's sweep and replicate expansion (re-exported by config)
    "datasets": 3,
    "plotting": 4,
    "models": 5,
    "training": 6,
    "inference": 7,
    "evaluation": 8,
    "cli": 9,
    "__main__": 9,
}

MAX_LINES = 900


def _modules():
    return sorted(p for p in SOURCE.rglob("*.py"))


def _dotted(path: Path) -> list[str]:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ["mesoinv", *parts]


def _stage(dotted: list[str]) -> str:
    """The stage of a module path ``["mesoinv", stage, ...]``."""
    return dotted[1] if len(dotted) > 1 else "__init__"


def _imported_modules(path: Path):
    """(line, dotted module name) of every mesoinv import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _dotted(path)
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mesoinv":
                    yield node.lineno, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "mesoinv":
                target = node.module.split(".")
            else:
                continue
            if len(target) == 1:  # `from mesoinv import x` or `from .. import x`
                for alias in node.names:
                    yield node.lineno, target + [alias.name]
            else:
                yield node.lineno, target


def _third_party(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_every_module_belongs_to_a_known_stage():
    unknown = sorted({_stage(_dotted(p)) for p in _modules()} - set(STAGE_ORDER))
    assert not unknown, f"modules outside the known stages: {unknown} (add them to STAGE_ORDER)"


def test_imports_run_one_way():
    backward = []
    for path in _modules():
        own = _stage(_dotted(path))
        for line, target in _imported_modules(path):
            stage = _stage(target)
            if stage not in STAGE_ORDER:  # e.g. `from .. import __version__`
                stage = "__init__"
            if STAGE_ORDER[stage] > STAGE_ORDER[own]:
                backward.append(f"{path.relative_to(SOURCE)}:{line} ({own}) imports "
                                f"{'.'.join(target)} ({stage})")
    assert not backward, "imports against the stage order:\n" + "\n".join(backward)


def test_training_imports_neither_inference_nor_evaluation():
    # The bar, stated directly (the stage order above implies it).
    offending = [f"{p.relative_to(SOURCE)}:{line} imports {'.'.join(t)}"
                 for p in (SOURCE / "training").rglob("*.py")
                 for line, t in _imported_modules(p) if _stage(t) in ("inference", "evaluation")]
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("stage, forbidden", [
    ("models", {"kwant", "snakemake", "netCDF4", "pytorch_lightning", "lightning"}),
    ("physics", {"torch", "pytorch_lightning", "snakemake"}),
    ("datasets", {"torch", "pytorch_lightning", "snakemake"}),
])
def test_stage_keeps_to_its_libraries(stage, forbidden):
    """No Kwant in the networks, no training logic in them, no torch in the simulators."""
    offending = [f"{p.relative_to(SOURCE)}:{line} imports {name}"
                 for p in (SOURCE / stage).rglob("*.py")
                 for line, name in _third_party(p) if name in forbidden]
    assert not offending, "\n".join(offending)


def test_no_snakemake_in_the_library():
    offending = [f"{p.relative_to(SOURCE)}:{line}" for p in _modules()
                 for line, name in _third_party(p) if name == "snakemake"]
    assert not offending, "the library must run without Snakemake: " + ", ".join(offending)


def test_no_module_is_too_long():
    long = {str(p.relative_to(SOURCE)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_a_backward_import(tmp_path):
    """The checker itself: a training module importing evaluation is found."""
    fake = tmp_path / "mesoinv" / "training"
    fake.mkdir(parents=True)
    module = fake / "bad.py"
    module.write_text("def f():\n    from ..evaluation.p2_generation import positions\n")
    global SOURCE
    saved, SOURCE = SOURCE, tmp_path / "mesoinv"
    try:
        imports = list(_imported_modules(module))
    finally:
        SOURCE = saved
    assert imports == [(2, ["mesoinv", "evaluation", "p2_generation"])]


def test_training_and_prediction_import_without_kwant_or_the_config_schema():
    """A GPU node may train and predict in an environment without Kwant, MUMPS, mpi4py or
    jsonschema (the packages ``mesoinv.physics`` and ``mesoinv.datasets`` import their
    simulators on first use): importing the training and prediction entry points with those
    packages blocked must work, and touching a simulator must then fail on the import."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('kwant', 'tinyarray', 'mpi4py', 'jsonschema'):\n"
        "    sys.modules[name] = None\n"
        "import mesoinv.training.train_p1, mesoinv.training.train_p2\n"
        "import mesoinv.inference.p1_predict\n"
        "from mesoinv.datasets import write_p1_netcdf\n"
        "from mesoinv.physics import RemoteDopantDisorder\n"
        "try:\n"
        "    from mesoinv.physics import PLDOSSolver\n"
        "except ImportError as error:\n"
        "    print('blocked:', error)\n"
        "else:\n"
        "    raise SystemExit('PLDOSSolver imported without kwant')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "blocked: import of kwant halted" in done.stdout
