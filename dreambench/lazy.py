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


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` from ``package.<homes[name]>`` (cached once imported)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
