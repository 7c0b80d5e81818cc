"""run_subject_job: outputs, resume, artifacts, input validation and the ablation knobs (tiny profile)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.engine import subject_job as jobmod
from dreambench.engine.subject_job import IdentifierWarning, SubjectJob, prepare_subject_data, run_subject_job
from dreambench.errors import DataError, DreambenchError
from dreambench.manifest import read_manifest
from dreambench.methods.dreambooth import DreamBooth
from dreambench.protocol import Prompt, Protocol, Subject
from dreambench.schema import MANIFEST_COLUMNS, METHOD_INFO_KEYS


@pytest.fixture(scope="module")
def pristine():
    from dreambench.models import get_profile, load_sd

    c = load_sd(get_profile("tiny"))
    return c, {n: copy.deepcopy(getattr(c, n).state_dict()) for n in ("unet", "vae", "text_encoder")}


@pytest.fixture
def sd(pristine):
    c, state = pristine
    yield c
    for n, s in state.items():
        getattr(c, n).load_state_dict(s)


def _protocol(class_noun: str = "dog") -> Protocol:
    prompts = [Prompt(0, "a {V} {class} in the jungle", "recontextualization"),
               Prompt(1, "a {V} {class} in the snow", "recontextualization")]
    subjects = [Subject("toy", class_noun, "live"), Subject("mug", "cup", "object"), Subject("box", "backpack", "object")]
    return Protocol("toyproto", subjects, {"live": prompts, "object": prompts})


def _write_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.full((256, 256, 3), 40 * i, np.uint8)  # the protocol's minimum short side
        a[40:180, 40:180] = (200, 30 * i, 90)
        Image.fromarray(a).save(folder / f"{i:02d}.png")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    _write_images(d / "toy", 3)
    return d


def _no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained although it should not have")

    monkeypatch.setattr(DreamBooth, "train", boom)
    monkeypatch.setattr(jobmod, "ensure_class_images", boom)


FAST = {"steps": 2, "num_class_images": 2, "sample_batch_size": 4}


def test_run_subject_job_writes_outputs_and_resumes(sd, data_dir, tmp_path, monkeypatch):
    res = tmp_path / "results"
    job = SubjectJob("dreambooth", "db-test", dict(FAST), recipe="tiny", subject="toy", images_per_prompt=2,
                     class_prompt_samples=1, seed=3, sample_steps=2)
    rows = run_subject_job(job, _protocol(), sd, data_dir, res, progress=False)
    assert len(rows) == 2 * 2 + 1
    assert [r["seed"] for r in rows[:2]] == [3000, 3001]
    assert rows[0]["prompt"] == "a sks dog in the jungle" and rows[0]["prompt_plain"] == "a dog in the jungle"
    assert rows[-1]["prompt_index"] == -1 and rows[-1]["prompt"] == "a dog"
    for r in rows:
        assert (res / "images" / r["path"]).is_file()
    manifest = read_manifest(res / "images")
    assert set(MANIFEST_COLUMNS) <= set(manifest.columns) and len(manifest) == 5
    info = json.loads((res / "images" / "db-test" / "method.json").read_text())
    assert set(METHOD_INFO_KEYS) <= set(info)
    assert info["ppl"] is True and info["recipe"] == "tiny" and info["weights"] == "random-init"
    assert info["config"]["steps"] == 2 and info["config"]["sample_steps"] == 2
    art = res / "artifacts" / "db-test" / "toy"
    assert (art / "unet.safetensors").is_file() and (art / "artifact.json").is_file()
    assert not list(art.glob("*.bin")) and not list(art.glob("*.pt"))
    class_dirs = list((res / "class_images").iterdir())
    assert len(class_dirs) == 1 and (class_dirs[0] / "done.json").is_file()
    assert len(list(class_dirs[0].glob("*.png"))) == 2
    job_info = json.loads((res / "images" / "db-test" / "toy" / "job.json").read_text())
    assert job_info["inputs"] == ["00.png", "01.png", "02.png"]

    # Re-run: everything on disk, nothing trains or generates.
    _no_training(monkeypatch)
    first = np.array(Image.open(res / "images" / rows[0]["path"])).astype(int)
    assert run_subject_job(job, _protocol(), sd, data_dir, res, progress=False) == rows
    # A lost image is regenerated from the saved artifact, as the first time (alone in its batch now, so
    # equal up to batched-kernel rounding: at most one 8-bit level).
    (res / "images" / rows[0]["path"]).unlink()
    run_subject_job(job, _protocol(), sd, data_dir, res, progress=False)
    assert np.abs(np.array(Image.open(res / "images" / rows[0]["path"])).astype(int) - first).max() <= 1

    # The same label with another config is refused instead of mixing images.
    other = dataclasses.replace(job, config={**FAST, "lr": 0.5})
    with pytest.raises(DreambenchError, match="another config"):
        run_subject_job(other, _protocol(), sd, data_dir, res, progress=False)


def test_generate_only_requires_the_artifact_and_keep_artifacts(sd, data_dir, tmp_path):
    res = tmp_path / "results"
    job = SubjectJob("dreambooth", "db", dict(FAST, with_prior_preservation="false"), recipe="tiny", subject="toy",
                     images_per_prompt=1, sample_steps=1)
    with pytest.raises(DreambenchError, match="dreambench train"):
        run_subject_job(job, _protocol(), sd, data_dir, res, progress=False, train_missing=False)
    rows = run_subject_job(job, _protocol(), sd, data_dir, res, keep_artifacts=False, progress=False)
    assert len(rows) == 2 and not (res / "artifacts" / "db" / "toy").exists()
    assert not (res / "class_images").exists()  # prior preservation off: no class images
    assert json.loads((res / "images" / "db" / "method.json").read_text())["ppl"] is False


def test_real_and_pretrained(sd, data_dir, tmp_path):
    res = tmp_path / "results"
    rows = run_subject_job(SubjectJob("real", "real", {"size": 32}, subject="toy", images_per_prompt=4), _protocol(),
                           None, data_dir, res, progress=False)
    imgs = [np.array(Image.open(res / "images" / r["path"])) for r in rows if r["prompt_index"] == 0]
    assert imgs[0].shape == (32, 32, 3)
    assert np.array_equal(imgs[0], imgs[3]) and not np.array_equal(imgs[0], imgs[1])  # k mod 3 photos
    assert json.loads((res / "images" / "real" / "method.json").read_text())["weights"] == "real"
    rows = run_subject_job(SubjectJob("pretrained", "pre", {}, subject="toy", images_per_prompt=1, sample_steps=1),
                           _protocol(), sd, data_dir, res, progress=False)
    assert rows[0]["prompt"] == "a dog in the jungle"  # identifier removed
    assert not (res / "artifacts").exists()


def test_bad_input_fails_before_any_model_work(sd, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    res = tmp_path / "results"
    job = SubjectJob("dreambooth", "db", dict(FAST), recipe="tiny", subject="toy")
    empty = tmp_path / "empty"
    (empty / "toy").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        run_subject_job(job, _protocol(), sd, empty, res, progress=False)
    bad = tmp_path / "bad"
    _write_images(bad / "toy", 2)
    (bad / "toy" / "03.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DataError, match="03.jpg"):
        run_subject_job(job, _protocol(), sd, bad, res, progress=False)
    good = tmp_path / "good"
    _write_images(good / "toy", 2)
    with pytest.raises(DataError, match="no class noun"):
        run_subject_job(job, _protocol(class_noun=""), sd, good, res, progress=False)
    data = prepare_subject_data(SubjectJob("dreambooth", "db", subject="toy", class_noun_mode="none"),
                                _protocol(class_noun=""), good)
    assert data.class_noun == ""
    with pytest.warns(IdentifierWarning, match="tokens"):
        prepare_subject_data(SubjectJob("dreambooth", "db", subject="toy", identifier="qwzxplkjhgfdsamnbv"),
                             _protocol(), good, sd.tokenizer)
    with pytest.raises(DreambenchError, match="class_noun_mode"):
        prepare_subject_data(SubjectJob("dreambooth", "db", subject="toy", class_noun_mode="sometimes"), _protocol(), good)
    with pytest.raises(DreambenchError, match="unknown method"):
        run_subject_job(SubjectJob("nope", "x", subject="toy"), _protocol(), sd, good, res)
    assert not res.exists()


def test_ablation_knobs(data_dir):
    proto = _protocol()
    wrong = prepare_subject_data(SubjectJob("dreambooth", "w", subject="toy", class_noun_mode="wrong", seed=1),
                                 proto, data_dir)
    assert wrong.class_noun in {"cup", "backpack"}
    again = prepare_subject_data(SubjectJob("dreambooth", "w", subject="toy", class_noun_mode="wrong", seed=1),
                                 proto, data_dir)
    assert again.class_noun == wrong.class_noun
    assert {jobmod.wrong_class_noun(proto, proto.subject("toy"), s) for s in range(20)} == {"cup", "backpack"}
    one = prepare_subject_data(SubjectJob("dreambooth", "n", subject="toy", num_inputs=2, seed=5), proto, data_dir)
    assert len(one.images) == 2
    assert one.images == prepare_subject_data(SubjectJob("dreambooth", "n", subject="toy", num_inputs=2, seed=5),
                                              proto, data_dir).images
    picks = {tuple(p.name for p in jobmod.choose_inputs(sorted((data_dir / "toy").iterdir()), 1, s, "toy"))
             for s in range(12)}
    assert len(picks) > 1  # the seed chooses which photo
    none = prepare_subject_data(SubjectJob("dreambooth", "x", subject="toy", class_noun_mode="none"), proto, data_dir)
    assert proto.prompts_for(none.subject)[0].render("sks", none.class_noun) == "a sks in the jungle"
