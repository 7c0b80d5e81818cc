"""The job-kind registry (``dreambench.engine.kinds``): one lazy entry per kind module, in scheduling order."""

from __future__ import annotations

import subprocess
import sys

from dreambench.engine.kinds import KINDS, ORDER, JobKind, get_kind, kinds


def test_every_kind_is_registered_under_its_own_name():
    assert ORDER == ("class_images", "subject", "score", "score_merge", "tables")
    found = kinds()
    assert list(found) == list(ORDER)
    for name, kind in found.items():
        assert isinstance(kind, JobKind) and kind.name == name
        assert kind.run.__module__ == f"dreambench.engine.kinds.{name}"


def test_an_unknown_kind_is_none():
    """A state row of a newer release names a kind this one lacks: it is not run, not an error."""
    assert get_kind("judge_batch") is None
    assert "judge_batch" not in KINDS


def test_listing_kinds_imports_no_kind_module(cli_env, tmp_path):
    code = ("import sys, dreambench.engine.kinds as k; print(k.ORDER);"
            "print(sorted(m for m in sys.modules if m.startswith('dreambench.engine.kinds.')))")
    out = subprocess.run([sys.executable, "-c", code], env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[-1] == "[]", out
