"""The generic registry (dreambench/registry.py) and the four registries built on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dreambench.errors import UnknownNameError
from dreambench.methods.builtin import BUILTIN_METHODS
from dreambench.registry import DuplicateNameError, Registry


def test_lazy_target_resolves_on_first_get():
    reg: Registry[object] = Registry("thing")
    reg.register("path", "pathlib:PurePosixPath")
    reg.register("answer", 42)
    assert reg.names() == ["path", "answer"]
    import pathlib

    assert reg.get("path") is pathlib.PurePosixPath and reg.get("answer") == 42
    with pytest.raises(UnknownNameError, match=r"^unknown thing 'nope'; valid: answer, path$"):
        reg.get("nope")


def test_duplicates_are_refused_unless_same_target_or_replace():
    reg: Registry[object] = Registry("thing")
    reg.register("a", 1)
    reg.register("a", 1)  # the same target again: a no-op
    with pytest.raises(DuplicateNameError, match="'a' is already registered"):
        reg.register("a", 2)
    reg.register("a", 2, replace=True)
    assert reg.get("a") == 2
    reg.register("cls", "dreambench.registry:Registry")
    reg.register("cls", Registry)  # the class a lazy target names, without importing it again


def test_builtin_methods_are_listed_without_importing_them():
    code = ("import sys; from dreambench.methods.registry import METHODS; print(METHODS.names()); "
            "print(sorted(m for m in sys.modules if m.startswith('dreambench.methods.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, loaded = out.splitlines()
    assert names == str(list(BUILTIN_METHODS))
    assert not any(target.partition(":")[0] in loaded for target in BUILTIN_METHODS.values())


def test_each_builtin_is_registered_under_its_class_name():
    from dreambench.methods.base import get_method

    for name in BUILTIN_METHODS:
        assert get_method(name).name == name
