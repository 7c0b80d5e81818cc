"""Which method labels go into which table, from each label's ``method.json`` (schema.METHOD_INFO_KEYS).

Three ablation axes: ``ppl`` (prior preservation: true | false | null = not applicable),
``class_noun_mode`` (correct | none | wrong; null = not applicable) and ``num_inputs`` (instance images
used; null = all). A label is a *main* label (Table 1) when every axis is at its default. An ablation
table compares labels of the same registry method, model profile and weights that differ only on its
axis, the other axes held fixed.
"""

from __future__ import annotations

from collections import defaultdict

NOUN_MODES = ("correct", "none", "wrong")


def ppl_of(info: dict) -> bool | None:
    """Prior preservation on (True), off (False) or not applicable (None)."""
    v = info.get("ppl")
    if isinstance(v, str):
        v = {"true": True, "false": False, "yes": True, "no": False}.get(v.strip().lower())
    return v if isinstance(v, bool) else None


def noun_mode_of(info: dict) -> str:
    """``correct``, ``none`` or ``wrong``; a missing value counts as ``correct`` (the default)."""
    v = info.get("class_noun_mode")
    return str(v) if v not in (None, "", "n/a") else "correct"


def num_inputs_of(info: dict) -> int | None:
    v = info.get("num_inputs")
    return None if v in (None, "", "all") else int(v)


def is_default(info: dict) -> bool:
    """Default ablation settings: PPL on or not applicable, correct class noun, all input images."""
    return ppl_of(info) is not False and noun_mode_of(info) == "correct" and num_inputs_of(info) is None


def main_labels(labels: list[str], infos: dict[str, dict]) -> list[str]:
    """Table 1's labels: those with default settings, plus labels without a method.json (nothing says
    they are ablations). With no method.json at all, every label."""
    return [lab for lab in labels if lab not in infos or is_default(infos[lab])]


def _base_key(info: dict) -> tuple:
    return (str(info.get("method", "?")), str(info.get("profile", "")), str(info.get("weights", "")))


def ppl_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, bool]:
    """``label -> ppl`` for labels in groups (same method/profile/weights, correct noun, all inputs)
    where both PPL on and off exist."""
    groups: dict[tuple, dict[str, bool]] = defaultdict(dict)
    for lab in labels:
        info = infos.get(lab)
        if (
            info is None
            or ppl_of(info) is None
            or noun_mode_of(info) != "correct"
            or num_inputs_of(info) is not None
        ):
            continue
        groups[_base_key(info)][lab] = ppl_of(info)
    out: dict[str, bool] = {}
    for members in groups.values():
        if {True, False} <= set(members.values()):
            out.update(members)
    return out


def noun_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, str]:
    """``label -> class_noun_mode`` for labels in groups (same method/profile/weights and PPL setting, all
    inputs) holding at least two of correct / none / wrong, one of them not ``correct``."""
    groups: dict[tuple, dict[str, str]] = defaultdict(dict)
    for lab in labels:
        info = infos.get(lab)
        if info is None or num_inputs_of(info) is not None or noun_mode_of(info) not in NOUN_MODES:
            continue
        groups[(*_base_key(info), ppl_of(info))][lab] = noun_mode_of(info)
    out: dict[str, str] = {}
    for members in groups.values():
        modes = set(members.values())
        if len(modes) >= 2 and "correct" in modes:
            out.update(members)
    return out


def inputs_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, int]:
    """``label -> num_inputs`` for every label with an explicit number of input images and the correct
    class noun."""
    return {
        lab: num_inputs_of(infos[lab])
        for lab in labels
        if lab in infos and num_inputs_of(infos[lab]) is not None and noun_mode_of(infos[lab]) == "correct"
    }


def method_of(label: str, infos: dict[str, dict]) -> str:
    """The registry method behind a label (the label itself when there is no method.json)."""
    return str(infos.get(label, {}).get("method") or label)
