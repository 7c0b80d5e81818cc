"""What the UNet is conditioned on, for every model family: one helper for built-in and plug-in methods.

- ``sd15``: the text encoder's last hidden states (batch, 77, width).
- ``sdxl``: the penultimate hidden states of both text encoders concatenated (768 + 1280 = 2048 wide for
  SDXL base), plus ``added_cond_kwargs``: ``text_embeds``, the second encoder's pooled projection (1280),
  and ``time_ids`` = ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)`` in pixels, as
  diffusers' ``StableDiffusionXLPipeline.encode_prompt`` / ``_get_add_time_ids`` and
  ``train_dreambooth_lora_sdxl.py`` compute them.

A :class:`Conditioning` is a batch of these; ``unet(x, t, **cond.unet_kwargs())`` calls any family's UNet.
Time ids: :func:`constant_time_ids` (``(res, res, 0, 0, res, res)``: the sampling pipeline's default and
the DreamBench++ training setting) or :func:`crop_time_ids` (the training script's: the photo's size and
the top-left corner of the crop of the photo resized to ``res`` on its short side).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Conditioning:
    """A batch of UNet conditioning: ``hidden`` (batch, tokens, width) and, for SDXL, ``added``
    (``{"text_embeds": (batch, proj), "time_ids": (batch, 6)}``); None for SD 1.5."""

    hidden: torch.Tensor
    added: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.hidden)

    def unet_kwargs(self) -> dict:
        """Keyword arguments of a diffusers ``UNet2DConditionModel`` call."""
        if self.added is None:
            return {"encoder_hidden_states": self.hidden}
        return {"encoder_hidden_states": self.hidden, "added_cond_kwargs": self.added}

    def rows(self, index: slice | list[int]) -> Conditioning:
        return self._map(lambda t: t[index])

    def expand(self, n: int) -> Conditioning:
        """A batch of ``n`` copies of a one-row conditioning."""
        return self._map(lambda t: t.expand(n, *t.shape[1:]))

    def with_time_ids(self, time_ids: torch.Tensor) -> Conditioning:
        """The same text conditioning with other time ids (one row per example); SD 1.5: itself."""
        if self.added is None:
            return self
        return Conditioning(self.hidden, {**self.added, "time_ids": time_ids.to(self.hidden.device,
                                                                                self.added["time_ids"].dtype)})

    def _map(self, fn) -> Conditioning:
        return Conditioning(fn(self.hidden), None if self.added is None else {k: fn(v) for k, v in self.added.items()})

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        hidden = torch.cat([p.hidden for p in parts])
        if parts[0].added is None:
            return Conditioning(hidden)
        return Conditioning(hidden, {k: torch.cat([p.added[k] for p in parts]) for k in parts[0].added})


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: list[str], device: torch.device | str) -> torch.Tensor:
    """CLIP text-encoder hidden states (batch, 77, width) for ``prompts`` (padded to the full context)."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def as_conditioning(x: Conditioning | torch.Tensor) -> Conditioning:
    """A :class:`Conditioning` from a plain SD 1.5 hidden-states tensor (or itself)."""
    return x if isinstance(x, Conditioning) else Conditioning(x)


def is_sdxl(components) -> bool:
    return getattr(components, "family", "sd15") == "sdxl"


def constant_time_ids(resolution: int, n: int = 1) -> torch.Tensor:
    """``(res, res, 0, 0, res, res)`` per row: original size = target size, no crop."""
    return torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]] * n, dtype=torch.float32)


def crop_time_ids(sizes: list[tuple[int, int]], resolution: int) -> torch.Tensor:
    """The training script's time ids for photos of ``sizes`` ((width, height) each) centre-cropped: the
    photo's (height, width), then the top-left corner of the ``res`` square cut from the photo resized to
    ``res`` on its short side (torchvision ``Resize(res)`` then ``CenterCrop``, as ``--center_crop``)."""
    rows = []
    for w, h in sizes:
        # torchvision's Resize(int): the short side becomes res, the long side int(res * long / short)
        nh, nw = (resolution, int(resolution * w / h)) if h <= w else (int(resolution * h / w), resolution)
        top, left = max(0, round((nh - resolution) / 2.0)), max(0, round((nw - resolution) / 2.0))
        rows.append([h, w, top, left, resolution, resolution])
    return torch.tensor(rows, dtype=torch.float32)


@torch.no_grad()
def _xl_text(components, prompts: list[str], device, text_encoders=None, tokenizers=None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (batch, 77, w1 + w2), pooled (batch, proj)) as ``StableDiffusionXLPipeline.encode_prompt``."""
    encoders = text_encoders or (components.text_encoder, components.text_encoder_2)
    tokenizers = tokenizers or (components.tokenizer, components.tokenizer_2)
    hidden, pooled = [], None
    for tok, enc in zip(tokenizers, encoders):
        ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(device)
        out = enc(ids, output_hidden_states=True)
        if out[0].ndim == 2:  # the pooled projection: only the encoder with projection has one
            pooled = out[0]
        hidden.append(out.hidden_states[-2])
    return torch.cat(hidden, dim=-1), pooled


def prompt_conditioning(components, prompts: list[str], device, time_ids: torch.Tensor | None = None,
                        text_encoder=None, tokenizer=None) -> Conditioning:
    """The conditioning of ``prompts``. SDXL: ``time_ids`` one row per prompt, default
    :func:`constant_time_ids` at the components' resolution. ``text_encoder``/``tokenizer`` replace the
    (first) encoder's (textual inversion's extended ones)."""
    if not is_sdxl(components):
        return Conditioning(encode_prompts(text_encoder or components.text_encoder,
                                           tokenizer or components.tokenizer, prompts, device))
    encoders = (text_encoder or components.text_encoder, components.text_encoder_2)
    tokenizers = (tokenizer or components.tokenizer, components.tokenizer_2)
    hidden, pooled = _xl_text(components, prompts, device, encoders, tokenizers)
    if time_ids is None:
        time_ids = constant_time_ids(components.resolution, len(prompts))
    return Conditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids.to(device, hidden.dtype)})


def negative_conditioning(components, negative_prompt: str, n: int, device, text_encoder=None,
                          tokenizer=None) -> Conditioning:
    """The unconditional side of classifier-free guidance for ``n`` images. SDXL with an empty negative
    prompt and ``force_zeros_for_empty_prompt`` (SDXL base): zeros, as the pipeline's default call."""
    cond = prompt_conditioning(components, [negative_prompt] * n, device, text_encoder=text_encoder,
                               tokenizer=tokenizer)
    if is_sdxl(components) and not negative_prompt and getattr(components, "force_zeros_for_empty_prompt", False):
        cond = Conditioning(torch.zeros_like(cond.hidden), {**cond.added,
                                                            "text_embeds": torch.zeros_like(cond.added["text_embeds"])})
    return cond
