"""Metric weight files in every supported layout load to the same embeddings as the reference library.

Each layout is written by its own library's save function from a small random-init model of the tiny
profile's architecture (transformers ``save_pretrained``, ``torch.save`` of DINO's checkpoint dict,
open_clip/timm state dicts, ``torch.jit.save``), then loaded through ``build_dino``/``build_clip``.
"""

from __future__ import annotations

import argparse
import json
import logging

import pytest
import torch

from dreambench.errors import ModelLoadError
from dreambench.models import build_clip, build_dino, get_profile
from dreambench.models.profiles import TINY_CLIP, TINY_DINO, ModelProfile


class Unlisted:
    """A class a weights-only unpickler does not know: its file must be refused, not unpickled."""


X = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny():
    return get_profile("tiny")


def _hf_vit(seed: int = 0, hidden: int = TINY_DINO["embed_dim"]):
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(hidden_size=hidden, num_hidden_layers=TINY_DINO["depth"], num_attention_heads=TINY_DINO["num_heads"],
                    intermediate_size=4 * hidden, image_size=224, patch_size=16, layer_norm_eps=1e-6,
                    hidden_act="gelu", qkv_bias=True)
    torch.manual_seed(seed)
    return ViTModel(cfg, add_pooling_layer=True).eval()


def _hf_clip(seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    v, t = TINY_CLIP["vision_cfg"], TINY_CLIP["text_cfg"]
    cfg = CLIPConfig(
        text_config={"hidden_size": t["width"], "intermediate_size": 4 * t["width"], "num_attention_heads": t["heads"],
                     "num_hidden_layers": t["layers"], "max_position_embeddings": t["context_length"],
                     "vocab_size": t["vocab_size"], "hidden_act": "quick_gelu", "bos_token_id": 49406,
                     "eos_token_id": 49407, "pad_token_id": 0},
        vision_config={"hidden_size": v["width"], "intermediate_size": 4 * v["width"],
                       "num_attention_heads": v["width"] // v["head_width"], "num_hidden_layers": v["layers"],
                       "image_size": v["image_size"], "patch_size": v["patch_size"], "hidden_act": "quick_gelu"},
        projection_dim=TINY_CLIP["embed_dim"])
    torch.manual_seed(seed)
    return CLIPModel(cfg).eval()


def _features(out):
    """transformers returns a tensor or (v5) an output object holding the pooled projection."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_hf_vit_folder_matches_transformers(tmp_path, tiny):
    ref = _hf_vit()
    ref.save_pretrained(tmp_path / "vit")
    bb = build_dino(tiny, weights_file=tmp_path / "vit" / "model.safetensors")
    with torch.no_grad():
        expected = ref(pixel_values=X).last_hidden_state[:, 0]
        torch.testing.assert_close(bb.model(X), expected, atol=1e-5, rtol=1e-4)
    assert bb.where == "file" and bb.digest and bb.weights_id.startswith("file:")
    # the folder itself is accepted too (transformers' save_pretrained layout)
    with torch.no_grad():
        torch.testing.assert_close(build_dino(tiny, weights_file=tmp_path / "vit").model(X), expected,
                                   atol=1e-5, rtol=1e-4)


def test_dino_teacher_checkpoint(tmp_path, tiny):
    """DINO's training checkpoint: teacher + student + optimizer + argparse args; the teacher is loaded."""
    src = build_dino(tiny)
    with torch.no_grad():
        for p in src.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        expected = src.model(X)
    teacher = {f"module.backbone.{k}": v.clone() for k, v in src.model.state_dict().items()}
    teacher["module.head.mlp.0.weight"] = torch.zeros(8, TINY_DINO["embed_dim"])  # the DINO projection head
    student = {k: torch.zeros_like(v) for k, v in teacher.items()}
    ckpt = {"teacher": teacher, "student": student, "optimizer": {"state": {}}, "epoch": 3,
            "args": argparse.Namespace(arch="vit_small", patch_size=16)}
    torch.save(ckpt, tmp_path / "checkpoint.pth")
    with torch.no_grad():
        torch.testing.assert_close(build_dino(tiny, weights_file=tmp_path / "checkpoint.pth").model(X), expected)


def test_hf_clip_matches_transformers(tmp_path, tiny):
    ref = _hf_clip()
    ref.save_pretrained(tmp_path / "clip")
    bb = build_clip(tiny, weights_file=tmp_path / "clip" / "model.safetensors")
    tokens = bb.tokenizer(["a sks dog", "a red cube on the beach"])
    with torch.no_grad():
        torch.testing.assert_close(bb.model.encode_image(X), _features(ref.get_image_features(pixel_values=X)),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bb.model.encode_text(tokens), _features(ref.get_text_features(input_ids=tokens)),
                                   atol=1e-5, rtol=1e-4)
        assert float(bb.model.logit_scale) == pytest.approx(float(ref.logit_scale))


def test_open_clip_openai_style_state_dict(tmp_path, tiny):
    """An open_clip state dict with the OpenAI release's extra integer entries (as extracted from its
    TorchScript archive) and a DataParallel ``module.`` prefix loads."""
    src = build_clip(tiny)
    sd = {f"module.{k}": v.clone() for k, v in src.model.state_dict().items()}
    sd.update({"module.input_resolution": torch.tensor(224), "module.context_length": torch.tensor(77),
               "module.vocab_size": torch.tensor(49408)})
    torch.save(sd, tmp_path / "clip.pt")
    with torch.no_grad():
        torch.testing.assert_close(build_clip(tiny, weights_file=tmp_path / "clip.pt").model.encode_image(X),
                                   src.model.encode_image(X))


def test_torchscript_archive_is_refused_with_the_conversion(tmp_path, tiny):
    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    path = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(M()), str(path))
    with pytest.raises(ModelLoadError) as e:
        build_clip(tiny, weights_file=path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "TorchScript" in msg and "--clip-weights" in msg
    assert "torch.jit.load" in msg and str(path.with_suffix(".safetensors")) in msg


def test_bad_layouts_name_file_expected_and_found(tmp_path, tiny):
    from safetensors.torch import save_file

    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "foo.safetensors"))
    with pytest.raises(ModelLoadError, match=r"--dino-weights .*foo\.safetensors: unsupported layout .*foo\.weight"):
        build_dino(tiny, weights_file=tmp_path / "foo.safetensors")
    # another size of the same architecture: shapes named, file vs expected
    _hf_vit(hidden=48).save_pretrained(tmp_path / "wide")
    with pytest.raises(ModelLoadError, match=r"hf-vit layout.*another shape.*cls_token \(1, 1, 48\) vs \(1, 1, 32\)"):
        build_dino(tiny, weights_file=tmp_path / "wide" / "model.safetensors")
    # a CLIP file given as DINO weights
    _hf_clip().save_pretrained(tmp_path / "clip")
    with pytest.raises(ModelLoadError, match="--dino-weights .*clip.*unsupported layout"):
        build_dino(tiny, weights_file=tmp_path / "clip" / "model.safetensors")
    # a pickle holding code is not opened with full unpickling
    torch.save({"x": torch.zeros(1), "bad": Unlisted()}, tmp_path / "code.pt")
    with pytest.raises(ModelLoadError, match="weights-only"):
        build_clip(tiny, weights_file=tmp_path / "code.pt", flag="--clip-weights")


def test_no_random_init_warning_when_a_file_is_loaded(tmp_path, caplog):
    """open_clip warns "initialized randomly" when it builds a tower that a file then fills: not printed."""
    import open_clip

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "dreambench-test-tiny.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(tmp_path / "cfg")
    prof = ModelProfile("pretrained-test", "test", "none", True, 64)
    src = open_clip.create_model("dreambench-test-tiny")
    torch.save(src.state_dict(), tmp_path / "w.pt")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        bb = build_clip(prof, "dreambench-test-tiny", "openai", weights_file=tmp_path / "w.pt")
    assert bb.where == "file"
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        open_clip.create_model("dreambench-test-tiny")  # the warning exists: the check above can fail
    assert [r for r in caplog.records if "initialized randomly" in r.getMessage()]


def test_lpips_trunk_file_loads_the_torchvision_checkpoint(tmp_path):
    """``--lpips-weights``: a torchvision AlexNet checkpoint (``torch.save(alexnet().state_dict())``, the
    layout of ``alexnet-owt-7be5be79.pth``) fills lpips' trunk; its features equal torchvision's."""
    import torchvision

    from dreambench.metrics.embed import Lpips, build_lpips
    from dreambench.metrics.profiles import DivSpec
    from dreambench.models.digest import file_digest

    torch.manual_seed(5)
    tv = torchvision.models.alexnet().eval()
    torch.save(tv.state_dict(), tmp_path / "alexnet-owt.pth")
    model, label = build_lpips(DivSpec(), True, tmp_path / "alexnet-owt.pth")
    assert label == f"alex:file@{file_digest(tmp_path / 'alexnet-owt.pth')}"
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.net.forward(x)
        ref, h = [], x
        for i, layer in enumerate(tv.features):
            h = layer(h)
            if i in (1, 4, 7, 9, 11):  # the ReLU outputs lpips taps (relu1 .. relu5)
                ref.append(h)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)
    lp = Lpips(DivSpec(), False, "cpu", tmp_path / "alexnet-owt.pth")
    assert lp.pretrained and lp.label == label
    # another architecture's file: one line naming the option, the file, expected and found
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "small.pth")
    with pytest.raises(ModelLoadError, match=r"--lpips-weights .*small\.pth: not a torchvision alex checkpoint"):
        build_lpips(DivSpec(), True, tmp_path / "small.pth")
