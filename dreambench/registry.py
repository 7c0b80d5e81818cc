"""One generic registry: names mapped to targets, knowing nothing of what the targets are.

A :class:`Registry` holds, per name, a *target*: either the object itself or a lazy ``"module:attr"``
string, imported on the first :meth:`Registry.get` of that name (so listing the names of the built-in
methods imports none of them). A registry given an entry-point ``group`` registers every entry point of
that group once, on first use, and records which distribution provides each name.

Methods, recipes, metric profiles, model profiles, metrics, job kinds, judge profiles and fetched
protocols are each one instance (``methods/registry.py``, ``methods/recipes.py``, ``metrics/profiles.py``,
``models/profiles.py``, ``metrics/registry.py``, ``engine/kinds/__init__.py``, ``judge/profiles.py``,
``protocol.py``); the shape follows
lm-evaluation-harness's ``Registry[T]`` and timm's ``_registry.py``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import DreambenchError, UnknownNameError

T = TypeVar("T")

#: ``(distribution name, version)`` of a plug-in whose entry point has no distribution metadata.
UNKNOWN_DISTRIBUTION = ("unknown package", "unknown")


class DuplicateNameError(DreambenchError, ValueError):
    """A name registered a second time with another target (pass ``replace=True`` to mean it)."""


@dataclass
class Entry(Generic[T]):
    """One registered name.

    Attributes:
        target: the object, or a lazy ``"module:attr"`` string until first resolved.
        provider: who provides it: the registry's ``default_provider`` for direct registrations,
            ``"<distribution> <version>"`` for an entry point.
        distribution: ``(name, version)`` of the distribution of an entry point; None otherwise.
    """

    target: T | str
    provider: str
    distribution: tuple[str, str] | None = None


def is_lazy(target: object) -> bool:
    """Whether ``target`` is a lazy ``"module:attr"`` string rather than an object."""
    return isinstance(target, str) and ":" in target


def resolve_target(path: str) -> Any:
    """The object named by ``"package.module:attr"`` (``attr`` may be dotted), importing the module."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def target_path(obj: object) -> str:
    """``"module:qualname"`` of a class or function (what a lazy target naming it would say)."""
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"


def distribution_of(ep: metadata.EntryPoint) -> str:
    """``"<distribution> <version>"`` of an entry point, or ``"unknown package"``."""
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown package"


class Registry(Generic[T]):
    """Names → targets, with lazy ``"module:attr"`` targets and optional entry-point plug-ins.

    Args:
        what: what a name names, for messages: ``"method"`` gives ``unknown method 'x'; valid: ...``.
        group: an entry-point group whose entry points register on first use; None for none.
        check: called as ``check(name, obj, where)`` for each loaded entry point; raises a
            :class:`DreambenchError` for one that must stop every lookup (a wrong type or name).
        warning: the warning category of a plug-in that fails to import or is shadowed.
        default_provider: the provider recorded for direct registrations.
    """

    def __init__(self, what: str, *, group: str | None = None,
                 check: Callable[[str, Any, str], None] | None = None,
                 warning: type[Warning] = UserWarning, default_provider: str = "dreambench"):
        self.what, self.group, self.check = what, group, check
        self.warning, self.default_provider = warning, default_provider
        self._entries: dict[str, Entry[T]] = {}
        self._entry_points_loaded = False
        self._load_error: DreambenchError | None = None

    # ------------------------------------------------------------------------------- registering
    def register(self, name: str, target: T | str, *, provider: str | None = None,
                 replace: bool = False) -> T | str:
        """Register ``target`` (an object or a lazy ``"module:attr"``) under ``name`` and return it.

        Registering the same target again is a no-op; another target under a taken name raises
        :class:`DuplicateNameError` unless ``replace``."""
        old = self._entries.get(name)
        if old is not None and not replace:
            if self._same(old.target, target):
                return target
            raise DuplicateNameError(f"{self.what} {name!r} is already registered ({self._describe(old.target)}, "
                                     f"from {old.provider}); cannot register {self._describe(target)}")
        self._entries[name] = Entry(target, provider or self.default_provider)
        return target

    @staticmethod
    def _same(old: object, new: object) -> bool:
        if old is new or old == new:
            return True
        # A lazy built-in and the class it names, registered by its module's own decorator: no import.
        return is_lazy(old) and not isinstance(new, str) and target_path(new) == old

    @staticmethod
    def _describe(target: object) -> str:
        return target if isinstance(target, str) else target_path(target) if hasattr(target, "__qualname__") \
            else repr(target)

    def copy(self) -> Registry[T]:
        """A registry with the same entries whose entry points load again on first use (for tests)."""
        new = Registry(self.what, group=self.group, check=self.check, warning=self.warning,
                       default_provider=self.default_provider)
        new._entries = {k: Entry(e.target, e.provider, e.distribution) for k, e in self._entries.items()}
        return new

    # ---------------------------------------------------------------------------------- looking up
    def names(self) -> list[str]:
        """Every registered name, in registration order; imports no lazy target."""
        self.load_entry_points()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> T:
        """The target of ``name``, imported on first use; an unknown name raises
        :class:`UnknownNameError` listing the valid ones."""
        self.load_entry_points()
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownNameError(self.what, name, self._entries)
        if is_lazy(entry.target):
            entry.target = resolve_target(entry.target)  # type: ignore[arg-type]
        return entry.target  # type: ignore[return-value]

    def items(self) -> list[tuple[str, T]]:
        """``(name, target)`` of every entry in registration order, lazy targets imported."""
        return [(name, self.get(name)) for name in self.names()]

    def values(self) -> list[T]:
        return [target for _, target in self.items()]

    def entry(self, name: str) -> Entry[T] | None:
        """The :class:`Entry` of ``name`` (provider, distribution), or None; imports nothing."""
        self.load_entry_points()
        return self._entries.get(name)

    # -------------------------------------------------------------------------------- entry points
    def load_entry_points(self) -> None:
        """Register every entry point of ``group`` (once). A :class:`DreambenchError` raised by ``check``
        is raised again by every later lookup, not only the first."""
        if self._entry_points_loaded:
            if self._load_error is not None:
                raise self._load_error
            return
        self._entry_points_loaded = True
        if self.group is None:
            return
        for ep in metadata.entry_points(group=self.group):
            try:
                self._load_entry_point(ep)
            except DreambenchError as e:
                self._load_error = e
                raise

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        """Register one entry point; an import failure or a taken name is a warning naming it."""
        where = f"{ep.name!r} ({ep.value}, package {distribution_of(ep)})"
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001  (a broken plug-in, whatever it raises, must not take the suite down)
            warnings.warn(f"{self.what} plug-in {where} failed to import and is skipped: {type(e).__name__}: {e}",
                          self.warning, stacklevel=5)
            return
        if self.check is not None:
            self.check(ep.name, obj, where)
        old = self._entries.get(ep.name)
        if old is not None and self.get(ep.name) is not obj:
            warnings.warn(f"{self.what} plug-in {where} is ignored: {ep.name!r} is already provided by "
                          f"{old.provider}", self.warning, stacklevel=5)
            return
        dist = getattr(ep, "dist", None)
        # A plug-in without distribution metadata is still a plug-in (its code is digested all the same).
        self._entries[ep.name] = Entry(obj, distribution_of(ep),
                                       (dist.name, dist.version) if dist is not None else UNKNOWN_DISTRIBUTION)


__all__ = ["DuplicateNameError", "Entry", "Registry", "distribution_of", "is_lazy", "resolve_target",
           "target_path"]
