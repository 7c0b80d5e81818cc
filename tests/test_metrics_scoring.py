"""`score_folder` against independent computations: timm / open_clip / lpips forward passes on images
preprocessed with torchvision transforms built here, cosines computed here.

Backbone weights are random-init state dicts written by the tests and passed as files, so nothing is
downloaded. Most tests use the tiny architectures; one uses the full ViT-S/16 and ViT-B/32."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps
from torchvision import transforms as T

from dreambench.manifest import write_part
from dreambench.metrics.scoring import score_folder
from dreambench.models.profiles import TINY_CLIP, TINY_DINO
from dreambench.schema import image_relpath
from dreambench.stats import bootstrap_mean

# lpips builds AlexNet through torchvision's deprecated `pretrained=` argument
pytestmark = pytest.mark.filterwarnings("ignore:.*'(pretrained|weights)'.*:UserWarning")

BICUBIC = T.InterpolationMode.BICUBIC
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIPNORM = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
NOUNS = {"dog": "dog", "backpack": "backpack"}
TEMPLATES = ["a {V} {c} in the jungle", "a {V} {c} on the beach"]


def dino_tf(resize: int = 256):
    return T.Compose([T.Resize(resize, interpolation=BICUBIC), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)])


CLIP_TF = T.Compose([T.Resize(224, interpolation=BICUBIC), T.CenterCrop(224), T.ToTensor(), T.Normalize(*CLIPNORM)])
LPIPS_TF = T.Compose([T.Resize(256, interpolation=BICUBIC), T.CenterCrop(256), T.ToTensor()])


def picture(rng: np.random.Generator, size=(96, 72)) -> Image.Image:
    """A non-square image with structure (gradient + shapes), so crops and resizes change embeddings."""
    w, h = size
    base = np.linspace(0, 255, w, dtype=np.float64)[None, :, None] * rng.uniform(0.2, 1, (1, 1, 3))
    im = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        d.rectangle([x0, y0, x0 + int(rng.integers(5, 40)), y0 + int(rng.integers(5, 40))],
                    fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return im


def make_images(root: Path, methods, subjects, n_prompts=2, per_prompt=3, n_class=2, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for method in methods:
        for subject in subjects:
            noun = NOUNS.get(subject, subject)
            rows = []
            for p in list(range(n_prompts)) + [-1]:
                for k in range(per_prompt if p >= 0 else n_class):
                    rel = image_relpath(method, subject, p, k)
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    picture(rng).save(root / rel)
                    prompt = TEMPLATES[p].format(V="sks", c=noun) if p >= 0 else f"a {noun}"
                    rows.append({"method": method, "subject": subject, "prompt_index": p, "prompt": prompt,
                                 "seed": k, "path": rel})
            write_part(rows, root, method, subject)
    return root


def tiny_weight_files(tmp: Path) -> tuple[Path, Path, torch.nn.Module, torch.nn.Module]:
    """Random state dicts of the tiny DINO and CLIP architectures (drawn here, not by the suite)."""
    import timm
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(1234)
    dino = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, **TINY_DINO).eval()
    clip = CLIP(**TINY_CLIP).eval()
    save_file(dino.state_dict(), str(tmp / "dino.safetensors"))
    torch.save(clip.state_dict(), tmp / "clip.pt")
    return tmp / "dino.safetensors", tmp / "clip.pt", dino, clip


@functools.lru_cache(maxsize=64)
def load(path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


@torch.no_grad()
def embed(model_fn, tf, paths) -> torch.Tensor:
    x = torch.stack([tf(load(p)) for p in paths])
    return torch.nn.functional.normalize(model_fn(x).float(), dim=-1)


@torch.no_grad()
def text_embed(clip, texts) -> torch.Tensor:
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    return torch.nn.functional.normalize(clip.encode_text(tok(texts)).float(), dim=-1)


def real_paths(subjects_dir: Path, subject: str) -> list[Path]:
    return sorted(p for p in (subjects_dir / subject).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def scored(tmp_path_factory, dataset_dir):
    """Two methods x (dog, backpack) scored once with the tiny architectures and weights from files."""
    tmp = tmp_path_factory.mktemp("metrics")
    images = make_images(tmp / "images", ["m1", "m2"], ["dog", "backpack"], n_prompts=1)
    dino_f, clip_f, dino, clip = tiny_weight_files(tmp)
    res = score_folder(images, dataset_dir, tmp / "scores", model_profile="tiny", dino_weights=dino_f,
                       clip_weights=clip_f, device="cpu", batch_size=8, cache_dir=tmp / "cache", progress=False)
    return {"tmp": tmp, "images": images, "res": res, "dino": dino, "clip": clip, "files": (dino_f, clip_f),
            "data": dataset_dir}


def test_dino_clip_i_clip_t_pres_match_direct_computation(scored):
    res, images, data = scored["res"], scored["images"], scored["data"]
    dino, clip = scored["dino"], scored["clip"]
    pi = res.per_image
    assert res.ok and len(pi) == 2 * 2 * (3 + 2)
    for subject in ("dog", "backpack"):
        reals = real_paths(data, subject)
        rd = embed(dino, dino_tf(), reals)
        rc = embed(clip.encode_image, CLIP_TF, reals)
        rows = pi[pi.subject == subject]
        gen = [images / p for p in rows.path]
        gd = embed(dino, dino_tf(), gen)
        gc = embed(clip.encode_image, CLIP_TF, gen)
        texts = [p.replace("sks ", "") for p in rows.prompt]
        assert texts[-1] == f"a {subject} in the jungle" and texts[0] == f"a {subject}"
        tc = text_embed(clip, texts)
        cos_d = gd @ rd.T
        np.testing.assert_allclose(rows.dino, cos_d.mean(1).numpy(), atol=1e-4)
        np.testing.assert_allclose(rows.max_dino_real, cos_d.max(1).values.numpy(), atol=1e-4)
        np.testing.assert_allclose(rows.clip_i, (gc @ rc.T).mean(1).numpy(), atol=1e-4)
        np.testing.assert_allclose(rows.clip_t, (gc * tc).sum(1).numpy(), atol=1e-4)
        assert list(rows.clip_t_text) == texts
        # The check can fail: resizing the short side to 224 instead of 256 before DINO changes the value.
        wrong = embed(dino, dino_tf(224), gen) @ rd.T
        assert np.abs(wrong.mean(1).numpy() - rows.dino.to_numpy()).max() > 1e-3


def test_div_matches_direct_lpips(scored):
    import lpips

    with torch.random.fork_rng():
        torch.manual_seed(0)  # the documented seed of the random AlexNet trunk
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    div, images, pi = scored["res"].div, scored["images"], scored["res"].per_image
    assert len(div) == 2 * 2 and (div.n_pairs == 3).all() and (div.lpips == "alex:random-init").all()
    for r in div.itertuples():
        paths = pi[(pi.method == r.method) & (pi.subject == r.subject) & (pi.prompt_index == r.prompt_index)].path
        x = torch.stack([LPIPS_TF(load(images / p)) * 2 - 1 for p in paths])
        with torch.no_grad():  # the pairs (0,1), (0,2), (1,2) through lpips' own forward, as one batch
            d = model(x[[0, 0, 1]], x[[1, 2, 2]]).flatten()
        assert r.div == pytest.approx(float(d.mean()), abs=1e-4)


def test_real_images_use_every_ordered_pair_once(scored):
    res, data, dino, clip = scored["res"], scored["data"], scored["dino"], scored["clip"]
    real = res.real.set_index("subject")
    n = {s: len(real_paths(data, s)) for s in ("dog", "backpack")}
    assert real.n_pairs.to_dict() == {s: k * (k - 1) for s, k in n.items()}
    assert int(real.n_pairs.sum()) == sum(k * (k - 1) for k in n.values())
    for s in n:
        paths = real_paths(data, s)
        for col, fn, tf in (("dino", dino, dino_tf()), ("clip_i", clip.encode_image, CLIP_TF)):
            e = embed(fn, tf, paths)
            m = e @ e.T
            pairs = [float(m[i, j]) for i in range(len(paths)) for j in range(len(paths)) if i != j]
            assert real.loc[s, col] == pytest.approx(np.mean(pairs), abs=1e-4)
            if col == "dino":  # the copy threshold: the closest pair of distinct real photos
                assert real.loc[s, "copy_reference"] == pytest.approx(max(pairs), abs=1e-4)
    agg = res.aggregates.set_index(["method", "metric"])
    assert agg.loc[("real-images", "dino"), "mean"] == pytest.approx(real.dino.mean())
    assert agg.loc[("real-images", "dino"), "n_subjects"] == 2


def test_aggregates_are_per_subject_then_over_subjects(scored):
    res = scored["res"]
    pi, agg = res.per_image, res.aggregates.set_index(["method", "metric"])
    for method in ("m1", "m2"):
        m = pi[pi.method == method]
        reg, cls = m[m.prompt_index >= 0], m[m.prompt_index == -1]
        for metric in ("dino", "clip_i", "clip_t"):
            per_subject = reg.groupby("subject")[metric].mean().to_numpy()
            est = bootstrap_mean(per_subject, 1000, 0)
            assert agg.loc[(method, metric), "mean"] == pytest.approx(per_subject.mean())
            assert (agg.loc[(method, metric), "lo"], agg.loc[(method, metric), "hi"]) == pytest.approx(
                (est.lo, est.hi), nan_ok=True)
            assert np.isnan(est.lo) and np.isnan(est.hi)  # two subjects: no interval (stats.MIN_SUBJECTS)
        assert agg.loc[(method, "pres"), "mean"] == pytest.approx(cls.groupby("subject").dino.mean().mean())
        d = res.div[res.div.method == method]
        assert agg.loc[(method, "div"), "mean"] == pytest.approx(d.groupby("subject")["div"].mean().mean())
    assert (res.aggregates.weights == "random-init").all()
    assert set(res.per_category.category) == {"recontextualization"}
    pt = res.paired.set_index("metric")
    assert set(pt.index) == {"dino", "clip_i", "clip_t", "pres", "div"} and (pt.n_subjects == 2).all()
    assert (pt.test == "sign-flip exact").all() and pt.lo.isna().all()
    meta = json.loads((res.out_dir / "score_meta.json").read_text())
    assert meta["metric_profile"]["name"] == "paper" and meta["backbones"]["dino"]["weights_id"].startswith("file:")
    assert meta["images_per_s"] > 0
    # copy flag: defined against the subject's closest pair of distinct real photos
    ref = res.real.set_index("subject").copy_reference
    np.testing.assert_array_equal(pi.copy_flag, pi.max_dino_real > pi.subject.map(ref))


def test_rescoring_is_identical_and_reuses_the_cache(scored, tmp_path):
    tmp, res1 = scored["tmp"], scored["res"]
    dino_f, clip_f = scored["files"]
    kw = {"model_profile": "tiny", "dino_weights": dino_f, "clip_weights": clip_f, "device": "cpu",
          "batch_size": 8, "cache_dir": tmp / "cache", "progress": False}
    # A fresh output folder: generated images are embedded again, the real ones come from the cache.
    res2 = score_folder(scored["images"], scored["data"], tmp_path / "scores2", **kw)
    assert res2.stats["real_images_embedded"] == 0 and res2.stats["cache_misses"] == 0
    assert res2.stats["cache_hits"] == 2 * 11  # (dino, clip) x 11 real photos
    assert res2.stats["dino_images"] == len(res1.per_image)
    for name in ("per_image.csv", "div.csv", "real.csv", "aggregates.csv", "per_category.csv", "paired.csv"):
        assert (tmp_path / "scores2" / name).read_bytes() == (res1.out_dir / name).read_bytes(), name
    # The same output folder: every row is reused, no network is run at all.
    before = (res1.out_dir / "per_image.csv").read_bytes()
    res3 = score_folder(scored["images"], scored["data"], res1.out_dir, **kw)
    assert res3.stats["scored_now"] == 0 and res3.stats["dino_images"] == 0 and res3.stats["clip_images"] == 0
    assert res3.stats["div_groups_now"] == 0 and res3.images_per_s is None
    assert (res1.out_dir / "per_image.csv").read_bytes() == before


def test_resume_recomputes_only_missing_rows(scored, tmp_path):
    dino_f, clip_f = scored["files"]
    out = tmp_path / "scores"
    shutil.copytree(scored["res"].out_dir, out)
    full = pd.read_csv(out / "per_image.csv")
    full.iloc[5:].to_csv(out / "per_image.csv", index=False)  # as if interrupted
    res = score_folder(scored["images"], scored["data"], out, model_profile="tiny", dino_weights=dino_f,
                       clip_weights=clip_f, device="cpu", cache_dir=scored["tmp"] / "cache", progress=False)
    assert res.stats["scored_now"] == 5 and res.stats["reused"] == len(full) - 5
    again = pd.read_csv(out / "per_image.csv")
    pd.testing.assert_frame_equal(again, full, atol=1e-6, rtol=0)


def test_profiles_scale_per_image(scored, tmp_path):
    dino_f, clip_f = scored["files"]
    paper = scored["res"].per_image.set_index("path")
    for name, check in (
        ("x100", lambda p, q: np.testing.assert_allclose(q[["dino", "clip_i", "clip_t", "max_dino_real"]],
                                                         100 * p[["dino", "clip_i", "clip_t", "max_dino_real"]],
                                                         atol=1e-6)),
        ("clipscore", lambda p, q: np.testing.assert_allclose(q.clip_t, 2.5 * np.maximum(p.clip_t, 0), atol=1e-9)),
    ):
        res = score_folder(scored["images"], scored["data"], tmp_path / name, metric_profile=name,
                           model_profile="tiny", dino_weights=dino_f, clip_weights=clip_f, device="cpu",
                           cache_dir=scored["tmp"] / "cache", progress=False)
        q = res.per_image.set_index("path").loc[paper.index]
        check(paper, q)
        assert (q.metric_profile == name).all() and (res.aggregates.metric_profile == name).all()
        assert json.loads((tmp_path / name / "score_meta.json").read_text())["metric_profile"]["name"] == name
        np.testing.assert_allclose(res.div["div"], scored["res"].div["div"], atol=1e-9)  # DIV never scaled


def test_full_architectures_from_weight_files(tmp_path):
    """Full ViT-S/16 (DINO) and ViT-B/32 (CLIP) with random weights from files, on two images."""
    import open_clip
    import timm

    torch.manual_seed(7)
    dino = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()
    clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    from safetensors.torch import save_file

    save_file(dino.state_dict(), str(tmp_path / "dino.safetensors"))
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    rng = np.random.default_rng(3)
    subjects = tmp_path / "subjects"
    (subjects / "toy").mkdir(parents=True)
    for k in range(2):
        picture(rng, (300, 260)).save(subjects / "toy" / f"{k:02d}.png")
    # one image per prompt: no DIV group, so LPIPS is never built here
    images = make_images(tmp_path / "images", ["m"], ["toy"], n_prompts=2, per_prompt=1, n_class=0, seed=5)
    res = score_folder(images, subjects, tmp_path / "scores", model_profile="sd15-random",
                       dino_weights=tmp_path / "dino.safetensors", clip_weights=tmp_path / "clip.pt",
                       device="cpu", cache_dir=tmp_path / "cache", progress=False)
    assert res.ok and res.div.empty
    pi = res.per_image
    reals = real_paths(subjects, "toy")
    gen = [images / p for p in pi.path]
    rd, gd = embed(dino, dino_tf(), reals), embed(dino, dino_tf(), gen)
    assert gd.shape[1] == 384
    rc, gc = embed(clip.encode_image, CLIP_TF, reals), embed(clip.encode_image, CLIP_TF, gen)
    tc = text_embed(clip, ["a toy in the jungle", "a toy on the beach"])
    np.testing.assert_allclose(pi.dino, (gd @ rd.T).mean(1).numpy(), atol=1e-4)
    np.testing.assert_allclose(pi.clip_i, (gc @ rc.T).mean(1).numpy(), atol=1e-4)
    np.testing.assert_allclose(pi.clip_t, (gc * tc).sum(1).numpy(), atol=1e-4)
    assert res.real.n_pairs.tolist() == [2]
    assert res.real.dino.iloc[0] == pytest.approx(float(rd[0] @ rd[1]), abs=1e-4)


def test_bad_inputs_are_reported_skipped_and_resumable(tmp_path):
    from click.testing import CliRunner

    from dreambench.cli import main

    rng = np.random.default_rng(11)
    subjects = tmp_path / "subjects"
    for name in ("toy", "broken"):
        (subjects / name).mkdir(parents=True)
        # Real photos as large as the photo checks ask (short side >= 256 px): only the named inputs are bad.
        picture(rng, (320, 256)).save(subjects / name / "00.png")
        picture(rng, (320, 256)).save(subjects / name / "01.png")
    (subjects / "broken" / "02.jpg").write_bytes(b"not a jpeg")
    images = make_images(tmp_path / "images", ["m"], ["toy", "ghost", "broken"], n_prompts=2, per_prompt=3, n_class=0)
    (images / "m/toy/00_0.png").write_bytes(b"\x89PNG truncated")
    Image.open(images / "m/toy/00_1.png").convert("L").save(images / "m/toy/00_1.png")  # fine: converted
    (images / "m/toy/01_0.png").unlink()
    part = images / "m/toy/manifest.csv"
    m = pd.read_csv(part, keep_default_na=False)
    m.loc[m.path == "m/toy/01_1.png", "prompt"] = ""
    m.to_csv(part, index=False)

    out = tmp_path / "scores"
    args = ["score", "--images", str(images), "--subjects", str(subjects), "--out", str(out), "--model-profile",
            "tiny", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert "m/toy/00_0.png" in r.output and "15 bad input(s) skipped" in r.output
    errors = pd.read_csv(out / "errors.csv")
    msg = dict(zip(errors.path, errors.message))
    assert len(msg) == 3 + 2 * 6  # three toy rows, every row of ghost and broken
    assert "unreadable" in msg["m/toy/00_0.png"] and "not found" in msg["m/toy/01_0.png"]
    assert "empty prompt" in msg["m/toy/01_1.png"]
    assert "ghost" in msg["m/ghost/00_0.png"] and "not found" in msg["m/ghost/00_0.png"]
    assert "02.jpg" in msg["m/broken/01_2.png"]
    pi = pd.read_csv(out / "per_image.csv")
    assert sorted(pi.path) == ["m/toy/00_1.png", "m/toy/00_2.png", "m/toy/01_2.png"]
    assert pi[["dino", "clip_i", "clip_t"]].notna().all().all()
    div = pd.read_csv(out / "div.csv")
    assert div[["subject", "prompt_index", "n_images"]].values.tolist() == [["toy", 0, 2]]

    # Fix one file: re-running scores just that row and recomputes its prompt's DIV.
    picture(rng).save(images / "m/toy/00_0.png")
    res = score_folder(images, subjects, out, model_profile="tiny", device="cpu", cache_dir=tmp_path / "cache",
                       progress=False)
    assert res.stats["scored_now"] == 1 and res.stats["reused"] == 3 and len(res.errors) == 14
    assert res.stats["real_images_embedded"] == 0
    assert res.div[["prompt_index", "n_images", "n_pairs"]].values.tolist() == [[0, 3, 3]]

    # Usage errors: one line, status 2.
    r = CliRunner().invoke(main, args[:4] + [str(tmp_path / "nowhere")] + args[5:])
    assert r.exit_code == 2 and "nowhere" in r.output
    r = CliRunner().invoke(main, ["score", "--list-profiles"])
    assert r.exit_code == 0 and "clipscore" in r.output


def test_lpips_groups_share_batches_and_match_lpips_forward():
    import lpips

    from dreambench.metrics.embed import Lpips
    from dreambench.metrics.profiles import DivSpec

    div = Lpips(DivSpec(), pretrained_trunk=False)
    gen = torch.Generator().manual_seed(0)
    groups = [torch.randint(0, 256, (n, 3, 96, 96), generator=gen, dtype=torch.uint8) for n in (3, 1, 2)]
    got = div.groups_div(groups, batch_size=2)  # batches that straddle groups
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for (value, n_pairs), g in zip(got, groups):
        x = g.float() / 255 * 2 - 1
        pairs = [(i, j) for i in range(len(g)) for j in range(i + 1, len(g))]
        assert n_pairs == len(pairs)
        if not pairs:
            assert np.isnan(value)
            continue
        with torch.no_grad():
            expect = np.mean([float(ref(x[i][None], x[j][None])) for i, j in pairs])
        assert value == pytest.approx(expect, abs=1e-5)
