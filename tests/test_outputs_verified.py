"""Training and generation are content-addressed, and a done job's outputs are verified (issue 20.1, 20.2).

From real CLI runs on the tiny profile (dreambooth, pretrained and real on dog and backpack), against a
fresh run: a photo added to ``dog/`` re-runs exactly the jobs that read dog's photos, and never reuses the
artifact or images made from the old set; a truncated, garbage or deleted output is made again with the
same bytes, the run names the file, and Table 1 keeps both subjects. The structural checks themselves
(:mod:`dreambench.verify`) are tested on files made here.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import time
from pathlib import Path

import pytest
import realrun

from dreambench.verify import manifest_paths, png_problem, safetensors_problem

METHODS = ("dreambooth", "pretrained", "real")
SUBJECTS = ("dog", "backpack")
ARGS = ("--profile", "tiny", "--steps", "2", "--prompts", "1", "--images-per-prompt", "2")


# -- the structural checks ---------------------------------------------------------------------------------
def _png(path: Path) -> bytes:
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 10, 10)).save(path)
    return path.read_bytes()


def test_png_problem(tmp_path):
    good = tmp_path / "good.png"
    data = _png(good)
    assert png_problem(good) is None
    cases = [("truncated", data[: len(data) // 2]), ("truncated", data[:-1]), ("not a PNG", b"garbage" * 50),
             ("empty", b""), ("bytes after the end", data + b"\0")]
    for want, content in cases:
        p = tmp_path / "bad.png"
        p.write_bytes(content)
        assert png_problem(p) == want, (want, len(content))
    assert png_problem(tmp_path / "nothing.png") == "missing"
    jpeg = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    assert png_problem(jpeg) == "not a PNG"


def test_safetensors_problem(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    data = struct.pack("<Q", len(header)) + header + b"\0" * 16
    p = tmp_path / "a.safetensors"
    p.write_bytes(data)
    assert safetensors_problem(p) is None
    p.write_bytes(data[:-3])
    assert safetensors_problem(p) == "truncated"
    p.write_bytes(data[:20])
    assert "truncated" in safetensors_problem(p)
    p.write_bytes(b"x" * 100)
    assert safetensors_problem(p) is not None
    assert safetensors_problem(tmp_path / "none.safetensors") == "missing"


def test_manifest_paths(tmp_path):
    part = tmp_path / "manifest.csv"
    part.write_text("method,path\nm,m/s/0_0.png\nm,m/s/0_1.png\n")
    assert manifest_paths(part) == ["m/s/0_0.png", "m/s/0_1.png"]
    assert manifest_paths(tmp_path / "none.csv") is None


# -- real runs ---------------------------------------------------------------------------------------------
def _run(results: Path, data: Path, env: dict):
    proc = realrun.run_cli(["--results", results, "run", *[a for m in METHODS for a in ("--method", m)],
                            "--subjects", ",".join(SUBJECTS), "--data", data, *ARGS], env)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, dataset_dir) -> tuple[Path, Path, dict]:
    """(results, data, env) of a finished run on a private copy of the dog and backpack photos."""
    root = tmp_path_factory.mktemp("verified")
    data = root / "data"
    for s in SUBJECTS:
        shutil.copytree(dataset_dir / s, data / s)
    env = realrun.cli_env()
    _run(root / "results", data, env)
    return root / "results", data, env


def _ran_since(results: Path, t0: float) -> set[tuple[str, str, str]]:
    """(kind, label, subject) of the jobs started at or after ``t0``."""
    return {(r["kind"], r["label"], r["subject"]) for r in realrun.job_rows(results).values()
            if (r["started"] or 0) >= t0}


def _table1_subjects(results: Path) -> dict[str, int]:
    lines = [ln for ln in (results / "tables" / "table1_fidelity.csv").read_text().splitlines()
             if not ln.startswith("#")]
    return {r["method"]: int(r["n_subjects"]) for r in csv.DictReader(lines)}


def _artifact_info(results: Path, label: str, subject: str) -> dict:
    return json.loads((results / "artifacts" / label / subject / "artifact.json").read_text())


def _content(data: bytes):
    """A file's bytes; for a safetensors file, its parsed header and tensor bytes (safetensors writes
    its metadata from a hash map, in an order that changes from one save to the next)."""
    if data.startswith(b"\x89PNG"):
        return data
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def test_added_photo_reruns_only_the_jobs_that_read_it(fresh, tmp_path):
    src, data0, env = fresh
    results = realrun.copy_run(src, tmp_path / "r")
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    # The same photos in another folder: the ids hold names and bytes, not where the folder is.
    t0 = time.time()
    out = _run(results, data, env)
    assert "(0 run now" in out and not _ran_since(results, t0), out[-2000:]
    old_key = _artifact_info(results, "dreambooth", "dog")["inputs_key"]

    from PIL import Image, ImageOps

    first = min((data / "dog").glob("*.jpg"))
    ImageOps.mirror(Image.open(first)).save(data / "dog" / "zz_added.jpg")
    t0 = time.time()
    out = _run(results, data, env)
    ran = _ran_since(results, t0)
    subject_jobs = {(label, s) for kind, label, s in ran if kind == "subject"}
    assert subject_jobs == {("dreambooth", "dog"), ("real", "dog")}, ran
    scored = {(label, s) for kind, label, s in ran if kind == "score"}
    assert {("dreambooth", "dog"), ("real", "dog")} <= scored
    assert not scored & {(m, "backpack") for m in METHODS}, scored  # dog's real photos are not backpack's
    assert not any(kind == "class_images" for kind, _, _ in ran)
    info = _artifact_info(results, "dreambooth", "dog")
    assert "zz_added.jpg" in info["inputs"] and info["inputs_key"] != old_key  # trained again, on six photos
    assert "remade images/dreambooth/dog: made from other inputs" in out
    assert _table1_subjects(results)["dreambooth"] == 2

    # Back to the five photos: the first run's job is 'done' in the state database, but the folder now
    # holds what the six-photo job made, so it runs again rather than trusting those files.
    (data / "dog" / "zz_added.jpg").unlink()
    t0 = time.time()
    _run(results, data, env)
    assert ("subject", "dreambooth", "dog") in _ran_since(results, t0)
    info = _artifact_info(results, "dreambooth", "dog")
    assert info["inputs_key"] == old_key and "zz_added.jpg" not in info["inputs"]


def test_broken_outputs_are_remade_with_the_same_bytes(fresh, tmp_path):
    src, data, env = fresh
    results = realrun.copy_run(src, tmp_path / "r")
    truncated, garbage, deleted, class_image, class_deleted, class_swapped = (
        min((results / folder).glob(pattern)) for folder, pattern in (
            ("images/dreambooth/dog", "*.png"), ("images/dreambooth/backpack", "*.png"),
            ("images/pretrained/dog", "*.png"), ("class_images", "a-backpack-*/00001.png"),
            ("class_images", "a-dog-*/00002.png"), ("class_images", "a-dog-*/00000.png")))
    artifact_dir = results / "artifacts" / "dreambooth" / "dog"
    artifact = artifact_dir / _artifact_info(results, "dreambooth", "dog")["file"]
    files = [truncated, garbage, deleted, class_image, class_deleted, class_swapped, artifact]
    original = {p: p.read_bytes() for p in files}
    truncated.write_bytes(original[truncated][: len(original[truncated]) // 2])
    garbage.write_bytes(b"this is not an image\n" * 40)
    deleted.unlink()
    class_image.write_bytes(original[class_image][:100])
    class_deleted.unlink()  # remade alone, it came out a little off (sampled in a batch of one, not of four)
    from PIL import Image

    with Image.open(class_swapped) as im:  # a complete PNG, other pixels: it went unnoticed
        Image.new("RGB", im.size, (200, 10, 10)).save(class_swapped)
    artifact.write_bytes(original[artifact][:-1000])

    out = _run(results, data, env)
    for p, why in ((truncated, "truncated"), (garbage, "not a PNG"), (deleted, "missing"),
                   (class_image, "truncated"), (class_deleted, "missing"),
                   (class_swapped, "other bytes than it was made with"), (artifact, "truncated")):
        assert f"remade {p.relative_to(results).as_posix()}: {why}" in out, (p, out[-3000:])
        assert _content(p.read_bytes()) == _content(original[p]), p  # the same seeds give the same bytes
    assert _table1_subjects(results)["dreambooth"] == 2
    # What was remade is trusted again: nothing left to do.
    assert "(0 run now" in _run(results, data, env)


def test_deleted_records_are_remade_and_named(fresh, tmp_path):
    """Issue 20.2 probe: a done subject job's manifest part, and a label's method.json, deleted (the images
    all on disk): the jobs run again, say which file they remade, and write what a fresh run wrote, byte
    for byte (method.json was left missing: nothing ran)."""
    src, data, env = fresh
    results = realrun.copy_run(src, tmp_path / "r")
    part = results / "images" / "pretrained" / "dog" / "manifest.csv"
    info = results / "images" / "dreambooth" / "method.json"
    original = {p: p.read_bytes() for p in (part, info)}
    for p in original:
        p.unlink()
    out = _run(results, data, env)
    for p, before in original.items():
        assert f"remade {p.relative_to(results).as_posix()}: missing" in out, out[-3000:]
        assert p.read_bytes() == before, p
    assert "(0 run now" in _run(results, data, env)
