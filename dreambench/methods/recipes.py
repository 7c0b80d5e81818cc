"""Named training recipes: sets of config overrides with their source.

A method's config is built in this order, later winning: the config class defaults, the recipe's
overrides, the explicit options (``--set key=value``, the engine's config dict), then ``--steps``.
Recipes are data; a plug-in method may add its own with :func:`register_recipe` or a ``recipes``
class attribute (``{name: Recipe}``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownNameError
from .base import make_config


@dataclass(frozen=True)
class Recipe:
    """A named set of config overrides for one method, and where the values come from."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""


_RECIPES: dict[str, dict[str, Recipe]] = {}
_DEFAULT: dict[str, str] = {}


def register_recipe(method: str, recipe: Recipe, default: bool = False) -> Recipe:
    _RECIPES.setdefault(method, {})[recipe.name] = recipe
    if default or method not in _DEFAULT:
        _DEFAULT[method] = recipe.name
    return recipe


def recipes_for(method_cls: type) -> dict[str, Recipe]:
    """The recipes of a method class (registered ones plus its ``recipes`` attribute)."""
    out = dict(getattr(method_cls, "recipes", {}) or {})
    out.update(_RECIPES.get(method_cls.name, {}))
    return out


def default_recipe(method_cls: type) -> str | None:
    name = _DEFAULT.get(method_cls.name) or getattr(method_cls, "default_recipe", None)
    return name if name in recipes_for(method_cls) else None


def get_recipe(method_cls: type, name: str | None) -> Recipe | None:
    """The recipe ``name`` of the method (its default for ``None``); unknown names list the valid ones."""
    recipes = recipes_for(method_cls)
    if name is None:
        name = default_recipe(method_cls)
        if name is None:
            return None
    if name not in recipes:
        raise UnknownNameError(f"recipe of method {method_cls.name}", name, recipes)
    return recipes[name]


def resolve_config(method_cls: type, recipe: str | None = None, overrides: dict[str, Any] | None = None,
                   steps: int | None = None) -> tuple[Any, str | None]:
    """(config, recipe name used): class defaults < recipe < ``overrides`` < ``steps``."""
    rec = get_recipe(method_cls, recipe)
    merged: dict[str, Any] = dict(rec.overrides) if rec else {}
    merged.update(overrides or {})
    if steps is not None and "steps" in {f.name for f in dataclasses.fields(method_cls.Config)}:
        merged["steps"] = steps  # training-free methods have no steps and ignore it
    return make_config(method_cls.Config, merged), (rec.name if rec else None)


# ------------------------------------------------------------------------------------------ built-ins
_TINY = "CPU tests and the demo with the tiny profile (random weights): high lr, few class images"

register_recipe("dreambooth", Recipe(
    "paper", "DreamBooth paper, Stable Diffusion: lr 5e-6 constant, 1000 steps, lambda 1, batch 1 instance "
    "+ 1 class image, text encoder frozen, ~1000 class images",
    {"lr": 5e-6, "steps": 1000, "prior_loss_weight": 1.0, "with_prior_preservation": True, "batch_size": 1,
     "num_class_images": 1000, "train_text_encoder": False, "lr_warmup_steps": 0},
    "Ruiz et al., DreamBooth, CVPR 2023, sec. 4 / supp. (SD: lr 5e-6, ~1000 iterations, lambda=1, ~1000 class samples)",
), default=True)
register_recipe("dreambooth", Recipe(
    "diffusers", "diffusers train_dreambooth.py README example with prior preservation: lr 5e-6, 800 steps, "
    "200 class images, batch 1",
    {"lr": 5e-6, "steps": 800, "prior_loss_weight": 1.0, "with_prior_preservation": True, "batch_size": 1,
     "num_class_images": 200, "train_text_encoder": False, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/dreambooth/README.md ('Training with prior-preservation loss')",
))
register_recipe("dreambooth", Recipe(
    "tiny", _TINY, {"lr": 3e-3, "steps": 50, "num_class_images": 4, "batch_size": 1}, "dreambench tests",
))

register_recipe("dreambooth-lora", Recipe(
    "diffusers", "diffusers train_dreambooth_lora.py defaults: rank 4, lr 1e-4, 500 steps; plus the DreamBooth "
    "prior preservation (200 class images, lambda 1) so the objective matches dreambooth",
    {"lr": 1e-4, "steps": 500, "rank": 4, "prior_loss_weight": 1.0, "with_prior_preservation": True,
     "batch_size": 1, "num_class_images": 200, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/dreambooth/README.md (LoRA section) and train_dreambooth_lora.py --rank default",
), default=True)
register_recipe("dreambooth-lora", Recipe(
    "tiny", _TINY, {"lr": 1e-2, "steps": 50, "rank": 4, "num_class_images": 4, "batch_size": 1}, "dreambench tests",
))

register_recipe("textual-inversion", Recipe(
    "diffusers", "diffusers textual_inversion.py README: 3000 steps, lr 5e-4 scaled by 4 accumulated images "
    "(= 2e-3 at batch 4), one vector initialized from the class noun, no prior preservation",
    {"lr": 2e-3, "steps": 3000, "batch_size": 4, "with_prior_preservation": False, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/textual_inversion/README.md (--learning_rate 5e-4 --scale_lr, "
    "gradient_accumulation_steps 4, max_train_steps 3000); Gal et al. 2023 (one vector, 5000 steps at lr 5e-3 "
    "x GPUs x batch on LDM)",
), default=True)
register_recipe("textual-inversion", Recipe(
    "tiny", _TINY, {"lr": 5e-2, "steps": 50, "batch_size": 1, "with_prior_preservation": False},
    "dreambench tests",
))
