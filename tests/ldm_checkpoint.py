"""Write SD parts as a single-file checkpoint in the original LDM layout (the inverse of diffusers'
``convert_ldm_*_checkpoint``), for tests of ``--model file.safetensors``.

diffusers ships the reader of this layout but no writer; the key rules here are the inverse of its
``single_file_utils`` (the fixed names come from its ``DIFFUSERS_TO_LDM_MAPPING``), so a round trip
through ``from_single_file`` gives the tensors back exactly when both agree.
"""

from __future__ import annotations

import re

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _sub(rest: str, pairs) -> str:
    for new, old in pairs:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_to_ldm(sd: dict, config) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = {**DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"], **DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]}
    per = config["layers_per_block"] + 1
    up_attn = {i for i, t in enumerate(config["up_block_types"]) if "CrossAttn" in t}
    out = {}
    for k, v in sd.items():
        if k in fixed:
            new = fixed[k]
        elif m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", k):
            new = f"input_blocks.{int(m[1]) * per + int(m[2]) + 1}.0.{_sub(m[3], _RESNET)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", k):
            new = f"input_blocks.{int(m[1]) * per + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", k):
            new = f"middle_block.{2 * int(m[1])}.{_sub(m[2], _RESNET)}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", k):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", k):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.0.{_sub(m[3], _RESNET)}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", k):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k):
            b = int(m[1])
            new = f"output_blocks.{b * per + per - 1}.{2 if b in up_attn else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {k}")
        out["model.diffusion_model." + new] = v
    return out


def vae_to_ldm(sd: dict, config) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(config["up_block_types"])
    out = {}
    for k, v in sd.items():
        if k in fixed:
            new = fixed[k]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", k):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", k):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", k):
            new = f"{m[1]}.mid.attn_1.{_sub(m[2], _VAE_ATTN)}"
            if v.dim() == 2:  # the original attention projections are 1x1 convolutions
                v = v[:, :, None, None]
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", k):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for VAE key {k}")
        out["first_stage_model." + new] = v
    return out


def text_to_ldm(sd: dict) -> dict:
    """SD 1.x checkpoints hold the HF CLIPTextModel keys under ``cond_stage_model.transformer.text_model.``
    (transformers 5 names them without ``text_model.``)."""
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in sd.items()}


def write_ldm_checkpoint(components, path) -> None:
    """Save ``components`` (SDComponents) as one LDM-layout ``.safetensors`` file."""
    from safetensors.torch import save_file

    sd = {**unet_to_ldm(components.unet.state_dict(), components.unet.config),
          **vae_to_ldm(components.vae.state_dict(), components.vae.config),
          **text_to_ldm(components.text_encoder.state_dict())}
    save_file({k: t.detach().contiguous().clone() for k, t in sd.items()}, str(path))


def open_clip_text(sd: dict) -> dict:
    """A transformers ``CLIPTextModelWithProjection`` state dict in OpenCLIP's text-tower keys (SDXL's
    ``conditioner.embedders.1.model.*``): the inverse of diffusers' ``convert_open_clip_checkpoint``."""
    import torch

    sd = {("text_model." + k if not k.startswith(("text_model.", "text_projection")) else k): v for k, v in sd.items()}
    out = {"token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           "ln_final.bias": sd["text_model.final_layer_norm.bias"],
           "text_projection": sd["text_projection.weight"].T.contiguous()}
    layers = {int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")}
    for i in sorted(layers):
        a, b = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for t in ("weight", "bias"):
            out[b + f"attn.in_proj_{t}"] = torch.cat([sd[a + f"self_attn.{q}_proj.{t}"] for q in "qkv"])
            for src, dst in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                             ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[b + f"{dst}.{t}"] = sd[a + f"{src}.{t}"]
    return out


def write_sgm_checkpoint(components, path) -> None:
    """Save SDXL ``components`` (SDXLComponents) as one SGM-layout ``.safetensors`` file, as the SDXL 1.0
    release ``sd_xl_base_1.0.safetensors``: UNet and VAE as in SD 1.x, ``conditioner.embedders.0.transformer``
    (CLIP ViT-L, transformers keys) and ``conditioner.embedders.1.model`` (OpenCLIP bigG keys)."""
    from safetensors.torch import save_file

    te = {k if k.startswith("text_model.") else "text_model." + k: v
          for k, v in components.text_encoder.state_dict().items()}
    sd = {**unet_to_ldm(components.unet.state_dict(), components.unet.config),
          **vae_to_ldm(components.vae.state_dict(), components.vae.config),
          **{"conditioner.embedders.0.transformer." + k: v for k, v in te.items()},
          **{"conditioner.embedders.1.model." + k: v
             for k, v in open_clip_text(components.text_encoder_2.state_dict()).items()}}
    save_file({k: t.detach().contiguous().clone() for k, t in sd.items()}, str(path))


__all__ = ["open_clip_text", "text_to_ldm", "unet_to_ldm", "vae_to_ldm", "write_ldm_checkpoint", "write_sgm_checkpoint"]
