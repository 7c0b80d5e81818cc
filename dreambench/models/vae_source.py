"""``--vae``: a VAE that replaces the model's own, e.g. ``madebyollin/sdxl-vae-fp16-fix`` for SDXL in fp16.

The VAE may be a diffusers ``AutoencoderKL`` folder (``config.json`` + ``diffusion_pytorch_model``
weights, plain or ``.fp16`` variant), a hub id in the local hub cache, or a pipeline folder with a
``vae/`` subfolder. It is resolved from names only (:func:`resolve_vae`, milliseconds) before anything is
loaded, and recorded with results: ``vae_source`` and ``vae_digest`` (short digest of its weight files);
the run's ``sd_digest`` then covers both (:func:`combined_digest`), so images made with another VAE are
never reused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError
from .digest import files_digest
from .sd_source import _listing, _part_files, looks_like_hub_id, offline


@dataclass(frozen=True)
class VAESource:
    """A resolved ``--vae``: what results record (``source``), the folder read, its weights variant and files."""

    source: str
    folder: Path
    variant: str | None
    files: tuple

    @property
    def digest(self) -> str:
        return files_digest(self.files, self.folder)

    def record(self) -> dict:
        return {"vae_source": self.source, "vae_digest": self.digest}


def _vae_folder(path: Path, source: str, flag: str) -> VAESource:
    folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{flag} {path}: not a diffusers AutoencoderKL folder (expected config.json and "
                             f"diffusion_pytorch_model.safetensors, found {_listing(path)})")
    variant, files = _part_files(folder)
    if not files:
        raise ModelLoadError(f"{flag} {path}: no VAE weights (expected diffusion_pytorch_model.safetensors or a "
                             f".fp16 variant, found {_listing(folder)})")
    return VAESource(source, folder, variant, tuple(files))


def resolve_vae(vae: str, flag: str = "--vae") -> VAESource:
    """Resolve ``vae`` (folder or hub id in the local cache) without loading it; one-line errors."""
    path = Path(vae).expanduser()
    if path.is_dir():
        return _vae_folder(path.resolve(), str(path.resolve()), flag)
    if looks_like_hub_id(vae):
        from huggingface_hub import snapshot_download

        try:
            snap = Path(snapshot_download(vae, local_files_only=True))
        except Exception:  # noqa: BLE001  (any failure means: not in the local cache)
            why = "HF_HUB_OFFLINE is set" if offline() else "dreambench reads VAEs from the cache only"
            raise ModelLoadError(f"{flag} {vae}: not in the local hub cache ({why}); download it once with "
                                 f"huggingface-cli download {vae}, or pass a folder") from None
        return _vae_folder(snap, vae, flag)
    raise ModelLoadError(f"{flag} {vae}: no such folder, and not a hub id (owner/name)")


def combined_digest(sd_digest: str | None, vae_digest: str) -> str:
    """The digest of SD weights with a replaced VAE: sha256 of ``sd|vae:<vae>`` (short)."""
    return hashlib.sha256(f"{sd_digest}|vae:{vae_digest}".encode()).hexdigest()[:16]


def replace_vae(components, vae: str, flag: str = "--vae") -> None:
    """Load the VAE ``vae`` (fp32) into ``components`` and record it (``vae_override``, combined digest)."""
    from diffusers import AutoencoderKL

    src = resolve_vae(vae, flag)
    try:
        model = AutoencoderKL.from_pretrained(str(src.folder), variant=src.variant, local_files_only=True)
    except Exception as e:  # noqa: BLE001  (library errors: one line)
        first = (str(e).strip().splitlines() or [""])[0][:240]
        raise ModelLoadError(f"{flag} {vae}: cannot load the VAE ({type(e).__name__}: {first})") from None
    got, want = model.config.latent_channels, components.vae.config.latent_channels
    if got != want:
        raise ModelLoadError(f"{flag} {vae}: {got} latent channels, the model's VAE has {want}")
    import torch

    components.vae = model.to(torch.float32).eval()
    components.vae_override = src.record()
    components.digest = combined_digest(components.digest, src.digest)
