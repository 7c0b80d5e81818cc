"""Metric-backbone weight files in the layouts people have, converted to the suite's modules' keys.

Reading (:func:`read_weights`) never runs code from a file: ``.safetensors``, or a torch pickle loaded
with ``weights_only=True`` (tensors and plain containers only; ``argparse.Namespace``, which DINO's
training checkpoints store their arguments in, is the one class allowed). A TorchScript archive (the
OpenAI CLIP release ``ViT-B-32.pt``) is refused with the command that converts it.

Layouts, one converter each (:data:`DINO_LAYOUTS`, :data:`CLIP_LAYOUTS`), tried in order; the first whose
:func:`detect` accepts the keys converts them:

DINO (timm ``VisionTransformer``):
- ``timm``: timm's own keys (``cls_token``, ``blocks.N.attn.qkv.weight``); the released DINO backbone files.
- ``dino-checkpoint``: DINO's training checkpoint ``{"teacher": {...}, "student": ...}``: the teacher,
  ``module.`` and ``backbone.`` prefixes stripped, the projection head dropped.
- ``hf-vit``: Hugging Face transformers ``ViTModel`` (``facebook/dino-vits16``), optionally ``vit.``-prefixed.

CLIP (open_clip ``CLIP``):
- ``open_clip``: open_clip's keys (also the OpenAI state dict once extracted from TorchScript).
- ``hf-clip``: Hugging Face transformers ``CLIPModel`` (``openai/clip-vit-base-patch32``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError
from ..lazy import LazyModule

torch = LazyModule("torch")  # the run's preflight key reads file paths here; only reading weights needs torch

StateDict = dict[str, "torch.Tensor"]

TORCHSCRIPT_CONVERT = (
    "python -c \"import torch, safetensors.torch as st; sd = torch.jit.load('{path}', map_location='cpu')"
    ".state_dict(); st.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{out}')\""
)


def safetensors_keys(path: Path, flag: str) -> list[str]:
    """Tensor names in a ``.safetensors`` header (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as e:  # noqa: BLE001  (a corrupt or foreign file: one line)
        raise ModelLoadError(f"{flag} {path}: not a readable .safetensors file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None


def is_torchscript(path: Path) -> bool:
    """Whether a file is a TorchScript archive (a zip holding ``code/`` and ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any("/code/" in n for n in names) or any(n.endswith("/constants.pkl") for n in names)


def weights_path(path: str | Path, flag: str) -> Path:
    """The weights file itself: ``path``, or for a transformers ``save_pretrained`` folder its
    ``model.safetensors`` / ``pytorch_model.bin``."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (p / name).is_file():
                return p / name
        raise ModelLoadError(f"{flag} {p}: a folder without model.safetensors or pytorch_model.bin")
    return p


def read_weights(path: str | Path, flag: str) -> dict:
    """The raw mapping stored in a weights file (safetensors, or a ``weights_only`` torch pickle)."""
    p = weights_path(path, flag)
    if not p.is_file():
        raise ModelLoadError(f"{flag} {p}: weights file does not exist")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        safetensors_keys(p, flag)
        return load_file(str(p))
    if is_torchscript(p):
        out = p.with_suffix(".safetensors")
        raise ModelLoadError(f"{flag} {p}: a TorchScript archive (like the OpenAI CLIP release .pt); loading it "
                             f"would execute its code, so dreambench refuses it. Convert it once: "
                             + TORCHSCRIPT_CONVERT.format(path=p, out=out) + f" and pass {flag} {out}")
    import argparse

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise ModelLoadError(f"{flag} {p}: cannot read as .safetensors or a weights-only torch file "
                             f"({type(e).__name__}: {first})") from None
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{flag} {p}: holds a {type(obj).__name__}, expected a state dict (name -> tensor)")
    return obj


# ------------------------------------------------------------------------------------------- helpers
def _tensors(d: dict) -> StateDict:
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}


def _strip(sd: StateDict, *prefixes: str) -> StateDict:
    """Remove each prefix (in order, repeatedly) from every key that has it."""
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for pre in prefixes:
                if k.startswith(pre):
                    k, changed = k[len(pre):], True
        out[k] = v
    return out


def _unwrap(raw: dict) -> dict:
    """The state dict inside common wrappers: ``{"state_dict": ...}``, ``{"model": ...}``."""
    for key in ("state_dict", "model"):
        if isinstance(raw.get(key), dict) and raw[key] and all(isinstance(k, str) for k in raw[key]):
            return raw[key]
    return raw


@dataclass(frozen=True)
class Layout:
    """One on-disk layout: a name, a test on the raw mapping, and a converter to the module's keys."""

    name: str
    detect: Callable[[dict], bool]
    convert: Callable[[dict], StateDict]


# ------------------------------------------------------------------------------------------- DINO
def _timm_vit(raw: dict) -> StateDict:
    return _strip(_tensors(_unwrap(raw)), "module.", "backbone.")


def _dino_teacher(raw: dict) -> StateDict:
    sd = _strip(_tensors(raw["teacher"]), "module.", "backbone.")
    return {k: v for k, v in sd.items() if not k.startswith("head.")}  # DINO's projection head


def _hf_vit(raw: dict) -> StateDict:
    sd = _strip(_tensors(_unwrap(raw)), "module.", "vit.", "dino.", "model.")
    out = {"cls_token": sd["embeddings.cls_token"], "pos_embed": sd["embeddings.position_embeddings"],
           "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    n = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer."))
    for i in range(n):
        a, b = f"encoder.layer.{i}.", f"blocks.{i}."
        att = a + "attention.attention."
        for t in ("weight", "bias"):
            out[b + f"attn.qkv.{t}"] = torch.cat([sd[att + f"{q}.{t}"] for q in ("query", "key", "value")])
            for src, dst in (("attention.output.dense", "attn.proj"), ("layernorm_before", "norm1"),
                             ("layernorm_after", "norm2"), ("intermediate.dense", "mlp.fc1"),
                             ("output.dense", "mlp.fc2")):
                out[b + f"{dst}.{t}"] = sd[a + f"{src}.{t}"]
    return out


def _has_suffix(raw: dict, suffix: str) -> bool:
    return any(isinstance(k, str) and k.endswith(suffix) for k in _unwrap(raw))


DINO_LAYOUTS = (
    Layout("dino-checkpoint", lambda r: isinstance(r.get("teacher"), dict), _dino_teacher),
    Layout("hf-vit", lambda r: _has_suffix(r, "embeddings.patch_embeddings.projection.weight"), _hf_vit),
    Layout("timm", lambda r: _has_suffix(r, "patch_embed.proj.weight"), _timm_vit),
)


# ------------------------------------------------------------------------------------------- CLIP
def _open_clip(raw: dict) -> StateDict:
    sd = _strip(_tensors(_unwrap(raw)), "module.")
    # The OpenAI release stores three integers as 0-d tensors; open_clip drops them too.
    return {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}


def _hf_tower(sd: StateDict, src: str, dst: str, out: StateDict) -> None:
    """HF CLIP encoder layers ``src.N.*`` -> open_clip residual blocks ``dst.N.*``."""
    layers = {int(k[len(src):].split(".")[0]) for k in sd if k.startswith(src)}
    for i in sorted(layers):
        a, b = f"{src}{i}.", f"{dst}{i}."
        for t in ("weight", "bias"):
            out[b + f"attn.in_proj_{t}"] = torch.cat([sd[a + f"self_attn.{q}_proj.{t}"] for q in "qkv"])
            for s, d in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                         ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[b + f"{d}.{t}"] = sd[a + f"{s}.{t}"]


def _hf_clip(raw: dict) -> StateDict:
    sd = _strip(_tensors(_unwrap(raw)), "module.")
    t, v = "text_model.", "vision_model."
    out = {"token_embedding.weight": sd[t + "embeddings.token_embedding.weight"],
           "positional_embedding": sd[t + "embeddings.position_embedding.weight"],
           "ln_final.weight": sd[t + "final_layer_norm.weight"], "ln_final.bias": sd[t + "final_layer_norm.bias"],
           "text_projection": sd["text_projection.weight"].t().contiguous(),
           "logit_scale": sd["logit_scale"].reshape(()),
           "visual.class_embedding": sd[v + "embeddings.class_embedding"],
           "visual.conv1.weight": sd[v + "embeddings.patch_embedding.weight"],
           "visual.positional_embedding": sd[v + "embeddings.position_embedding.weight"],
           "visual.ln_pre.weight": sd[v + "pre_layrnorm.weight"], "visual.ln_pre.bias": sd[v + "pre_layrnorm.bias"],
           "visual.ln_post.weight": sd[v + "post_layernorm.weight"],
           "visual.ln_post.bias": sd[v + "post_layernorm.bias"],
           "visual.proj": sd["visual_projection.weight"].t().contiguous()}
    _hf_tower(sd, t + "encoder.layers.", "transformer.resblocks.", out)
    _hf_tower(sd, v + "encoder.layers.", "visual.transformer.resblocks.", out)
    return out


CLIP_LAYOUTS = (
    Layout("hf-clip", lambda r: _has_suffix(r, "text_model.embeddings.token_embedding.weight"), _hf_clip),
    Layout("open_clip", lambda r: _has_suffix(r, "visual.conv1.weight") or _has_suffix(r, "token_embedding.weight"),
           _open_clip),
)

LAYOUTS = {"dino": DINO_LAYOUTS, "clip": CLIP_LAYOUTS}
EXPECTED = {"dino": "a timm ViT state dict, a DINO {'teacher': ...} checkpoint or a transformers ViTModel",
            "clip": "an open_clip state dict or a transformers CLIPModel"}


def convert_weights(raw: dict, kind: str, path: Path, flag: str) -> tuple[StateDict, str]:
    """(state dict in the module's keys, layout name) of the raw mapping of a ``kind`` weights file."""
    for layout in LAYOUTS[kind]:
        if layout.detect(raw):
            try:
                return layout.convert(raw), layout.name
            except KeyError as e:
                raise ModelLoadError(f"{flag} {path}: looks like a {layout.name} file but lacks key {e} "
                                     f"(expected {EXPECTED[kind]})") from None
    sample = ", ".join(sorted(str(k) for k in raw)[:4]) or "nothing"
    raise ModelLoadError(f"{flag} {path}: unsupported layout for {kind.upper()} weights (expected "
                         f"{EXPECTED[kind]}; found keys {sample} ...)")
