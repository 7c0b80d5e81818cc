"""Results folders written by the real CLI (tiny profile), for tests of tables, reports and scoring.

Fixtures that no real run produces test a different program (a hand-written ``method.json`` once hid a
Table 1 that dropped methods), so these helpers drive ``python -m dreambench`` in a subprocess, the way a
user does, with the example plug-in of ``tests/plugin_example`` installed through the
``dreambench.methods`` entry point (into a temporary folder on ``PYTHONPATH``, never into the venv).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dreambench

REPO = Path(dreambench.__file__).resolve().parents[1]
PLUGIN_SRC = Path(__file__).resolve().parent / "plugin_example"
PLUGIN_METHOD = "example-paste"
#: The methods of the standard tiny run: every built-in of Table 1 and the plug-in.
TINY_METHODS = ("dreambooth", "textual-inversion", "pretrained", "real", PLUGIN_METHOD)
TINY_SUBJECTS = ("dog", "backpack")
TINY_ARGS = ("--profile", "tiny", "--steps", "10", "--prompts", "2", "--images-per-prompt", "2")


def install_plugin(target: Path) -> Path:
    """``pip install`` the example plug-in (no deps, no build isolation: offline) into ``target``."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN_SRC)], check=True, capture_output=True, text=True)
    return target


def cli_env(plugin_site: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: offline hub, this checkout first on ``PYTHONPATH``, then the
    plug-in's folder (when given)."""
    env = dict(os.environ)
    parts = [str(REPO)] + ([str(plugin_site)] if plugin_site else []) + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(parts), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def run_cli(args: list[str] | tuple[str, ...], env: dict[str, str], check: bool = True, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m dreambench ARGS``; with ``check``, a non-zero exit fails with the command's stderr."""
    proc = subprocess.run([sys.executable, "-m", "dreambench", *map(str, args)], check=False, env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"dreambench {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def tiny_run(results: Path, data: Path, env: dict[str, str], methods=TINY_METHODS, subjects=TINY_SUBJECTS,
             extra: tuple[str, ...] = ()) -> Path:
    """``dreambench run`` of ``methods`` on the tiny profile (2 prompts x 2 images per subject)."""
    args = ["--results", results, "run", *[a for m in methods for a in ("--method", m)],
            "--subjects", ",".join(subjects), "--data", data, *TINY_ARGS, *extra]
    run_cli(args, env)
    return results


def job_rows(results: Path) -> dict[str, dict]:
    """Every job row of a results folder's state database by id, read without writing
    (:meth:`dreambench.engine.state.StateDB.jobs`)."""
    from dreambench.engine.state import STATE_FILE, StateDB

    with StateDB(results / STATE_FILE, readonly=True) as db:
        return {r["id"]: r for r in db.jobs()}


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a results folder (tests that change files must not touch the shared one)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
