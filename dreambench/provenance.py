"""Where the weights behind a number came from: the Stable Diffusion source and digest, backbone digests.

Every result (``method.json``, manifest rows, ``score_meta.json``, the tables' metadata, the report
header) records:

- ``sd_source``: the hub id, or the absolute folder or single file, or ``config:<name>`` (random-init);
- ``sd_digest``: the short digest of the weight files (:mod:`dreambench.models.digest`: sha256 of the
  sorted ``relative path:sha256`` lines; a hub cache's blob names are used without reading the files),
  or of the random-init tensors;
- per metric backbone: name, weights id, where the weights were found and their digest;
- ``method_identity``: the method's provider, version and revision or code digest
  (:mod:`dreambench.methods.identity`).

Digests are cached per (file, size, mtime), so asking again costs nothing.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .models.profiles import ModelProfile, get_profile
from .models.random_digest import random_sd_digest
from .models.sd_source import resolve_sd_source, sd_digest
from .models.vae_source import combined_digest, resolve_vae


def sd_provenance(profile: Any, model: str | None = None, flag: str = "--model", vae: str | None = None) -> dict:
    """``{"sd_source", "sd_digest", "sd_where", "weights", "sd_family"}`` for a model profile (name or
    :class:`~dreambench.models.profiles.ModelProfile`) and optional ``--model`` / ``--vae`` overrides,
    without loading weights (random-init: from the digest cache, building the parts once when it is cold).
    With ``--vae``, ``vae_source`` and ``vae_digest`` are added and ``sd_digest`` covers both
    (:func:`dreambench.models.vae_source.combined_digest`).

    Raises :class:`~dreambench.errors.ModelLoadError` (one line naming ``flag``) for a bad ``--model``."""
    prof = profile if isinstance(profile, ModelProfile) else get_profile(str(profile))
    if not prof.pretrained_weights:
        if model:
            from .models.sd import load_sd  # heavy: torch (only when the weights are not cached)

            load_sd(prof, model)  # raises the one-line error naming --model
        out = {"sd_source": f"config:{prof.sd_model}", "sd_digest": random_sd_digest(prof.sd_model),
               "sd_where": "config", "weights": "random-init"}
    else:
        src = resolve_sd_source(model or prof.sd_model, flag, prof.family)
        out = {"sd_source": src.source, "sd_digest": sd_digest(src), "sd_where": src.where, "weights": "pretrained"}
    if prof.family != "sd15":  # SD 1.5 records keep their old keys (and so their hashes)
        out["sd_family"] = prof.family
    if vae:
        rec = resolve_vae(vae).record()
        out.update(rec, sd_digest=combined_digest(out["sd_digest"], rec["vae_digest"]))
    return out


def components_provenance(components: Any) -> dict:
    """The same record for already loaded :class:`~dreambench.models.sd.SDComponents`."""
    out = {"sd_source": components.source, "sd_digest": components.digest,
           "sd_where": getattr(components, "where", ""),
           "weights": "pretrained" if components.pretrained_weights else "random-init"}
    if getattr(components, "family", "sd15") != "sd15":
        out["sd_family"] = components.family
    out.update(getattr(components, "vae_override", None) or {})
    return out


def backbone_provenance(backbone: Any) -> dict:
    """``{"name", "weights_id", "where", "digest"}`` of a built metric backbone."""
    return {"name": backbone.name, "weights_id": backbone.weights_id, "where": backbone.where,
            "digest": backbone.digest}


def sd_sources(per_image) -> dict:
    """Per method label, the ``{"sd_source", "sd_digest"}`` its images were made with (from the manifest
    columns; labels without them, e.g. real images, are left out; several sources are listed)."""
    if per_image is None or "sd_source" not in getattr(per_image, "columns", ()):
        return {}
    out = {}
    cols = ["sd_source", "sd_digest"] if "sd_digest" in per_image.columns else ["sd_source"]
    for method, g in per_image.dropna(subset=["sd_source"]).groupby("method"):
        recs = [dict(zip(cols, map(str, r))) for r in g[cols].drop_duplicates().itertuples(index=False)]
        out[str(method)] = recs[0] if len(recs) == 1 else recs
    return out


def identity_text(identity: dict[str, Any] | None) -> str:
    """One line for tables and score files: ``dreambench 0.4.0 r1`` or ``my-plugin 0.2.0 code 0123abcd...``;
    ``unknown`` for results made before identities were recorded."""
    if not identity:
        return "unknown"
    out = f"{identity.get('provider')} {identity.get('version')}"
    if identity.get("revision") is not None:
        out += f" r{identity['revision']}"
    if identity.get("code_digest"):
        out += f" code {identity['code_digest']}"
    return out


def method_identities(per_image) -> dict:
    """Per method label, the identity text of the method that made its images (the manifest's
    ``method_identity`` column, :func:`identity_text`; several joined by
    ``, ``); empty when the column is absent."""
    if per_image is None or "method_identity" not in getattr(per_image, "columns", ()):
        return {}
    return {str(m): ", ".join(sorted(g.astype(str).unique()))
            for m, g in per_image.dropna(subset=["method_identity"]).groupby("method")["method_identity"]}


def version() -> str:
    return __version__
