"""CLIP-T text when the manifest has no ``prompt_plain``: the prompt without the token the method put in it.

The token is what the method wrote into its prompts: ``identifier_in_prompts`` of the subject's
``<images>/<method>/<subject>/job.json`` (textual inversion: its placeholder, e.g. ``<sks>``), else
``identifier_in_prompts`` or ``identifier`` of ``<images>/<method>/method.json``, else the caller's
default (``--identifier``, ``sks``). The bare identifier is removed too, so a prompt written with
either form reads the same: ``"a <sks> dog in the jungle"`` and ``"a sks dog in the jungle"`` both give
``"a dog in the jungle"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import DataError
from ..layout import JOB_INFO, METHOD_INFO
from ..protocol import name_problem

# A token is whole when it sits between whitespace / punctuation / the ends of the prompt
# ("sks" in "asks" stays); the brackets of "<sks>" are part of the token.
_LEFT = r"(?:^|(?<=[\s(\[\"']))"
_RIGHT = r"(?=$|[\s.,;:!?)\]\"'])"


def strip_tokens(prompt: str, tokens: Sequence[str]) -> str:
    """``prompt`` without each whole occurrence of every token (longest first), whitespace collapsed and
    no space left before punctuation: ``strip_tokens("a <sks> dog , wet", ["<sks>"]) == "a dog, wet"``."""
    for tok in sorted({t for t in tokens if t}, key=len, reverse=True):
        prompt = re.sub(_LEFT + re.escape(tok) + _RIGHT, " ", prompt)
    prompt = re.sub(r"\s+", " ", prompt).strip()
    return re.sub(r"\s+([.,;:!?)\]])", r"\1", prompt)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def token_lookup(images_dir: Path, identifiers: Mapping[str, str]) -> Callable[[str, str], tuple[str, ...]]:
    """``lookup(method, subject)``: the tokens to strip from that job's prompts, the one written in its
    prompts (the job's ``identifier_in_prompts``, else method.json's) and the bare identifier
    (``identifiers[method]``: method.json's ``identifier`` or the default). Files are read once."""
    cache: dict[tuple[str, str], tuple[str, ...]] = {}

    def lookup(method: str, subject: str) -> tuple[str, ...]:
        key = (method, subject)
        if key not in cache:
            ident = identifiers.get(method, "")
            job, info = {}, {}
            if name_problem(method) is None:  # a label like '../x' is never looked up
                info = _read_json(images_dir / method / METHOD_INFO)
                if name_problem(subject) is None:
                    job = _read_json(images_dir / method / subject / JOB_INFO)
            written = job.get("identifier_in_prompts") or info.get("identifier_in_prompts") or ident
            cache[key] = (str(written), ident)
        return cache[key]

    return lookup
