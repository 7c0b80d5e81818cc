"""A method run later into the same folder, or into a second folder: `status` shows every run's labels,
`run --name` is recorded, and `tables A B --out` builds one table set (refusing incomparable folders and
conflicting labels). All from real CLI runs (tiny profile)."""

from __future__ import annotations

import pandas as pd
import pytest
import realrun

LORA_NAME = "DreamBooth-LoRA (ours)"


@pytest.fixture(scope="module")
def later(tiny_results, dataset_dir, cli_env, tmp_path_factory) -> object:
    """tiny_results plus a second `run` of dreambooth-lora (with --name) in the same folder."""
    res = realrun.copy_run(tiny_results, tmp_path_factory.mktemp("later") / "r")
    realrun.tiny_run(res, dataset_dir, cli_env, methods=("dreambooth-lora",),
                     extra=("--name", f"dreambooth-lora={LORA_NAME}"))
    return res


def read_csv(path):
    return pd.read_csv(path, comment="#", keep_default_na=False)


def test_status_groups_every_label_by_its_run(later, cli_env):
    out = realrun.run_cli(["--results", later, "status"], cli_env).stdout
    first, second = out.index("run 1 ("), out.index("run 2 (")
    assert first < second
    block1, block2 = out[first:second], out[second:]
    for label in realrun.TINY_METHODS:
        assert f"subject      {label:<26}" in block1, label
        assert f"subject      {label:<26}" not in block2, label
    assert f"subject      {'dreambooth-lora':<26}" in block2 and "--method dreambooth-lora" in block2
    assert "labels: dreambooth, dreambooth-lora," in out
    import json
    rows = json.loads(realrun.run_cli(["--results", later, "status", "--json"], cli_env).stdout)
    runs = {r["label"]: r["run"] for r in rows if r["kind"] == "subject"}
    assert runs["dreambooth-lora"] == 2 and runs["dreambooth"] == 1


def test_run_name_is_recorded_and_used_by_tables(later):
    import json
    assert json.loads((later / "names.json").read_text()) == {"dreambooth-lora": LORA_NAME}
    t1 = read_csv(later / "tables" / "table1_fidelity.csv")  # written by the run's tables job
    from dreambench.tables import select
    from dreambench.tables.load import load_results
    res = load_results(later)
    if "dreambooth-lora" in select.main_labels(res.labels, res.infos):
        assert dict(zip(t1["method"], t1["name"]))["dreambooth-lora"] == LORA_NAME


def test_two_folders_one_table_set(tiny_results, later, cli_env, tmp_path):
    from dreambench.tables import select
    from dreambench.tables.load import load_results

    out = tmp_path / "paper"
    realrun.run_cli(["tables", tiny_results, later, "--out", out, "--reference", "paper"], cli_env)
    t1 = read_csv(out / "table1_fidelity.csv")
    measured = t1[t1["source"] == "measured"]
    res = load_results(later)  # holds every label of both folders
    assert list(measured["method"]) == ["Real Images", *select.main_labels(res.labels, res.infos)]
    assert measured["method"].is_unique  # labels in both folders (same jobs) are counted once
    readme = (out / "README.md").read_text()
    assert f"run: {tiny_results.name} + {later.name}" in readme
    # The merged figures of a label equal that folder's own figures.
    own = read_csv(tiny_results / "tables" / "table1_fidelity.csv")
    for lab in set(own["method"]) & set(measured["method"]):
        assert own.set_index("method").loc[lab, "dino"] == measured.set_index("method").loc[lab, "dino"]


def test_conflicting_label_and_other_metric_profile_refused(tiny_results, dataset_dir, cli_env, tmp_path):
    other = realrun.tiny_run(tmp_path / "seed1", dataset_dir, cli_env, methods=("pretrained",),
                             extra=("--seed", "1"))
    proc = realrun.run_cli(["tables", tiny_results, other, "--out", tmp_path / "t"], cli_env, check=False)
    assert proc.returncode == 2 and "'pretrained'" in proc.stderr and "different jobs" in proc.stderr
    assert not (tmp_path / "t").exists()

    x100 = realrun.copy_run(tiny_results, tmp_path / "x100")
    realrun.run_cli(["--results", x100, "score", "--metric-profile", "x100", "--model-profile", "tiny", "-q",
                     "--subjects", dataset_dir], cli_env)
    proc = realrun.run_cli(["tables", tiny_results, x100, "--out", tmp_path / "t"], cli_env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot merge")
    assert "metric profile paper vs x100" in proc.stderr
    assert not (tmp_path / "t").exists()


def test_score_profile_old_spelling_warns(tiny_results, dataset_dir, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    proc = realrun.run_cli(["--results", res, "score", "--profile", "paper", "--model-profile", "tiny", "-q",
                            "--subjects", dataset_dir], cli_env)
    assert "deprecated" in proc.stderr and "--metric-profile" in proc.stderr
    proc = realrun.run_cli(["--results", res, "score", "--profile", "paper", "--metric-profile", "x100",
                            "--model-profile", "tiny", "-q", "--subjects", dataset_dir], cli_env, check=False)
    assert proc.returncode == 2 and "disagree" in proc.stderr


def test_a_method_added_later_joins_the_baselines_table(later):
    """The researcher's path: baselines run once, their own method run later into the same folder; the
    second run's tables hold both (the merge takes every current score part on disk, not only its own)."""
    t1 = read_csv(later / "tables" / "table1_fidelity.csv")
    assert {"dreambooth", "textual-inversion", "pretrained", "example-paste"} <= set(t1["method"])
    assert LORA_NAME in set(t1["name"])
