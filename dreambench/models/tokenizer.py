"""The CLIP BPE tokenizer, built offline from the vocabulary that ``open_clip`` ships.

Stable Diffusion 1.x tokenizes with OpenAI CLIP's byte-level BPE (49,408 tokens, 77-token context).
``open_clip`` ships the merges file (``bpe_simple_vocab_16e6.txt.gz``); the vocabulary is derived from
it exactly as OpenAI's ``SimpleTokenizer`` does (256 byte symbols, the same with ``</w>``, one token
per merge, then ``<|startoftext|>`` and ``<|endoftext|>``). The result is written once to a cache folder
as ``vocab.json``/``merges.txt`` and loaded with ``transformers.CLIPTokenizer``, so real and
random-weight pipelines tokenize identically and no hub access is needed.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77
_N_MERGES = 49152 - 256 - 2


def _cache_dir() -> Path:
    root = Path(os.environ.get("DREAMBENCH_CACHE", Path.home() / ".cache" / "dreambench"))
    return root / "clip-bpe-tokenizer"


def write_clip_tokenizer_files(dest: Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` for CLIP's BPE into ``dest``."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : _N_MERGES + 1]]
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".tmp-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_CONTEXT_LENGTH,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        os.replace(tmp / name, dest / name)  # atomic per file; tokenizer_config last marks completion
    tmp.rmdir()
    return dest


@lru_cache(maxsize=1)
def _tokenizer_dir() -> Path:
    dest = _cache_dir()
    if not (dest / "tokenizer_config.json").is_file():
        write_clip_tokenizer_files(dest)
    return dest


def clip_tokenizer():
    """A fresh ``transformers.CLIPTokenizer`` with CLIP's real BPE vocabulary (no hub access).

    A fresh object each call, since textual inversion adds tokens to the tokenizer it is given."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(_tokenizer_dir()))
