"""The light commands never import the model stack (issue 15.1).

``--help``, ``tables``, ``report``, ``status``, ``study *``, ``protocol show``, a no-op resume of ``run``
and ``score``, and ``run --dry-run`` run in a fresh interpreter
(the real CLI, on a results folder a real tiny run wrote); afterwards ``sys.modules`` must hold none of
torch, diffusers, open_clip, timm (and, where the command has no use for them, none of pandas, matplotlib,
jinja2). A failing command fails the test too, so a command that crashed early cannot pass by importing
nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import realrun

MODEL_STACK = ("torch", "diffusers", "open_clip", "timm", "transformers", "torchvision")
TABLE_STACK = ("pandas", "matplotlib", "jinja2", "scipy")

# Runs the click group in-process (no standalone exit), then reports its exit code and the heavy modules.
_WRAPPER = """
import json, sys
from dreambench.cli import main
code = 0
try:
    main.main(args=sys.argv[2:], standalone_mode=False)
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
print("LIGHT-IMPORTS " + json.dumps({"code": code, "heavy": heavy}))
"""


def _heavy_after(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    watch = json.dumps(MODEL_STACK + TABLE_STACK)
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, watch, *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LIGHT-IMPORTS ")]
    assert proc.returncode == 0 and lines, f"dreambench {' '.join(map(str, args))}:\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1].removeprefix("LIGHT-IMPORTS "))
    assert out["code"] in (0, None), f"dreambench {' '.join(map(str, args))} exited {out['code']}:\n" \
                                     f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return out["heavy"]


@pytest.fixture(scope="module")
def light_run(tiny_results, tmp_path_factory) -> Path:
    return realrun.copy_run(tiny_results, tmp_path_factory.mktemp("light") / "r")


def _tiny_run_args(data: Path) -> list:
    """The options the shared tiny run was made with (``realrun.tiny_run``), less ``--results``."""
    return [*(a for m in realrun.TINY_METHODS for a in ("--method", m)), "--subjects",
            ",".join(realrun.TINY_SUBJECTS), "--data", data, *realrun.TINY_ARGS]


def _commands(r: Path, data: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    """(arguments, modules of TABLE_STACK the command may load) in the order they run: study create
    makes the database the later study commands read."""
    db = r / "study.sqlite"
    return [
        (["--help"], ()),
        (["run", "--help"], ()),
        (["score", "--help"], ()),
        (["train", "--help"], ()),
        (["bench", "--help"], ()),
        (["protocol", "show"], ()),
        (["--results", r, "status"], ()),
        # The finished run resumed with its own options: nothing to do, so no model stack (issue 15.4).
        (["--results", r, "run", *_tiny_run_args(data)], ("pandas",)),
        # Planning every built-in and the plug-in reads their configs only.
        (["--results", r / "planned", "run", "--dry-run", "--method", "dreambooth-lora",
          *_tiny_run_args(data)], ()),
        # A finished folder re-scored: answered from content keys (issue 15.4), no model stack.
        (["--results", r, "score", "--subjects", data, "--model-profile", "tiny", "-q"], ("pandas",)),
        (["tables", r], ("pandas", "jinja2", "scipy")),  # LaTeX: pandas Styler (jinja2); intervals: scipy
        (["report", r, "--data", data], ("pandas", "jinja2", "matplotlib", "scipy")),
        (["--results", r, "study", "create", "--db", db, "--method-a", "dreambooth", "--method-b", "pretrained",
          "--questions", "4", "--data", data], ("pandas",)),
        (["study", "raters", "add", "--db", db, "--count", "1"], ()),
        (["study", "raters", "list", "--db", db], ()),
        (["study", "export", "--db", db, "--out", r / "answers.csv"], ("pandas", "scipy")),
        (["study", "serve", "--help"], ()),
    ]


def test_light_commands_import_no_model_stack(light_run, dataset_dir, cli_env, tmp_path):
    for args, allowed in _commands(light_run, dataset_dir):
        heavy = _heavy_after(args, cli_env, tmp_path)
        assert not set(heavy) & set(MODEL_STACK), f"dreambench {' '.join(map(str, args))} imported {heavy}"
        extra = set(heavy) - set(allowed)
        assert not extra, f"dreambench {' '.join(map(str, args))} imported {sorted(extra)} it does not need"


def test_study_app_imports_no_model_stack(cli_env, tmp_path):
    """``study serve`` builds the web app from this module (serving itself would block the test)."""
    code = f"import sys, dreambench.study.app; print(sorted(set(sys.modules) & set({list(MODEL_STACK)!r})))"
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_wrapper_sees_a_heavy_import(cli_env, tmp_path):
    """The check can fail: a command that builds models is seen importing torch."""
    heavy = _heavy_after(["profiles", "build", "tiny"], cli_env, tmp_path)
    assert "torch" in heavy
