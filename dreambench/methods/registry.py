"""The method registry: built-ins (lazy, :mod:`.builtin`), ``register_method`` and entry-point plug-ins.

Third-party methods register through the ``dreambench.methods`` entry-point group
(``name = "package.module:MethodClass"``, the name equal to the class's ``name``); a plug-in that fails
to import is a :class:`PluginWarning` and the other methods keep working (docs/methods.md).
"""

from __future__ import annotations

from ..errors import DreambenchError
from ..registry import Registry
from .builtin import BUILTIN_METHODS
from .interface import Method

ENTRY_POINT_GROUP = "dreambench.methods"
#: The provider recorded for the built-ins (and for classes registered with :func:`register_method`).
BUILTIN_PROVIDER = "dreambench"


class PluginWarning(UserWarning):
    """A method plug-in could not be imported (or was shadowed); the other methods keep working."""


def _check_plugin(name: str, cls: object, where: str) -> None:
    """A plug-in must be a :class:`Method` subclass whose ``name`` is its entry-point name."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise DreambenchError(f"method plug-in {where} is not a dreambench Method subclass")
    if getattr(cls, "name", None) != name:
        # Files are named by the class's name, the CLI by the entry point's: they must be one name.
        raise DreambenchError(
            f"method plug-in {where}: entry-point name {name!r} differs from the class name "
            f"{getattr(cls, 'name', None)!r} of {cls.__module__}.{cls.__qualname__}; make them equal")


METHODS: Registry[type[Method]] = Registry("method", group=ENTRY_POINT_GROUP, check=_check_plugin,
                                           warning=PluginWarning, default_provider=BUILTIN_PROVIDER)
for _name, _target in BUILTIN_METHODS.items():
    METHODS.register(_name, _target)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    METHODS.register(cls.name, cls)
    return cls


def get_method(name: str) -> type[Method]:
    """The method class registered under ``name``; unknown names list the valid ones."""
    return METHODS.get(name)


def list_methods() -> dict[str, type[Method]]:
    """Every method class by name, sorted by name (imports each built-in's module)."""
    return dict(sorted(METHODS.items()))


def method_provider(name: str) -> str:
    """The package providing method ``name``: ``dreambench`` for built-ins, else ``<dist> <version>``."""
    entry = METHODS.entry(name)
    return entry.provider if entry is not None else "unknown package"


def method_distribution(name: str) -> tuple[str, str] | None:
    """``(distribution name, version)`` of the plug-in providing method ``name``; None for a built-in."""
    entry = METHODS.entry(name)
    return entry.distribution if entry is not None else None


__all__ = ["BUILTIN_PROVIDER", "ENTRY_POINT_GROUP", "METHODS", "PluginWarning", "get_method", "list_methods",
           "method_distribution", "method_provider", "register_method"]
