"""The shared real-run fixture itself: the CLI ran every method, the plug-in included."""

from __future__ import annotations

import json

import realrun


def test_tiny_run_has_every_method(tiny_results):
    for label in realrun.TINY_METHODS:
        info = json.loads((tiny_results / "images" / label / "method.json").read_text())
        assert info["method"] == label
        for subject in realrun.TINY_SUBJECTS:
            assert (tiny_results / "images" / label / subject / "manifest.csv").is_file()
    assert (tiny_results / "scores" / "per_image.csv").is_file()


def test_plugin_is_listed(cli_env):
    out = realrun.run_cli(["methods", "list"], cli_env).stdout
    assert realrun.PLUGIN_METHOD in out
