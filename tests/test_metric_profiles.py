"""The peers' metric conventions (DreamBench++, torchmetrics CLIPScore, Kosmos-G, ImagenHub, DIV at native
resolution) against independent re-implementations written here: timm / open_clip / lpips forward passes
on images preprocessed with torchvision, paired and averaged the way each peer's code does.

Inputs are the images of a real tiny CLI run (``tiny_results``) and the DreamBooth photos; backbone weights
are random-init state dicts drawn here and passed as files (every number is random-init)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import realrun
import torch
from PIL import Image, ImageOps
from torchvision import transforms as T

from dreambench.metrics.profiles import list_metric_profiles
from dreambench.metrics.scoring import score_folder
from dreambench.models.profiles import TINY_CLIP, TINY_DINO

pytestmark = pytest.mark.filterwarnings("ignore:.*'(pretrained|weights)'.*:UserWarning")

BICUBIC = T.InterpolationMode.BICUBIC
DINO_TF = T.Compose([T.Resize(256, interpolation=BICUBIC), T.CenterCrop(224), T.ToTensor(),
                     T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
CLIP_TF = T.Compose([T.Resize(224, interpolation=BICUBIC), T.CenterCrop(224), T.ToTensor(),
                     T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
NEW_PROFILES = ["dreambench-plus", "torchmetrics", "torchmetrics-vitl14", "kosmos-g", "imagenhub", "paper-div-native"]


@functools.lru_cache(maxsize=256)
def _load(path: str) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


@torch.no_grad()
def _embed(fn, tf, paths) -> torch.Tensor:
    x = torch.stack([tf(_load(str(p))) for p in paths])
    return torch.nn.functional.normalize(fn(x).float(), dim=-1)


@torch.no_grad()
def _text(clip, texts) -> torch.Tensor:
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    return torch.nn.functional.normalize(clip.encode_text(tok(list(texts))).float(), dim=-1)


def _photos(data: Path, subject: str) -> list[Path]:
    return sorted(p for p in (data / subject).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """Tiny random DINO ViT-S/8 and ViT-S/16 and a tiny CLIP, drawn here and saved as weight files."""
    import timm
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("towers")
    torch.manual_seed(4321)
    out = {"s8": timm.create_model("vit_small_patch8_224", num_classes=0, **TINY_DINO).eval(),
           "s16": timm.create_model("vit_small_patch16_224", num_classes=0, **TINY_DINO).eval(),
           "clip": CLIP(**TINY_CLIP).eval()}
    for k, m in out.items():
        save_file(m.state_dict(), str(tmp / f"{k}.safetensors"))
    out["files"] = {k: tmp / f"{k}.safetensors" for k in ("s8", "s16", "clip")}
    return out


@pytest.fixture(scope="module")
def run_copy(tiny_results, tmp_path_factory):
    """A private copy of the tiny run, two of its methods (64-px images; the ``real`` label's full-size
    photos would only slow the peers' re-implementations down), whose manifest names a reference photo
    for the dog rows."""
    root = realrun.copy_run(tiny_results, tmp_path_factory.mktemp("profiles") / "r")
    man = root / "images" / "manifest.csv"
    df = pd.read_csv(man, keep_default_na=False)
    df = df[df.method.isin(["dreambooth", "textual-inversion"])]
    df["reference"] = np.where(df["subject"] == "dog", "02.jpg", "")  # backpack: the default, first photo
    df.to_csv(man, index=False)
    return root


def _score(run: Path, data: Path, towers, profile: str, dino: str, out: str):
    return score_folder(run / "images", data, run / out, metric_profile=profile, model_profile="tiny",
                        dino_weights=towers["files"][dino], clip_weights=towers["files"]["clip"], device="cpu",
                        batch_size=16, cache_dir=run / "cache-profiles", progress=False)


def _peer_cosines(run: Path, data: Path, pi: pd.DataFrame, dino, clip, one_reference: bool):
    """Per row of ``pi``: DINO and CLIP-I cosine to the reference photo (manifest column, else the first
    sorted photo) or the mean over all photos, and the CLIP-T cosine with the manifest's plain prompt."""
    gen = [run / "images" / p for p in pi.path]
    gd, gc = _embed(dino, DINO_TF, gen), _embed(clip.encode_image, CLIP_TF, gen)
    tc = _text(clip, pi.prompt_plain)
    d, c = np.zeros(len(pi)), np.zeros(len(pi))
    man = pd.read_csv(run / "images" / "manifest.csv", keep_default_na=False).set_index("path")
    real = {}  # per subject: file names, DINO and CLIP embeddings of its photos
    for s in pi.subject.unique():
        photos = _photos(data, s)
        real[s] = ([p.name for p in photos], _embed(dino, DINO_TF, photos), _embed(clip.encode_image, CLIP_TF, photos))
    for k, (subject, path) in enumerate(zip(pi.subject, pi.path)):
        names, rd, rc = real[subject]
        if one_reference:
            r = names.index(man.loc[path, "reference"] or names[0])
            rd, rc = rd[r:r + 1], rc[r:r + 1]
        d[k], c[k] = float((gd[k] @ rd.T).mean()), float((gc[k] @ rc.T).mean())
    return d, c, (gc * tc).sum(1).numpy()


def _pooled(pi: pd.DataFrame, col: str, floor: float | None = None) -> pd.Series:
    """Per method, the peer's pooled figure: sum over its images / number of images (torchmetrics-style
    ``compute()`` then ``max(., floor)`` when a floor is given). Class-prompt rows excluded."""
    reg = pi[pi.prompt_index >= 0]
    m = reg.groupby("method")[col].sum() / reg.groupby("method")[col].count()
    return m.clip(lower=floor) if floor is not None else m


def _agg(res, metric: str) -> pd.Series:
    a = res.aggregates
    return a[a.metric == metric].set_index("method")["mean"]


def test_dreambench_plus_is_100cos_to_one_reference(run_copy, dataset_dir, towers):
    res = _score(run_copy, dataset_dir, towers, "dreambench-plus", "s8", "s-dbp")
    assert res.ok, res.errors
    pi = res.per_image
    assert set(pi.loc[pi.subject == "dog", "reference"]) == {"02.jpg"}
    assert set(pi.loc[pi.subject == "backpack", "reference"]) == {_photos(dataset_dir, "backpack")[0].name}
    d, c, t = _peer_cosines(run_copy, dataset_dir, pi, towers["s8"], towers["clip"], one_reference=True)
    np.testing.assert_allclose(pi.dino, 100 * d, atol=1e-2)
    np.testing.assert_allclose(pi.clip_i, 100 * c, atol=1e-2)
    np.testing.assert_allclose(pi.clip_t, 100 * t, atol=1e-2)
    peer = pi.assign(dino=100 * d, clip_i=100 * c, clip_t=100 * t)
    for metric in ("dino", "clip_i", "clip_t"):  # balanced design: mean over subjects == pooled mean
        np.testing.assert_allclose(_agg(res, metric).loc[_pooled(peer, metric).index], _pooled(peer, metric),
                                   atol=1e-2)
    meta = json.loads((run_copy / "s-dbp" / "score_meta.json").read_text())
    assert meta["metric_profile"]["pairing"] == "one" and meta["backbones"]["dino"]["arch"].startswith(
        "vit_small_patch8")


def test_torchmetrics_floors_the_mean_not_each_image(run_copy, dataset_dir, towers):
    res = _score(run_copy, dataset_dir, towers, "torchmetrics", "s16", "s-tm")
    pi = res.per_image
    _, _, t = _peer_cosines(run_copy, dataset_dir, pi, towers["s16"], towers["clip"], one_reference=False)
    np.testing.assert_allclose(pi.clip_t, 100 * t, atol=1e-2)  # per image: 100*cos, unclipped
    peer = pi.assign(clip_t=100 * t)
    expect = _pooled(peer, "clip_t", floor=0.0)  # torchmetrics compute(): max(sum / n_samples, 0)
    np.testing.assert_allclose(_agg(res, "clip_t").loc[expect.index], expect, atol=1e-2)
    assert (_agg(res, "clip_t") >= 0).all()
    per_image_floor = peer[peer.prompt_index >= 0].assign(c=lambda f: f.clip_t.clip(lower=0)).groupby("method").c.mean()
    if (peer.clip_t < 0).any():  # random-init CLIP: some cosines are negative, and the two conventions differ
        assert not np.allclose(per_image_floor.loc[expect.index], expect, atol=1e-3)


def test_kosmos_g_is_floored_mean_of_100cos_to_one_reference(run_copy, dataset_dir, towers):
    res = _score(run_copy, dataset_dir, towers, "kosmos-g", "s16", "s-kg")
    pi = res.per_image
    d, c, t = _peer_cosines(run_copy, dataset_dir, pi, towers["s16"], towers["clip"], one_reference=True)
    peer = pi.assign(dino=100 * d, clip_i=100 * c, clip_t=100 * t)
    for metric in ("dino", "clip_i", "clip_t"):
        np.testing.assert_allclose(pi[metric], peer[metric], atol=1e-2)
        expect = _pooled(peer, metric, floor=0.0)
        np.testing.assert_allclose(_agg(res, metric).loc[expect.index], expect, atol=1e-2)


def test_imagenhub_is_raw_cosine_to_one_reference(run_copy, dataset_dir, towers):
    res = _score(run_copy, dataset_dir, towers, "imagenhub", "s16", "s-ih")
    pi = res.per_image
    d, c, t = _peer_cosines(run_copy, dataset_dir, pi, towers["s16"], towers["clip"], one_reference=True)
    np.testing.assert_allclose(pi.dino, d, atol=1e-4)
    np.testing.assert_allclose(pi.clip_i, c, atol=1e-4)
    np.testing.assert_allclose(pi.clip_t, t, atol=1e-4)
    paper = _score(run_copy, dataset_dir, towers, "paper", "s16", "s-paper").per_image
    dp, _, _ = _peer_cosines(run_copy, dataset_dir, paper, towers["s16"], towers["clip"], one_reference=False)
    np.testing.assert_allclose(paper.dino, dp, atol=1e-4)  # paper: mean over every photo
    assert np.abs(paper.dino.to_numpy() - pi.set_index("path").loc[paper.path].dino.to_numpy()).max() > 1e-3


def test_div_native_resolution_matches_lpips_on_unresized_images(run_copy, dataset_dir, towers):
    import lpips

    res = _score(run_copy, dataset_dir, towers, "paper-div-native", "s16", "s-native")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the documented seed of the random AlexNet trunk
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    pi, div = res.per_image, res.div
    assert len(div) > 0
    for r in div.itertuples():
        paths = pi[(pi.method == r.method) & (pi.subject == r.subject) & (pi.prompt_index == r.prompt_index)].path
        x = torch.stack([T.ToTensor()(_load(str(run_copy / "images" / p))) * 2 - 1 for p in paths])
        i, j = np.triu_indices(len(x), k=1)
        with torch.no_grad():
            d = model(x[i], x[j]).flatten()
        assert r.div == pytest.approx(float(d.mean()), abs=1e-4)
    assert json.loads((run_copy / "s-native" / "score_meta.json").read_text())["backbones"]["lpips"]["size"] is None


def test_bad_reference_is_reported_and_skipped(run_copy, dataset_dir, towers, tmp_path):
    run = realrun.copy_run(run_copy, tmp_path / "r")
    man = run / "images" / "manifest.csv"
    df = pd.read_csv(man, keep_default_na=False)
    df.loc[0, "reference"] = "missing.jpg"
    df.to_csv(man, index=False)
    res = _score(run, dataset_dir, towers, "imagenhub", "s16", "s-bad")
    assert len(res.errors) == 1 and "missing.jpg" in res.errors[0].message
    assert df.loc[0, "path"] not in set(res.per_image.path) and len(res.per_image) == len(df) - 1


def test_full_size_vit_s8_weights_load_under_dreambench_plus(tmp_path):
    """A full ViT-S/8 DINO state dict (refused by the paper profile's ViT-S/16) loads with --dino-weights."""
    import timm
    from safetensors.torch import save_file

    from dreambench.errors import ModelLoadError
    from dreambench.models import build_dino, get_profile

    torch.manual_seed(8)
    s8 = timm.create_model("vit_small_patch8_224", num_classes=0).eval()
    save_file(s8.state_dict(), str(tmp_path / "s8.safetensors"))
    bb = build_dino(get_profile("sd15-random"), "vit_small_patch8_224.dino", tmp_path / "s8.safetensors")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(bb.model(x), s8(x))
    assert bb.weights_id.startswith("file:")
    with pytest.raises(ModelLoadError, match="pos_embed"):
        build_dino(get_profile("sd15-random"), "vit_small_patch16_224.dino", tmp_path / "s8.safetensors")


def test_cli_lists_and_scores_with_the_new_profiles(run_copy, dataset_dir, towers, cli_env):
    out = realrun.run_cli(["score", "--list-profiles"], cli_env).stdout
    for p in list_metric_profiles():
        assert p.name in out
    assert all(name in out for name in NEW_PROFILES)
    flag = "--metric-profile" if "--metric-profile" in realrun.run_cli(["score", "--help"], cli_env).stdout \
        else "--profile"
    realrun.run_cli(["score", "--images", run_copy / "images", "--subjects", dataset_dir, "--out",
                     run_copy / "s-cli", flag, "dreambench-plus", "--model-profile", "tiny", "--dino-weights",
                     towers["files"]["s8"], "--clip-weights", towers["files"]["clip"], "--device", "cpu", "-q"],
                    cli_env)
    pi = pd.read_csv(run_copy / "s-cli" / "per_image.csv", keep_default_na=False)
    d, _, _ = _peer_cosines(run_copy, dataset_dir, pi, towers["s8"], towers["clip"], one_reference=True)
    np.testing.assert_allclose(pi.dino, 100 * d, atol=1e-2)
    assert (pi.metric_profile == "dreambench-plus").all()


def test_clip_t_text_strips_the_placeholder_without_prompt_plain(tiny_results, dataset_dir, towers, tmp_path):
    """Without prompt_plain, textual inversion's "a <sks> dog ..." gives the plain prompt the generator
    wrote, for every method of the run (the placeholder comes from each job's job.json)."""
    run = realrun.copy_run(tiny_results, tmp_path / "r")
    man = run / "images" / "manifest.csv"
    df = pd.read_csv(man, keep_default_na=False)
    plain = dict(zip(df.path, df.prompt_plain))
    assert df.loc[df.method == "textual-inversion", "prompt"].str.contains("<sks>").all()
    df.drop(columns=["prompt_plain"]).to_csv(man, index=False)
    pi = _score(run, dataset_dir, towers, "paper", "s16", "s-text").per_image
    assert "prompt_plain" not in pi.columns
    assert pi.clip_t_text.tolist() == [plain[p] for p in pi.path]
    assert not pi.clip_t_text.str.contains("<|>|sks").any()
