"""Same inputs, same pixels (issue 10, part 5): the sampling batch an image is made in is part of its
identity, so a job killed while saving a batch regenerates that whole batch on resume, and every PNG is
bit-identical to an uninterrupted run (tiny profile, real sampling)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.engine import subject_job as jobmod
from dreambench.engine.subject_job import SubjectJob, run_subject_job, sample_batches
from dreambench.methods.pretrained import Pretrained
from dreambench.protocol import Prompt, Protocol, Subject

#: 2 prompts x 3 images = 6 images in batches of 4: [p0 k0-2, p1 k0] and [p1 k1-2].
BATCH = 4


@pytest.fixture(scope="module")
def sd():
    from dreambench.models import get_profile, load_sd

    return load_sd(get_profile("tiny"))  # pretrained sampling never changes the weights


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data" / "toy"
    d.mkdir(parents=True)
    for i in range(2):
        a = np.full((256, 256, 3), 60 * i, np.uint8)  # the protocol's minimum short side
        a[40:180, 40:180] = (200, 40 * i, 90)
        Image.fromarray(a).save(d / f"{i:02d}.png")
    return d.parent


def _protocol() -> Protocol:
    prompts = [Prompt(0, "a {V} {class} in the jungle", "recontextualization"),
               Prompt(1, "a {V} {class} in the snow", "recontextualization")]
    return Protocol("toyproto", [Subject("toy", "dog", "live")], {"live": prompts, "object": prompts})


def _job() -> SubjectJob:
    return SubjectJob("pretrained", "pre", {"sample_batch_size": BATCH}, subject="toy", images_per_prompt=3,
                      seed=1, sample_steps=2)


@pytest.fixture
def calls(monkeypatch) -> list[list[tuple[int, int]]]:
    """Every generate() call's (prompt index, seed) list, in order."""
    seen: list[list[tuple[int, int]]] = []
    original = Pretrained.generate

    def spy(self, data, requests):
        seen.append([(r.prompt_index, r.seed) for r in requests])
        return original(self, data, requests)

    monkeypatch.setattr(Pretrained, "generate", spy)
    return seen


def _pngs(results: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((results / "images" / "pre" / "toy").glob("*.png"))}


def test_sample_batches_cut_the_full_plan():
    assert [len(b) for b in sample_batches(list(range(6)), 4)] == [4, 2]
    assert sample_batches(list(range(3)), 0) == [[0], [1], [2]]


def test_kill_while_saving_a_batch_then_resume_gives_identical_pngs(sd, data_dir, tmp_path, calls, monkeypatch):
    whole = tmp_path / "whole"
    run_subject_job(_job(), _protocol(), sd, data_dir, whole, progress=False)
    reference, batches = _pngs(whole), list(calls)
    assert len(reference) == 6 and [len(b) for b in batches] == [4, 2]

    # Killed after 2 of the first batch's 4 PNGs were saved.
    killed = tmp_path / "killed"
    saves = {"n": 0}
    real_save = jobmod.save_image_atomic

    def dying_save(image, path):
        if saves["n"] == 2:
            raise KeyboardInterrupt("killed while saving")
        saves["n"] += 1
        return real_save(image, path)

    monkeypatch.setattr(jobmod, "save_image_atomic", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run_subject_job(_job(), _protocol(), sd, data_dir, killed, progress=False)
    assert len(_pngs(killed)) == 2
    monkeypatch.setattr(jobmod, "save_image_atomic", real_save)

    calls.clear()
    run_subject_job(_job(), _protocol(), sd, data_dir, killed, progress=False)
    assert calls == batches  # the first batch made again whole, not just its 2 missing images
    assert _pngs(killed) == reference  # bit for bit

    # An image of the last batch deleted from the finished folder: that batch alone is made again, whole.
    (killed / "images" / "pre" / "toy" / "01_1002.png").unlink()
    calls.clear()
    run_subject_job(_job(), _protocol(), sd, data_dir, killed, progress=False)
    assert calls == [batches[1]]
    assert _pngs(killed) == reference
