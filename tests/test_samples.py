"""The DreamBench++ samples layout both ways, through the real CLI: a samples folder written as the reference
code writes one is imported and scored (tiny model profile: random-init weights, so the numbers test the
plumbing, not quality); a label exported and imported back scores identically; every bad input is refused
before anything is written."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import realrun
from dbplus_folder import build_folder, build_samples
from PIL import Image

from dreambench.data.dreambench_plus.layout import read_layout
from dreambench.data.dreambench_plus.subject_folders import write_subject_folders
from dreambench.errors import DataError
from dreambench.samples.exporter import export_samples
from dreambench.samples.importer import import_samples
from dreambench.samples.layout import read_samples

SCORE_ARGS = ("--model-profile", "tiny", "--metric-profile", "dreambench-plus", "-q")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return realrun.cli_env()


@pytest.fixture(scope="module")
def data(dataset_dir, tmp_path_factory) -> Path:
    return build_folder(dataset_dir, tmp_path_factory.mktemp("dbp") / "data", per_category=1)


@pytest.fixture(scope="module")
def samples(data, tmp_path_factory) -> Path:
    return build_samples(data, tmp_path_factory.mktemp("samples") / "dreambooth_sd_gs7_5_step100_seed42")


@pytest.fixture(scope="module")
def scored(data, samples, env, tmp_path_factory) -> dict:
    """Import ``samples`` as ``ref``; export it (png) and import that as ``back``; export it (jpg) too;
    score the results folder once."""
    tmp = tmp_path_factory.mktemp("scored")
    results = tmp / "results"
    run = lambda *a, **kw: realrun.run_cli([str(x) for x in a], env, **kw)
    out = run("--results", results, "import-samples", samples, "--label", "ref", "--data", data)
    run("--results", results, "export-samples", tmp / "png", "--label", "ref", "--data", data, "--format", "png")
    run("--results", results, "import-samples", tmp / "png", "--label", "back", "--data", data)
    run("--results", results, "export-samples", tmp / "jpg", "--label", "ref", "--data", data)
    subjects = write_subject_folders(data, tmp / "subjects", read_layout(data))
    run("--results", results, "score", "--subjects", subjects, *SCORE_ARGS)
    per_image = pd.read_csv(results / "scores" / "per_image.csv", keep_default_na=False)
    return {"results": results, "per_image": per_image, "import_out": out.stdout, "tmp": tmp}


def test_import_writes_pngs_a_manifest_and_method_json(scored, samples, data):
    images = scored["results"] / "images"
    assert "24 images of 4 subjects imported as 'ref'" in scored["import_out"]
    manifest = pd.read_csv(images / "manifest.csv", keep_default_na=False)
    ref = manifest[manifest["method"] == "ref"]
    assert len(ref) == 24
    row = ref[(ref["subject"] == "live_subject_human_00_young_man") & (ref["prompt_index"] == 4)
              & (ref["seed"] == 1)].iloc[0]
    assert row["path"] == "ref/live_subject_human_00_young_man/04_1.png"
    assert row["prompt"] == row["prompt_plain"] == "a watercolor painting of a young man"
    assert row["category"] == "style_transfer"
    with Image.open(images / row["path"]) as im, Image.open(
            samples / "tgt_image/live_subject_human_00_young_man/4_1.jpg") as src:
        assert im.format == "PNG" and (np.asarray(im.convert("RGB")) == np.asarray(src.convert("RGB"))).all()
    info = json.loads((images / "ref" / "method.json").read_text())
    assert info["role"] == {"table": "main"} and "seed" in info["imported"]


def test_imported_samples_are_scored(scored):
    ref = scored["per_image"][scored["per_image"]["method"] == "ref"]
    assert len(ref) == 24
    assert set(ref["subject"]) == {"live_subject_animal_00_corgi_dog", "live_subject_human_00_young_man",
                                   "object_00_backpack", "style_00_ukiyo-e_painting"}
    for col in ("dino", "clip_i", "clip_t"):
        assert pd.to_numeric(ref[col]).notna().all(), col
    assert not (scored["results"] / "scores" / "errors.csv").is_file() or \
        len((scored["results"] / "scores" / "errors.csv").read_text().strip().splitlines()) <= 1


def test_export_then_import_scores_identically(scored):
    pi = scored["per_image"]
    key = ["subject", "prompt_index", "seed"]
    cols = ["dino", "clip_i", "clip_t"]
    a = pi[pi["method"] == "ref"].set_index(key)[cols].sort_index()
    b = pi[pi["method"] == "back"].set_index(key)[cols].sort_index()
    assert len(a) == 24
    pd.testing.assert_frame_equal(a, b)


def test_the_export_is_the_reference_layout(scored, samples):
    """The jpg export has the reference's files, texts and pairing (eval_clip_and_dino.py pairs the sorted
    globs of src_image and tgt_image by path without extension)."""
    jpg = scored["tmp"] / "jpg"
    names = lambda root: sorted(Path(p).relative_to(root).as_posix() for p in glob.glob(f"{root}/*/*/*"))
    assert names(jpg) == names(samples)
    for tree in ("src_image", "tgt_image"):
        for p in (jpg / tree).rglob("*.jpg"):
            with Image.open(p) as im:
                assert im.format == "JPEG"
    d1, d2 = f"{jpg}/src_image/", f"{jpg}/tgt_image/"
    src = sorted(glob.glob(os.path.join(d1, "**/*.jpg"), recursive=True))
    tgt = sorted(glob.glob(os.path.join(d2, "**/*.jpg"), recursive=True))
    assert [a.split(d1)[-1].split(".")[0] for a in src] == [b.split(d2)[-1].split(".")[0] for b in tgt]
    for p in (samples / "text").rglob("*.txt"):
        assert (jpg / p.relative_to(samples)).read_text() == p.read_text()  # no trailing newline, as written


# -- refusals (library calls: the CLI prints the same DataError as one line, exit 2) ------------------------

@pytest.fixture()
def bad_samples(samples, tmp_path) -> Path:
    return Path(shutil.copytree(samples, tmp_path / "s"))


@pytest.mark.parametrize("damage, message", [
    (lambda s: (s / "text/object_00_backpack/0_1.txt").unlink(), "no text/object_00_backpack/0_1.* beside it"),
    (lambda s: (s / "tgt_image/object_00_backpack/0_5.jpg").write_bytes(b"x"), "no src_image/object_00_backpack/0_5"),
    (lambda s: (s / "tgt_image/object_00_backpack/0_0.png").write_bytes(b"x"), "a second file for sample"),
    (lambda s: (s / "tgt_image/object_00_backpack/first.jpg").write_bytes(b"x"), "unexpected entry"),
    (lambda s: (s / "text/object_00_backpack/4_0.txt").write_text(""), "empty prompt"),
    (lambda s: (s / "text/object_00_backpack/4_0.txt").write_text("a backpack on the moon"),
     "is not prompt 4 of object_00_backpack"),
    (lambda s: [shutil.copytree(s / t / "object_00_backpack", s / t / "object_09_lamp") for t in
                ("src_image", "tgt_image", "text")], "'object_09_lamp' is not a subject"),
    (lambda s: (s / "tgt_image/object_00_backpack/7_1.jpg").write_bytes(b"not a jpeg"), "not an image"),
    (lambda s: shutil.rmtree(s / "text"), "no text/ folder"),
])
def test_import_refuses_a_bad_samples_folder_before_writing(bad_samples, data, tmp_path, damage, message):
    damage(bad_samples)
    with pytest.raises(DataError) as e:
        import_samples(bad_samples, tmp_path / "r", "x", read_layout(data), data)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()


def test_a_truncated_image_fails_the_import_and_leaves_no_label(bad_samples, data, tmp_path):
    """The header check passes a cut-off JPEG; its decode fails while converting, in the hidden folder,
    which is removed: the results folder holds no label and no leftover."""
    f = bad_samples / "tgt_image/style_00_ukiyo-e_painting/7_1.jpg"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataError, match="7_1.jpg: unreadable or truncated"):
        import_samples(bad_samples, tmp_path / "r", "x", read_layout(data), data)
    assert list((tmp_path / "r" / "images").iterdir()) == []


def test_import_never_replaces_a_generated_label(samples, data, tmp_path):
    subjects = read_layout(data)
    import_samples(samples, tmp_path / "r", "x", subjects, data)
    with pytest.raises(DataError, match="already holds imported samples; pass --force"):
        import_samples(samples, tmp_path / "r", "x", subjects, data)
    res = import_samples(samples, tmp_path / "r", "x", subjects, data, force=True)
    assert res.images == 24
    (tmp_path / "r/images/gen").mkdir()
    (tmp_path / "r/images/gen/method.json").write_text(json.dumps({"method": "dreambooth"}))
    with pytest.raises(DataError, match="holds images the suite generated"):
        import_samples(samples, tmp_path / "r", "gen", subjects, data, force=True)
    with pytest.raises(DataError, match="not a valid name"):
        import_samples(samples, tmp_path / "r", "../x", subjects, data)


def test_export_refuses_to_overwrite_and_unknown_labels(scored, data, tmp_path):
    subjects = read_layout(data)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep").write_text("mine")
    with pytest.raises(DataError, match="not empty; pass --force"):
        export_samples(scored["results"], "ref", tmp_path / "dest", subjects, data)
    with pytest.raises(DataError, match="no images of label 'nope'; labels: back, ref"):
        export_samples(scored["results"], "nope", tmp_path / "other", subjects, data)
    assert (tmp_path / "dest" / "keep").read_text() == "mine" and not (tmp_path / "other").exists()
    res = export_samples(scored["results"], "ref", tmp_path / "dest", subjects, data, force=True)
    assert res.images == 24 and len(read_samples(tmp_path / "dest")) == 24


def test_export_refuses_a_label_of_other_subjects(tiny_results, data, tmp_path):
    """A DreamBooth-protocol label (subjects dog, backpack) has no DreamBench++ reference image."""
    with pytest.raises(DataError, match="is not a DreamBench\\+\\+ subject of"):
        export_samples(tiny_results, "dreambooth", tmp_path / "out", read_layout(data), data)
