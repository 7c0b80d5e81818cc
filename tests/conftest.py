"""Shared test settings: offline hub, a per-session cache folder, the dataset fixture, and results
folders written by the real CLI (see realrun.py).

Builders shared by several test modules live in builders.py and realrun.py (``tests/`` is on
``sys.path`` through ``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    """The official DreamBooth dataset ($DREAMBENCH_DATA or ../shared/dreambooth-dataset); skips if absent."""
    from dreambench.paths import default_data_dir

    d = default_data_dir()
    if not (d / "prompts_and_classes.txt").is_file():
        pytest.skip(f"DreamBooth dataset not found at {d} (set DREAMBENCH_DATA)")
    return d


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A folder holding the installed example plug-in (``tests/plugin_example``), for ``PYTHONPATH``."""
    import realrun

    return realrun.install_plugin(tmp_path_factory.mktemp("plugin-site"))


@pytest.fixture(scope="session")
def cli_env(plugin_site) -> dict[str, str]:
    """Environment for CLI subprocesses: offline, this checkout and the example plug-in importable."""
    import realrun

    return realrun.cli_env(plugin_site)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, dataset_dir, cli_env) -> Path:
    """A finished ``dreambench run`` of dreambooth, textual-inversion, pretrained, real and the example
    plug-in on dog and backpack (tiny profile). Shared by the session: copy it (``realrun.copy_run``)
    before changing anything in it."""
    import realrun

    return realrun.tiny_run(tmp_path_factory.mktemp("tiny-run") / "results", dataset_dir, cli_env)
