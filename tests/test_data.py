"""dreambench.data: fetching/verifying the DreamBooth archive and checking subject folders (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreambench.cli import main
from dreambench.data import (
    ExpectedDataset,
    check_dataset,
    fetch_dataset,
    load_hash_manifest,
    official_expected,
    subject_images,
    verify_dataset,
)
from dreambench.errors import DataError
from dreambench.images import load_rgb

TOP = "dreambooth-main/"


# ---------------------------------------------------------------- helpers


def _noise(size: tuple[int, int], seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)


def _jpeg_bytes(size=(300, 300), seed: int = 0, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise(size, seed)).save(buf, format="JPEG", quality=80, **save_kwargs)
    return buf.getvalue()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".fetch-" in p.name)


def make_archive(
    path: Path, subjects: dict[str, int], top: str = TOP, extra: dict[str, bytes] | None = None,
    text_files: tuple[str, ...] = ("prompts_and_classes.txt", "references_and_licenses.txt"),
) -> tuple[Path, ExpectedDataset]:
    """A zip laid out like GitHub's archive of google/dreambooth (``<top>dataset/<subject>/NN.jpg``), plus
    the ExpectedDataset (counts and hashes) it satisfies."""
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}LICENSE", "Creative Commons Attribution 4.0 International\n")
        zf.writestr(f"{top}README.md", "# DreamBooth\n")
        for name in text_files:
            zf.writestr(f"{top}dataset/{name}", f"{name}\n")
        seed = 0
        for subject, n in subjects.items():
            for i in range(n):
                data = _jpeg_bytes((64, 48), seed)
                seed += 1
                zf.writestr(f"{top}dataset/{subject}/{i:02d}.jpg", data)
                hashes[f"{subject}/{i:02d}.jpg"] = hashlib.sha256(data).hexdigest()
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path, ExpectedDataset(len(subjects), sum(subjects.values()), hashes)


@pytest.fixture
def small_archive(tmp_path: Path) -> tuple[Path, ExpectedDataset]:
    return make_archive(tmp_path / "main.zip", {"backpack": 2, "dog": 3, "cat": 1})


# ---------------------------------------------------------------- fetch


def test_fetch_from_local_zip(tmp_path, small_archive):
    archive, expected = small_archive
    dest = tmp_path / "out" / "dreambooth-dataset"
    counts = fetch_dataset(dest, str(archive), expected=expected, progress=False)
    assert (counts.subjects, counts.images, counts.hashes_verified) == (3, 6, True)
    assert counts.path == dest.absolute()
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["backpack", "cat", "dog"]
    assert (dest / "prompts_and_classes.txt").is_file() and (dest / "references_and_licenses.txt").is_file()
    assert (dest / "LICENSE").read_text().startswith("Creative Commons")  # the repo's license comes along
    assert not (dest / "README.md").exists()  # only the dataset folder, not the whole repository
    assert len(list((dest / "dog").iterdir())) == 3
    assert _leftovers(dest.parent) == []


def test_fetch_file_url_and_zip_of_the_folder_itself(tmp_path):
    archive, expected = make_archive(tmp_path / "flat.zip", {"a": 1, "b": 2}, top="dreambooth-dataset/")
    # A zip of the dataset folder itself: the files live at <top>/..., no dataset/ level.
    flat = tmp_path / "flat2.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(flat, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace("dreambooth-dataset/dataset/", "dreambooth-dataset/"), src.read(info))
    counts = fetch_dataset(tmp_path / "d", flat.as_uri(), expected=expected, progress=False)
    assert (counts.subjects, counts.images) == (2, 3)
    assert (tmp_path / "d" / "LICENSE").is_file()


def test_fetch_over_http_with_progress(tmp_path, small_archive):
    """The download path (urllib + progress bar), served from a local HTTP server: no outside network."""
    archive, expected = small_archive

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(archive.parent), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        counts = fetch_dataset(tmp_path / "web", url, expected=expected, progress=True)
        assert counts.images == 6
        with pytest.raises(DataError, match="cannot download"):
            fetch_dataset(tmp_path / "web404", url + ".missing", expected=expected, progress=False)
        assert not (tmp_path / "web404").exists()
    finally:
        server.shutdown()
        server.server_close()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["not_a_zip", "truncated", "bad_crc"])
def test_fetch_corrupt_archive_leaves_nothing(tmp_path, small_archive, damage):
    archive, expected = small_archive
    data = bytearray(archive.read_bytes())
    if damage == "not_a_zip":
        data = bytearray(b"<html>rate limited</html>")
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # flip bytes inside the last image's compressed data: the CRC check fails during extraction
        with zipfile.ZipFile(archive) as zf:
            info = [i for i in zf.infolist() if i.filename.endswith(".jpg")][-1]
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for k in range(start + 10, start + 20):
            data[k] ^= 0xFF
    archive.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=str(archive.name)):
        fetch_dataset(dest, str(archive), expected=expected, progress=False)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_images": 7}, "6 images, expected 7"),
        ({"n_subjects": 30}, "3 subject folders, expected 30"),
        ({"sha256": {"dog/00.jpg": "0" * 64}}, "images not in the manifest"),
    ],
)
def test_fetch_wrong_content_leaves_nothing(tmp_path, small_archive, change, message):
    archive, expected = small_archive
    wrong = ExpectedDataset(**{**expected.__dict__, **change})
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=message):
        fetch_dataset(dest, str(archive), expected=wrong, progress=False)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_fetch_hash_mismatch_and_no_verify(tmp_path, small_archive):
    archive, expected = small_archive
    altered = dict(expected.sha256, **{"dog/01.jpg": "f" * 64})
    with pytest.raises(DataError, match=r"sha256 differs: dog/01\.jpg"):
        fetch_dataset(tmp_path / "d", str(archive), expected=ExpectedDataset(3, 6, altered), progress=False)
    assert not (tmp_path / "d").exists()
    counts = fetch_dataset(tmp_path / "d", str(archive), expected=ExpectedDataset(3, 6, altered),
                           verify_hashes=False, progress=False)
    assert counts.images == 6 and not counts.hashes_verified


def test_fetch_missing_text_file(tmp_path):
    archive, expected = make_archive(tmp_path / "a.zip", {"x": 1}, text_files=("prompts_and_classes.txt",))
    with pytest.raises(DataError, match="missing references_and_licenses.txt"):
        fetch_dataset(tmp_path / "d", str(archive), expected=expected, progress=False)
    assert not (tmp_path / "d").exists()


def test_fetch_rejects_unsafe_member_and_foreign_archive(tmp_path):
    archive, expected = make_archive(tmp_path / "a.zip", {"x": 1}, extra={f"{TOP}dataset/../../evil.txt": b"x"})
    with pytest.raises(DataError, match="unsafe member"):
        fetch_dataset(tmp_path / "d", str(archive), expected=expected, progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d").exists()
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("repo/README.md", "hi")
    with pytest.raises(DataError, match="not a DreamBooth dataset archive"):
        fetch_dataset(tmp_path / "d", str(other), expected=expected, progress=False)
    with pytest.raises(DataError, match="archive not found"):
        fetch_dataset(tmp_path / "d", str(tmp_path / "nope.zip"), expected=expected, progress=False)
    assert _leftovers(tmp_path) == []


def test_fetch_existing_dest_needs_force_and_survives_a_failed_replace(tmp_path, small_archive):
    archive, expected = small_archive
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="--force"):
        fetch_dataset(dest, str(archive), expected=expected, progress=False)
    with pytest.raises(DataError):  # verification fails: the old folder must be intact
        fetch_dataset(dest, str(archive), force=True, expected=ExpectedDataset(9, 9, None), progress=False)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    fetch_dataset(dest, str(archive), force=True, expected=expected, progress=False)
    assert not (dest / "mine.txt").exists() and (dest / "dog" / "00.jpg").is_file()
    assert _leftovers(tmp_path) == []


def test_fetch_interrupted_leaves_dest_untouched(tmp_path, small_archive, monkeypatch):
    """Ctrl-C after extraction (during verification): the temporary folder goes, DEST keeps its old content."""
    import dreambench.data.fetch as fetch_mod

    archive, expected = small_archive
    dest = tmp_path / "dest"
    fetch_dataset(dest, str(archive), expected=expected, progress=False)
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))

    def interrupt(folder, *a, **k):
        assert (folder / "dog" / "00.jpg").is_file()  # extraction finished, in the temporary folder
        assert folder.parent.name.startswith(".dest.fetch-") and folder.parent.parent == tmp_path
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "verify_dataset", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset(dest, str(archive), force=True, expected=expected, progress=False)
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    assert _leftovers(tmp_path) == []


def test_fetch_cli(tmp_path, small_archive, monkeypatch):
    archive, expected = small_archive
    import dreambench.data.fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "official_expected", lambda: expected)
    runner = CliRunner()
    res = runner.invoke(main, ["data", "fetch", "--dest", str(tmp_path / "d"), "--url", str(archive)])
    assert res.exit_code == 0, res.output
    assert "3 subjects, 6 images (sha256 verified)" in res.output
    res = runner.invoke(main, ["data", "fetch", "--dest", str(tmp_path / "d"), "--url", str(archive)])
    assert res.exit_code == 2 and "--force" in res.stderr and "Traceback" not in res.output
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"garbage")
    res = runner.invoke(main, ["data", "fetch", "--dest", str(tmp_path / "e"), "--url", str(bad), "--force"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "bad.zip" in res.stderr
    assert not (tmp_path / "e").exists()


def test_official_manifest():
    hashes = load_hash_manifest()
    exp = official_expected()
    assert (exp.n_subjects, exp.n_images) == (30, 158)
    assert len(hashes) == 158 and all(len(h) == 64 for h in hashes.values())
    assert sum(k.startswith("dog/") for k in hashes) == 5


def test_official_manifest_matches_dataset(dataset_dir):
    counts = verify_dataset(dataset_dir)
    assert (counts.subjects, counts.images, counts.hashes_verified) == (30, 158, True)


def test_fetch_real_dataset_archive(dataset_dir, tmp_path):
    """The real 158 images zipped in GitHub's archive layout verify against the committed manifest."""
    archive = tmp_path / "main.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{TOP}LICENSE", "CC-BY-4.0\n")
        for f in sorted(dataset_dir.rglob("*")):
            if f.is_file():
                zf.write(f, f"{TOP}dataset/{f.relative_to(dataset_dir).as_posix()}")
    counts = fetch_dataset(tmp_path / "dreambooth-dataset", archive.as_uri(), progress=False)
    assert (counts.subjects, counts.images, counts.hashes_verified) == (30, 158, True)
    assert (counts.path / "LICENSE").is_file() and (counts.path / "prompts_and_classes.txt").is_file()


# ---------------------------------------------------------------- check


def test_check_real_dataset(dataset_dir):
    """The official dataset through the CLI (which calls check_dataset): 30 subjects, 158 images, 0 errors."""
    res = CliRunner().invoke(main, ["data", "check", str(dataset_dir), "--protocol", "dreambooth", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["subjects"], doc["images"], doc["errors"], doc["ok"]) == (30, 158, [], True)
    assert len(doc["subject_names"]) == 30 and "dog" in doc["subject_names"]


def test_subject_images(dataset_dir, tmp_path):
    dog = subject_images(dataset_dir, "dog")
    assert [p.name for p in dog] == ["00.jpg", "01.jpg", "02.jpg", "03.jpg", "04.jpg"]
    with pytest.raises(DataError, match="dog4"):
        subject_images(dataset_dir, "dog4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        subject_images(tmp_path, "empty")


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _defect(kind: str, folder: Path) -> Path:
    """Write one defective file (or folder) of ``kind`` into subject folder ``folder``; return its path."""
    rgb = Image.fromarray(_noise((300, 300), 7))
    if kind == "truncated_jpeg":
        data = _jpeg_bytes((400, 300), 3)
        p = folder / "cut.jpg"
        folder.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data[: len(data) // 2])
        return p
    if kind == "not_an_image":
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / "notes.png"
        p.write_text("this is not a picture\n")
        return p
    if kind == "tiny":
        return _save(Image.fromarray(_noise((400, 200), 1)), folder / "tiny.jpg")
    if kind == "cmyk":
        return _save(rgb.convert("CMYK"), folder / "cmyk.jpg")
    if kind == "palette":
        return _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), folder / "pal.png")
    if kind == "rgba":
        a = np.dstack([_noise((300, 300), 2), np.full((300, 300), 128, np.uint8)])
        return _save(Image.fromarray(a, "RGBA"), folder / "alpha.png")
    if kind == "png16":
        a = (np.arange(300 * 300).reshape(300, 300) * 7 % 65536).astype(np.uint16)
        return _save(Image.fromarray(a), folder / "deep.png")
    if kind == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        return _save(Image.fromarray(_noise((400, 300), 4)), folder / "rotated.jpg", exif=exif)
    if kind == "empty_folder":
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    if kind == "missing_folder":
        return folder
    raise ValueError(kind)


ERRORS = {
    "truncated_jpeg": "truncated",
    "not_an_image": "not an image file",
    "tiny": "short side below 256",
    "empty_folder": "empty subject folder",
    "missing_folder": "missing subject folder",
}
WARNINGS = {
    "cmyk": "CMYK",
    "palette": "palette",
    "rgba": "alpha",
    "png16": "16-bit",
    "exif_rotated": "EXIF orientation 6",
}


def _protocol_dir(path: Path, names: list[str]) -> Path:
    path.mkdir()
    (path / "subjects.csv").write_text("name,class,kind\n" + "".join(f"{n},dog,live\n" for n in names))
    (path / "prompts.yaml").write_text(
        "prompts:\n  live:\n    - {template: 'a {V} {class}', category: recontextualization}\n")
    return path


@pytest.mark.parametrize("kind", sorted(ERRORS) + sorted(WARNINGS))
def test_check_defects(tmp_path, kind):
    data = tmp_path / "data"
    _save(Image.fromarray(_noise((300, 260), 0)), data / "good" / "00.jpg")
    bad = _defect(kind, data / "bad")
    proto = _protocol_dir(tmp_path / "proto", ["good", "bad"])
    report = check_dataset(data, protocol=proto)
    is_error = kind in ERRORS
    found = report.errors if is_error else report.warnings
    assert [(p, m) for p, m in found if p == bad and (ERRORS if is_error else WARNINGS)[kind] in m], found
    if is_error:
        assert len(report.errors) == 1 and not report.ok
    else:
        assert report.errors == [] and report.images == 2
    res = CliRunner().invoke(main, ["data", "check", str(data), "--protocol", str(proto)])
    assert res.exit_code == (1 if is_error else 0), res.output
    assert str(bad) in res.stdout
    assert res.stdout.strip().splitlines()[-1].endswith(report.summary())
    if is_error:
        with pytest.raises(DataError, match=str(bad.name)):
            report.raise_for_errors()


def test_check_all_defects_together(tmp_path):
    data = tmp_path / "data"
    paths = {k: _defect(k, data / ("bad" if k not in ("empty_folder", "missing_folder") else k))
             for k in (*ERRORS, *WARNINGS)}
    report = check_dataset(data)  # no protocol: every sub-folder counts, so a missing one is not seen
    err_paths = {p for p, _ in report.errors}
    warn_paths = {p for p, _ in report.warnings}
    for k, p in paths.items():
        if k == "missing_folder":
            assert p not in err_paths
        elif k in ERRORS:
            assert p in err_paths, k
        else:
            assert p in warn_paths, k
    assert (report.subjects, report.images) == (2, 8)
    res = CliRunner().invoke(main, ["data", "check", str(data), "--json", "--min-size", "0"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 1
    assert str(paths["tiny"]) not in {e["path"] for e in doc["errors"]}  # --min-size 0 accepts it
    assert str(paths["truncated_jpeg"]) in {e["path"] for e in doc["errors"]}


def test_conversions_are_applied(tmp_path):
    exif = _defect("exif_rotated", tmp_path / "s")
    with pytest.warns(UserWarning, match="EXIF"):
        im = load_rgb(exif)
    assert im.size == (300, 400) and im.mode == "RGB"  # stored 400x300, displayed rotated
    rgba = _save(Image.new("RGBA", (300, 300), (0, 0, 0, 0)), tmp_path / "s" / "clear.png")
    with pytest.warns(UserWarning, match="alpha"):
        assert load_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    deep = _save(Image.fromarray(np.full((300, 300), 65535, np.uint16)), tmp_path / "s" / "white16.png")
    with pytest.warns(UserWarning, match="16-bit"):
        assert load_rgb(deep).getpixel((5, 5)) == (255, 255, 255)


def test_check_bad_input(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        check_dataset(tmp_path / "nope")
    res = CliRunner().invoke(main, ["data", "check", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "nope" in res.stderr and "Traceback" not in res.output
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "readme.txt").write_text("x")
    _save(Image.fromarray(_noise((300, 300), 0)), tmp_path / "s" / "a.jpg")
    report = check_dataset(tmp_path)
    assert report.ok and [p.name for p, _ in report.warnings] == ["readme.txt"]


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path):
    """mkstemp makes 0600 files; results must be readable like any file the user writes (shared file systems)."""
    from dreambench.io import write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777


def test_mpo_jpeg_is_a_still_photo(tmp_path):
    """Camera JPEGs in MPO form (a primary picture plus a preview; 11 subjects of the official dataset) load
    as their primary picture; a real animation is refused."""
    from dreambench.images import load_rgb

    first, second = Image.fromarray(_noise((300, 260), 1)), Image.fromarray(_noise((300, 260), 2))
    mpo = tmp_path / "photo.jpg"
    first.save(mpo, "MPO", save_all=True, append_images=[second])
    with Image.open(mpo) as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert load_rgb(mpo, min_short_side=256).size == (300, 260)
    gif = tmp_path / "anim.gif"
    first.save(gif, save_all=True, append_images=[second])
    with pytest.raises(DataError, match="animated"):
        load_rgb(gif)
