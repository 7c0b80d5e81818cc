"""Named training recipes: sets of config overrides with their source.

A method's config is built in this order, later winning: the config class defaults, the recipe's
overrides, the explicit options (``--set key=value``, the engine's config dict), then ``--steps``.
Recipes are data, declared beside their method: each built-in method's module registers its own
(:func:`register_recipe`); a plug-in method may do the same or set a ``recipes`` class attribute
(``{name: Recipe}``). Each method's registered recipes are one :class:`dreambench.registry.Registry`,
plus one per model family for the recipes of that family only (:attr:`Recipe.family`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .interface import make_config


@dataclass(frozen=True)
class Recipe:
    """A named set of config overrides for one method, and where the values come from.

    ``family``: the model family (:data:`dreambench.models.profiles.FAMILIES`) the recipe is for; None =
    every family. A family recipe may share its name with a family-neutral one (``dreambench-plus`` is
    lr 1e-4 x 100 steps on SD 1.5 and lr 5e-5 x 500 steps on SDXL): the name then resolves by the
    profile's family, where the config is built (:func:`resolve_config`)."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    family: str | None = None


#: Text of the ``tiny`` recipe every built-in training method declares.
TINY_RECIPE = "CPU tests and the demo with the tiny profile (random weights): high lr, few class images"

#: What every SD 1.5 ``dreambench-plus`` recipe shares (github yuangpeng/dreambench_plus@66ca27e): training seed
#: 42, and sampling as its ``generate_images.py`` does: the pipeline's default scheduler (PNDM on SD 1.5),
#: 100 steps, CFG 7.5.
DREAMBENCH_PLUS_SD15 = {"seed": 42, "sampler": "pndm", "sample_steps": 100, "guidance_scale": 7.5}

#: Method name -> its family-neutral recipes.
_RECIPES: dict[str, Registry[Recipe]] = {}
#: (method name, family) -> the recipes for that family only (they win over a neutral one of the same name).
_FAMILY_RECIPES: dict[tuple[str, str], Registry[Recipe]] = {}
#: Method name, or (method name, family) -> its default recipe: the one registered with ``default=True``,
#: else its first.
_DEFAULT: dict[Any, str] = {}


def _what(method: str, family: str | None = None) -> str:
    return f"recipe of method {method}" + (f" for model family {family}" if family else "")


def register_recipe(method: str, recipe: Recipe, default: bool = False) -> Recipe:
    """Add ``recipe`` to method ``method``'s recipes (its default when ``default`` or when it is the first),
    for ``recipe.family`` only when that is set."""
    key: Any = method if recipe.family is None else (method, recipe.family)
    table = _RECIPES if recipe.family is None else _FAMILY_RECIPES
    table.setdefault(key, Registry(_what(method, recipe.family))).register(recipe.name, recipe)
    if default or key not in _DEFAULT:
        _DEFAULT[key] = recipe.name
    return recipe


def _recipe_table(method_cls: type, family: str | None = None) -> Registry[Recipe]:
    """The recipes of a method class for ``family``: its ``recipes`` attribute, then the registered
    family-neutral ones, then those of ``family`` (later ones win)."""
    table: Registry[Recipe] = Registry(_what(method_cls.name))  # its messages list the valid names
    for name, recipe in (getattr(method_cls, "recipes", {}) or {}).items():
        if recipe.family in (None, family):
            table.register(name, recipe, replace=True)
    for registered in (_RECIPES.get(method_cls.name), _FAMILY_RECIPES.get((method_cls.name, family))):
        for name, recipe in (registered.items() if registered is not None else ()):
            table.register(name, recipe, replace=True)
    return table


def recipes_for(method_cls: type, family: str | None = None) -> dict[str, Recipe]:
    """The recipes of a method class usable on model family ``family`` (None: the family-neutral ones)."""
    return dict(_recipe_table(method_cls, family).items())


def family_recipes(method_cls: type) -> dict[str, dict[str, Recipe]]:
    """Per model family, the recipes registered for that family only (``dreambench methods list``)."""
    out: dict[str, dict[str, Recipe]] = {}
    for (method, family), table in _FAMILY_RECIPES.items():
        if method == method_cls.name:
            out[family] = dict(table.items())
    for name, recipe in (getattr(method_cls, "recipes", {}) or {}).items():
        if recipe.family is not None:
            out.setdefault(recipe.family, {})[name] = recipe
    return out


def default_recipe(method_cls: type, family: str | None = None) -> str | None:
    """The method's default recipe on ``family``: the family's own default, else the neutral default."""
    names = recipes_for(method_cls, family)
    for name in (_DEFAULT.get((method_cls.name, family)), _DEFAULT.get(method_cls.name),
                 getattr(method_cls, "default_recipe", None)):
        if name in names:
            return name
    return None


def get_recipe(method_cls: type, name: str | None, family: str | None = None) -> Recipe | None:
    """The recipe ``name`` of the method on model family ``family`` (its default for ``None``); a recipe
    of another family only is refused naming it; unknown names list the valid ones."""
    if name is None:
        name = default_recipe(method_cls, family)
        if name is None:
            return None
    table = _recipe_table(method_cls, family)
    if name not in table:
        others = sorted(f for f, recipes in family_recipes(method_cls).items() if name in recipes and f != family)
        if others:
            raise ConfigError(f"recipe {name} of method {method_cls.name} is for model family {', '.join(others)}; "
                              f"this profile is of family {family or 'sd15'} (valid here: {', '.join(table.names())})")
    return table.get(name)


def resolve_config(method_cls: type, recipe: str | None = None, overrides: dict[str, Any] | None = None,
                   steps: int | None = None, family: str | None = None) -> tuple[Any, str | None]:
    """(config, recipe name used): class defaults < recipe (resolved for the model ``family``) <
    ``overrides`` < ``steps``."""
    rec = get_recipe(method_cls, recipe, family)
    merged: dict[str, Any] = dict(rec.overrides) if rec else {}
    merged.update(overrides or {})
    config_cls = config_class(method_cls, family)
    if steps is not None and "steps" in {f.name for f in dataclasses.fields(config_cls)}:
        merged["steps"] = steps  # training-free methods have no steps and ignore it
    return make_config(config_cls, merged), (rec.name if rec else None)


def config_class(method_cls: type, family: str | None = None) -> type:
    """The method's config class on model ``family``: ``family_configs[family]`` when the method declares
    one (dreambooth-lora's SDXL config adds the time-id mode), else ``Config``."""
    return (getattr(method_cls, "family_configs", None) or {}).get(family, method_cls.Config)
