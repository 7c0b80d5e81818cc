"""A method's identity (provider, version, code) is part of every number it makes (issue 19.3).

The code digest of a package (unit); an editable-style plug-in whose source is edited (``methods list``
through real entry points); and two real ``dreambench run``s of the tiny profile with the example plug-in
changed, rebuilt and reinstalled at a new version between them: its jobs re-run, dreambooth's do not, and
the new version and digest are in method.json, the score files and the tables' header.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import realrun

from dreambench.methods.identity import code_digest

PLUGIN_PACKAGE = "dreambench_example_plugin"


def test_code_digest_counts_the_python_files_only(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 1\n")
    (pkg / "README.txt").write_text("notes\n")
    (pkg / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0compiled")
    (pkg / "__pycache__" / "stray.py").write_text("Y = 1\n")
    before = code_digest([pkg])
    assert len(before) == 16 and code_digest([pkg]) == before
    # Data files and anything under __pycache__ are not the code.
    (pkg / "README.txt").write_text("other notes, longer\n")
    (pkg / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0compiled again")
    (pkg / "__pycache__" / "stray.py").write_text("Y = 2  # changed\n")
    assert code_digest([pkg]) == before
    # One edited .py file changes it; putting it back restores it (a content digest, not a time stamp).
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 2  # changed\n")
    assert code_digest([pkg]) != before
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 1\n")
    assert code_digest([pkg]) == before
    # A new .py file counts, and so does a renamed one.
    (pkg / "sub" / "extra.py").write_text("")
    assert code_digest([pkg]) != before
    (pkg / "sub" / "extra.py").rename(pkg / "sub" / "extra2.py")
    with_extra = code_digest([pkg])
    (pkg / "sub" / "extra2.py").rename(pkg / "sub" / "extra3.py")
    assert code_digest([pkg]) != with_extra


def test_generate_into_a_label_of_another_identity_is_refused(tmp_path):
    """Outside ``dreambench run`` (which moves such a label aside and makes it again) a label made by other
    code is not written into. A method.json from before identities were recorded stands for a built-in at
    revision 1: the same as one now, another than any plug-in."""
    from dreambench.engine.subject_job import _write_method_info
    from dreambench.errors import DreambenchError

    builtin = {"method": "real", "label": "r", "config": {}, "method_identity": {
        "provider": "dreambench", "version": "0.1.0", "revision": 1, "code_digest": None}}
    path = tmp_path / "real.json"
    path.write_text(json.dumps({k: v for k, v in builtin.items() if k != "method_identity"}))
    _write_method_info(path, builtin)
    assert json.loads(path.read_text())["method_identity"] == builtin["method_identity"]
    with pytest.raises(DreambenchError, match="made by dreambench 0.1.0 r1, this job runs dreambench 0.1.0 r2;"):
        _write_method_info(path, {**builtin, "method_identity": {**builtin["method_identity"], "revision": 2}})

    plugin = {"method": "example-paste", "label": "x", "config": {}, "method_identity": {
        "provider": "dreambench-example-plugin", "version": "0.2.0", "revision": None, "code_digest": "b" * 16}}
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps({k: v for k, v in plugin.items() if k != "method_identity"}))
    with pytest.raises(DreambenchError, match="made by unknown, this job runs dreambench-example-plugin 0.2.0 code b+;"):
        _write_method_info(path, plugin)
    path.write_text(json.dumps(plugin))
    _write_method_info(path, plugin)  # the same code: fine
    with pytest.raises(DreambenchError, match="made by dreambench-example-plugin 0.2.0 code b+, this job runs "
                                              "dreambench-example-plugin 0.2.0 code a+;"):
        _write_method_info(path, {**plugin, "method_identity": {**plugin["method_identity"], "code_digest": "a" * 16}})


def _editable_site(tmp_path: Path) -> tuple[Path, Path]:
    """The example plug-in as an editable install sees it: its source folder on ``PYTHONPATH`` and a
    ``*.dist-info`` beside it (version 0.1.0, its entry point); returns (site, package folder)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(realrun.PLUGIN_SRC / PLUGIN_PACKAGE, site / PLUGIN_PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "dreambench_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dreambench-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[dreambench.methods]\n{realrun.PLUGIN_METHOD} = {PLUGIN_PACKAGE}:PasteBaseline\n")
    return site, site / PLUGIN_PACKAGE


def _identities(env: dict[str, str]) -> dict[str, dict]:
    out = realrun.run_cli(["methods", "list", "--json"], env).stdout
    return {m["name"]: m["identity"] for m in json.loads(out)}


def test_an_edited_editable_plugin_has_another_identity(tmp_path):
    site, pkg = _editable_site(tmp_path)
    env = realrun.cli_env(site)
    first = _identities(env)
    plugin = first[realrun.PLUGIN_METHOD]
    assert plugin["provider"] == "dreambench-example-plugin" and plugin["version"] == "0.1.0"
    assert plugin["revision"] is None and len(plugin["code_digest"]) == 16
    assert first["dreambooth"] == {"provider": "dreambench", "version": first["dreambooth"]["version"],
                                   "revision": 1, "code_digest": None}
    (pkg / "notes.md").write_text("not code\n")
    assert _identities(env)[realrun.PLUGIN_METHOD] == plugin
    source = pkg / "__init__.py"
    source.write_text(source.read_text().replace("scale: float = field(default=0.5", "scale: float = field(default=0.4"))
    second = _identities(env)
    assert second[realrun.PLUGIN_METHOD]["version"] == "0.1.0"  # same version, other code: another identity
    assert second[realrun.PLUGIN_METHOD]["code_digest"] != plugin["code_digest"]
    assert {k: v for k, v in second.items() if k != realrun.PLUGIN_METHOD} == \
        {k: v for k, v in first.items() if k != realrun.PLUGIN_METHOD}


def test_a_second_package_of_the_plugin_distribution_is_part_of_its_code(tmp_path):
    """A distribution that ships a helper package beside the method's (declared in top_level.txt): editing
    the helper changes the plug-in's identity as editing the method's own package does."""
    site, _ = _editable_site(tmp_path)
    helper = site / "example_paste_helpers"
    helper.mkdir()
    (helper / "__init__.py").write_text("CORNER = 8\n")
    info = site / "dreambench_example_plugin-0.1.0.dist-info"
    (info / "top_level.txt").write_text(f"{PLUGIN_PACKAGE}\nexample_paste_helpers\n")
    env = realrun.cli_env(site)
    first = _identities(env)[realrun.PLUGIN_METHOD]
    (helper / "__init__.py").write_text("CORNER = 16\n")
    second = _identities(env)[realrun.PLUGIN_METHOD]
    assert second["version"] == first["version"] and second["code_digest"] != first["code_digest"]
    # A declared name that is not there does not count (and does not fail).
    (info / "top_level.txt").write_text(f"{PLUGIN_PACKAGE}\nexample_paste_helpers\nnot_installed_here\n")
    assert _identities(env)[realrun.PLUGIN_METHOD] == second


#: The smallest run that trains and scores: one subject, one prompt, one image, 2 training steps.
_ARGS = ("--method", "dreambooth", "--method", realrun.PLUGIN_METHOD, "--subjects", "dog", "--profile", "tiny",
         "--steps", "2", "--prompts", "1", "--images-per-prompt", "1")


def _install(src: Path, site: Path) -> None:
    """``pip install`` the plug-in at ``src`` into ``site`` (as :func:`realrun.install_plugin`; again: upgrade)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--upgrade",
                    "--target", str(site), str(src)], check=True, capture_output=True, text=True)


def _images(results: Path, label: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((results / "images" / label / "dog").glob("*.png"))}


def _subject_jobs(results: Path) -> dict[str, list[dict]]:
    """Label -> its subject job rows, in order of creation."""
    out: dict[str, list[dict]] = {}
    for r in sorted(realrun.job_rows(results).values(), key=lambda r: r["created"]):
        if r["kind"] == "subject":
            out.setdefault(r["label"], []).append(r)
    return out


def test_a_changed_plugin_reruns_its_jobs_and_nothing_else(tmp_path, dataset_dir):
    src = tmp_path / "plugin"
    shutil.copytree(realrun.PLUGIN_SRC, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = tmp_path / "site"
    _install(src, site)
    env = realrun.cli_env(site)
    results = tmp_path / "results"
    realrun.run_cli(["--results", results, "run", *_ARGS, "--data", dataset_dir], env)
    jobs1, images1 = _subject_jobs(results), _images(results, realrun.PLUGIN_METHOD)
    info1 = json.loads((results / "images" / realrun.PLUGIN_METHOD / "method.json").read_text())
    assert info1["method_identity"]["version"] == "0.1.0"

    # The scenario: generate changed (a red corner on every image), version bumped, reinstalled.
    code = src / PLUGIN_PACKAGE / "__init__.py"
    code.write_text(code.read_text().replace(
        "            out.append(scene)", "            scene.paste((255, 0, 0), (0, 0, 8, 8))\n            out.append(scene)"))
    toml = src / "pyproject.toml"
    toml.write_text(toml.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    _install(src, site)
    proc = realrun.run_cli(["--results", results, "run", *_ARGS, "--data", dataset_dir], env)

    jobs2 = _subject_jobs(results)
    # dreambooth: the same job, not run again; the plug-in: a new job, new images.
    assert [(r["id"], r["finished"], r["status"]) for r in jobs2["dreambooth"]] == \
        [(r["id"], r["finished"], "done") for r in jobs1["dreambooth"]]
    (old,) = jobs1[realrun.PLUGIN_METHOD]
    new = jobs2[realrun.PLUGIN_METHOD][-1]
    assert new["id"] != old["id"] and new["status"] == "done", proc.stderr[-2000:]
    # Not refused as a changed setting: the label's old outputs were moved aside, then deleted.
    assert f"label {realrun.PLUGIN_METHOD}: made by dreambench-example-plugin 0.1.0 code " in proc.stderr
    assert not (results / ".superseded" / realrun.PLUGIN_METHOD).exists()
    images2 = _images(results, realrun.PLUGIN_METHOD)
    assert images2.keys() == images1.keys() and all(images2[k] != images1[k] for k in images1)

    ident = json.loads((results / "images" / realrun.PLUGIN_METHOD / "method.json").read_text())["method_identity"]
    assert ident["provider"] == "dreambench-example-plugin" and ident["version"] == "0.2.0"
    assert ident["code_digest"] != info1["method_identity"]["code_digest"]
    db_ident = json.loads((results / "images" / "dreambooth" / "method.json").read_text())["method_identity"]
    assert db_ident["provider"] == "dreambench" and db_ident["revision"] == 1
    text = f"dreambench-example-plugin 0.2.0 code {ident['code_digest']}"

    # Score files: per method, in the method_identity provenance column and score_meta.json.
    scores = results / "scores"
    for name in ("per_image.csv", "aggregates.csv", "per_subject.csv"):
        df = pd.read_csv(scores / name, keep_default_na=False)
        by = dict(zip(df["method"], df["method_identity"]))
        assert by[realrun.PLUGIN_METHOD] == text, name
        assert by["dreambooth"].startswith("dreambench ") and by["dreambooth"].endswith(" r1"), name
    assert json.loads((scores / "score_meta.json").read_text())["methods"][realrun.PLUGIN_METHOD] == text

    # The tables' provenance header names it.
    header = [ln for ln in (results / "tables" / "table1_fidelity.csv").read_text().splitlines() if ln.startswith("#")]
    line = next(ln for ln in header if ln.startswith("# methods: "))
    assert f"{realrun.PLUGIN_METHOD}: {text}" in line and "dreambooth: dreambench " in line


def _tree(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_edited_editable_plugin_is_made_again_and_the_dry_run_says_so(tmp_path, dataset_dir):
    """The issue's other case: an editable install edited in place, same version. The dry run names the
    label it would make again (with its image count and both identities) and writes nothing; the run
    re-makes the plug-in's label and leaves pretrained's jobs alone."""
    site, pkg = _editable_site(tmp_path)
    env = realrun.cli_env(site)
    results = tmp_path / "results"
    args = ["--results", results, "run", "--method", "pretrained", "--method", realrun.PLUGIN_METHOD,
            "--subjects", "dog", "--profile", "tiny", "--prompts", "1", "--images-per-prompt", "2",
            "--data", dataset_dir]
    realrun.run_cli(args, env)
    jobs1, images1 = _subject_jobs(results), _images(results, realrun.PLUGIN_METHOD)
    old = json.loads((results / "images" / realrun.PLUGIN_METHOD / "method.json").read_text())["method_identity"]
    dry = realrun.run_cli([*args, "--dry-run"], env)
    assert "replaces: nothing" in dry.stdout  # the same code: nothing to re-make

    code = pkg / "__init__.py"
    code.write_text(code.read_text().replace(
        "            out.append(scene)", "            scene.paste((255, 0, 0), (0, 0, 8, 8))\n            out.append(scene)"))
    before = _tree(results)
    dry = realrun.run_cli([*args, "--dry-run"], env)
    line = next(ln for ln in dry.stdout.splitlines() if ln.startswith("would re-make"))
    assert line.startswith(f"would re-make label '{realrun.PLUGIN_METHOD}' (2 images): made by "
                           f"dreambench-example-plugin 0.1.0 code {old['code_digest']}, this run has "
                           "dreambench-example-plugin 0.1.0 code "), line
    assert "pretrained' (" not in dry.stdout
    assert _tree(results) == before

    realrun.run_cli(args, env)
    jobs2 = _subject_jobs(results)
    assert [(r["id"], r["finished"]) for r in jobs2["pretrained"]] == [(r["id"], r["finished"]) for r in jobs1["pretrained"]]
    assert jobs2[realrun.PLUGIN_METHOD][-1]["id"] != jobs1[realrun.PLUGIN_METHOD][0]["id"]
    images2 = _images(results, realrun.PLUGIN_METHOD)
    assert images2.keys() == images1.keys() and all(images2[k] != images1[k] for k in images1)
    new = json.loads((results / "images" / realrun.PLUGIN_METHOD / "method.json").read_text())["method_identity"]
    assert new["version"] == "0.1.0" and new["code_digest"] != old["code_digest"] and new["code_digest"] in line
