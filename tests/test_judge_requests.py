"""The judge sends what the reference judge sends (yuangpeng/dreambench_plus 66ca27e), field for field.

The reference's construction is written out below from its source (``utils/image_utils.load_image``,
``utils/gpt_utils.encode_image_into_base64``, ``eval_concept_preservation.py``, ``eval_prompt_following.py``),
independently of dreambench.judge, and compared with what the suite builds and with what a local server
receives. No internet: rubrics come from ../shared/dreambench-plus.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import re
import shutil
from pathlib import Path

import PIL.Image
import PIL.ImageOps
import pytest
from judge_server import ChatServer

from dreambench.errors import DataError
from dreambench.judge import rubrics as rubrics_mod
from dreambench.judge.client import JudgeClient
from dreambench.judge.encode import ImageCache
from dreambench.judge.items import JudgeItem
from dreambench.judge.parse import parse_score
from dreambench.judge.profiles import DREAMBENCH_PLUS, get_profile
from dreambench.judge.rubrics import load_rubrics
from dreambench.judge.runner import Budget, Progress, judge_call, messages_for, plan_calls, run_calls
from dreambench.judge.store import CallStore


def _rubrics() -> Path:
    """$DREAMBENCH_JUDGE_RUBRICS_TEST, else ``dreambench-plus`` beside the DreamBooth dataset the tests read
    (``../shared`` holds both; CI points $DREAMBENCH_DATA there)."""
    from dreambench.paths import default_data_dir

    env = os.environ.get("DREAMBENCH_JUDGE_RUBRICS_TEST")
    return Path(env) if env else default_data_dir().resolve().parent / "dreambench-plus"


RUBRICS = _rubrics()


@pytest.fixture(scope="module")
def rubric_dir() -> Path:
    if not (RUBRICS / "prompts" / "user_prompt_subject_full.txt").is_file():
        pytest.skip(f"DreamBench++ rubrics not found at {RUBRICS}")
    return RUBRICS


# ----------------------------------------------------------------------------- the reference, written out
def ref_load_image(image):
    if isinstance(image, str) or isinstance(image, os.PathLike):  # noqa: SIM101 (the reference, verbatim)
        image = PIL.Image.open(image)
    image = PIL.ImageOps.exif_transpose(image)
    support_mode = ["L", "RGB", "RGBA", "CMYK"]
    if image.mode not in support_mode:
        raise ValueError(image.mode)
    if image.mode == "RGBA":
        background = PIL.Image.new("RGBA", image.size, "white")
        image = PIL.Image.alpha_composite(background, image).convert("RGB")
    image = image.convert("RGB")
    return image


def ref_encode_image_into_base64(image):
    image = ref_load_image(image)
    buffered = io.BytesIO()
    image.save(buffered, format="JPEG")
    return base64.b64encode(buffered.getvalue()).decode("utf-8")


def ref_read(folder: Path, name: str) -> str:
    with open(folder / "prompts" / name) as f:
        return f.read().strip()


def ref_cp_messages(folder: Path, category: str, src: str, tgt: str) -> list[dict]:
    src_image = ref_encode_image_into_base64(ref_load_image(src).resize((512, 512)))
    tgt_image = ref_encode_image_into_base64(ref_load_image(tgt).resize((512, 512)))
    user_prompt = ref_read(folder, f"user_prompt_{category}_full.txt")
    gpt_prompt = ref_read(folder, f"gpt_prompt_{category}_full.txt")
    return [
        {"role": "user", "content": user_prompt},
        {"role": "assistant", "content": gpt_prompt},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{src_image}", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{tgt_image}", "detail": "high"}},
        ]},
    ]


def ref_pf_messages(folder: Path, instruction: str, tgt: str) -> list[dict]:
    tgt_image = ref_encode_image_into_base64(ref_load_image(tgt).resize((512, 512)))
    user_prompt = ref_read(folder, "user_prompt_text_full.txt")
    gpt_prompt = ref_read(folder, "gpt_prompt_text_full.txt")
    return [
        {"role": "user", "content": user_prompt},
        {"role": "assistant", "content": gpt_prompt},
        {"role": "user", "content": [
            {"type": "text", "text": instruction},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{tgt_image}", "detail": "high"}},
        ]},
    ]


def ref_score(content: str) -> int | None:
    score = re.findall(r"(score|Score):\s*[a-zA-Z]*\s*(\d+)", content)
    score = [int(s) for _, s in score]
    return score[0] if len(score) == 1 else None


# ------------------------------------------------------------------------------------------- images
@pytest.fixture(scope="module")
def odd_images(tmp_path_factory) -> dict[str, Path]:
    """Images that exercise every preprocessing step: EXIF rotation, RGBA, L, CMYK, non-square."""
    d = tmp_path_factory.mktemp("odd")
    grad = PIL.Image.linear_gradient("L").resize((640, 400))
    rgb = PIL.Image.merge("RGB", (grad, grad.rotate(90, expand=False), grad.transpose(PIL.Image.FLIP_LEFT_RIGHT)))
    out = {}
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW
    out["exif"] = d / "exif.jpg"
    rgb.save(out["exif"], exif=exif.tobytes())
    rgba = rgb.convert("RGBA")
    rgba.putalpha(grad)
    out["rgba"] = d / "rgba.png"
    rgba.save(out["rgba"])
    out["gray"] = d / "gray.png"
    grad.save(out["gray"])
    out["cmyk"] = d / "cmyk.jpg"
    rgb.convert("CMYK").save(out["cmyk"])
    return out


def _items(imgs: dict[str, Path]) -> list[JudgeItem]:
    return [
        JudgeItem("m", "live_subject_animal_00_kitten", 0, "animal", "  a kitten on the moon ", imgs["rgba"], imgs["exif"]),
        JudgeItem("m", "style_00_ukiyo-e", 5, "style", "a cat, ukiyo-e style", imgs["cmyk"], imgs["gray"]),
        JudgeItem("m", "object_03_teapot", 8, "object", "a teapot made of clouds", imgs["exif"], imgs["rgba"]),
    ]


def test_messages_equal_the_reference_field_for_field(odd_images, rubric_dir):
    rubrics = load_rubrics(DREAMBENCH_PLUS, rubric_dir)
    images = ImageCache()
    calls = plan_calls(_items(odd_images), DREAMBENCH_PLUS, rubrics, "gpt-4o-2024-05-13", 1, 1, images)
    assert len(calls) == 6
    for c in calls:
        got = messages_for(c, images, "high")
        if c.metric == "cp":
            category = "style" if c.item.kind == "style" else "subject"
            want = ref_cp_messages(rubric_dir, category, str(c.item.reference), str(c.item.image))
        else:
            want = ref_pf_messages(rubric_dir, c.item.prompt.strip(), str(c.item.image))
        assert got == want, (c.metric, c.item.subject)
    assert images.encoded == 4  # each of the four files encoded once, whatever number of calls used it


def test_exif_rotation_and_alpha_are_applied(odd_images):
    """The test above could pass with a preprocessing that ignores EXIF and alpha if the reference did too:
    check that the two steps change the bytes (so they are really compared)."""
    cache = ImageCache()
    plain = PIL.Image.open(odd_images["exif"]).convert("RGB").resize((512, 512))
    buf = io.BytesIO()
    plain.save(buf, format="JPEG")
    assert cache.get(odd_images["exif"]) != base64.b64encode(buf.getvalue()).decode()
    black = PIL.Image.open(odd_images["rgba"]).convert("RGB").resize((512, 512))  # alpha dropped, not on white
    buf = io.BytesIO()
    black.save(buf, format="JPEG")
    assert cache.get(odd_images["rgba"]) != base64.b64encode(buf.getvalue()).decode()


def test_request_body_is_the_reference_call(odd_images, rubric_dir, tmp_path):
    """The server receives messages, model, temperature=1 (an integer, as the reference passes it) and a
    seed, and nothing else."""
    rubrics = load_rubrics(DREAMBENCH_PLUS, rubric_dir)
    images = ImageCache()
    calls = plan_calls(_items(odd_images)[:1], DREAMBENCH_PLUS, rubrics, "gpt-4o-2024-05-13", 1, 1, images)
    with ChatServer() as srv:
        client = JudgeClient(srv.base_url, "k", "gpt-4o-2024-05-13", 1.0, max_retries=0, timeout_s=10)
        store = CallStore(tmp_path / "calls.jsonl")
        for c in calls:
            judge_call(c, DREAMBENCH_PLUS, client, images, store, Budget(None), Progress())
    assert len(srv.requests) == 2
    for body, c in zip(srv.requests, calls):
        assert set(body) == {"messages", "model", "temperature", "seed"}
        assert body["model"] == "gpt-4o-2024-05-13" and body["temperature"] == 1
        assert isinstance(body["temperature"], int)
        assert body["messages"] == messages_for(c, images, "high")
        assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31


@pytest.mark.parametrize("content", [
    "Score: 3", "score: 0", "Score: about 4", "The analysis...\nScore:\n2", "**Score:** 3", "SCORE: 3",
    "Score: 1 and Score: 2", "no number", "Score: 7", "Score:12", "score - 3", "Final score: 4.", "",
])
def test_parse_matches_the_reference_regex(content):
    got = parse_score(content, DREAMBENCH_PLUS.score_pattern, DREAMBENCH_PLUS.score_range)
    want = ref_score(content)
    if want is not None and not 0 <= want <= 4:
        assert got.score is None and "outside" in got.problem  # the deliberate difference: out of range refused
    else:
        assert got.score == want


def test_rubrics_sha256_checked(rubric_dir, tmp_path):
    changed = tmp_path / "rubrics"
    shutil.copytree(rubric_dir / "prompts", changed)
    p = changed / "gpt_prompt_text_full.txt"
    p.write_text(p.read_text() + " ")
    with pytest.raises(DataError, match="gpt_prompt_text_full.txt: sha256"):
        load_rubrics(DREAMBENCH_PLUS, changed)
    for name, sha in DREAMBENCH_PLUS.sha256.items():  # the shared copy is the pinned one
        assert hashlib.sha256((rubric_dir / "prompts" / name).read_bytes()).hexdigest() == sha


def test_rubrics_fetched_at_the_pinned_commit_into_a_cache(rubric_dir, tmp_path, monkeypatch):
    asked = []

    class _Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(url, timeout):
        asked.append(url)
        return _Resp((rubric_dir / "prompts" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.delenv(rubrics_mod.RUBRICS_ENV, raising=False)
    monkeypatch.setattr(rubrics_mod.urllib.request, "urlopen", fake_urlopen)
    got = load_rubrics(get_profile("dreambench-plus"), None, tmp_path / "cache")
    assert len(asked) == 6 and all(u.startswith("https://raw.githubusercontent.com/yuangpeng/dreambench_plus/"
                                                "66ca27e52b5e7daa350bdb92ac8c60d4a9339c5e/dreambench_plus/prompts/")
                                   for u in asked)
    assert got == load_rubrics(DREAMBENCH_PLUS, rubric_dir)
    load_rubrics(DREAMBENCH_PLUS, None, tmp_path / "cache")
    assert len(asked) == 6  # the second load reads the cache
    (tmp_path / "cache" / DREAMBENCH_PLUS.commit / "user_prompt_text_full.txt").write_text("tampered")
    monkeypatch.setattr(rubrics_mod.urllib.request, "urlopen",
                        lambda url, timeout: _Resp(b"a changed rubric"))
    with pytest.raises(DataError, match="refusing a changed rubric"):
        load_rubrics(DREAMBENCH_PLUS, None, tmp_path / "cache")


def test_concurrency_is_bounded_and_the_budget_counts_requests(odd_images, rubric_dir, tmp_path):
    rubrics = load_rubrics(DREAMBENCH_PLUS, rubric_dir)
    images = ImageCache()
    calls = plan_calls(_items(odd_images), DREAMBENCH_PLUS, rubrics, "m", 1, 2, images)  # 12 calls
    with ChatServer(delay_s=0.1) as srv:
        client = JudgeClient(srv.base_url, "k", "m", 1.0, max_retries=0, timeout_s=10)
        p = run_calls(calls, DREAMBENCH_PLUS, client, images, CallStore(tmp_path / "a.jsonl"), concurrency=3)
        assert p.finished == 12 and srv.max_in_flight == 3
        srv.inject("noscore")
        p = run_calls(calls, DREAMBENCH_PLUS, client, images, CallStore(tmp_path / "b.jsonl"), concurrency=1,
                      max_requests=5)
    assert p.requests == 5 and p.budget_hit and p.finished == 4  # the first call took two requests
    assert len(CallStore(tmp_path / "b.jsonl").load()) == 4


def test_a_plain_list_of_items_is_judged_and_tabulated(odd_images, rubric_dir, tmp_path):
    """The judge's input is a list of items (what the DreamBench++ protocol will build): records, CSVs and
    the table rows go to the folder given; kinds and prompt groups make the breakdowns."""
    from dreambench.judge.evaluate import JudgeOptions, judge_results
    from dreambench.judge.table import judge_rows

    opts = JudgeOptions(base_url=None, rubrics=rubric_dir, runs=2)
    with ChatServer() as srv:
        opts.base_url = srv.base_url
        res = judge_results(tmp_path, opts, items=_items(odd_images))
        assert len(srv.requests) == res.pending == 12
        again = judge_results(tmp_path, opts, items=_items(odd_images))
        assert len(srv.requests) == 12 and again.pending == 0
    row = judge_rows(tmp_path).set_index("label").loc["m"]
    for col in ("cp_animal", "cp_object", "cp_style", "pf_photorealistic", "pf_style_transfer", "pf_imaginative"):
        assert 0 <= row[col] <= 1, col
    assert math.isnan(row["cp_human"]) and row["cp_n_judged"] == row["cp_n_expected"] == 6
    with pytest.raises(DataError, match="kind"):
        judge_results(tmp_path, opts, items=[JudgeItem("m", "s", 0, "live", "p", odd_images["gray"], odd_images["gray"])])
