"""A method's identity: which package provides it, at which version, with which code.

Every number a method makes depends on its code, so the identity is part of the id of each of its subject
jobs (:func:`dreambench.engine.plan.build_plan`) and is recorded in ``method.json``, the manifest rows, the
score files and the tables' and report's provenance. It is not a label *setting* (changing it is never
refused): ``dreambench run`` moves aside a label whose ``method.json`` names another identity and makes it
again (:func:`dreambench.engine.runner._claim_label`).

``method_identity(cls)`` is ``{"provider", "version", "revision", "code_digest"}``:

- a **built-in** (provider ``dreambench``): ``version`` is dreambench's, ``revision`` the class's
  ``revision`` attribute (bumped by hand when the method's behaviour changes, like
  :data:`dreambench.photos.PHOTO_DECODE`), ``code_digest`` None. Built-ins get no code digest: any
  edit of dreambench, a docstring included, would re-run every job;
- a **plug-in** (provider: its distribution's name): ``version`` the distribution's version, ``revision``
  None, ``code_digest`` :func:`code_digest` of the top-level package its class's module belongs to, found
  through the module's ``__file__`` (so an edited editable install changes it as well as a reinstall), and
  of any other top-level package its distribution declares (:func:`distribution_roots`).

Only what changes outputs enters job ids (:func:`identity_payload`); nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from .. import __version__
from ..provenance import identity_text
from .interface import Method
from .registry import BUILTIN_PROVIDER, method_distribution

#: The revision every built-in starts at; a built-in at this revision adds nothing to job ids, so results
#: folders made before identities were recorded keep their job ids.
BASE_REVISION = 1

#: (root, (relative path, size, mtime_ns) of each file) -> digest: computed once per process and plan.
_DIGESTS: dict[tuple, str] = {}


def _source_files(roots: list[Path]) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of every ``*.py`` file under ``roots`` (folders or single files),
    outside ``__pycache__`` folders, sorted by relative path."""
    out = []
    for root in roots:
        if root.is_file():
            out.append((root.name, root))
            continue
        for p in root.rglob("*.py"):
            rel = p.relative_to(root)
            if "__pycache__" not in rel.parts and p.is_file():
                out.append(((Path(root.name) / rel).as_posix(), p))
    return sorted(out)


def code_digest(roots: list[Path]) -> str:
    """First 16 hex digits of the sha256 of the ``*.py`` source under ``roots``: for each file in order of
    relative path (``<root name>/<path>``), the path, a NUL, the file's bytes, a NUL. Other files (data,
    ``__pycache__``) do not count: they are not the code."""
    files = _source_files(roots)
    key = tuple(str(r) for r in roots), tuple((rel, p.stat().st_size, p.stat().st_mtime_ns) for rel, p in files)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for rel, p in files:
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def package_roots(module_name: str) -> list[Path]:
    """The source of the top-level package of ``module_name``: its folder(s) (several for a namespace
    package), or the single file of a top-level module."""
    top = importlib.import_module(module_name.partition(".")[0])
    paths = getattr(top, "__path__", None)
    if paths is not None:  # a package: its folder (or folders)
        return sorted(Path(p).resolve() for p in paths)
    return [Path(top.__file__).resolve()] if getattr(top, "__file__", None) else []


def distribution_roots(dist_name: str, module_name: str) -> list[Path]:
    """The source of a plug-in: the top-level package of ``module_name`` (:func:`package_roots`) and every
    other top-level package or module its distribution declares (``top_level.txt``), so code the method
    reaches in a second package of the same distribution counts too. Declared names that cannot be found
    are skipped (found, not imported)."""
    roots = set(package_roots(module_name))
    try:
        declared = importlib.metadata.distribution(dist_name).read_text("top_level.txt") or ""
    except importlib.metadata.PackageNotFoundError:
        declared = ""
    own = module_name.partition(".")[0]
    for top in {t.strip() for t in declared.splitlines()} - {own, ""}:
        try:
            spec = importlib.util.find_spec(top) if top.isidentifier() else None
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.update(Path(p).resolve() for p in spec.submodule_search_locations)
        elif spec.origin and spec.origin.endswith(".py"):
            roots.add(Path(spec.origin).resolve())
    return sorted(roots)


def method_identity(method_cls: type[Method]) -> dict[str, Any]:
    """``{"provider", "version", "revision", "code_digest"}`` of a registered method class (see the module
    docstring)."""
    dist = method_distribution(method_cls.name)
    if dist is None:
        return {"provider": BUILTIN_PROVIDER, "version": __version__,
                "revision": int(getattr(method_cls, "revision", BASE_REVISION)), "code_digest": None}
    return {"provider": dist[0], "version": dist[1], "revision": None,
            "code_digest": code_digest(distribution_roots(dist[0], method_cls.__module__))}


def identity_payload(identity: dict[str, Any]) -> dict[str, Any]:
    """What of an identity enters job ids: ``{}`` for a built-in at :data:`BASE_REVISION` (old ids stay),
    else ``{"method_identity": ...}`` without a built-in's version (dreambench's version is already in every
    job id, and a new release must not re-make every label)."""
    builtin = identity["provider"] == BUILTIN_PROVIDER
    if builtin and identity.get("revision") == BASE_REVISION:
        return {}
    return {"method_identity": {k: v for k, v in identity.items() if v is not None and not (builtin and k == "version")}}


def same_identity(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether two recorded identities make the same outputs (their :func:`identity_payload` agree). An
    identity that was not recorded (results made before) is a built-in's at :data:`BASE_REVISION`: the
    same as such a built-in now (its job ids did not change), another than any plug-in's."""
    return identity_payload(old or {"provider": BUILTIN_PROVIDER, "revision": BASE_REVISION}) == identity_payload(new)


__all__ = ["BASE_REVISION", "code_digest", "distribution_roots", "identity_payload", "identity_text", "method_identity",
           "package_roots", "same_identity"]
