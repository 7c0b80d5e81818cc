"""Where a Stable Diffusion model comes from, resolved and checked before anything is loaded.

``--model`` may name:

- a diffusers folder (``model_index.json``, one subfolder per part) saved in fp32 or fp16, with plain
  weight files (``diffusion_pytorch_model.safetensors``, ``model.safetensors``, sharded or ``.bin``) or
  only variant files (``diffusion_pytorch_model.fp16.safetensors``): the variant is found per part;
- a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``): its snapshot in the local hub cache, which
  is then read like a folder (downloaded first only when the hub answers and ``HF_HUB_OFFLINE`` is unset);
- a single-file SD 1.x checkpoint ``.safetensors`` (the original LDM layout, ``model.diffusion_model.*``);
- a pickle (``.ckpt``, ``.pt``, ``.pth``, ``.bin``): refused without being opened, with the command that
  converts it, since unpickling runs arbitrary code.

:func:`resolve_sd_source` only looks at names, sizes and (single files) the safetensors header, so a bad
``--model`` fails in milliseconds, before any job. :func:`sd_digest` is the short digest of the weight
files (see :mod:`.digest`).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelLoadError
from .digest import files_digest
from .weights_formats import safetensors_keys

#: The parts loaded from a folder, and the stem of their weight files (diffusers, transformers).
PARTS = ("unet", "vae", "text_encoder")
#: The weighted parts and the other folders of each model family's diffusers folder.
FAMILY_PARTS = {"sd15": PARTS, "sdxl": (*PARTS, "text_encoder_2")}
FAMILY_FOLDERS = {"sd15": ("tokenizer", "scheduler"), "sdxl": ("tokenizer", "tokenizer_2", "scheduler")}
#: Per family, a key of its single-file (LDM / SGM) layout that the other family's files lack.
FAMILY_FILE_KEYS = {"sd15": "cond_stage_model.", "sdxl": "conditioner.embedders.1.model."}
_FAMILY_WORDS = {"sd15": "Stable Diffusion", "sdxl": "Stable Diffusion XL"}
_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_WEIGHT = re.compile(r"^(?P<stem>diffusion_pytorch_model|model|pytorch_model)(?P<rest>[^/]*)\.(?P<ext>safetensors|bin)$")
_SHARD = re.compile(r"-\d{5}-of-\d{5}")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
#: Files that the hub download fetches (never every variant of every part).
HUB_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*", "tokenizer/*",
                "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors"]
FAMILY_HUB_PATTERNS = {"sd15": HUB_PATTERNS,
                       "sdxl": [*HUB_PATTERNS, "tokenizer_2/*", "text_encoder_2/model.safetensors"]}
CONVERT_CKPT = ("convert it once to a diffusers folder with diffusers' own script: python "
                "scripts/convert_original_stable_diffusion_to_diffusers.py --checkpoint_path {path} "
                "--dump_path {stem}-diffusers (from github.com/huggingface/diffusers), then pass --model {stem}-diffusers")


@dataclass(frozen=True)
class SDSource:
    """A resolved ``--model``.

    Attributes:
        kind: ``folder`` | ``hub`` | ``single-file`` | ``hub-download`` (not cached, hub reachable).
        source: what results record as ``sd_source``: the hub id, or the absolute folder or file.
        root: the folder read (the hub snapshot for ``hub``), or the file for ``single-file``.
        variants: per part, the weights variant to load (``"fp16"``) or None for plain files.
        files: the weight files (digested for ``sd_digest``).
    """

    kind: str
    source: str
    root: Path | None
    variants: dict = field(default_factory=dict)
    files: tuple = ()

    @property
    def where(self) -> str:
        """``folder``, ``hub cache``, ``file`` or ``hub`` (in words, for ``dreambench doctor``)."""
        return {"folder": "folder", "hub": "hub cache", "single-file": "file"}.get(self.kind, "hub")


def looks_like_hub_id(model: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", model)) and not model.startswith((".", "/", "~"))


def _part_files(folder: Path) -> tuple[str | None, list[Path]]:
    """(variant, weight files) of one part folder: plain files when there are any (safetensors before
    ``.bin``), else the variant files (``fp16`` first)."""
    found: dict[tuple[str | None, str], list[Path]] = {}
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        m = _WEIGHT.match(p.name)
        if not m or not p.is_file():
            continue
        variant = _SHARD.sub("", m["rest"]).lstrip(".") or None
        found.setdefault((variant, m["ext"]), []).append(p)
    variants = sorted({v for v, _ in found}, key=lambda v: (v is not None, v != "fp16", v or ""))
    for v in variants:
        for ext in ("safetensors", "bin"):
            if (v, ext) in found:
                return v, found[(v, ext)]
    return None, []


def resolve_folder(path: Path, kind: str = "folder", source: str | None = None, flag: str = "--model",
                   family: str = "sd15") -> SDSource:
    """A diffusers folder of ``family``: every part's weight files and variant; one-line errors naming
    what is missing (an SD 1.5 folder given to an SDXL profile lacks ``text_encoder_2/``)."""
    if not (path / "model_index.json").is_file():
        want = " ".join(f"{p}/" for p in (*FAMILY_PARTS[family], *FAMILY_FOLDERS[family]))
        raise ModelLoadError(f"{flag} {path}: not a diffusers {_FAMILY_WORDS[family]} folder (expected "
                             f"model_index.json and {want}, found "
                             f"{_listing(path)}); pass a diffusers folder, a hub id or a .safetensors checkpoint")
    variants, files = {}, []
    for part in FAMILY_PARTS[family]:
        variant, part_files = _part_files(path / part)
        if not part_files:
            raise ModelLoadError(f"{flag} {path}: {part}/ holds no weights (expected {_expected(part)} or a "
                                 f".fp16 variant, found {_listing(path / part)})")
        variants[part] = variant
        files += part_files
    for part in FAMILY_FOLDERS[family]:
        if not (path / part).is_dir():
            raise ModelLoadError(f"{flag} {path}: no {part}/ folder (found {_listing(path)})")
    return SDSource(kind, source or str(path.resolve()), path, variants, tuple(files))


def _expected(part: str) -> str:
    return "model.safetensors" if part == "text_encoder" else "diffusion_pytorch_model.safetensors"


def _listing(path: Path, n: int = 6) -> str:
    if not path.exists():
        return "no such folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "") if names else "an empty folder"


def resolve_single_file(path: Path, flag: str = "--model", family: str = "sd15") -> SDSource:
    """A single-file checkpoint: ``.safetensors`` in the LDM layout (SDXL: the SGM layout, with
    ``conditioner.embedders.*``); pickles are refused unopened."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{flag} {path}: a {path.suffix} file is a Python pickle, which dreambench never "
                             f"unpickles (loading it runs arbitrary code); " + CONVERT_CKPT.format(
                                 path=path, stem=path.with_suffix("")))
    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError(f"{flag} {path}: unsupported file type {path.suffix or '(none)'} (expected a "
                             f"diffusers folder, a hub id or a single-file .safetensors checkpoint)")
    keys = safetensors_keys(path, flag)
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        sample = ", ".join(sorted(keys)[:3]) or "no tensors"
        raise ModelLoadError(f"{flag} {path}: not a Stable Diffusion checkpoint (expected keys "
                             f"model.diffusion_model.*, first_stage_model.*, cond_stage_model.*; found {sample} ...)")
    marker = FAMILY_FILE_KEYS[family]
    if not any(k.startswith(marker) for k in keys):
        found = next((f for f, m in FAMILY_FILE_KEYS.items() if any(k.startswith(m) for k in keys)), None)
        what = f"a checkpoint of model family {found}" if found else "a checkpoint of no known family"
        raise ModelLoadError(f"{flag} {path}: {what}, and this profile is of family {family} (expected keys "
                             f"{marker}*); use a profile of the checkpoint's family (dreambench profiles)")
    return SDSource("single-file", str(path.resolve()), path, {}, (path,))


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub's host accepts a TCP connection (``HF_ENDPOINT`` respected)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def resolve_hub(repo_id: str, flag: str = "--model", allow_download: bool = True, family: str = "sd15") -> SDSource:
    """A hub id: its snapshot in the local hub cache (read like a folder), else ``hub-download`` when the
    hub can be reached; else one line saying where the cache was looked for."""
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001  (any failure means: not in the local cache)
        snap = None
    if snap is not None and (snap / "model_index.json").is_file():
        return resolve_folder(snap, "hub", repo_id, flag, family)
    if allow_download and not offline() and hub_reachable():
        return SDSource("hub-download", repo_id, None)
    why = "HF_HUB_OFFLINE is set" if offline() else "the hub cannot be reached"
    raise ModelLoadError(f"{flag} {repo_id}: not in the local hub cache ({_hub_cache_dir()}) and {why}; pass "
                         f"{flag} /path/to/a/diffusers/folder (or a .safetensors checkpoint), or download it on a "
                         f"machine with access (huggingface-cli download {repo_id})")


def resolve_sd_source(model: str, flag: str = "--model", family: str = "sd15") -> SDSource:
    """Resolve ``model`` (folder, file or hub id) of model family ``family`` without loading any weights.
    Raises one-line :class:`ModelLoadError`s naming ``flag``, the path and what was expected and found."""
    path = Path(model).expanduser()
    if path.is_dir():
        return resolve_folder(path.resolve(), flag=flag, family=family)
    if path.is_file():
        return resolve_single_file(path.resolve(), flag, family)
    if looks_like_hub_id(model):
        return resolve_hub(model, flag, family=family)
    raise ModelLoadError(f"{flag} {model}: no such folder or file, and not a hub id (owner/name)")


def sd_digest(src: SDSource) -> str | None:
    """Short digest of the weight files of ``src`` (None before a hub download)."""
    if not src.files:
        return None
    root = src.root if src.kind != "single-file" else None
    return files_digest(src.files, root)
