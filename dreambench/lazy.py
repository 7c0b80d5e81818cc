"""Package attributes that import their module on first use (PEP 562).

The light commands (``--help``, ``tables``, ``report``, ``status``, ``study``, ``protocol show``) must
never load torch, diffusers, open_clip or timm, and load pandas, matplotlib and jinja2 only where they
need them. A package whose ``__init__`` re-exports heavy names lists them here instead::

    __getattr__ = lazy_exports(__name__, {"load_sd": "sd", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, homes: dict[str, str], base: str | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for module ``package`` resolving ``name`` from ``<base>.<homes[name]>``
    (``base`` defaults to ``package``, which is then a package), cached once imported."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{base or package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


class LazyModule:
    """A stand-in for module ``name`` that imports it on first attribute access.

    For modules whose classes are read by light code (a method's ``Config``, ``trains``, ``description``
    are read when a run is planned) while their functions need torch::

        torch = LazyModule("torch")
        training = LazyModule("dreambench.methods.training")

    Unlike :class:`importlib.util.LazyLoader` nothing is put in ``sys.modules`` before the first use, so
    ``"torch" in sys.modules`` still tells whether torch was loaded. Annotations naming the module stay
    strings (``from __future__ import annotations``).
    """

    def __init__(self, name: str):
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy/pickle/inspect probing the proxy must not load the module
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (loaded)' if self._module is not None else ''}>"
