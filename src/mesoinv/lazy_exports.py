"""Package attributes imported on first use (PEP 562).

``mesoinv.physics`` and ``mesoinv.datasets`` export their simulators beside lighter parts;
importing the simulators eagerly would make every user of the light parts (training,
prediction, evaluation) import Kwant, MUMPS, mpi4py and the config schema too. A package
lists ``{public name: submodule}`` and takes its ``__getattr__`` and ``__dir__`` from here.
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict, namespace: dict):
    """``(__getattr__, __dir__)`` for ``package`` whose public ``exports`` map each name to
    the submodule defining it; ``namespace`` is the package's ``globals()`` (a name, once
    imported, is stored there, so it is looked up only once)."""

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f".{exports[name]}", package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
