"""Replacing a label's outputs is explicit: which labels of a plan were made before with other settings.

A label's *settings* are what every image of the label depends on (method, resolved config, recipe,
ablation settings, model, protocol, seed: ``label_settings`` in each subject job's spec, hashed into its
``label_key``). The state database records the key that last wrote each label's folders. A plan whose
key for a label differs from the recorded one would move that label's images and artifacts aside and
delete them once the new ones exist, so :func:`check_replacements` refuses it unless the user named the
label with ``--replace LABEL`` (or ``--replace all``). Everything here only reads: the refusal leaves
every file of the results folder byte-identical.

A changed *method identity* (a plug-in's code or a built-in's revision) is not a changed setting: it
changes the subject jobs' ids, so those jobs run again into the same label without asking. It still
deletes the label's old images, so :func:`find_replacements` lists it too (never refused: ``--dry-run``
says "would re-make").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DreambenchError
from ..io import confined
from ..layout import ResultsLayout
from ..methods.base import get_method
from ..methods.identity import identity_text, method_identity, same_identity
from ..protocol import free_name
from ..schema import METHOD_INFO
from .jobs import Plan
from .state import STATE_FILE, StateDB

#: ``--replace all``: every label of the plan may be replaced.
ALL = "all"


@dataclass(frozen=True)
class Replacement:
    """A planned label whose folders hold outputs made with other settings.

    Attributes:
        label: the label (a folder under ``images/``).
        differences: each differing setting as ``"name old -> new"`` (config fields by their own name).
        method: the method the run plans for the label.
        images: PNG files now under ``images/<label>/`` (what replacing deletes).
        refusable: False when only the method's identity changed (its code or revision): the label is
            re-made without ``--replace``, and ``differences`` holds ``"made by OLD, this run has NEW"``.
        free_label: a label neither the folder nor the plan uses, for the refusal's "another label" hint.
    """

    label: str
    method: str
    differences: tuple[str, ...]
    images: int
    refusable: bool = True
    free_label: str = ""

    def describe(self) -> str:
        if not self.refusable:
            return f"label {self.label!r} ({self.images} images): {'; '.join(self.differences)}"
        return f"label {self.label!r} ({self.images} images) was made with other settings: {'; '.join(self.differences)}"


def planned_settings(plan: Plan) -> dict[str, tuple[str, dict | None]]:
    """``label -> (label_key, label_settings)`` of every subject label of ``plan``."""
    out: dict[str, tuple[str, dict | None]] = {}
    for j in plan.by_kind("subject"):
        out.setdefault(j.label, (j.spec.get("label_key", ""), j.spec.get("label_settings")))
    return out


def find_replacements(plan: Plan, results_dir: str | Path) -> list[Replacement]:
    """The labels of ``plan`` that the folder's state records with another label key, read-only."""
    results = Path(results_dir)
    state = confined(results, results / STATE_FILE)  # a state.sqlite symlinked out of the folder is refused
    if not state.is_file():
        return []
    out = []
    with StateDB(state, readonly=True) as db:
        recorded: dict[str, list[dict]] | None = None
        for label, (key, settings) in planned_settings(plan).items():
            old = db.label_key(label)
            if old is None or old == key:
                continue
            if recorded is None:
                recorded = _settings_by_label(db.jobs())
            old_settings = next((s for k, s in recorded.get(label, []) if k == old), None)
            method = (settings or {}).get("method", "METHOD")
            out.append(Replacement(label, method, tuple(differences(old_settings, settings)),
                                   count_images(results, label), free_label=free_label(results, plan, label)))
    for label, (_, settings) in planned_settings(plan).items():
        method = (settings or {}).get("method")
        change = None if any(r.label == label for r in out) else identity_change(results, label, method)
        if change is not None:
            out.append(Replacement(label, method, (f"made by {change[0]}, this run has {change[1]}",),
                                   count_images(results, label), refusable=False))
    return out


def identity_change(results: Path, label: str, method: str | None) -> tuple[str, str] | None:
    """``(old, new)`` identity texts when the label's ``method.json`` names another method identity than
    ``method``'s now (:mod:`dreambench.methods.identity`); None when the same, nothing is recorded or no
    method is given."""
    if method is None:
        return None
    try:
        info = json.loads((ResultsLayout(results).label_images(label) / METHOD_INFO).read_text())
    except (OSError, ValueError):
        return None
    new = method_identity(get_method(method))
    if not isinstance(info, dict) or same_identity(info.get("method_identity"), new):
        return None
    return identity_text(info.get("method_identity")), identity_text(new)


def _settings_by_label(rows: list[dict]) -> dict[str, list[tuple[str, dict]]]:
    out: dict[str, list[tuple[str, dict]]] = {}
    for r in rows:
        spec = r.get("spec") or {}
        if r["kind"] == "subject" and spec.get("label_settings") is not None:
            out.setdefault(r["label"], []).append((spec.get("label_key"), spec["label_settings"]))
    return out


def differences(old: dict | None, new: dict | None) -> list[str]:
    """``"name old -> new"`` for each setting that differs; config fields are compared one by one.
    Settings recorded by a release that did not store them cannot be compared field by field."""
    if old is None or new is None:
        return ["settings recorded by an earlier release (not comparable field by field)"]
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(f"{key} {a!r} -> {b!r}")
    return out or ["settings differ"]


def free_label(results: Path, plan: Plan, label: str) -> str:
    """``LABEL-N`` with the smallest N >= 2 that is neither a label of the folder nor of the plan."""
    images = ResultsLayout(results).images
    return free_name(label, set(plan.labels()) | ({p.name for p in images.iterdir()} if images.is_dir() else set()))


def count_images(results: Path, label: str) -> int:
    folder = ResultsLayout(results).label_images(label)
    return sum(1 for _ in folder.rglob("*.png")) if folder.is_dir() else 0


def check_replace_names(replace: tuple[str, ...] | list[str], labels: list[str]) -> None:
    """Each ``--replace`` value is a label of the run or ``all``."""
    unknown = [r for r in replace if r != ALL and r not in labels]
    if unknown:
        raise DreambenchError(f"--replace {', '.join(unknown)}: not a label of this run "
                              f"(labels: {', '.join(labels) or 'none'}; or --replace all)")


def check_replacements(found: list[Replacement], replace: tuple[str, ...] | list[str]) -> None:
    """Refuse (:class:`DreambenchError`, one line per label) every replacement not allowed by ``replace``."""
    refused = [r for r in found if r.refusable and ALL not in replace and r.label not in replace]
    if not refused:
        return
    lines = [f"{r.describe()}; re-run with --replace {r.label} to delete them and make new ones, or give "
             f"this config another label (--method {r.free_label or r.label + '-2'}={r.method})" for r in refused]
    raise DreambenchError("\n".join(lines))
