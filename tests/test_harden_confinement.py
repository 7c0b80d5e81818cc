"""Issue 11, confinement: subject names, confined writes, manifest paths, exact custom protocols."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import realrun
from click.testing import CliRunner

from dreambench.cli import main
from dreambench.engine.plan import MethodRun, RunSpec, build_plan
from dreambench.engine.worker import Worker, WorkerContext
from dreambench.errors import DataError
from dreambench.io import ConfinementError, atomic_path, confined, write_roots, write_text_atomic
from dreambench.manifest import path_problem, read_manifest, row_problem
from dreambench.protocol import check_name, load_protocol

PROMPTS = "prompts:\n  live:\n    - {template: 'a {V} {class} in the jungle', category: recontextualization}\n"


def _protocol_dir(root: Path, subjects: str, prompts: str = PROMPTS) -> Path:
    root.mkdir(parents=True)
    (root / "subjects.csv").write_text("name,class,kind\n" + subjects)
    (root / "prompts.yaml").write_text(prompts)
    return root


@pytest.mark.parametrize("bad", ["../../../X", "a/b", "..", ".", "a\\b", "dog dog", "", "/etc"])
def test_subject_names_are_checked_where_they_enter(tmp_path, bad):
    with pytest.raises(DataError):
        check_name(bad)
    # a protocol file
    if bad.strip():
        proto = _protocol_dir(tmp_path / "p", f"{bad},dog,live\n")
        with pytest.raises(DataError, match="subjects.csv:2"):
            load_protocol(proto)
    # --subjects
    with pytest.raises(DataError, match="--subjects"):
        load_protocol("dreambooth").select([bad or "x/"])
    # a manifest row
    assert "refused" in row_problem(tmp_path, {"subject": bad, "method": "m", "path": "m/dog/00_0.png"})
    assert row_problem(tmp_path, {"subject": "dog_1.v-2", "method": "m", "path": "m/dog/00_0.png"}) is None


def test_run_with_a_traversing_protocol_row_writes_nothing(tmp_path, dataset_dir):
    proto = _protocol_dir(tmp_path / "evil", "../../../X,dog,live\n")
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["--results", str(results), "run", "--method", "real", "--profile", "tiny",
                                  "--protocol", str(proto), "--data", str(dataset_dir)])
    assert r.exit_code == 2, r.output
    assert "subjects.csv:2" in r.output and "not a valid name" in r.output
    assert not results.exists() and not (tmp_path.parent / "X").exists()


def test_writes_are_confined_and_symlinks_out_refused(tmp_path):
    root, outside = tmp_path / "results", tmp_path / "outside"
    (root / "images").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "images" / "dreambooth")
    with pytest.raises(ConfinementError):
        confined(root, "../x")
    with pytest.raises(ConfinementError):
        confined(root, root / "images" / "dreambooth" / "dog" / "00_0.png")
    assert confined(root, "images/ok/f.txt") == (root / "images" / "ok" / "f.txt").resolve()
    with write_roots(root):
        write_text_atomic(root / "images" / "ok" / "f.txt", "fine")
        for target in (root / "images" / "dreambooth" / "dog" / "x.txt", root / ".." / "escape.txt"):
            with pytest.raises(ConfinementError), atomic_path(target) as tmp:
                tmp.write_text("no")
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.txt").exists()
    assert (root / "images" / "ok" / "f.txt").read_text() == "fine"


def test_worker_job_cannot_write_through_a_symlink(tmp_path, dataset_dir):
    results, outside = tmp_path / "results", tmp_path / "outside"
    (results / "images").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, results / "images" / "real")
    spec = RunSpec([MethodRun("real", "real", {"size": 32})], subjects=["dog"], images_per_prompt=1, prompts=1)
    plan = build_plan(spec, load_protocol("dreambooth"))
    job = plan.by_kind("subject")[0].to_dict()
    res = Worker(WorkerContext(str(results), str(dataset_dir))).run(job)
    assert not res["ok"] and "ConfinementError" in res["error"], res
    assert list(outside.rglob("*")) == []


def _outside_png(tmp_path: Path, src: Path) -> Path:
    out = tmp_path / "secret" / "outside.png"
    out.parent.mkdir()
    shutil.copy(src, out)
    return out


def test_manifest_paths_stay_inside_images_folder(tiny_results, tmp_path, dataset_dir, cli_env):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    images = res / "images"
    df = read_manifest(images)
    good = df.iloc[0]
    secret = _outside_png(tmp_path, images / good["path"])
    os.symlink(secret, images / "real" / "link.png")
    evil = [str(secret), f"../../secret/{secret.name}", "real/link.png"]
    extra = pd.DataFrame([{**good.to_dict(), "path": p, "seed": 900 + i} for i, p in enumerate(evil)])
    pd.concat([df, extra]).to_csv(images / "manifest.csv", index=False)
    for p in evil:
        assert path_problem(images, p), p
    r = realrun.run_cli(["score", "--images", images, "--subjects", dataset_dir, "--out", res / "scores",
                         "--model-profile", "tiny", "--quiet"], cli_env, check=False)
    assert r.returncode == 1, r.stderr
    errors = pd.read_csv(res / "scores" / "errors.csv", keep_default_na=False)
    per_image = pd.read_csv(res / "scores" / "per_image.csv", keep_default_na=False)
    for p in evil:
        (msg,) = errors.loc[errors["path"] == p, "message"]
        assert "refused" in msg
        assert p not in set(per_image["path"])
    # study create: such rows are never served, and are listed beside the database
    import sqlite3

    from dreambench.study.questions import create_study

    db = tmp_path / "study.sqlite"
    with pytest.warns(UserWarning, match="refused"):
        create_study(db, res, good["method"], next(m for m in df["method"].unique() if m != good["method"]), 4,
                     data_dir=dataset_dir)
    served = {r[0] for r in sqlite3.connect(db).execute("SELECT relpath FROM images")}
    assert not served & set(evil)
    assert set(pd.read_csv(f"{db}.errors.csv")["path"]) == set(evil)


def test_custom_protocol_is_exact(tmp_path, dataset_dir, monkeypatch):
    a = _protocol_dir(tmp_path / "a" / "mine", "dog,dog,live\n")
    b = _protocol_dir(tmp_path / "b" / "mine", "dog,dog,live\n",
                      PROMPTS.replace("in the jungle", "on the moon"))
    spec = RunSpec([MethodRun("real", "real", {"size": 32})], images_per_prompt=1)
    monkeypatch.chdir(tmp_path / "a")
    plan_a = build_plan(spec, load_protocol("mine"))  # relative folder name, resolved to an absolute path
    plan_b = build_plan(spec, load_protocol(b))
    assert load_protocol("mine").source[0] == str(a.resolve() / "subjects.csv")
    ids_a, ids_b = {j.id for j in plan_a.jobs}, {j.id for j in plan_b.jobs}
    assert not ids_a & ids_b  # same name, other content: other jobs
    job = plan_b.by_kind("subject")[0].to_dict()
    assert job["spec"]["protocol_content"][1] == (b / "prompts.yaml").read_text()
    # a worker elsewhere, with no protocol folder to look up, runs exactly the planned protocol
    shutil.rmtree(tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    res = Worker(WorkerContext(str(tmp_path / "results"), str(dataset_dir))).run(job)
    assert res["ok"], res
    rows = pd.read_csv(tmp_path / "results" / "images" / "real" / "dog" / "manifest.csv")
    assert rows["prompt"].tolist() == ["a sks dog on the moon"]


def test_tables_and_report_do_not_write_through_a_symlink(tiny_results, tmp_path):
    from dreambench.report import write_report
    from dreambench.tables import write_tables

    res = realrun.copy_run(tiny_results, tmp_path / "r")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(res / "tables", ignore_errors=True)
    os.symlink(outside, res / "tables")
    with pytest.raises(ConfinementError):
        write_tables(res)
    with pytest.raises(ConfinementError):
        write_report(res, progress=False)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", [".run.lock", "state.sqlite"])
def test_run_lock_and_state_symlinked_out_are_refused(tmp_path, name):
    from test_engine_state import ScriptedBackend, _opts, _plan

    from dreambench.engine.runner import run_plan

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    results = tmp_path / "r"
    results.mkdir()
    os.symlink(victim, results / name)
    with pytest.raises(ConfinementError):
        run_plan(_plan(), _opts(results), backend=ScriptedBackend())
    assert victim.read_text() == "precious"
