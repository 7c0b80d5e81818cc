"""Type and range rules of method config fields, declared in the dataclass field metadata.

A field may declare any of::

    field(default=1, metadata={"help": "...", "min": 1})            value >= 1
    field(default=5e-6, metadata={"help": "...", "gt": 0})          value > 0
    field(default=0.9, metadata={"help": "...", "min": 0, "lt": 1})  0 <= value < 1
    field(default="ddim", metadata={"help": "...", "choices": ("ddim", "euler")})

Every field is also checked against the type of its default (``bool``, ``int``, ``float`` accepting
ints, ``str``). :meth:`dreambench.methods.interface.MethodConfig.validate` applies these rules; a plug-in
declares its own the same way, or overrides ``validate()`` (calling ``super().validate()``) for rules
across fields. A broken rule raises :class:`dreambench.errors.ConfigError` naming the field, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..errors import ConfigError

RULES = ("min", "gt", "max", "lt", "choices")
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _kind(f: dataclasses.Field) -> type | None:
    default = f.default if f.default is not dataclasses.MISSING else None
    return type(default) if type(default) in _TYPE_WORDS else None


def allowed(f: dataclasses.Field) -> str:
    """What the field accepts, in words: ``an integer >= 1``, ``one of ddim, dpm++, euler``."""
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(map(str, meta["choices"]))
    kind = _kind(f)
    words = [_TYPE_WORDS[kind] if kind else "a value"]
    for key, op in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<")):
        if key in meta:
            words.append(f"{op} {meta[key]}")
    return " ".join(words)


def _type_ok(kind: type | None, value: Any) -> bool:
    if kind is None or value is None:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _range_ok(meta: Any, value: Any) -> bool:
    if "choices" in meta and value not in meta["choices"]:
        return False
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    if math.isnan(value):  # NaN passes no comparison
        return not any(k in meta for k in ("min", "gt", "max", "lt"))
    return (("min" not in meta or value >= meta["min"]) and ("gt" not in meta or value > meta["gt"])
            and ("max" not in meta or value <= meta["max"]) and ("lt" not in meta or value < meta["lt"]))


def check_fields(config: Any) -> None:
    """Raise :class:`ConfigError` for the first field of ``config`` whose value breaks its type or rules."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not (_type_ok(_kind(f), value) and _range_ok(f.metadata, value)):
            raise ConfigError(f"{f.name}={value!r}: must be {allowed(f)}", field=f.name)
