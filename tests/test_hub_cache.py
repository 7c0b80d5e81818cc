"""Pretrained backbones' files in the hub cache, found without loading models (models/hub_cache.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dreambench.metrics.profiles import get_metric_profile


def _fake_cached_file(hub: Path, repo: str, name: str) -> Path:
    """A file laid out as huggingface_hub caches it: refs/main names the snapshot."""
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)
    f = root / "snapshots" / ("0" * 40) / name
    f.parent.mkdir(parents=True)
    f.write_bytes(b"weights")
    return f


def test_pretrained_repo_is_timm_and_open_clip_s_and_found_in_the_cache(tmp_path, monkeypatch):
    import open_clip
    import timm

    from dreambench.models import hub_cache

    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    mp = get_metric_profile("paper")
    dino = hub_cache.pretrained_repo("timm", mp.dino.arch)
    clip = hub_cache.pretrained_repo("open_clip", mp.clip.arch, mp.clip.tag)
    assert dino == timm.models.get_pretrained_cfg(mp.dino.arch).to_dict()["hf_hub_id"].strip("/")
    assert clip == (open_clip.get_pretrained_cfg(mp.clip.arch, mp.clip.tag)["hf_hub"]).strip("/")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_cache.repo_weights(dino) is None
    f = _fake_cached_file(tmp_path / "hub", dino, "model.safetensors")
    assert hub_cache.repo_weights(dino) == f


def test_a_warm_lookup_imports_neither_library(tmp_path):
    """The second lookup (same library versions) is answered from the cache: no timm, open_clip, torch."""
    code = ("import sys\nfrom dreambench.models.hub_cache import pretrained_repo\n"
            "print(pretrained_repo('timm', 'vit_small_patch16_224.dino'), "
            "pretrained_repo('open_clip', 'ViT-B-32-quickgelu', 'openai'))\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'open_clip'}))\n")
    env = {**__import__("os").environ, "DREAMBENCH_CACHE": str(tmp_path / "cache")}
    cold = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    warm = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert cold.stdout.splitlines()[0] == warm.stdout.splitlines()[0]
    assert "torch" in cold.stdout.splitlines()[1]  # the check can fail: a cold lookup loads the libraries
    assert warm.stdout.splitlines()[1] == "[]", warm.stdout


def test_lpips_trunk_checkpoint_is_found_where_torch_looks(tmp_path, monkeypatch):
    """The trunk's ImageNet checkpoint: the file torchvision names, under the folder torch.hub uses."""
    import torch

    from dreambench.metrics.profiles import DivSpec
    from dreambench.metrics.trunk import lpips_trunk_label
    from dreambench.models import hub_cache

    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert hub_cache.torch_hub_dir() == torch.hub.get_dir()
    assert hub_cache.trunk_weights_cached("alex") is None
    assert lpips_trunk_label(DivSpec(net="alex"), True) == "alex:random-init"
    url = hub_cache.torchvision_imagenet_weights("alex").url
    ckpt = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    assert hub_cache.trunk_weights_cached("alex") == ckpt
    assert lpips_trunk_label(DivSpec(net="alex"), True) == "alex:imagenet"
    assert lpips_trunk_label(DivSpec(net="alex"), False) == "alex:random-init"
