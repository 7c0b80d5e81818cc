"""DreamBench++ data: the layout reader, the check, fetch from a local zip (size and sha256 verified before
anything is extracted; safe, atomic extraction) and the two CLI commands. The folder is built from
DreamBooth photos (tests/dbplus_folder.py); the network is never reached."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from dbplus_folder import build_folder, build_zip, pinned

from dreambench.cli import main
from dreambench.data.dreambench_plus import source as source_mod
from dreambench.data.dreambench_plus.check import check_folder
from dreambench.data.dreambench_plus.layout import (
    PROMPT_GROUPS,
    category_counts,
    collection_id,
    is_complete,
    read_layout,
)
from dreambench.data.dreambench_plus.source import SOURCE, fetch, verify_zip
from dreambench.errors import DataError


@pytest.fixture(scope="module")
def plus_folder(dataset_dir, tmp_path_factory) -> Path:
    return build_folder(dataset_dir, tmp_path_factory.mktemp("dbp") / "data", per_category=2)


@pytest.fixture()
def folder(plus_folder, tmp_path) -> Path:
    return Path(shutil.copytree(plus_folder, tmp_path / "data"))


def test_the_source_is_pinned_once():
    assert (SOURCE.repo_id, SOURCE.filename, SOURCE.repo_type) == ("yuangpeng/dreambench_plus", "data.zip", "dataset")
    assert SOURCE.size == 15_061_282
    assert SOURCE.sha256 == "fabdaac1cbff6826c226e874902193ac7965e29b6c1644e983551c980ec82a33"


def test_collection_ids_follow_the_reference_code():
    assert collection_id("animal", "00", "kitten") == "live_subject_animal_00_kitten"
    assert collection_id("human", "03", "Young Man") == "live_subject_human_03_young_man"
    assert collection_id("object", "12", "t-shirt") == "object_12_t-shirt"
    assert collection_id("style", "07", "ukiyo-e painting") == "style_07_ukiyo-e_painting"
    assert PROMPT_GROUPS == ("photorealistic",) * 4 + ("style_transfer",) * 3 + ("imaginative",) * 2


def test_read_layout_reads_every_subject(folder):
    subjects = read_layout(folder)
    assert [s.collection_id for s in subjects] == sorted([
        "live_subject_animal_00_corgi_dog", "live_subject_animal_01_kitten", "live_subject_human_00_young_man",
        "live_subject_human_01_spider-man", "object_00_backpack", "object_01_t-shirt",
        "style_00_ukiyo-e_painting", "style_01_cartoon"])
    spider = next(s for s in subjects if s.index == "01" and s.category == "human")
    assert spider.subject == "Spider-Man"
    assert spider.image == "images/live_subject/human/01.jpg"
    assert (folder / spider.image).is_file()
    assert len(spider.prompts) == 9 and spider.prompts[0] == "a Spider-Man on a wooden table"
    assert category_counts(subjects) == {"animal": 2, "human": 2, "object": 2, "style": 2}
    assert not is_complete(subjects)


def test_check_reports_counts_and_incompleteness(folder):
    report = check_folder(folder)
    assert report.ok and not report.complete
    assert "8 subjects (2 animal, 2 human, 2 object, 2 style), 72 prompts, 0 errors" in report.summary()
    assert "not the complete published set" in report.summary()


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "captions/object/01.txt").unlink(), "missing caption"),
    (lambda f: (f / "images/style/00.jpg").unlink(), "caption without an image"),
    (lambda f: (f / "captions/style/00.txt").write_text("noun\nonly one prompt\n"), "2 lines, expected 10"),
    (lambda f: (f / "images/object/00.jpg").write_bytes(b"not a jpeg"), "not an image"),
    (lambda f: (f / "images/object/notes.md").write_text("x"), "unexpected file"),
    (lambda f: (f / "images/object/01_big.jpg").write_bytes(b"x"), "unexpected file"),
    (lambda f: (f / "images/live_subject/cat.jpg").write_bytes(b"x"), "unexpected file"),
])
def test_read_layout_refuses_a_bad_file_naming_it(folder, damage, message):
    damage(folder)
    with pytest.raises(DataError) as e:
        read_layout(folder)
    assert "\n" not in str(e.value) and message in str(e.value)


def test_files_beside_the_trees_are_ignored(folder):
    (folder / "preview.py").write_text("print('streamlit')\n")
    (folder / "images" / ".DS_Store").write_bytes(b"\0")
    assert len(read_layout(folder)) == 8


# -- fetch ----------------------------------------------------------------------------------------------

def test_fetch_from_zip_verifies_extracts_and_validates(folder, tmp_path):
    archive = build_zip(folder, tmp_path / "data.zip", extra={"data/preview.py": b"x", "__MACOSX/data/._a": b"y"})
    report = fetch(tmp_path / "out", archive, source=pinned(archive))
    assert report.ok and report.folder == (tmp_path / "out").absolute()
    assert len(read_layout(tmp_path / "out")) == 8
    assert (tmp_path / "out" / "preview.py").is_file() and not (tmp_path / "out" / "__MACOSX").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # work folder removed


def test_a_wrong_zip_is_refused_before_anything_is_written(folder, tmp_path):
    archive = build_zip(folder, tmp_path / "data.zip")
    with pytest.raises(DataError, match=r"bytes, expected 15,061,282"):
        fetch(tmp_path / "out", archive)  # the real pin: this zip has another size
    same_size = pinned(archive)
    wrong_digest = type(same_size)(same_size.repo_id, same_size.filename, same_size.size, "0" * 64)
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64}, expected 0{64}"):
        fetch(tmp_path / "out", archive, source=wrong_digest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "data.zip"]


def test_verify_zip_checks_size_then_digest(tmp_path):
    p = tmp_path / "z.zip"
    p.write_bytes(b"abc")
    with pytest.raises(DataError, match="3 bytes, expected 15,061,282"):
        verify_zip(p)


def _zip_with(tmp_path: Path, folder: Path, name: str, link: bool = False) -> Path:
    archive = build_zip(folder, tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if link else "x")
    return archive


@pytest.mark.parametrize("name, link, message", [
    ("data/../../escape.txt", False, "unsafe member path"),
    ("/abs.txt", False, "unsafe member path"),
    ("data/images/object/02.jpg", True, "is a symlink"),
])
def test_unsafe_archives_are_refused(folder, tmp_path, name, link, message):
    archive = _zip_with(tmp_path, folder, name, link)
    with pytest.raises(DataError, match=message):
        fetch(tmp_path / "out", archive, source=pinned(archive))
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_an_invalid_layout_leaves_dest_as_it_was(folder, tmp_path):
    (folder / "captions/object/00.txt").write_text("just a noun\n")
    archive = build_zip(folder, tmp_path / "data.zip")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old")
    with pytest.raises(DataError, match="already exists"):
        fetch(tmp_path / "out", archive, source=pinned(archive))
    with pytest.raises(DataError, match="1 lines, expected 10"):
        fetch(tmp_path / "out", archive, source=pinned(archive), force=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_download_goes_through_the_hub_client(folder, tmp_path, monkeypatch):
    archive = build_zip(folder, tmp_path / "data.zip")
    calls = []

    def fake_download(repo_id, filename, repo_type, revision, local_dir):
        calls.append((repo_id, filename, repo_type))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        return str(shutil.copyfile(archive, Path(local_dir) / filename))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    src = pinned(archive)
    fetch(tmp_path / "out", source=src)
    assert calls == [(src.repo_id, "data.zip", "dataset")]
    assert len(read_layout(tmp_path / "out")) == 8


# -- CLI ------------------------------------------------------------------------------------------------

def test_cli_check_and_fetch(folder, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(main, ["data", "check", "--protocol", "dreambench-plus", str(folder)])
    assert res.exit_code == 0, res.output
    assert "8 subjects (2 animal, 2 human, 2 object, 2 style)" in res.output
    res = runner.invoke(main, ["data", "check", "--protocol", "dreambench-plus", "--min-size", "100000", str(folder)])
    assert res.exit_code == 1 and "short side below 100000 px" in res.output
    archive = build_zip(folder, tmp_path / "data.zip")
    res = runner.invoke(main, ["data", "fetch", "--protocol", "dreambench-plus", "--from-zip", str(archive),
                               "--dest", str(tmp_path / "out")])
    assert res.exit_code == 2 and "expected 15,061,282" in res.output and not (tmp_path / "out").exists()
    monkeypatch.setattr(source_mod, "SOURCE", pinned(archive))  # only a test can move the pin
    res = runner.invoke(main, ["data", "fetch", "--protocol", "dreambench-plus", "--from-zip", str(archive),
                               "--dest", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "export DREAMBENCH_PLUS_DATA=" in res.output
    (folder / "captions/style/00.txt").write_text("x\n")
    res = runner.invoke(main, ["data", "check", "--protocol", "dreambench-plus", str(folder)])
    assert res.exit_code == 1 and "error: " in res.output and "captions/style/00.txt" in res.output


def test_cli_refuses_mixed_options(tmp_path):
    res = CliRunner().invoke(main, ["data", "fetch", "--protocol", "dreambench-plus", "--no-verify-hashes"])
    assert res.exit_code == 2 and "pinned data.zip" in res.output
