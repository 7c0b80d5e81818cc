"""Textual Inversion (Gal et al., ICLR 2023): learn one new word embedding for the subject.

A placeholder token (default ``<[identifier]>``, e.g. ``<sks>``) is added to a private copy of the
tokenizer; its embedding row is initialized from the class noun's embedding (the mean over its tokens
when the noun spans several; the word "object" when there is no class noun) and is the only thing
trained: UNet, VAE and every other text-encoder weight stay bit-identical (the other rows are restored
after every optimizer step, so weight decay cannot touch them). Prompts use the placeholder in place of
the identifier: "a <sks> dog in the jungle", training prompt "a <sks> dog". Prior preservation is off by
default (the original method has none) but available through the shared config.

Defaults (recipe ``diffusers``): 3000 steps, lr 2e-3 (diffusers' 5e-4 scaled by its 4 accumulated images),
4 images per step, one vector. Artifact: ``embedding.safetensors`` = ``{placeholder: (1, width) tensor}``
(diffusers' ``learned_embeds`` layout). :meth:`close` shrinks the embedding matrix back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..errors import DreambenchError, ModelLoadError
from ..lazy import LazyModule
from .configs import TrainConfig
from .dreambooth import prior_class_images, refuse_family
from .interface import GenerationRequest, Method, SubjectData
from .priors import class_prompt
from .recipes import DREAMBENCH_PLUS_SD15, TINY_RECIPE, Recipe, register_recipe

torch = LazyModule("torch")  # see dreambooth.py: the class is read without torch, the work loads it
artifacts = LazyModule("dreambench.methods.artifacts")
sampling = LazyModule("dreambench.methods.sampling")
training = LazyModule("dreambench.methods.training")

EMBEDDING_FILE = "embedding.safetensors"
FALLBACK_INIT_WORD = "object"


@dataclass
class TextualInversionConfig(TrainConfig):
    lr: float = field(default=2e-3, metadata={"gt": 0, "help": "AdamW learning rate for the new embedding"})
    steps: int = field(default=3000, metadata={"min": 1, "help": "optimizer steps"})
    batch_size: int = field(default=4, metadata={"min": 1, "help": "instance images per step"})
    with_prior_preservation: bool = field(default=False, metadata={
        "help": "add the DreamBooth prior-preservation loss (off in the original method)"})
    placeholder_token: str = field(default="", metadata={
        "help": "the new token; empty = '<' + identifier + '>'"})
    initializer: str = field(default="", metadata={
        "help": "word(s) whose embedding initializes the new one; empty = the class noun"})


class TextualInversion(Method):
    name = "textual-inversion"
    description = "Textual Inversion: learn one new token embedding; all model weights frozen"
    Config = TextualInversionConfig
    trains = True
    learns_token = True
    families = ("sd15",)
    family_refusals: ClassVar[dict[str, str]] = {"sdxl": (
        "textual inversion on SDXL would learn one embedding per text encoder (768 + 1280 wide); dreambench "
        "implements the SD 1.5 method only")}

    def __init__(self, config, components, device="cpu"):
        super().__init__(config, components, device)
        self.tokenizer = copy.deepcopy(components.tokenizer)
        self.token_id: int | None = None
        self._orig_rows: int | None = None
        self._token = ""

    def prompt_identifier(self, identifier: str) -> str:
        return self.config.placeholder_token or f"<{identifier}>"

    def _add_token(self, token: str) -> int:
        te = self.components.text_encoder
        if self.token_id is not None:
            return self.token_id
        if token in self.tokenizer.get_vocab():
            raise DreambenchError(f"textual inversion: placeholder {token!r} is already a token; choose another")
        self._orig_rows = te.get_input_embeddings().weight.shape[0]
        self.tokenizer.add_tokens([token])
        self.token_id = self.tokenizer.convert_tokens_to_ids(token)
        te.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self._token = token
        return self.token_id

    def _init_row(self, words: str) -> torch.Tensor:
        ids = self.tokenizer(words or FALLBACK_INIT_WORD, add_special_tokens=False).input_ids
        emb = self.components.text_encoder.get_input_embeddings().weight
        return emb[ids].detach().float().mean(0)

    def train(self, data: SubjectData, workdir: Path) -> Path:
        cfg: TextualInversionConfig = self.config
        training.check_steps(cfg)
        c = self.components
        refuse_family(self, c)
        c.to(self.device)
        token = self.prompt_identifier(data.identifier)
        tid = self._add_token(token)
        c.text_encoder.to(self.device)
        emb = c.text_encoder.get_input_embeddings()
        with torch.no_grad():
            emb.weight[tid] = self._init_row(cfg.initializer or data.class_noun).to(emb.weight.dtype)
        training.freeze(c.vae, c.unet, c.text_encoder)
        class_images = prior_class_images(cfg, self, data, workdir)
        prompt = data.training_prompt(token, learns_token=True)
        batch = training.DreamBoothData(c, data.images, class_images, prompt, class_prompt(data.class_noun), cfg,
                                        self.device, tokenizer=self.tokenizer, cache_embeddings=False)
        emb.weight.requires_grad_(True)
        frozen = emb.weight.detach().clone()
        keep = torch.ones(emb.weight.shape[0], dtype=torch.bool, device=emb.weight.device)
        keep[tid] = False

        def restore_rows() -> None:
            with torch.no_grad():
                emb.weight[keep] = frozen[keep]

        opt = training.make_optimizer([emb.weight], cfg, self.device)
        c.text_encoder.train()
        try:
            self.stats = training.run_steps(lambda step: batch.step_loss(c.unet, cfg.prior_loss_weight),
                                            [emb.weight], opt, cfg, self.device, progress=self.progress,
                                            desc=f"textual inversion {data.subject.name}", after_step=restore_rows)
        finally:
            c.text_encoder.eval()
            training.freeze(c.text_encoder)
        del opt
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / EMBEDDING_FILE
        return artifacts.save_tensors(path, {token: emb.weight[tid:tid + 1]}, torch.float32)

    def load_artifact(self, path: Path) -> None:
        path = Path(path)
        state = artifacts.load_tensors(path)
        if len(state) != 1:
            raise ModelLoadError(f"{path}: expected one embedding, found {len(state)}")
        (token, row), = state.items()
        tid = self._add_token(token)
        emb = self.components.text_encoder.get_input_embeddings()
        if row.shape[-1] != emb.weight.shape[1]:
            raise ModelLoadError(f"{path}: embedding width {row.shape[-1]} != text encoder's {emb.weight.shape[1]}")
        with torch.no_grad():
            emb.weight[tid] = row.reshape(-1).to(emb.weight.device, emb.weight.dtype)

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        if self.token_id is None:
            raise DreambenchError("textual inversion: train or load an embedding before generating")
        return sampling.sample_requests(self.components, requests, self.config, self.device, tokenizer=self.tokenizer)

    def close(self) -> None:
        if self._orig_rows is not None:
            self.components.text_encoder.resize_token_embeddings(self._orig_rows, mean_resizing=False)
            self._orig_rows = None
            self.token_id = None
            self.tokenizer = copy.deepcopy(self.components.tokenizer)


# Recipes (methods/recipes.py; the sources are in docs/methods.md).
register_recipe("textual-inversion", Recipe(
    "diffusers", "diffusers textual_inversion.py README: 3000 steps, lr 5e-4 scaled by 4 accumulated images "
    "(= 2e-3 at batch 4), one vector initialized from the class noun, no prior preservation",
    {"lr": 2e-3, "steps": 3000, "batch_size": 4, "with_prior_preservation": False, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/textual_inversion/README.md (--learning_rate 5e-4 --scale_lr, "
    "gradient_accumulation_steps 4, max_train_steps 3000); Gal et al. 2023 (one vector, 5000 steps at lr 5e-3 "
    "x GPUs x batch on LDM)",
), default=True)
register_recipe("textual-inversion", Recipe(
    "dreambench-plus", "DreamBench++'s Textual Inversion SD1.5 setting: placeholder <sks> (it replaces the subject "
    "noun in the prompts), lr 5e-4 scaled by the batch (--scale_lr, batch 1) x 3000 steps, constant, "
    "initialized from the subject noun, no prior preservation, seed 42; sampling PNDM 100 steps, CFG 7.5",
    {"lr": 5e-4, "steps": 3000, "batch_size": 1, "with_prior_preservation": False, "lr_warmup_steps": 0,
     "placeholder_token": "<sks>", **DREAMBENCH_PLUS_SD15},
    "github yuangpeng/dreambench_plus@66ca27e generate_models.py (DEFAULT_PARAMS textual_inversion_sd; "
    "--initializer_token is the subject's first word there, the whole noun's mean embedding here)",
))
register_recipe("textual-inversion", Recipe(
    "tiny", TINY_RECIPE, {"lr": 5e-2, "steps": 50, "batch_size": 1, "with_prior_preservation": False},
    "dreambench tests",
))
