"""Named training recipes: sets of config overrides with their source.

A method's config is built in this order, later winning: the config class defaults, the recipe's
overrides, the explicit options (``--set key=value``, the engine's config dict), then ``--steps``.
Recipes are data, declared beside their method: each built-in method's module registers its own
(:func:`register_recipe`); a plug-in method may do the same or set a ``recipes`` class attribute
(``{name: Recipe}``). Each method's registered recipes are one :class:`dreambench.registry.Registry`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry
from .interface import make_config


@dataclass(frozen=True)
class Recipe:
    """A named set of config overrides for one method, and where the values come from."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""


#: Text of the ``tiny`` recipe every built-in training method declares.
TINY_RECIPE = "CPU tests and the demo with the tiny profile (random weights): high lr, few class images"

#: Method name -> its registered recipes.
_RECIPES: dict[str, Registry[Recipe]] = {}
#: Method name -> its default recipe: the one registered with ``default=True``, else its first.
_DEFAULT: dict[str, str] = {}


def _what(method: str) -> str:
    return f"recipe of method {method}"


def register_recipe(method: str, recipe: Recipe, default: bool = False) -> Recipe:
    """Add ``recipe`` to method ``method``'s recipes (its default when ``default`` or when it is the first)."""
    _RECIPES.setdefault(method, Registry(_what(method))).register(recipe.name, recipe)
    if default or method not in _DEFAULT:
        _DEFAULT[method] = recipe.name
    return recipe


def _recipe_table(method_cls: type) -> Registry[Recipe]:
    """The recipes of a method class: its ``recipes`` attribute, then the registered ones (which win)."""
    table: Registry[Recipe] = Registry(_what(method_cls.name))
    for name, recipe in (getattr(method_cls, "recipes", {}) or {}).items():
        table.register(name, recipe)
    registered = _RECIPES.get(method_cls.name)
    for name, recipe in (registered.items() if registered is not None else ()):
        table.register(name, recipe, replace=True)
    return table


def recipes_for(method_cls: type) -> dict[str, Recipe]:
    """The recipes of a method class (registered ones plus its ``recipes`` attribute)."""
    return dict(_recipe_table(method_cls).items())


def default_recipe(method_cls: type) -> str | None:
    name = _DEFAULT.get(method_cls.name) or getattr(method_cls, "default_recipe", None)
    return name if name in recipes_for(method_cls) else None


def get_recipe(method_cls: type, name: str | None) -> Recipe | None:
    """The recipe ``name`` of the method (its default for ``None``); unknown names list the valid ones."""
    if name is None:
        name = default_recipe(method_cls)
        if name is None:
            return None
    return _recipe_table(method_cls).get(name)


def resolve_config(method_cls: type, recipe: str | None = None, overrides: dict[str, Any] | None = None,
                   steps: int | None = None) -> tuple[Any, str | None]:
    """(config, recipe name used): class defaults < recipe < ``overrides`` < ``steps``."""
    rec = get_recipe(method_cls, recipe)
    merged: dict[str, Any] = dict(rec.overrides) if rec else {}
    merged.update(overrides or {})
    if steps is not None and "steps" in {f.name for f in dataclasses.fields(method_cls.Config)}:
        merged["steps"] = steps  # training-free methods have no steps and ignore it
    return make_config(method_cls.Config, merged), (rec.name if rec else None)
