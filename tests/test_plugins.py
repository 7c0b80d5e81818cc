"""Plug-in names and failures, through real entry points: small throwaway ``*.dist-info`` folders on
``PYTHONPATH`` of a ``python -m dreambench`` subprocess (importlib.metadata finds them like installed ones)."""

from __future__ import annotations

import json
from pathlib import Path

import realrun


def _dist(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """A one-module distribution ``dist`` 0.1 whose ``dreambench.methods`` entry point is ``entry``."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dreambench.methods]\n{entry}\n")


_METHOD = '''
from dreambench.methods.base import Method

class Foo(Method):
    name = "foo-class"
    trains = False
    needs_model = False
    def train(self, data, workdir):
        return None
    def generate(self, data, requests):
        return []
'''


def test_plugin_that_fails_to_import_is_a_warning_and_the_rest_works(tmp_path, plugin_site):
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "broken-plugin", "broken_mod", "raise ImportError('needs torch 9')\n", "broken = broken_mod:X")
    env = realrun.cli_env(plugin_site)
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    proc = realrun.run_cli(["methods", "list"], env)
    assert "'broken'" in proc.stderr and "broken-plugin 0.1" in proc.stderr and "needs torch 9" in proc.stderr
    assert "PluginWarning" in proc.stderr
    assert "dreambooth  (trains; from dreambench)" in proc.stdout
    assert f"{realrun.PLUGIN_METHOD}  (no training; from dreambench-example-plugin 0.1.0)" in proc.stdout
    info = {m["name"]: m for m in json.loads(realrun.run_cli(["methods", "list", "--json"], env).stdout)}
    assert info[realrun.PLUGIN_METHOD]["package"] == "dreambench-example-plugin 0.1.0"
    assert info["real"]["package"] == "dreambench" and "broken" not in info
    # Other commands keep working too.
    assert "dog" in realrun.run_cli(["protocol", "show"], env).stdout


def test_entry_point_name_differing_from_class_name_is_an_error_naming_both(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "misnamed-plugin", "misnamed_mod", _METHOD, "foo-entry = misnamed_mod:Foo")
    env = realrun.cli_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    proc = realrun.run_cli(["methods", "list"], env, check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "'foo-entry'" in line and "'foo-class'" in line and "misnamed-plugin 0.1" in line
    proc = realrun.run_cli(["generate", "--method", "foo-class", "--subject", "dog"], env, check=False)
    assert proc.returncode == 2 and "'foo-entry'" in proc.stderr
