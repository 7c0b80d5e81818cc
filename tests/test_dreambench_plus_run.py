"""DreamBench++ as a protocol, end to end through the real CLI (tiny model profile: random-init weights, so
the numbers test the plumbing, not quality): a folder of its layout built from DreamBooth photos is fetched
from a zip and prepared, `protocol show` lists its per-subject prompts, `run --protocol dreambench-plus`
with the `dreambench-plus` recipes trains and samples one image per prompt, its table breaks each metric
down by category and prompt group, and a label exported to the reference layout and imported back scores
identically."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import realrun
from dbplus_folder import build_folder, build_zip, pinned

from dreambench.data.dreambench_plus.layout import read_layout
from dreambench.data.dreambench_plus.protocol import prepare
from dreambench.data.dreambench_plus.source import fetch
from dreambench.tables.dreambench_plus import BREAKDOWNS

#: One subject per category, two methods (one of which learns a token) and the protocol's 9 prompts.
METHODS = ("dreambooth", "textual-inversion")
RUN_ARGS = ("--profile", "tiny", "--recipe", "dreambench-plus", "--steps", "3", "--sample-steps", "2")


@pytest.fixture(scope="module")
def plus(dataset_dir, tmp_path_factory):
    """The DreamBench++ data fetched from a zip of the built folder and prepared; its env and subjects."""
    tmp = tmp_path_factory.mktemp("dbp-run")
    archive = build_zip(build_folder(dataset_dir, tmp / "built", per_category=1), tmp / "data.zip")
    data = fetch(tmp / "plus", archive, source=pinned(archive)).folder
    prepare(data)
    env = realrun.cli_env(DREAMBENCH_PLUS_DATA=str(data))
    subjects = [s.collection_id for s in read_layout(data)]
    return {"data": data, "env": env, "subjects": subjects, "tmp": tmp}


@pytest.fixture(scope="module")
def run(plus):
    results = plus["tmp"] / "results"
    args = ["--results", results, "run", "--protocol", "dreambench-plus", "--subjects", ",".join(plus["subjects"]),
            *[x for m in METHODS for x in ("--method", m)], *RUN_ARGS]
    out = realrun.run_cli([str(a) for a in args], plus["env"])
    return {"results": results, "out": out, "args": args}


def test_protocol_show_lists_every_prompt_of_every_subject(plus):
    out = realrun.run_cli(["protocol", "show", "--protocol", "dreambench-plus", "--json"], plus["env"]).stdout
    records = json.loads(out)
    captions = {s.collection_id: s for s in read_layout(plus["data"])}
    assert [r["name"] for r in records] == sorted(captions)
    for r in records:
        s = captions[r["name"]]
        assert (r["class"], r["kind"]) == (s.subject, s.category)
        assert r["prompts"] == list(s.prompts)  # the captions as written: no identifier
        assert r["categories"] == ["photorealistic"] * 4 + ["style_transfer"] * 3 + ["imaginative"] * 2


def test_the_run_uses_the_protocols_conventions(run, plus):
    results = run["results"]
    manifest = pd.read_csv(results / "images" / "manifest.csv", keep_default_na=False)
    assert set(manifest["method"]) == set(METHODS)
    # one image per prompt (the protocol's default), 9 prompts, every subject
    counts = manifest.groupby(["method", "subject"]).size()
    assert (counts == 9).all() and len(counts) == len(METHODS) * len(plus["subjects"])
    captions = {s.collection_id: s for s in read_layout(plus["data"])}
    for row in manifest.to_dict("records"):
        s = captions[row["subject"]]
        caption = s.prompts[int(row["prompt_index"])]
        assert row["prompt_plain"] == caption
        # dreambooth sees the caption as written; textual inversion its token in the noun's place
        expected = caption if row["method"] == "dreambooth" else caption.replace(s.subject, "<sks>")
        assert row["prompt"] == expected
    for label in METHODS:
        info = json.loads((results / "images" / label / "method.json").read_text())
        assert info["recipe"] == "dreambench-plus"
        assert info["config"]["with_prior_preservation"] is False and info["config"]["sampler"] == "pndm"
    assert not (results / "class_images").exists() or not any((results / "class_images").rglob("*.png"))


def test_its_table_breaks_each_metric_down(run, plus):
    tables = run["results"] / "tables"
    df = pd.read_csv(tables / "table7_dreambench_plus.csv", comment="#")
    assert set(df["method"]) == set(METHODS) and set(df["metric"]) == {"DINO", "CLIP-I", "CLIP-T"}
    per_image = pd.read_csv(run["results"] / "scores" / "per_image.csv", keep_default_na=False)
    for row in df.to_dict("records"):
        assert all(pd.notna(row[b]) for b in BREAKDOWNS), row
        assert row["n_subjects"] == len(plus["subjects"])
        column = {"DINO": "dino", "CLIP-I": "clip_i", "CLIP-T": "clip_t"}[row["metric"]]
        mine = per_image[per_image["method"] == row["method"]]
        animal = mine[mine["subject"].str.startswith("live_subject_animal_")][column].astype(float).mean()
        imaginative = mine[mine["prompt_index"].astype(int) >= 7].groupby("subject")[column].apply(
            lambda v: v.astype(float).mean()).mean()
        assert row["animal"] == pytest.approx(animal) and row["imaginative"] == pytest.approx(imaginative)
        assert row["overall"] == pytest.approx(mine[column].astype(float).mean())
    md = (tables / "table7_dreambench_plus.md").read_text()
    assert "random-init weights: not quality results" in md
    out = plus["tmp"] / "with-reference"
    realrun.run_cli(["tables", str(run["results"]), "--reference", "dreambench-plus", "--out", str(out)], plus["env"])
    ref = pd.read_csv(out / "table7_dreambench_plus.csv", comment="#")
    reported = ref[ref["source"] == "reported"].set_index(["name", "metric"])["overall"]
    assert reported[("DreamBooth (SD1.5) (reported)", "CP")] == 0.494
    assert reported[("DreamBooth-LoRA (SDXL) (reported)", "PF")] == 0.865
    assert (ref[ref["source"] == "measured"]["method"].isin(METHODS)).all()


def test_the_dry_run_estimates_the_protocols_work(plus):
    args = ["--results", str(plus["tmp"] / "dry"), "run", "--protocol", "dreambench-plus", "--method", "dreambooth",
            "--dry-run", *RUN_ARGS]
    out = realrun.run_cli(args, plus["env"])
    text = out.stdout + out.stderr
    n = len(plus["subjects"])
    assert f"{n} subject, " in text and f"images: {n * 9}; training steps: {n * 3}" in text, text
    assert "estimated device-hours" in text and not (plus["tmp"] / "dry").exists()


def test_export_then_import_scores_identically(run, plus):
    results, env, data = run["results"], plus["env"], plus["data"]
    samples = plus["tmp"] / "samples-png"
    realrun.run_cli(["--results", str(results), "export-samples", str(samples), "--label", "dreambooth",
                     "--data", str(data), "--format", "png"], env)
    assert sorted(p.name for p in (samples / "tgt_image" / plus["subjects"][0]).iterdir())[:2] == ["0_0.png", "1_0.png"]
    realrun.run_cli(["--results", str(results), "import-samples", str(samples), "--label", "back",
                     "--data", str(data)], env)
    realrun.run_cli(["--results", str(results), "score", "--subjects", str(data / "subjects"), "--model-profile",
                     "tiny", "--metric-profile", "dreambench-plus", "-q"], env)
    per_image = pd.read_csv(results / "scores" / "per_image.csv", keep_default_na=False)
    key = ["subject", "prompt_index"]
    a = per_image[per_image["method"] == "dreambooth"].set_index(key).sort_index()
    b = per_image[per_image["method"] == "back"].set_index(key).sort_index()
    assert len(a) == len(b) == 9 * len(plus["subjects"])
    assert list(a["image_sha256"]) == list(b["image_sha256"])  # the very pixels came back
    for column in ("dino", "clip_i", "clip_t"):  # equal up to float noise of batching the embeddings differently
        assert a[column].astype(float).to_numpy() == pytest.approx(b[column].astype(float).to_numpy(), rel=1e-6), column


def test_the_judge_adds_cp_and_pf_to_its_table(run, plus):
    from judge_server import ChatServer
    from test_judge_requests import RUBRICS

    if not (RUBRICS / "prompts" / "user_prompt_text_full.txt").is_file():
        pytest.skip(f"DreamBench++ rubrics not found at {RUBRICS}")
    results = plus["tmp"] / "judged"
    realrun.copy_run(run["results"], results)
    env = {**plus["env"], "DREAMBENCH_JUDGE_RUBRICS": str(RUBRICS), "OPENAI_API_KEY": "k"}
    with ChatServer() as srv:
        realrun.run_cli(["judge", str(results), "--base-url", srv.base_url, "--runs", "1", "--labels", "dreambooth",
                         "-q"], env)
    n_items = 9 * len(plus["subjects"])
    assert len(srv.requests) == 2 * n_items  # CP and PF of image 0 of each prompt, the one label asked
    realrun.run_cli(["tables", str(results), "--out", str(results / "t")], env)
    df = pd.read_csv(results / "t" / "table7_dreambench_plus.csv", comment="#").set_index(["method", "metric"])
    cp, pf = df.loc[("dreambooth", "CP")], df.loc[("dreambooth", "PF")]
    assert cp["judged"] == pf["judged"] == f"{n_items}/{n_items}"
    assert 0 <= cp["overall"] <= 1 and all(pd.notna(cp[k]) for k in ("animal", "human", "object", "style"))
    assert all(pd.notna(pf[g]) for g in ("photorealistic", "style_transfer", "imaginative"))
    product = round(cp["overall"], 3) * round(pf["overall"], 3)  # printed to 3 decimals, as the reference does
    assert df.loc[("dreambooth", "CP·PF"), "overall"] == pytest.approx(round(product, 3))


def test_a_plug_in_runs_on_it_unchanged(run, plus, plugin_site):
    """The example plug-in (written for the DreamBooth protocol) added later to the same folder: it gets the
    one reference image and the per-subject prompts, and joins the table."""
    results = plus["tmp"] / "with-plugin"
    realrun.copy_run(run["results"], results)
    env = realrun.cli_env(plugin_site, DREAMBENCH_PLUS_DATA=str(plus["data"]))
    realrun.run_cli(["--results", str(results), "run", "--protocol", "dreambench-plus", "--method",
                     realrun.PLUGIN_METHOD, "--subjects", ",".join(plus["subjects"]), "--profile", "tiny",
                     "--sample-steps", "2"], env)
    manifest = pd.read_csv(results / "images" / "manifest.csv", keep_default_na=False)
    mine = manifest[manifest["method"] == realrun.PLUGIN_METHOD]
    assert len(mine) == 9 * len(plus["subjects"]) and (mine["prompt"] == mine["prompt_plain"]).all()
    df = pd.read_csv(results / "tables" / "table7_dreambench_plus.csv", comment="#")
    assert set(df["method"]) == {*METHODS, realrun.PLUGIN_METHOD}


def test_dreambooth_lora_on_sdxl_runs_its_recipe(plus):
    """Issue 24 on this protocol: the `dreambench-plus` recipe of dreambooth-lora resolves to its SDXL setting
    on an SDXL profile (lr 5e-5, Euler, constant time ids, no prior preservation) and the run makes the table."""
    results = plus["tmp"] / "sdxl"
    realrun.run_cli(["--results", str(results), "run", "--protocol", "dreambench-plus", "--method", "dreambooth-lora",
                     "--recipe", "dreambench-plus", "--profile", "tiny-sdxl", "--steps", "2", "--sample-steps", "2",
                     "--subjects", ",".join(plus["subjects"][:2])], plus["env"])
    info = json.loads((results / "images" / "dreambooth-lora" / "method.json").read_text())
    config = info["config"]
    assert (info["recipe"], info["sd_family"]) == ("dreambench-plus", "sdxl")
    assert (config["lr"], config["sampler"], config["time_ids"], config["with_prior_preservation"]) == (
        5e-5, "euler", "constant", False)
    df = pd.read_csv(results / "tables" / "table7_dreambench_plus.csv", comment="#")
    assert set(df["method"]) == {"dreambooth-lora"} and (df["n_subjects"] == 2).all()
