"""SDXL: every on-disk form, the conditioning, and equivalence with diffusers' pipeline and training script.

The tiny SDXL parts (profile ``tiny-sdxl``: diffusers' test components, two CLIP text encoders of widths
32 and 48) are written by diffusers' own ``save_pretrained`` in fp32, fp16 and fp16-variant form, and by
the test helper as a single SGM-layout file like ``sd_xl_base_1.0.safetensors``. Every form loads in fp32;
the ``pretrained`` method's latents equal ``StableDiffusionXLPipeline``'s; the DreamBooth-LoRA loss of the
first steps equals ``train_dreambooth_lora_sdxl.py``'s computation in both time-id modes; the LoRA file the
method writes loads with ``StableDiffusionXLPipeline.load_lora_weights`` and gives the suite's images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dreambench.errors import ModelLoadError
from dreambench.methods.interface import Method, MethodConfig
from dreambench.models import get_profile, load_sd
from dreambench.models.sd import load_pretrained_sd
from dreambench.provenance import sd_provenance

XL_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def _pipeline(c):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=c.vae, text_encoder=c.text_encoder, text_encoder_2=c.text_encoder_2,
                                     tokenizer=c.tokenizer, tokenizer_2=c.tokenizer_2, unet=c.unet,
                                     scheduler=EulerDiscreteScheduler.from_config(c.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    """(root with fp32/, fp16/, variant/ folders and sdxl.safetensors, the fp32 reference parts)."""
    from ldm_checkpoint import write_sgm_checkpoint

    root = tmp_path_factory.mktemp("sdxl-forms")
    ref = load_sd(get_profile("tiny-sdxl"), seed=3)
    _pipeline(ref).save_pretrained(root / "fp32")
    pipe16 = _pipeline(load_sd(get_profile("tiny-sdxl"), seed=3)).to(torch.float16)
    pipe16.save_pretrained(root / "fp16")
    pipe16.save_pretrained(root / "variant", variant="fp16")
    write_sgm_checkpoint(ref, root / "sdxl.safetensors")
    return root, ref


def _photos(folder: Path, sizes=((96, 64), (64, 80))) -> list[Path]:
    """Non-square toy photos (so the script's crop time ids are not the constant ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate(sizes):
        p = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


# ------------------------------------------------------------------------------------------ forms
@pytest.mark.parametrize("form", ["fp32", "fp16", "variant", "sdxl.safetensors"])
def test_every_sdxl_form_loads_in_fp32(xl, form):
    root, ref = xl
    sd = load_pretrained_sd(str(root / form), 64, "sdxl", family="sdxl")
    assert type(sd).__name__ == "SDXLComponents" and sd.family == "sdxl" and sd.pretrained_weights
    assert sd.where == ("file" if form.endswith(".safetensors") else "folder")
    for part in XL_PARTS:
        got, want = getattr(sd, part).state_dict(), getattr(ref, part).state_dict()
        assert got.keys() == want.keys(), part
        assert {t.dtype for t in got.values() if t.is_floating_point()} == {torch.float32}, part
        for k in want:
            expected = want[k].half().float() if form in ("fp16", "variant") and want[k].is_floating_point() else want[k]
            torch.testing.assert_close(got[k], expected, rtol=0, atol=0, msg=f"{part}.{k}")
    prov = sd_provenance("sdxl", str(root / form))
    assert prov["sd_digest"] == sd.digest and prov["sd_family"] == "sdxl" and prov["sd_source"] == sd.source


def test_wrong_folder_or_file_is_refused_in_seconds(xl, tmp_path):
    """An SD 1.5 folder or checkpoint given to an SDXL profile (and the reverse) fails before any weight is
    read: one line naming the option, what was expected and found."""
    from ldm_checkpoint import write_ldm_checkpoint

    from dreambench.models.sd_source import resolve_sd_source

    root, _ = xl
    sd15 = load_sd(get_profile("tiny"))
    sd15_dir = tmp_path / "sd15"
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    StableDiffusionPipeline(unet=sd15.unet, vae=sd15.vae, text_encoder=sd15.text_encoder, tokenizer=sd15.tokenizer,
                            scheduler=PNDMScheduler.from_config(sd15.scheduler_config), safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(sd15_dir)
    write_ldm_checkpoint(sd15, tmp_path / "sd15.safetensors")
    cases = [(sd15_dir, "sdxl", r"text_encoder_2/ holds no weights"),
             (tmp_path / "sd15.safetensors", "sdxl", r"checkpoint of model family sd15, and this profile is of family sdxl"),
             (root / "sdxl.safetensors", "sd15", r"checkpoint of model family sdxl, and this profile is of family sd15"),
             (root / "fp32" / "unet", "sdxl", r"not a diffusers Stable Diffusion XL folder .*text_encoder_2/")]
    for path, family, pattern in cases:
        t = time.perf_counter()
        with pytest.raises(ModelLoadError, match=pattern) as e:
            resolve_sd_source(str(path), "--model", family)
        assert time.perf_counter() - t < 2 and "\n" not in str(e.value) and str(e.value).startswith(f"--model {path}")


def test_doctor_refuses_a_wrong_folder_before_loading(xl, tmp_path):
    from click.testing import CliRunner

    from dreambench.cli import main

    (tmp_path / "model_index.json").write_text("{}")
    t = time.perf_counter()
    res = CliRunner().invoke(main, ["doctor", "--profile", "sdxl", "--model", str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "unet/ holds no weights" in res.stderr and str(tmp_path) in res.stderr
    assert time.perf_counter() - t < 20  # the backbones' rows are checked too; the SD row costs milliseconds


def test_vae_override_is_loaded_and_recorded(xl, tmp_path):
    root, _ = xl
    from dreambench.models.vae_source import combined_digest

    sd = load_sd(get_profile("sdxl"), str(root / "fp32"), vae=str(root / "fp16" / "vae"))
    assert sd.vae.dtype == torch.float32 and sd.vae_override["vae_source"] == str((root / "fp16" / "vae").resolve())
    plain = sd_provenance("sdxl", str(root / "fp32"))
    prov = sd_provenance("sdxl", str(root / "fp32"), vae=str(root / "fp16" / "vae"))
    assert prov["sd_digest"] == sd.digest == combined_digest(plain["sd_digest"], prov["vae_digest"])
    assert prov["sd_digest"] != plain["sd_digest"]
    with pytest.raises(ModelLoadError, match=r"--vae .*: not a diffusers AutoencoderKL folder"):
        load_sd(get_profile("sdxl"), str(root / "fp32"), vae=str(tmp_path))


def test_random_init_profiles_are_sdxl_shaped():
    from dreambench.models.digest import tensor_digest

    sd = load_sd(get_profile("tiny-sdxl"))
    prov = sd_provenance("tiny-sdxl")
    assert prov == {"sd_source": "config:tiny-sdxl", "sd_digest": tensor_digest(*sd.modules()),
                    "sd_where": "config", "weights": "random-init", "sd_family": "sdxl"}
    assert sd.unet.config.cross_attention_dim == sd.text_encoder.config.hidden_size + sd.text_encoder_2.config.hidden_size
    assert get_profile("sdxl-random").family == get_profile("sdxl").family == "sdxl"
    assert get_profile("sdxl").resolution == get_profile("sdxl-random").resolution == 1024


def test_tiny_sdxl_forward_is_fast():
    from dreambench.methods.conditioning import prompt_conditioning

    sd = load_sd(get_profile("tiny-sdxl"))
    cond = prompt_conditioning(sd, ["a dog"], "cpu")
    x = torch.zeros(1, 4, sd.latent_size, sd.latent_size)
    with torch.no_grad():
        sd.unet(x, torch.tensor([10]), **cond.unet_kwargs())  # warm-up
        t = time.perf_counter()
        sd.unet(x, torch.tensor([10]), **cond.unet_kwargs())
    assert time.perf_counter() - t < 2.0  # about 0.25 s on one core


# ------------------------------------------------------------------------------------ conditioning
def test_conditioning_equals_the_pipelines_encode_prompt(xl):
    from dreambench.methods.conditioning import negative_conditioning, prompt_conditioning

    _, ref = xl
    pipe = _pipeline(ref)
    with torch.no_grad():
        pe, npe, pooled, npooled = pipe.encode_prompt(["a sks dog", "a cat"], device="cpu",
                                                      do_classifier_free_guidance=True)
    cond = prompt_conditioning(ref, ["a sks dog", "a cat"], "cpu")
    uncond = negative_conditioning(ref, "", 2, "cpu")
    assert torch.equal(cond.hidden, pe) and torch.equal(cond.added["text_embeds"], pooled)
    assert torch.equal(uncond.hidden, npe) and torch.equal(uncond.added["text_embeds"], npooled)  # zeros
    assert cond.hidden.shape[-1] == 80 and cond.added["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]] * 2


def test_crop_time_ids_follow_torchvision_resize_and_center_crop():
    from torchvision import transforms

    from dreambench.methods.conditioning import crop_time_ids

    for w, h in ((96, 64), (64, 80), (1000, 667), (64, 64)):
        img = Image.new("RGB", (w, h))
        resized = transforms.Resize(64)(img)
        top = max(0, round((resized.height - 64) / 2.0))
        left = max(0, round((resized.width - 64) / 2.0))
        assert crop_time_ids([(w, h)], 64).tolist() == [[h, w, top, left, 64, 64]]


# ---------------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("mode", ["constant", "crop"])
def test_pretrained_latents_equal_the_sdxl_pipeline(xl, mode):
    """Same folder, prompt, seed, Euler scheduler from the folder, steps and guidance: identical final
    latents, and PNGs within one 8-bit level (``mode`` only names the run: sampling uses constant ids)."""
    from dreambench.methods.base import GenerationRequest
    from dreambench.methods.pretrained import Pretrained
    from dreambench.methods.sampling import SamplingConfig, initial_latents, sample_latents

    root, _ = xl
    folder = str(root / "fp32")
    sd = load_pretrained_sd(folder, 64, "sdxl", family="sdxl")
    cfg = SamplingConfig(sampler="euler", sample_steps=3, guidance_scale=7.5, channels_last="no")
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    shape = (4, sd.latent_size, sd.latent_size)
    prompt, seed = ("a dog in the jungle", 7) if mode == "constant" else ("a red cube", 0)
    ours = sample_latents(sd, [prompt], [seed], cfg, 3)
    theirs = pipe(prompt, num_inference_steps=3, guidance_scale=7.5, height=64, width=64,
                  latents=initial_latents([seed], shape), output_type="latent").images
    assert torch.equal(ours, theirs)
    img = Pretrained(cfg, sd, "cpu").generate(None, [GenerationRequest(prompt, 0, seed)])[0]
    out = pipe(prompt, num_inference_steps=3, guidance_scale=7.5, height=64, width=64,
               latents=initial_latents([seed], shape), output_type="np").images[0]
    diff = np.abs(np.asarray(img, dtype=np.int16) - (out * 255).round().astype(np.int16))
    assert diff.max() <= 1


def _script_encode_prompt(text_encoders, tokenizers, prompt):
    """train_dreambooth_lora_sdxl.py's ``encode_prompt`` (tokenize_prompt + the loop), verbatim in logic."""
    prompt_embeds_list = []
    for tokenizer, text_encoder in zip(tokenizers, text_encoders):
        ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        prompt_embeds = text_encoder(ids, output_hidden_states=True)
        pooled_prompt_embeds = prompt_embeds[0]
        prompt_embeds = prompt_embeds.hidden_states[-2]
        bs_embed, seq_len, _ = prompt_embeds.shape
        prompt_embeds_list.append(prompt_embeds.view(bs_embed, seq_len, -1))
    return torch.concat(prompt_embeds_list, dim=-1), pooled_prompt_embeds.view(bs_embed, -1)


def _script_losses(c, data, mode: str, prior: bool, steps: int, lr: float, rank: int, seed: int,
                   sizes: list[tuple[int, int]]) -> list[float]:
    """The script's training step, ``steps`` times, on the latents/noise/timesteps the suite's loop draws
    (same generator, same order), with a fresh PEFT adapter seeded as the suite seeds it."""
    from peft import LoraConfig
    from torchvision import transforms

    unet = c.unet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                    target_modules=["to_k", "to_q", "to_v", "to_out.0"]), adapter_name="script")
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)
    res = c.resolution
    with torch.no_grad():
        pe, pooled = _script_encode_prompt((c.text_encoder, c.text_encoder_2), (c.tokenizer, c.tokenizer_2),
                                           data.instance_prompt)
        if prior:
            cpe, cpooled = _script_encode_prompt((c.text_encoder, c.text_encoder_2), (c.tokenizer, c.tokenizer_2),
                                                 data.class_prompt)
            pe, pooled = torch.cat([pe, cpe]), torch.cat([pooled, cpooled])

    def compute_time_ids(original_size, crops_coords_top_left):
        return torch.tensor([list(original_size + crops_coords_top_left + (res, res))])

    def script_crop(w, h):  # the dataset: Resize(res) then CenterCrop, remembering the corner
        img = transforms.Resize(res)(Image.new("RGB", (w, h)))
        return (h, w), (max(0, round((img.height - res) / 2.0)), max(0, round((img.width - res) / 2.0)))

    g = torch.Generator().manual_seed(seed)
    inst_order, cls_order, losses = [], [], []
    sched = c.noise_scheduler()
    for _ in range(steps):
        # the suite's draws, in its order: instance index, instance latent, class index, class latent, noise, t
        if not inst_order:
            inst_order = torch.randperm(data.instance.n, generator=g).tolist()
        i = inst_order.pop(0)
        lat = [data.instance.mean[i] + data.instance.std[i] * torch.randn(data.instance.mean[i].shape, generator=g)]
        if prior:
            if not cls_order:
                cls_order = torch.randperm(data.cls.n, generator=g).tolist()
            j = cls_order.pop(0)
            lat.append(data.cls.mean[j] + data.cls.std[j] * torch.randn(data.cls.mean[j].shape, generator=g))
        model_input = torch.stack(lat) * c.vae.config.scaling_factor
        noise = torch.randn(model_input.shape, generator=g)
        bsz = model_input.shape[0]
        timesteps = torch.randint(0, sched.config.num_train_timesteps, (bsz,), generator=g)
        noisy = sched.add_noise(model_input, noise, timesteps)
        if mode == "constant":  # diffusers v0.24 (DreamBench++): one constant row, repeated
            add_time_ids = compute_time_ids((res, res), (0, 0))
            if prior:
                add_time_ids = torch.cat([add_time_ids, compute_time_ids((res, res), (0, 0))])
        else:  # the current script: per example, from the photo (class images: sampled at res)
            size, crop = script_crop(*sizes[i])
            add_time_ids = compute_time_ids(size, crop)
            if prior:
                add_time_ids = torch.cat([add_time_ids, compute_time_ids((res, res), (0, 0))])
        elems_to_repeat = bsz // 2 if prior else bsz
        model_pred = unet(noisy, timesteps, pe.repeat(elems_to_repeat, 1, 1),
                          added_cond_kwargs={"time_ids": add_time_ids.repeat(elems_to_repeat, 1),
                                             "text_embeds": pooled.repeat(elems_to_repeat, 1)}).sample
        target = noise
        if prior:
            model_pred, model_pred_prior = torch.chunk(model_pred, 2, dim=0)
            target, target_prior = torch.chunk(target, 2, dim=0)
            loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
            prior_loss = F.mse_loss(model_pred_prior.float(), target_prior.float(), reduction="mean")
            loss = loss + 1.0 * prior_loss
        else:
            loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    unet.delete_adapters("script")
    return losses


@pytest.mark.parametrize("mode,prior", [("constant", True), ("crop", False)])
def test_lora_training_loss_equals_the_sdxl_script(xl, tmp_path, mode, prior):
    """The first steps of dreambooth-lora on SDXL: the loss (instance + prior term, no SNR weighting) equals
    the script's at every step, given the same latents, noise and timesteps: conditioning (both encoders'
    penultimate states, pooled projection, time ids of the mode), LoRA init, AdamW and clipping."""
    from dreambench.methods.base import get_method
    from dreambench.methods.interface import SubjectData
    from dreambench.methods.priors import class_prompt
    from dreambench.methods.recipes import resolve_config
    from dreambench.methods.training import DreamBoothData, load_photos
    from dreambench.protocol import load_protocol

    root, _ = xl
    c = load_pretrained_sd(str(root / "fp32"), 64, "sdxl", family="sdxl")
    photos = _photos(tmp_path / "photos")
    classes = _photos(tmp_path / "class", sizes=((64, 64),)) if prior else []
    cls = get_method("dreambooth-lora")
    cfg, _ = resolve_config(cls, "diffusers-sdxl", {"steps": 3, "lr": 1e-2, "time_ids": mode, "seed": 5,
                                                    "with_prior_preservation": prior, "num_class_images": len(classes),
                                                    "compile": "no", "channels_last": "no"}, None, "sdxl")
    subject = load_protocol("dreambooth").subject("dog")
    method = cls(cfg, c, "cpu")
    method.progress = False
    data = SubjectData(subject, photos, class_images=classes)
    method.train(data, tmp_path / "artifact")
    ours = method.stats.instance_loss
    method.close()
    # the reference on the same pristine weights and the same cached posteriors
    c2 = load_pretrained_sd(str(root / "fp32"), 64, "sdxl", family="sdxl")
    batch = DreamBoothData(c2, photos, classes, "a sks dog", class_prompt("dog"), cfg,
                           torch.device("cpu"))
    sizes = load_photos(photos, 64)[1]
    ref = _script_losses(c2, batch, mode, prior, 3, 1e-2, 4, 5, sizes)
    if prior:  # the suite logs the instance term; the script's loss adds the prior term
        assert len(method.stats.prior_loss) == 3
        ours = [i + p for i, p in zip(ours, method.stats.prior_loss)]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert ref[0] != ref[-1]  # the adapters moved


def test_lora_file_loads_into_the_sdxl_pipeline_and_images_match(xl, tmp_path):
    """The saved file is the script's (``pytorch_lora_weights.safetensors``, ``unet.``-prefixed diffusers keys,
    PEFT config in the header); ``load_lora_weights`` takes it; latents equal and PNGs within one level."""
    from safetensors import safe_open

    from dreambench.methods.base import GenerationRequest, get_method
    from dreambench.methods.interface import SubjectData
    from dreambench.methods.recipes import resolve_config
    from dreambench.methods.sampling import initial_latents, sample_latents
    from dreambench.protocol import load_protocol

    root, _ = xl
    folder = str(root / "fp32")
    c = load_pretrained_sd(folder, 64, "sdxl", family="sdxl")
    cls = get_method("dreambooth-lora")
    cfg, _ = resolve_config(cls, "tiny", {"steps": 3, "with_prior_preservation": False, "sample_steps": 3,
                                          "sampler": "euler", "channels_last": "no"}, None, "sdxl")
    method = cls(cfg, c, "cpu")
    method.progress = False
    path = method.train(SubjectData(load_protocol("dreambooth").subject("dog"), _photos(tmp_path / "p")),
                        tmp_path / "art")
    assert path.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert all(k.startswith("unet.") and (".lora.down." in k or ".lora.up." in k) for k in keys)
    assert '"unet.r": 4' in meta["lora_adapter_metadata"]
    prompt, seed = "a sks dog on the beach", 3
    ours = sample_latents(c, [prompt], [seed], cfg, 3)
    img = method.generate(None, [GenerationRequest(prompt, 0, seed)])[0]
    method.close()
    assert not any("lora" in n for n, _ in c.unet.named_parameters())  # unloaded: the base UNet again

    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(path.parent))
    shape = (4, 32, 32)
    theirs = pipe(prompt, num_inference_steps=3, guidance_scale=7.5, height=64, width=64,
                  latents=initial_latents([seed], shape), output_type="latent").images
    assert torch.equal(ours, theirs)
    out = pipe(prompt, num_inference_steps=3, guidance_scale=7.5, height=64, width=64,
               latents=initial_latents([seed], shape), output_type="np").images[0]
    diff = np.abs(np.asarray(img, dtype=np.int16) - (out * 255).round().astype(np.int16))
    assert diff.max() <= 1
    # and the suite reads the file back (a resumed job)
    again = cls(cfg, load_pretrained_sd(folder, 64, "sdxl", family="sdxl"), "cpu")
    again.load_artifact(path)
    assert torch.equal(sample_latents(again.components, [prompt], [seed], cfg, 3), ours)


def test_lora_keys_and_count_on_the_real_sdxl_unet_built_on_meta():
    """rank 4 on SDXL base's UNet config: 5,806,080 trainable parameters, one (A, B) pair per to_q, to_k, to_v,
    to_out.0 of every attention (built on the meta device: no memory for the 2.6B base weights)."""
    from diffusers import UNet2DConditionModel
    from peft import get_peft_model_state_dict

    from dreambench.methods.lora import LoRAConfig, _lora_config
    from dreambench.models.sd_configs import read_config

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(read_config("sdxl", "unet"))
    targets = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)
               and n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v") or n.endswith("to_out.0")]
    unet.add_adapter(_lora_config(LoRAConfig(rank=4)), adapter_name="dreambench")
    trainable = sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n)
    assert trainable == 5_806_080
    keys = set(get_peft_model_state_dict(unet, adapter_name="dreambench"))
    assert keys == {f"{t}.lora_{x}.weight" for t in targets for x in "AB"}
    assert len(targets) == 140 * 4


# ----------------------------------------------------------------------------------------- recipes
def test_recipes_resolve_by_family():
    from dreambench.errors import ConfigError
    from dreambench.methods.base import get_method
    from dreambench.methods.recipes import Recipe, default_recipe, register_recipe, resolve_config

    lora = get_method("dreambooth-lora")
    cfg, name = resolve_config(lora, "dreambench-plus", {}, None, "sdxl")
    assert name == "dreambench-plus" and type(cfg).__name__ == "SDXLLoRAConfig"
    assert (cfg.lr, cfg.steps, cfg.rank, cfg.batch_size, cfg.time_ids, cfg.seed) == (5e-5, 500, 4, 1, "constant", 42)
    assert (cfg.with_prior_preservation, cfg.sampler, cfg.sample_steps, cfg.guidance_scale) == (False, "euler", 100, 7.5)
    assert default_recipe(lora, "sdxl") == "diffusers-sdxl" and default_recipe(lora, "sd15") == "diffusers"
    cfg, _ = resolve_config(lora, None, {}, None, "sdxl")
    assert (cfg.lr, cfg.rank, cfg.steps, cfg.time_ids) == (1e-4, 4, 500, "crop")
    with pytest.raises(ConfigError, match="recipe diffusers-sdxl of method dreambooth-lora is for model family sdxl"):
        resolve_config(lora, "diffusers-sdxl", {}, None, "sd15")
    with pytest.raises(Exception, match="time_ids"):  # the SD 1.5 config has no time ids
        resolve_config(lora, None, {"time_ids": "crop"}, None, "sd15")
    # one name, two families: a neutral recipe and an SDXL one of the same name (the mechanism itself)
    register_recipe(_Toy.name, Recipe("both", "neutral", {"lr": 2.0}))
    register_recipe(_Toy.name, Recipe("both", "sdxl", {"lr": 3.0}, family="sdxl"))
    assert resolve_config(_Toy, "both", {}, None, "sd15")[0].lr == 2.0
    assert resolve_config(_Toy, "both", {}, None, "sdxl")[0].lr == 3.0


@dataclass
class _ToyConfig(MethodConfig):
    lr: float = 1.0


class _Toy(Method):
    name = "toy-family-recipes"
    Config = _ToyConfig

    def train(self, data, workdir):
        return None

    def generate(self, data, requests):
        return []


def test_methods_without_sdxl_are_refused_before_any_job():
    from dreambench.engine.plan import build_plan
    from dreambench.engine.runspec import MethodRun, RunSpec
    from dreambench.errors import DreambenchError
    from dreambench.protocol import load_protocol

    proto = load_protocol("dreambooth")
    for method, pattern in (("dreambooth", r"more than 80 GB.*dreambooth-lora"),
                            ("textual-inversion", r"one embedding per text encoder")):
        spec = RunSpec([MethodRun(method, method)], ["dog"], profile="tiny-sdxl")
        with pytest.raises(DreambenchError, match=rf"--method {method}: method {method} does not run on model "
                                                  rf"family sdxl .*{pattern}"):
            build_plan(spec, proto)
    spec = RunSpec([MethodRun("dreambooth-lora", "dreambooth-lora"), MethodRun("pretrained", "pretrained")],
                   ["dog"], profile="tiny-sdxl")
    plan = build_plan(spec, proto)
    recipes = {j.spec["job"]["method"]: j.spec["recipe"] for j in plan.by_kind("subject")}
    assert recipes == {"dreambooth-lora": "tiny", "pretrained": None}


# ------------------------------------------------------------------------------------------- the CLI
def test_cli_run_of_dreambooth_lora_on_tiny_sdxl(tmp_path):
    """``dreambench run`` of dreambooth-lora and pretrained on tiny-sdxl (DreamBooth protocol, one subject):
    images, the SDXL LoRA file, and the SD source, digest and family recorded; methods without SDXL are
    refused before any job (exit 2, one line)."""
    import json

    from realrun import cli_env, run_cli

    env = cli_env(DREAMBENCH_CACHE=str(tmp_path / "cache"))
    data = Path("/work/shared/dreambooth-dataset")
    if not (data / "dog").is_dir():
        import os

        data = Path(os.environ.get("DREAMBENCH_DATA", ""))
    if not (data / "dog").is_dir():
        pytest.skip("the DreamBooth dataset is not available")
    res = tmp_path / "results"
    run_cli(["--results", res, "run", "--method", "dreambooth-lora", "--method", "pretrained", "--profile",
             "tiny-sdxl", "--subjects", "dog", "--prompts", "1", "--images-per-prompt", "1", "--steps", "2",
             "--set", "dreambooth-lora.num_class_images=1", "--no-score", "--data", data], env)
    art = list((res / "artifacts").rglob("pytorch_lora_weights.safetensors"))
    assert len(art) == 1
    prov = sd_provenance("tiny-sdxl")
    for label in ("dreambooth-lora", "pretrained"):
        info = json.loads((res / "images" / label / "method.json").read_text())
        assert info["profile"] == "tiny-sdxl" and info["weights"] == "random-init"
        assert (info["sd_source"], info["sd_digest"], info["sd_family"]) == ("config:tiny-sdxl", prov["sd_digest"], "sdxl")
        pngs = list((res / "images" / label / "dog").glob("*.png"))
        assert pngs and all(Image.open(p).size == (64, 64) for p in pngs)
    lora = json.loads((res / "images" / "dreambooth-lora" / "method.json").read_text())
    assert lora["recipe"] == "tiny" and lora["config"]["time_ids"] == "crop"
    bad = run_cli(["--results", tmp_path / "r2", "run", "--method", "dreambooth", "--profile", "tiny-sdxl",
                   "--subjects", "dog", "--dry-run", "--data", data], env, check=False)
    assert bad.returncode == 2 and "more than 80 GB" in bad.stderr and "Traceback" not in bad.stderr


def test_dry_run_estimates_sdxl_only_from_an_sdxl_bench(tmp_path):
    """No SDXL figure exists: the estimate gives the plan's size and no hours (never the SD 1.5 calibration);
    a bench.json of a profile of the same family and resolution is used once it exists."""
    import json

    from dreambench.engine import cost
    from dreambench.engine.describe import format_plan
    from dreambench.engine.plan import build_plan
    from dreambench.engine.runspec import MethodRun, RunSpec
    from dreambench.protocol import load_protocol

    spec = RunSpec([MethodRun("dreambooth-lora", "dreambooth-lora")], ["dog", "cat"], profile="sdxl",
                   prompts=1, images_per_prompt=2)
    plan = build_plan(spec, load_protocol("dreambooth"))
    rates = cost.load_rates(tmp_path, "sdxl", "cuda")
    assert "train_steps_per_s" not in rates and "gpu_bench.sh sdxl" in rates["basis"]
    est = cost.estimate(plan, rates, 50)
    assert est["device_hours"] is None and est["train_steps"] == 2 * 500 and est["images"] == 2 * 1 * 2  # subjects x prompts x images
    assert "estimated device-hours: none" in format_plan(plan, est, tmp_path)
    bench = {"profile": "sdxl-random", "device": "cuda", "device_name": "a test GPU",
             "reference": {"train_steps_per_s": 2.0}, "methods": {"dreambooth-lora": {"train_steps_per_s": 4.0}},
             "sampling": {"images_per_s": 0.5, "sample_steps": 50}, "scoring": {"images_per_s": 100.0}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    est = cost.estimate(plan, cost.load_rates(tmp_path, "sdxl", "cuda"), 50)
    assert "a test GPU" in est["basis"]
    # 2 subjects x (500 steps / 4 steps/s + 2 images / 0.5 images/s)
    assert est["device_seconds"]["subject"] == pytest.approx(2 * (500 / 4.0 + 2 / 0.5))
    assert "train_steps_per_s" not in cost.load_rates(tmp_path, "tiny-sdxl", "cuda")  # another resolution: not this bench


def test_vae_is_part_of_the_job_ids_only_when_given():
    from dreambench.engine.plan import build_plan
    from dreambench.engine.runspec import MethodRun, RunSpec
    from dreambench.protocol import load_protocol

    proto = load_protocol("dreambooth")

    def ids(**kw):
        spec = RunSpec([MethodRun("pretrained", "pretrained")], ["dog"], profile="tiny-sdxl", prompts=1, **kw)
        plan = build_plan(spec, proto)
        return {j.id for j in plan.by_kind("subject")}, plan

    plain, plan = ids()
    with_vae, plan_vae = ids(vae="madebyollin/sdxl-vae-fp16-fix")
    assert plain.isdisjoint(with_vae)
    assert all(j.spec["vae"] == "madebyollin/sdxl-vae-fp16-fix" for j in plan_vae.by_kind("subject"))
    assert all(j.spec["vae"] is None for j in plan.by_kind("subject"))
