"""Trained artifacts on disk: safetensors only (never pickles), written atomically, read with one clear
error when missing. Every training method stores its artifact through these two functions."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelLoadError
from ..io import atomic_path


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype,
                 metadata: dict[str, str] | None = None) -> Path:
    """``tensors`` detached, on the CPU, contiguous and cast to ``dtype``, as a safetensors file written
    atomically (``metadata`` joins ``{"format": "pt"}``). Returns ``path``."""
    path = Path(path)
    out = {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(out, str(tmp), metadata={"format": "pt", **(metadata or {})})
        except SafetensorError as e:  # names no file and is no OSError: say which file, and why
            code = re.search(r"(?:code: |os error )(\d+)", str(e))
            if code:
                raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
            raise OSError(f"{path}: cannot write safetensors ({e})") from None
    return path


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors artifact; :class:`ModelLoadError` naming it when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: artifact missing")
    return load_file(str(path))
