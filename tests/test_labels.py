"""The researcher's loop (issue 19, parts 1 and 2), from real CLI runs on the tiny profile.

- labels are chosen by the user: ``--method LABEL=METHOD`` with ``--set LABEL.key=value``; two configs
  of one method sit in one results folder and one Table 1;
- replacing is explicit: a label re-run with another config is refused (exit 2, one line naming the
  label and the settings that differ, every file byte-identical) unless ``--replace LABEL``; ``--dry-run``
  lists what it would replace with the image count;
- ``tables A B`` of two folders holding different jobs under one label suggests ``--relabel``, which works.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import realrun

from dreambench.engine.plan import parse_method_label, parse_sets
from dreambench.errors import DreambenchError

ARGS = ("--profile", "tiny", "--steps", "2", "--prompts", "1", "--images-per-prompt", "1", "--no-score")
TWO = ("--method", "dreambooth", "--method", "db-fast=dreambooth", "--set", "db-fast.lr=1e-3")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run(results: Path, data: Path, env: dict, *extra: str, check: bool = True, score: bool = False):
    args = ["--results", results, "run", "--subjects", "dog,backpack", "--data", data,
            *[a for a in ARGS if score is False or a != "--no-score"], *extra]
    return realrun.run_cli(args, env, check=check)


def test_parse_method_label_and_per_label_sets():
    assert parse_method_label("dreambooth") == ("dreambooth", "dreambooth")
    assert parse_method_label("db-lr1e6=dreambooth") == ("db-lr1e6", "dreambooth")
    with pytest.raises(DreambenchError, match="not a valid name"):
        parse_method_label("../x=dreambooth")
    labels = {"a": "dreambooth", "b": "dreambooth", "real": "real"}
    out = parse_sets(["lr=1e-4", "a.lr=1e-6", "dreambooth.steps=7"], labels)
    assert out["a"] == {"lr": "1e-6", "steps": "7"}  # a label's own setting wins over the bare key
    assert out["b"] == {"lr": "1e-4", "steps": "7"}  # a method prefix reaches every label of that method
    assert out["real"] == {}
    with pytest.raises(DreambenchError, match="neither a label nor a method"):
        parse_sets(["c.lr=1"], labels)


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory, dataset_dir, cli_env) -> Path:
    """Two configs of dreambooth (learning rates) in one folder, scored, with tables."""
    res = tmp_path_factory.mktemp("labels") / "r"
    _run(res, dataset_dir, cli_env, *TWO, score=True)
    return res


def test_two_configs_of_one_method_in_one_table1(two_labels):
    rows = list(csv.DictReader(l for l in (two_labels / "tables" / "table1_fidelity.csv").open()
                               if not l.startswith("#")))
    methods = [r["method"] for r in rows]
    assert "dreambooth" in methods and "db-fast" in methods, methods
    import json

    info = {lb: json.loads((two_labels / "images" / lb / "method.json").read_text()) for lb in ("dreambooth", "db-fast")}
    assert info["db-fast"]["method"] == info["dreambooth"]["method"] == "dreambooth"
    assert info["db-fast"]["config"]["lr"] == 1e-3 and info["dreambooth"]["config"]["lr"] != 1e-3


def test_changed_config_is_refused_without_replace(two_labels, tmp_path, dataset_dir, cli_env):
    res = realrun.copy_run(two_labels, tmp_path / "r")
    before = _digest(res)
    changed = ("--method", "dreambooth", "--method", "db-fast=dreambooth", "--set", "db-fast.lr=1e-4")
    proc = _run(res, dataset_dir, cli_env, *changed, check=False, score=True)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert "label 'db-fast' (2 images) was made with other settings: lr 0.001 -> 0.0001" in lines[0]
    assert "--replace db-fast" in lines[0]
    assert _digest(res) == before  # refused before anything was written
    both = ("--method", "dreambooth", "--method", "db-fast=dreambooth", "--set", "lr=1e-4")
    proc = _run(res, dataset_dir, cli_env, *both, check=False, score=True)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr  # one line per label, each an error line
    assert all(x.startswith("error: label '") for x in lines), proc.stderr
    assert _digest(res) == before

    dry = _run(res, dataset_dir, cli_env, *changed, "--dry-run", check=False, score=True)
    assert dry.returncode == 2 and "--replace db-fast" in dry.stderr  # refused as run refuses it (issue 25)...
    assert "would replace label 'db-fast' (2 images)" in dry.stdout and "refused without --replace" in dry.stdout
    assert "dreambooth' (" not in dry.stdout  # ...after listing what it would replace; the unchanged label is not
    assert _digest(res) == before

    old_fast = _digest(res / "images" / "db-fast")
    old_db = _digest(res / "images" / "dreambooth")
    _run(res, dataset_dir, cli_env, *changed, "--replace", "db-fast", score=True)
    assert _digest(res / "images" / "dreambooth") == old_db  # the other label is untouched
    new_fast = _digest(res / "images" / "db-fast")
    assert new_fast.keys() == old_fast.keys()
    pngs = [k for k in new_fast if k.endswith(".png")]
    assert pngs and any(new_fast[k] != old_fast[k] for k in pngs)  # trained again with the new lr
    assert not (res / ".superseded").exists()
    # The same command again is a no-op: the recorded settings are the new ones.
    again = _run(res, dataset_dir, cli_env, *changed, score=True)
    assert "0 run now" in again.stdout


def test_merge_of_one_label_from_two_folders_suggests_relabel(two_labels, tmp_path, dataset_dir, cli_env):
    other = tmp_path / "other"
    _run(other, dataset_dir, cli_env, "--method", "db-fast=dreambooth", "--set", "db-fast.lr=5e-4", score=True)
    out = tmp_path / "merged"
    proc = realrun.run_cli(["tables", two_labels, other, "--out", out], cli_env, check=False)
    assert proc.returncode != 0
    hint = f"--relabel {other}:db-fast=db-fast-2"
    assert hint in proc.stderr, proc.stderr
    realrun.run_cli(["tables", two_labels, other, "--out", out, *hint.split(" ", 1)], cli_env)
    rows = list(csv.DictReader(l for l in (out / "table1_fidelity.csv").open() if not l.startswith("#")))
    assert {"dreambooth", "db-fast", "db-fast-2"} <= {r["method"] for r in rows}
    # A --relabel that itself clashes: the hint names the folder's own label and a name nobody shows.
    proc = realrun.run_cli(["tables", two_labels, other, "--out", out, "--relabel", f"{other}:db-fast=dreambooth"],
                           cli_env, check=False)
    hint = f"--relabel {other}:db-fast=dreambooth-2"
    assert proc.returncode != 0 and hint in proc.stderr, proc.stderr
    realrun.run_cli(["tables", two_labels, other, "--out", out, *hint.split(" ", 1)], cli_env)


def test_label_all_is_reserved_for_replace_all():
    with pytest.raises(DreambenchError, match="label 'all' is reserved"):
        parse_method_label("all=dreambooth")


def test_changed_sample_steps_is_refused_before_any_work(two_labels, tmp_path, dataset_dir, cli_env):
    """--sample-steps changes every image of a label: refused up front like any other setting (it used to
    pass the check, run the class-image jobs, then fail every subject job on method.json), the profile's
    own default given explicitly is no change, and --replace all accepts it."""
    from dreambench.models.profiles import get_profile

    res = realrun.copy_run(two_labels, tmp_path / "r")
    before = _digest(res)
    proc = _run(res, dataset_dir, cli_env, *TWO, "--sample-steps", "3", check=False, score=True)
    assert proc.returncode == 2, proc.stderr
    for label in ("dreambooth", "db-fast"):
        assert f"label '{label}' (2 images) was made with other settings: sample_steps 0 -> 3" in proc.stderr
        assert f"--replace {label}" in proc.stderr
    assert _digest(res) == before

    default = str(get_profile("tiny").sample_steps_default)
    dry = _run(res, dataset_dir, cli_env, *TWO, "--sample-steps", default, "--dry-run", score=True)
    assert "replaces: nothing" in dry.stdout
    assert _digest(res) == before

    old = _digest(res / "images" / "db-fast")
    _run(res, dataset_dir, cli_env, *TWO, "--sample-steps", "3", "--replace", "all", score=True)
    import json

    assert json.loads((res / "images" / "db-fast" / "method.json").read_text())["config"]["sample_steps"] == 3
    new = _digest(res / "images" / "db-fast")
    assert any(new[k] != old[k] for k in new if k.endswith(".png"))


def test_refusal_suggests_a_label_that_is_free(two_labels, tmp_path, dataset_dir, cli_env):
    """The refusal's "give this config another label" names a label neither the folder nor the run uses."""
    res = realrun.copy_run(two_labels, tmp_path / "r")
    changed = ("--method", "dreambooth", "--method", "db-fast=dreambooth", "--method", "db-fast-2=dreambooth",
               "--set", "db-fast.lr=1e-4")
    proc = _run(res, dataset_dir, cli_env, *changed, "--dry-run", check=False, score=True)
    assert proc.returncode == 2 and "(--method db-fast-3=dreambooth)" in proc.stderr, proc.stderr
