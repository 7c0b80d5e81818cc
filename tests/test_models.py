"""Model profiles: the tiny profile on CPU, the offline CLIP tokenizer, weights files, load errors."""

from __future__ import annotations

import time

import pytest
import torch
from click.testing import CliRunner

from dreambench.cli import main
from dreambench.errors import ModelLoadError, UnknownNameError
from dreambench.models import (
    build_clip,
    build_dino,
    get_profile,
    list_profiles,
    load_sd,
    load_state_dict_file,
)
from dreambench.models.tokenizer import CLIP_CONTEXT_LENGTH, CLIP_VOCAB_SIZE, clip_tokenizer

PROMPTS = [
    "a sks dog in the jungle",
    "a cube shaped sks stuffed animal",
    "A Photo of the EIFFEL Tower, at night!!",
    "a dog wearing a black top hat and a monocle (oil painting), 4k",
    "café naïve résumé — emoji 🐶 test",
    "  extra   spaces\tand\nnewlines  ",
    "",
]


@pytest.fixture(scope="module")
def tiny():
    return get_profile("tiny")


@pytest.fixture(scope="module")
def tiny_sd(tiny):
    t = time.perf_counter()
    sd = load_sd(tiny, seed=0)
    return sd, time.perf_counter() - t


def test_tiny_sd_builds_fast_on_cpu(tiny, tiny_sd):
    sd, seconds = tiny_sd
    assert seconds < 60, f"tiny profile took {seconds:.1f} s to build"
    assert (sd.resolution, sd.latent_size, sd.vae_scale_factor) == (64, 16, 4)
    assert sd.source == "config:tiny" and sd.pretrained_weights is False
    assert tiny.weights_label == "random-init" and get_profile("sd15").weights_label == "pretrained"
    assert sd.noise_scheduler().config.num_train_timesteps == 1000
    ids = sd.tokenizer(["a sks dog"], padding="max_length", max_length=sd.tokenizer.model_max_length,
                       return_tensors="pt").input_ids
    with torch.no_grad():
        text = sd.text_encoder(ids)[0]
        latents = sd.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
        eps = sd.unet(torch.randn(1, 4, 16, 16), torch.tensor([10]), encoder_hidden_states=text).sample
        image = sd.vae.decode(latents).sample
    assert latents.shape == (1, 4, 16, 16) and eps.shape == (1, 4, 16, 16) and image.shape == (1, 3, 64, 64)
    assert text.shape[:2] == (1, CLIP_CONTEXT_LENGTH)


def test_tiny_sd_is_seeded(tiny, tiny_sd):
    """Two builds with the same seed are identical (the engine restores pristine weights this way)."""
    sd, _ = tiny_sd
    again = load_sd(tiny, seed=0)
    for a, b in ((sd.unet, again.unet), (sd.text_encoder, again.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    other = load_sd(tiny, seed=1)
    k = next(iter(sd.unet.state_dict()))
    assert not torch.equal(sd.unet.state_dict()[k], other.unet.state_dict()[k])


def test_clip_tokenizer_matches_open_clip():
    import open_clip

    ours = clip_tokenizer()
    ref = open_clip.get_tokenizer("ViT-B-32")
    assert len(ours) == CLIP_VOCAB_SIZE
    long = " ".join(["a sks dog on the beach"] * 20)  # > 77 tokens: both truncate and end with EOT
    for prompt in [*PROMPTS, long]:
        expected = [t for t in ref([prompt])[0].tolist()]
        n = max(i for i, t in enumerate(expected) if t != 0) + 1  # open_clip pads with 0
        got = ours(prompt, truncation=True, max_length=CLIP_CONTEXT_LENGTH).input_ids
        assert got == expected[:n], prompt
    assert ours("a dog").input_ids[0] == 49406 and ours("a dog").input_ids[-1] == 49407


def test_profiles_list():
    res = CliRunner().invoke(main, ["profiles", "list"])
    assert res.exit_code == 0
    names = {p.name for p in list_profiles()}
    assert {"sd15", "sd15-random", "tiny"} <= names
    assert "random-init" in res.stdout and "pretrained" in res.stdout


def test_build_sd15_missing_model_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["profiles", "build", "sd15", "--model", "/nonexistent"])
    assert res.exit_code == 2
    assert "Traceback" not in res.output and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert "--model /nonexistent" in res.stderr and "no such folder" in res.stderr
    # a folder that exists but is not a diffusers pipeline: same kind of error
    res = CliRunner().invoke(main, ["profiles", "build", "sd15", "--model", str(tmp_path)])
    assert res.exit_code == 2 and str(tmp_path) in res.stderr and "model_index.json" in res.stderr


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="sd15, sd15-random, sdxl, sdxl-random, tiny, tiny-sdxl"):
        get_profile("sd99")
    res = CliRunner().invoke(main, ["profiles", "build", "sd99"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "sd99" in res.stderr and "sd15, sd15-random, sdxl, sdxl-random, tiny, tiny-sdxl" in res.stderr


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every float weight away from the seeded init, so loading a file is visible in outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.dtype.is_floating_point:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_backbone_weights_files_reproduce_outputs(tmp_path, tiny, suffix):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    dino, clip = build_dino(tiny), build_clip(tiny)
    with torch.no_grad():
        dino_default, clip_default = dino.model(x), clip.model.encode_image(x)
    _perturb(dino.model, 1)
    _perturb(clip.model, 2)
    tokens = clip.tokenizer(["a sks dog", "a red cube"])
    with torch.no_grad():
        dino_out, clip_img, clip_txt = dino.model(x), clip.model.encode_image(x), clip.model.encode_text(tokens)
    assert not torch.allclose(dino_out, dino_default) and not torch.allclose(clip_img, clip_default)
    files = {}
    for name, model in (("dino", dino.model), ("clip", clip.model)):
        files[name] = tmp_path / f"{name}{suffix}"
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(files[name]))
        else:
            torch.save(state, files[name])
    dino2 = build_dino(tiny, weights_file=files["dino"])
    clip2 = build_clip(tiny, weights_file=files["clip"])
    assert dino2.weights_id.startswith("file:") and dino2.weights_id != dino.weights_id
    with torch.no_grad():
        torch.testing.assert_close(dino2.model(x), dino_out)
        torch.testing.assert_close(clip2.model.encode_image(x), clip_img)
        torch.testing.assert_close(clip2.model.encode_text(tokens), clip_txt)
    # the wrong architecture: a DINO state dict given as CLIP weights, and the reverse
    with pytest.raises(ModelLoadError, match="--clip-weights .*unsupported layout for CLIP weights"):
        build_clip(tiny, weights_file=files["dino"])
    with pytest.raises(ModelLoadError, match=str(files["clip"].name)):
        build_dino(tiny, weights_file=files["clip"])
    # A state dict saved from the classifier (with head.*) loads into the embedding tower; a missing key
    # is named in the error.
    with_head = {**{k: v.contiguous() for k, v in dino.model.state_dict().items()},
                 "head.weight": torch.zeros(3, dino_out.shape[-1]), "head.bias": torch.zeros(3)}
    torch.save(with_head, tmp_path / "dino_head.pt")
    with torch.no_grad():
        torch.testing.assert_close(build_dino(tiny, weights_file=tmp_path / "dino_head.pt").model(x), dino_out)
    del with_head["cls_token"]
    torch.save(with_head, tmp_path / "dino_broken.pt")
    with pytest.raises(ModelLoadError, match=r"1 missing key\(s\) \['cls_token'\]"):
        build_dino(tiny, weights_file=tmp_path / "dino_broken.pt")


@pytest.mark.parametrize("build", [build_dino, build_clip], ids=["dino", "clip"])
def test_random_backbones_are_deterministic(tiny, build):
    """Random-init backbones must not depend on the global RNG: caches key embeddings by weights_id."""
    a = build(tiny)
    torch.manual_seed(12345)  # another process, another global RNG state
    b = build(tiny)
    assert a.weights_id == b.weights_id and a.weights_id.startswith("random:tiny:")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


def test_bad_weights_files(tmp_path, tiny):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_dino(tiny, weights_file=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        load_state_dict_file(junk)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(ModelLoadError, match="state dict"):
        build_clip(tiny, weights_file=listed)
    res = CliRunner().invoke(main, ["profiles", "build", "tiny", "--dino-weights", str(junk)])
    assert res.exit_code == 2 and "junk.safetensors" in res.stderr and "Traceback" not in res.output


def test_profiles_build_builds_the_towers_scoring_uses():
    """`profiles build` builds the metric profile's towers: CLIP ViT-B-32 with QuickGELU (as OpenAI's CLIP
    and as scoring), not open_clip's GELU ViT-B-32."""
    res = CliRunner().invoke(main, ["profiles", "build", "tiny"])
    assert res.exit_code == 0, res.output
    assert "clip ViT-B-32-quickgelu:openai" in res.stdout and "activation QuickGELU" in res.stdout
    from dreambench.metrics.profiles import get_metric_profile

    mp = get_metric_profile("paper")
    names = {type(m).__name__ for m in build_clip(get_profile("tiny"), mp.clip.arch, mp.clip.tag).model.modules()}
    assert "QuickGELU" in names and "GELU" not in names
