"""Stable Diffusion folders in every on-disk form a user is likely to have, and equivalence with diffusers.

The folders are written by diffusers' own ``save_pretrained`` from a small random-init pipeline of the
tiny profile's architecture: fp32, an fp16 pipeline (``torch_dtype=float16``), fp16 variant files only
(``variant="fp16"``), and a simulated hub cache (blobs named by their sha256, snapshot symlinks). Every form
loads with every part in fp32 (the documented master-weights dtype); the images of the ``pretrained``
method equal ``StableDiffusionPipeline``'s; the DreamBooth loss equals the diffusers example's formula.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from dreambench.errors import ModelLoadError
from dreambench.models import get_profile, load_sd
from dreambench.models.sd import load_pretrained_sd
from dreambench.provenance import sd_provenance

PARTS = ("unet", "vae", "text_encoder")


def _pipeline(sd):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(unet=sd.unet, vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                   scheduler=PNDMScheduler.from_config(sd.scheduler_config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{form: folder} written by save_pretrained, plus the fp32 reference parts."""
    root = tmp_path_factory.mktemp("sd-forms")
    ref = load_sd(get_profile("tiny"), seed=3)
    pipe = _pipeline(ref)
    pipe.save_pretrained(root / "fp32")
    pipe16 = _pipeline(load_sd(get_profile("tiny"), seed=3)).to(torch.float16)
    pipe16.save_pretrained(root / "fp16")
    pipe16.save_pretrained(root / "variant", variant="fp16")
    return root, ref


@pytest.mark.parametrize("form", ["fp32", "fp16", "variant"])
def test_every_folder_form_loads_in_fp32(folders, form):
    root, ref = folders
    sd = load_pretrained_sd(str(root / form), 64)
    assert sd.source == str((root / form).resolve()) and sd.where == "folder" and sd.pretrained_weights
    for part in PARTS:
        got, want = getattr(sd, part).state_dict(), getattr(ref, part).state_dict()
        assert {t.dtype for t in got.values() if t.is_floating_point()} == {torch.float32}, part
        k = next(k for k, t in want.items() if t.is_floating_point() and t.numel() > 1)
        expected = want[k] if form == "fp32" else want[k].half().float()  # fp16 files: fp16 values, in fp32
        torch.testing.assert_close(got[k], expected, rtol=0, atol=0)
    # the fp16 text encoder meets the fp32 UNet: sampling runs (it crashed with mismatched dtypes)
    from dreambench.methods.sampling import SamplingConfig, sample_images

    imgs = sample_images(sd, ["a dog"], [0], SamplingConfig(sample_steps=2), 2)
    assert imgs[0].size == (64, 64)
    assert sd_provenance("sd15", str(root / form))["sd_digest"] == sd.digest


def test_digests_differ_between_forms_and_follow_bytes(folders):
    root, _ = folders
    d = {f: sd_provenance("sd15", str(root / f))["sd_digest"] for f in ("fp32", "fp16", "variant")}
    assert len(set(d.values())) == 3 and all(len(v) == 16 for v in d.values())
    # the digest is of the weight files: it matches an independent sha256 over them
    files = sorted(p for p in (root / "fp32").rglob("*.safetensors"))
    lines = sorted(f"{p.relative_to(root / 'fp32').as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
                   for p in files)
    assert d["fp32"] == hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def test_simulated_hub_cache_loads_offline(folders, tmp_path, monkeypatch):
    """A hub cache (refs/main -> snapshot of symlinks into blobs/<sha256>) loads by hub id, offline; the
    digest comes from the blob names (no file is read)."""
    from huggingface_hub import constants

    root, ref = folders
    repo = tmp_path / "hub" / "models--someone--tiny-sd"
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / rev
    for p in sorted((root / "fp32").rglob("*")):
        if p.is_file():
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            blob = repo / "blobs" / sha
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(p.read_bytes())
            link = snap / p.relative_to(root / "fp32")
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd = load_pretrained_sd("someone/tiny-sd", 64)
    assert sd.source == "someone/tiny-sd" and sd.where == "hub cache"
    assert sd.digest == sd_provenance("sd15", str(root / "fp32"))["sd_digest"]
    torch.testing.assert_close(sd.unet.conv_in.weight, ref.unet.conv_in.weight)
    with pytest.raises(ModelLoadError, match=r"--model someone/other: not in the local hub cache .*hub.*HF_HUB_OFFLINE"):
        load_pretrained_sd("someone/other", 64)


def test_bad_model_arguments_are_one_line(folders, tmp_path):
    root, _ = folders
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x02not opened")
    cases = {
        str(tmp_path / "missing"): "no such folder or file",
        str(tmp_path / "model.ckpt"): "pickle, which dreambench never unpickles.*convert_original_stable_diffusion",
        str(root / "fp32" / "unet"): "not a diffusers Stable Diffusion folder .*expected model_index.json.*found",
    }
    for arg, pattern in cases.items():
        with pytest.raises(ModelLoadError, match=pattern) as e:
            load_pretrained_sd(arg, 64)
        assert "\n" not in str(e.value) and arg in str(e.value) and str(e.value).startswith("--model ")
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(root / "fp32", broken)
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"vae/ holds no weights \(expected diffusion_pytorch_model.safetensors"):
        load_pretrained_sd(str(broken), 64)


def test_pretrained_images_equal_stable_diffusion_pipeline(folders):
    """Same folder, prompt, seed, scheduler (DDIM from the folder's config), steps and guidance: the
    ``pretrained`` method's PNGs equal diffusers' within one 8-bit level."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from dreambench.methods.base import GenerationRequest
    from dreambench.methods.pretrained import Pretrained
    from dreambench.methods.sampling import SamplingConfig, initial_latents

    root, _ = folders
    folder = str(root / "fp32")
    sd = load_pretrained_sd(folder, 64)
    cfg = SamplingConfig(sampler="ddim", sample_steps=4, guidance_scale=7.5, channels_last="no")
    prompts, seeds = ["a dog in the jungle", "a red cube"], [0, 7]
    ours = Pretrained(cfg, sd, "cpu").generate(None, [GenerationRequest(p, i, s) for i, (p, s) in
                                                      enumerate(zip(prompts, seeds))])
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    shape = (sd.unet.config.in_channels, sd.latent_size, sd.latent_size)
    for prompt, seed, img in zip(prompts, seeds, ours):
        out = pipe(prompt, num_inference_steps=4, guidance_scale=7.5, latents=initial_latents([seed], shape),
                   output_type="np").images[0]
        ref = (out * 255).round().astype(np.int16)
        diff = np.abs(np.asarray(img, dtype=np.int16) - ref)
        assert diff.max() <= 1, f"{prompt}: max difference {diff.max()} levels"


def test_dreambooth_loss_equals_the_diffusers_example(folders):
    """``dreambooth_loss`` on fixed latents, noise and timesteps equals train_dreambooth.py's computation
    (instance and class examples concatenated, chunked, MSE each, prior term weighted)."""
    import torch.nn.functional as F

    from dreambench.methods.sampling import encode_prompts
    from dreambench.methods.training import dreambooth_loss

    root, _ = folders
    sd = load_pretrained_sd(str(root / "fp32"), 64)
    sched = sd.noise_scheduler()
    g = torch.Generator().manual_seed(0)
    inst, cls = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    emb = encode_prompts(sd.text_encoder, sd.tokenizer, ["a sks dog", "a dog"], "cpu")
    inst_e, cls_e = emb[0:1].expand(2, -1, -1), emb[1:2].expand(2, -1, -1)
    with torch.no_grad():
        loss, inst_loss, prior_loss = dreambooth_loss(sd.unet, sched, inst, inst_e, cls, cls_e, 0.7,
                                                      torch.Generator().manual_seed(11))
        # the example: noise and timesteps drawn in this order, then its formula
        g = torch.Generator().manual_seed(11)
        model_input = torch.cat([inst, cls])
        noise = torch.randn(model_input.shape, generator=g)
        timesteps = torch.randint(0, sched.config.num_train_timesteps, (4,), generator=g)
        noisy = sched.add_noise(model_input, noise, timesteps)
        pred = sd.unet(noisy, timesteps, torch.cat([inst_e, cls_e]), return_dict=False)[0]
        pred, pred_prior = torch.chunk(pred, 2, dim=0)
        target, target_prior = torch.chunk(noise, 2, dim=0)
        ref = F.mse_loss(pred.float(), target.float(), reduction="mean")
        ref_prior = F.mse_loss(pred_prior.float(), target_prior.float(), reduction="mean")
    assert torch.equal(inst_loss, ref) and torch.equal(prior_loss, ref_prior)
    assert torch.equal(loss, ref + 0.7 * ref_prior)


def test_random_init_provenance_is_the_tensor_digest():
    from dreambench.models.digest import tensor_digest

    sd = load_sd(get_profile("tiny"))
    prov = sd_provenance("tiny")
    assert prov == {"sd_source": "config:tiny", "sd_digest": tensor_digest(sd.unet, sd.vae, sd.text_encoder),
                    "sd_where": "config", "weights": "random-init"}
    assert sd.digest == prov["sd_digest"] and load_sd(get_profile("tiny"), seed=1).digest != sd.digest
    with pytest.raises(ModelLoadError, match="--model /x: profile tiny builds random-init"):
        sd_provenance("tiny", "/x")


def test_single_file_checkpoint_loads_offline(folders, tmp_path):
    """An LDM-layout .safetensors (as SD 1.5's single files) loads with diffusers' from_single_file and the
    suite's own configs, no hub: every tensor equal, every part fp32, also when the file is fp16."""
    from ldm_checkpoint import write_ldm_checkpoint
    from safetensors.torch import load_file, save_file

    _, ref = folders
    path = tmp_path / "tiny-sd.safetensors"
    write_ldm_checkpoint(ref, path)
    sd = load_pretrained_sd(str(path), 64)
    assert (sd.source, sd.where) == (str(path.resolve()), "file")
    assert sd.digest == sd_provenance("sd15", str(path))["sd_digest"]
    for part in PARTS:
        got, want = getattr(sd, part).state_dict(), getattr(ref, part).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), part
    half = tmp_path / "tiny-sd-fp16.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}, str(half))
    sd16 = load_pretrained_sd(str(half), 64)
    assert {p.dtype for part in PARTS for p in getattr(sd16, part).parameters()} == {torch.float32}
    # not an SD checkpoint, or another architecture: one line naming the file, expected and found
    save_file({"foo": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelLoadError, match=r"not a Stable Diffusion checkpoint \(expected keys model.diffusion_model"):
        load_pretrained_sd(str(tmp_path / "other.safetensors"), 64)
    wide = load_file(str(path))
    wide["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(48, 4, 3, 3)
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ModelLoadError, match=r"not an SD 1.x architecture .*\(48, 4, 3, 3\).*expected sd15"):
        load_pretrained_sd(str(tmp_path / "wide.safetensors"), 64)
