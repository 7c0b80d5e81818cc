"""The packaged DreamBooth protocol matches the dataset's prompts_and_classes.txt; loading and rendering."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dreambench.cli import main
from dreambench.errors import DataError, UnknownNameError
from dreambench.protocol import CLASS_PROMPT_INDEX, Prompt, load_protocol

LIVE_CLASSES = {"dog", "cat"}  # the paper's live subjects are the 9 dogs and cats


def parse_prompts_and_classes(path: Path) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(subject, class) pairs and the object / live prompt templates of the dataset's own text file,
    with ``{0}``/``{1}`` rewritten to ``{V}``/``{class}``. Parsed independently of dreambench."""
    text = path.read_text()
    classes_part, prompts_part = text.split("\nPrompts", 1)
    pairs = []
    for line in classes_part.splitlines():
        line = line.strip()
        if "," in line and line != "subject_name,class":
            name, cls = line.split(",", 1)
            pairs.append((name.strip(), cls.strip()))
    object_part, live_part = prompts_part.split("Live Subject Prompts", 1)

    def templates(part: str) -> list[str]:
        found = re.findall(r"'([^']*)'\.format\(unique_token, class_token\)", part)
        return [t.replace("{0}", "{V}").replace("{1}", "{class}") for t in found]

    return pairs, templates(object_part), templates(live_part)


@pytest.fixture(scope="module")
def proto():
    return load_protocol("dreambooth")


def test_matches_dataset_file(proto, dataset_dir):
    pairs, object_prompts, live_prompts = parse_prompts_and_classes(dataset_dir / "prompts_and_classes.txt")
    assert len(pairs) == 30 and len(object_prompts) == 25 and len(live_prompts) == 25
    assert [(s.name, s.class_noun) for s in proto.subjects] == pairs
    assert [p.template for p in proto.prompts["object"]] == object_prompts
    assert [p.template for p in proto.prompts["live"]] == live_prompts
    for s in proto.subjects:
        assert s.kind == ("live" if s.class_noun in LIVE_CLASSES else "object"), s
    # the subject folders of the dataset are exactly the protocol's subjects
    folders = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir())
    assert folders == sorted(s.name for s in proto.subjects)


def test_counts_and_categories(proto):
    kinds = [s.kind for s in proto.subjects]
    assert (kinds.count("object"), kinds.count("live")) == (21, 9)
    obj = [p.category for p in proto.prompts["object"]]
    live = [p.category for p in proto.prompts["live"]]
    assert obj == ["recontextualization"] * 20 + ["property"] * 5
    assert live == ["recontextualization"] * 10 + ["accessorization"] * 10 + ["property"] * 5
    for kind in ("object", "live"):
        assert [p.index for p in proto.prompts[kind]] == list(range(25))
    assert proto.prompts_for(proto.subject("dog")) is proto.prompts["live"]
    assert proto.prompts_for(proto.subject("teapot")) is proto.prompts["object"]


def test_render(proto):
    jungle = proto.prompts["live"][0]
    assert jungle.render("sks", "dog") == "a sks dog in the jungle"
    assert jungle.render_plain("dog") == "a dog in the jungle"
    assert jungle.render("sks", "") == "a sks in the jungle"  # no class noun: no double space
    assert proto.prompts["object"][24].render("sks", "stuffed animal") == "a cube shaped sks stuffed animal"
    assert proto.prompts["object"][24].render_plain("vase") == "a cube shaped vase"
    assert proto.prompts["live"][13].render("xyz", "cat") == "a xyz cat wearing a black top hat and a monocle"
    assert Prompt(0, "{V} {class}", "property").render("", "") == ""
    assert proto.class_prompt_for("dog") == "a dog"
    assert proto.class_prompt_for("stuffed animal") == "a stuffed animal"
    assert CLASS_PROMPT_INDEX == -1


def test_select_and_unknown_subject(proto):
    assert [s.name for s in proto.select(["dog", "can"])] == ["dog", "can"]
    assert len(proto.select(None)) == 30 and len(proto.select([])) == 30
    with pytest.raises(UnknownNameError, match="dog4.*valid:.*dog2"):
        proto.select(["dog4"])


def test_show_json(proto):
    res = CliRunner().invoke(main, ["protocol", "show", "--json", "--identifier", "zwx"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert isinstance(doc, list) and len(doc) == 30
    assert all(set(r) == {"name", "class", "kind", "prompts", "categories"} for r in doc)
    assert all(len(r["prompts"]) == 25 and all(isinstance(t, str) for t in r["prompts"]) for r in doc)
    dog = next(r for r in doc if r["name"] == "dog")
    assert (dog["class"], dog["kind"]) == ("dog", "live")
    assert dog["prompts"][0] == "a zwx dog in the jungle"
    assert dog["prompts"][10] == "a zwx dog wearing a red hat"
    assert [r["name"] for r in doc] == [s.name for s in proto.subjects]
    text = CliRunner().invoke(main, ["protocol", "show"])
    assert text.exit_code == 0 and "30 subjects (21 object, 9 live), 750 prompts" in text.stdout
    assert "a sks teapot on top of a white rug" in text.stdout


def _write_protocol(folder: Path, subjects: str, prompts: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subjects.csv").write_text(subjects)
    (folder / "prompts.yaml").write_text(prompts)
    return folder


GOOD_SUBJECTS = "name,class,kind\nmug,mug,object\nrex,dog,live\n"
GOOD_PROMPTS = """\
class_prompt: "a photo of a {class}"
prompts:
  object:
    - {template: "a {V} {class} on a table", category: recontextualization}
    - {template: "a green {V} {class}", category: property}
  live:
    - {template: "a {V} {class} wearing a hat", category: accessorization}
"""


def test_user_protocol_folder(tmp_path):
    folder = _write_protocol(tmp_path / "mine", GOOD_SUBJECTS, GOOD_PROMPTS)
    p = load_protocol(folder)
    assert p.name == "mine" and [s.name for s in p.subjects] == ["mug", "rex"]
    assert [x.render("sks", "mug") for x in p.prompts_for(p.subject("mug"))] == [
        "a sks mug on a table", "a green sks mug"]
    assert p.class_prompt_for("dog") == "a photo of a dog"
    assert p.source == (str(folder / "subjects.csv"), str(folder / "prompts.yaml"))
    res = CliRunner().invoke(main, ["protocol", "show", "--protocol", str(folder), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[1]["prompts"] == ["a sks dog wearing a hat"]


@pytest.mark.parametrize(
    "subjects, prompts, bad_file, message",
    [
        ("name,class\nmug,mug\n", GOOD_PROMPTS, "subjects.csv", "name,class,kind"),
        ("", GOOD_PROMPTS, "subjects.csv", "name,class,kind"),
        ("name,class,kind\nmug,mug,thing\n", GOOD_PROMPTS, "subjects.csv", "kind 'thing'"),
        ("name,class,kind\nmug,mug,object\nmug,cup,object\n", GOOD_PROMPTS, "subjects.csv", "duplicate subjects mug"),
        ("name,class,kind\n,mug,object\n", GOOD_PROMPTS, "subjects.csv", "empty subject name"),
        (GOOD_SUBJECTS, "prompts: []\n", "prompts.yaml", "'prompts' mapping"),
        (GOOD_SUBJECTS, "prompts:\n  object:\n    - {template: 'a {V} {class}', category: recontextualization}\n",
         "prompts.yaml", "no prompts for kind"),
        (GOOD_SUBJECTS, GOOD_PROMPTS.replace("accessorization", "fashion"), "prompts.yaml", "category 'fashion'"),
        (GOOD_SUBJECTS, GOOD_PROMPTS.replace("a {V} {class} wearing a hat", "a hat"), "prompts.yaml",
         "neither"),
        (GOOD_SUBJECTS, GOOD_PROMPTS.replace("  live:", "  plant:"), "prompts.yaml", "kind 'plant'"),
    ],
)
def test_bad_protocol_files(tmp_path, subjects, prompts, bad_file, message):
    folder = _write_protocol(tmp_path / "p", subjects, prompts)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load_protocol(folder)
    assert str(folder / bad_file) in str(err.value)
    res = CliRunner().invoke(main, ["protocol", "show", "--protocol", str(folder)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.count("\n") == 1 and bad_file in res.stderr


def test_missing_protocol_files(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "subjects.csv").write_text(GOOD_SUBJECTS)
    with pytest.raises(DataError, match="prompts.yaml"):
        load_protocol(tmp_path / "half")
    with pytest.raises(DataError, match="no-such-protocol"):
        load_protocol("no-such-protocol")


OWN_SUBJECTS = "name,class,kind\nkitten_00,kitten,animal\nlamp_01,desk lamp,object\n"
OWN_PROMPTS = """\
kinds: [animal, object]
categories: [photo, art]
identifier: false
instance_prompt: "a photo of {class}"
images_per_prompt: 1
metric_profile: dreambench-plus
data_dir: ../photos
subject_prompts:
  kitten_00:
    - {template: "a {class}  asleep on a sofa", category: photo}
    - {template: "an oil painting", category: art}
  lamp_01:
    - {template: "a {class} on a desk", category: photo}
"""


def test_a_protocol_with_its_own_prompts_per_subject(tmp_path):
    """Per-subject prompts, declared kinds and categories, no identifier, run defaults and a data folder:
    the conventions DreamBench++ needs, as data."""
    proto = load_protocol(_write_protocol(tmp_path / "own" / "p", OWN_SUBJECTS, OWN_PROMPTS))
    kitten, lamp = proto.subjects
    assert (proto.kinds, proto.categories, proto.identifier) == (("animal", "object"), ("photo", "art"), False)
    assert (proto.images_per_prompt, proto.metric_profile) == (1, "dreambench-plus")
    assert proto.data_dir == (tmp_path / "own" / "photos").resolve()
    assert [p.category for p in proto.prompts_for(kitten)] == ["photo", "art"] and len(proto.prompts_for(lamp)) == 1
    # as written (the double space stays), the noun where {class} is; a learnt token takes the noun's place
    assert proto.prompts_for(kitten)[0].render(*proto.wording("sks", False, "kitten")) == "a kitten  asleep on a sofa"
    assert proto.prompts_for(lamp)[0].render(*proto.wording("<sks>", True, "desk lamp")) == "a <sks> on a desk"
    assert proto.instance_prompt_for(*proto.wording("sks", False, "desk lamp")) == "a photo of desk lamp"
    assert proto.instance_prompt_for(*proto.wording("<sks>", True, "desk lamp")) == "a photo of <sks>"
    assert [len(proto.truncated(1).prompts_for(s)) for s in proto.subjects] == [1, 1]
    # the DreamBooth protocol's conventions are the defaults: identifier first, the noun after it
    db = load_protocol("dreambooth")
    assert (db.identifier, db.images_per_prompt, db.metric_profile, db.data_dir) == (True, 4, "paper", None)
    assert db.instance_prompt_for(*db.wording("<sks>", True, "dog")) == "a <sks> dog"


@pytest.mark.parametrize("change, message", [
    (("kind\nkitten_00,kitten,animal", "kind\nkitten_00,kitten,live"), "kind 'live' is not one of animal, object"),
    (("category: art", "category: style"), "category 'style'"),
    (("identifier: false", "identifier: maybe"), "'identifier' must be true or false"),
    (("images_per_prompt: 1", "images_per_prompt: 0"), "'images_per_prompt' must be an integer >= 1"),
    (("  lamp_01:", "  lamp_02:"), "prompts for unknown subject"),
])
def test_a_bad_protocol_key_is_one_line_naming_it(tmp_path, change, message):
    old, new = change
    subjects, prompts = OWN_SUBJECTS.replace(old, new), OWN_PROMPTS.replace(old, new)
    with pytest.raises(DataError, match=message):
        load_protocol(_write_protocol(tmp_path / "bad", subjects, prompts))
