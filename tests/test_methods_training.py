"""Training methods on the tiny profile: the objective learns, PPL uses the class batch, textual inversion
and LoRA touch only what they own, and the sampler is deterministic."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreambench.methods.base import SubjectData, make_config
from dreambench.methods.dreambooth import DreamBooth
from dreambench.methods.lora import DreamBoothLoRA
from dreambench.methods.sampling import SamplingConfig, encode_prompts, sample_images, sample_latents
from dreambench.methods.textual_inversion import TextualInversion
from dreambench.methods.training import DreamBoothData, dreambooth_loss, latent_distribution, load_pixels
from dreambench.protocol import Subject


@pytest.fixture(scope="module")
def pristine():
    from dreambench.models import get_profile, load_sd

    c = load_sd(get_profile("tiny"))
    state = {n: copy.deepcopy(getattr(c, n).state_dict()) for n in ("unet", "vae", "text_encoder")}
    return c, state


@pytest.fixture
def sd(pristine):
    """The tiny SD parts, restored to pristine weights after each test (methods modify them in place)."""
    c, state = pristine
    yield c
    rows = state["text_encoder"]["embeddings.token_embedding.weight"].shape[0]
    if c.text_encoder.get_input_embeddings().weight.shape[0] != rows:  # a failed test left a token added
        c.text_encoder.resize_token_embeddings(rows, mean_resizing=False)
    for n, s in state.items():
        getattr(c, n).load_state_dict(s)


def _toy_images(folder: Path, n: int = 2, seed: int = 0) -> list[Path]:
    """Small synthetic photos: a coloured square on a contrasting background."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a = np.zeros((80, 80, 3), np.uint8)
        a[:] = rng.integers(0, 255, 3)
        a[20:60, 15 + 5 * i:55 + 5 * i] = rng.integers(0, 255, 3)
        p = folder / f"{i:02d}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def _data(tmp_path: Path, n: int = 1) -> SubjectData:
    return SubjectData(Subject("toy", "dog", "live"), _toy_images(tmp_path / "toy", n))


def _eval_loss(c, latents, emb) -> float:
    """Instance loss on fixed noise and timesteps (the per-step training loss is too noisy to compare)."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return float(np.mean([dreambooth_loss(c.unet, c.noise_scheduler(), latents, emb, None, None, 1.0, g)[1].item()
                              for _ in range(6)]))


def _informative_vae(sd, gain: float = 20.0) -> None:
    """Make the random tiny VAE's posterior behave like a trained one: near-zero std (logvar -30) and
    latents of unit scale. Random init gives std ~1 around a mean of ~0.05, i.e. latents that are almost
    pure noise, from which no model could learn the subject. Restored by the ``sd`` fixture."""
    q = sd.vae.quant_conv
    with torch.no_grad():
        q.weight[:4] *= gain
        q.bias[:4] *= gain
        q.weight[4:] = 0
        q.bias[4:] = -30.0


def test_dreambooth_training_learns_the_subject(sd, tmp_path):
    _informative_vae(sd)
    images = _toy_images(tmp_path / "toy", 2)
    data = SubjectData(Subject("toy", "dog", "live"), images[:1])  # image 1 is a control, never trained on
    cfg = make_config(DreamBooth.Config, {"lr": 3e-3, "steps": 150, "with_prior_preservation": False,
                                          "sample_steps": 4})
    mean, _ = latent_distribution(sd.vae, load_pixels(images, sd.resolution), torch.device("cpu"))
    target = mean[:1] * sd.vae.config.scaling_factor
    recon = sd.vae.decode(mean).sample.detach().clamp(-1, 1)  # what a perfect sample of each image decodes to
    emb = encode_prompts(sd.text_encoder, sd.tokenizer, ["a sks dog"], "cpu")
    seeds = [0, 1, 2]

    def distances():
        lat = sample_latents(sd, ["a sks dog"] * 3, seeds, cfg, 4)
        imgs = sample_images(sd, ["a sks dog"] * 3, seeds, cfg, 4)
        px = torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1).float() / 127.5 - 1 for i in imgs])
        return ((lat - target).pow(2).mean().sqrt().item(), (px - recon[0]).abs().mean().item(),
                (px - recon[1]).abs().mean().item())

    loss0, (lat0, px0, _) = _eval_loss(sd, target, emb), distances()
    m = DreamBooth(cfg, sd)
    m.progress = False
    path = m.train(data, tmp_path / "art")
    loss1, (lat1, px1, px_control) = _eval_loss(sd, target, emb), distances()
    print(f"tiny dreambooth: {m.stats.steps_per_s:.2f} steps/s on CPU; loss {loss0:.3f}->{loss1:.3f}; "
          f"latent distance {lat0:.3f}->{lat1:.3f}; pixel distance {px0:.4f}->{px1:.4f} (control {px_control:.4f})")
    assert path.name == "unet.safetensors" and path.is_file()
    assert loss1 < 0.5 * loss0
    assert lat1 < 0.5 * lat0  # samples of "a sks dog" move onto the instance latent
    assert px1 < px0  # decoded samples move toward the instance image (as the VAE reconstructs it)
    assert px1 < px_control  # and are closer to it than to an image the model never saw


def test_prior_preservation_uses_the_class_batch(sd, tmp_path):
    data = _data(tmp_path, 1)
    class_a = _toy_images(tmp_path / "class_a", 2, seed=1)
    class_b = _toy_images(tmp_path / "class_b", 2, seed=2)

    def grads(class_images, weight):
        cfg = make_config(DreamBooth.Config, {"seed": 0, "prior_loss_weight": weight})
        batch = DreamBoothData(sd, data.images, class_images, "a sks dog", "a dog", cfg, torch.device("cpu"))
        sd.unet.zero_grad(set_to_none=True)
        sd.unet.requires_grad_(True)
        loss, _inst, prior = batch.step_loss(sd.unet, weight)
        assert prior is not None
        loss.backward()
        out = [p.grad.clone() for p in sd.unet.parameters()]
        sd.unet.requires_grad_(False)
        return out

    ga, gb = grads(class_a, 1.0), grads(class_b, 1.0)
    assert any(not torch.equal(a, b) for a, b in zip(ga, gb))
    za, zb = grads(class_a, 0.0), grads(class_b, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(za, zb))


def test_textual_inversion_changes_only_the_new_embedding(sd, pristine, tmp_path):
    _, state = pristine
    cfg = make_config(TextualInversion.Config, {"lr": 5e-2, "steps": 3, "batch_size": 1, "sample_steps": 2})
    m = TextualInversion(cfg, sd)
    m.progress = False
    n_rows = sd.text_encoder.get_input_embeddings().weight.shape[0]
    path = m.train(_data(tmp_path), tmp_path / "art")
    assert m.prompt_identifier("sks") == "<sks>"
    tid = m.token_id
    assert tid == n_rows
    for part in ("unet", "vae"):
        now = getattr(sd, part).state_dict()
        assert all(torch.equal(now[k], v) for k, v in state[part].items()), part
    now = sd.text_encoder.state_dict()
    for k, v in state["text_encoder"].items():
        if v.shape == now[k].shape:
            assert torch.equal(now[k], v), k
        else:  # the token embedding: old rows identical, one new row
            assert torch.equal(now[k][:n_rows], v) and now[k].shape[0] == n_rows + 1
    init = m._init_row("dog")
    assert not torch.allclose(sd.text_encoder.get_input_embeddings().weight[tid], init)
    img = m.generate(_data(tmp_path), [_req("a <sks> dog")])[0]
    m.close()
    assert sd.text_encoder.get_input_embeddings().weight.shape[0] == n_rows
    assert "<sks>" not in sd.tokenizer.get_vocab()  # the shared tokenizer was never touched
    m2 = TextualInversion(cfg, sd)
    m2.load_artifact(path)
    assert np.array_equal(np.array(m2.generate(_data(tmp_path), [_req("a <sks> dog")])[0]), np.array(img))
    m2.close()


def _req(prompt: str, seed: int = 7):
    from dreambench.methods.base import GenerationRequest

    return GenerationRequest(prompt, 0, seed)


def test_lora_trains_adapters_only_and_unloads(sd, pristine, tmp_path):
    _, state = pristine
    keys = set(sd.unet.state_dict())
    cfg = make_config(DreamBoothLoRA.Config, {"lr": 1e-2, "steps": 3, "with_prior_preservation": False,
                                              "sample_steps": 2})
    m = DreamBoothLoRA(cfg, sd)
    m.progress = False
    data = _data(tmp_path)
    path = m.train(data, tmp_path / "art")
    from safetensors.torch import load_file

    saved = load_file(str(path))
    assert saved and all("lora" in k for k in saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # B starts at zero: it trained
    img = np.array(m.generate(data, [_req("a sks dog")])[0])
    m.close()
    assert set(sd.unet.state_dict()) == keys
    assert all(torch.equal(sd.unet.state_dict()[k], v) for k, v in state["unet"].items())
    m2 = DreamBoothLoRA(cfg, sd)
    m2.load_artifact(path)
    assert np.array_equal(np.array(m2.generate(data, [_req("a sks dog")])[0]), img)
    m2.close()


def test_sampling_is_deterministic_per_seed(sd):
    prompts = ["a sks dog", "a dog in the snow", "a cat"]
    seeds = [5, 6, 7]
    for sampler in ("ddim", "dpm++", "euler"):
        cfg = SamplingConfig(sampler=sampler, sample_batch_size=3)
        a = [np.array(i) for i in sample_images(sd, prompts, seeds, cfg, 3)]
        b = [np.array(i) for i in sample_images(sd, prompts, seeds, cfg, 3)]
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), sampler
        cfg1 = SamplingConfig(sampler=sampler, sample_batch_size=1)
        c1 = [np.array(i) for i in sample_images(sd, prompts, seeds, cfg1, 3)]
        # Other batch sizes give the same image up to float rounding in batched kernels (<= 1 level of 8 bits)
        assert all(np.abs(x.astype(int) - y).max() <= 1 for x, y in zip(a, c1)), sampler
        assert not np.array_equal(a[0], np.array(sample_images(sd, prompts[:1], [99], cfg, 3)[0]))
    # The initial latent of an image depends only on its own seed.
    lat_batch = sample_latents(sd, prompts, seeds, cfg, 2)
    lat_one = sample_latents(sd, prompts[1:2], seeds[1:2], cfg, 2)
    assert torch.allclose(lat_batch[1], lat_one[0], rtol=1e-4, atol=1e-3)
