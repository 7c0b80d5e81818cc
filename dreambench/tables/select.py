"""Which method labels go into which table, from each label's ``method.json`` (schema.METHOD_INFO_KEYS).

Membership is data: ``dreambench run`` records each label's *role* when it plans it (see
:mod:`dreambench.engine.plan`)::

    "role": {"table": "main"}                                        a row of Table 1
    "role": {"table": "ablation", "axis": "ppl", "value": false}     prior preservation off (Table 3)
    "role": {"table": "ablation", "axis": "class_noun", "value": "none" | "wrong"}   (Table 4)
    "role": {"table": "ablation", "axis": "num_inputs", "value": 3}  (Tables 5 and 6)

``ppl`` is true (on), false (off) or null (does not apply: the method does not train or has no
prior-preservation switch); only the role, never ``ppl`` alone, puts a label in or out of Table 1.

Folders written before roles existed have no ``role`` key and ``ppl: false`` for every method without
prior preservation; :func:`role_of` infers their role (:func:`infer_role`). A label without a
method.json is a main label (nothing says it is an ablation).

Table 1 order (:func:`main_labels`): the Real Images row (real.csv) is first, then the labels of the
built-in methods in :data:`BUILTIN_ORDER` (dreambooth, dreambooth-lora, textual-inversion, pretrained,
real), then every other label (plug-ins) by label name; several labels of one method sort by label name.

An ablation table compares the ablation labels of one axis with the main labels they were made beside:
same registry method, model profile and weights (and, for Table 4, the same ``ppl``).
"""

from __future__ import annotations

from collections import defaultdict

NOUN_MODES = ("correct", "none", "wrong")
#: Ablation axes a role may name.
AXES = ("ppl", "class_noun", "num_inputs")
#: Table 1 order of the built-in methods (after the Real Images row); other methods follow by label.
BUILTIN_ORDER = ("dreambooth", "dreambooth-lora", "textual-inversion", "pretrained", "real")
MAIN = {"table": "main"}


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


def _base_key(info: dict) -> tuple:
    return (str(info.get("method", "?")), str(info.get("profile", "")), str(info.get("weights", "")))


def _valid_role(role) -> bool:
    if not isinstance(role, dict):
        return False
    if role.get("table") == "main":
        return True
    return role.get("table") == "ablation" and role.get("axis") in AXES


def infer_role(label: str, infos: dict[str, dict]) -> dict:
    """The role of a label whose method.json has none (folders of releases before roles).

    Class noun other than ``correct`` -> class_noun ablation; ``num_inputs`` set -> num_inputs ablation;
    ``ppl`` false -> ppl ablation only when a label of the same method, profile and weights with ``ppl``
    true, the correct class noun and all inputs exists beside it (the paper plan's ``dreambooth-noppl``);
    otherwise main (old releases wrote ``ppl: false`` for every method without prior preservation)."""
    info = infos.get(label)
    if info is None:
        return dict(MAIN)
    if noun_mode_of(info) != "correct":
        return {"table": "ablation", "axis": "class_noun", "value": noun_mode_of(info)}
    if num_inputs_of(info) is not None:
        return {"table": "ablation", "axis": "num_inputs", "value": num_inputs_of(info)}
    if ppl_of(info) is False:
        key = _base_key(info)
        for other, oi in infos.items():
            if (other != label and _base_key(oi) == key and ppl_of(oi) is True
                    and noun_mode_of(oi) == "correct" and num_inputs_of(oi) is None):
                return {"table": "ablation", "axis": "ppl", "value": False}
    return dict(MAIN)


def role_of(label: str, infos: dict[str, dict]) -> dict:
    """The label's recorded role, or the inferred one (:func:`infer_role`) when none is recorded."""
    role = infos.get(label, {}).get("role")
    return dict(role) if _valid_role(role) else infer_role(label, infos)


def is_main(label: str, infos: dict[str, dict]) -> bool:
    return role_of(label, infos).get("table") == "main"


def _axis(label: str, infos: dict[str, dict]) -> str | None:
    role = role_of(label, infos)
    return role.get("axis") if role.get("table") == "ablation" else None


def table1_order(labels: list[str], infos: dict[str, dict]) -> list[str]:
    """``labels`` in Table 1 order: built-in methods in :data:`BUILTIN_ORDER`, then the rest by label."""
    rank = {m: i for i, m in enumerate(BUILTIN_ORDER)}

    def key(lab: str) -> tuple:
        return (rank.get(method_of(lab, infos), len(rank)), lab)

    return sorted(labels, key=key)


def main_labels(labels: list[str], infos: dict[str, dict]) -> list[str]:
    """Table 1's labels, in Table 1 order: every label whose role is main (recorded or inferred)."""
    return table1_order([lab for lab in labels if is_main(lab, infos)], infos)


def ppl_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, bool]:
    """``label -> ppl`` for the ppl-ablation labels and the main labels with prior preservation on beside
    them (same method, profile and weights, correct class noun, all inputs), in groups where both on and
    off exist."""
    groups: dict[tuple, dict[str, bool]] = defaultdict(dict)
    ablated: set[tuple] = set()
    for lab in labels:
        info = infos.get(lab)
        if info is None or ppl_of(info) is None or noun_mode_of(info) != "correct" or num_inputs_of(info) is not None:
            continue
        axis = _axis(lab, infos)
        if axis == "ppl":
            ablated.add(_base_key(info))
        elif axis is not None or ppl_of(info) is not True:
            continue
        groups[_base_key(info)][lab] = ppl_of(info)
    out: dict[str, bool] = {}
    for key, members in groups.items():
        if key in ablated and {True, False} <= set(members.values()):
            out.update(members)
    return out


def noun_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, str]:
    """``label -> class_noun_mode`` for the class-noun ablation labels and the main labels beside them
    (same method, profile, weights and ``ppl``, correct class noun, all inputs), in groups holding
    ``correct`` and at least one of none / wrong."""
    groups: dict[tuple, dict[str, str]] = defaultdict(dict)
    for lab in labels:
        info = infos.get(lab)
        if info is None or num_inputs_of(info) is not None or noun_mode_of(info) not in NOUN_MODES:
            continue
        axis = _axis(lab, infos)
        if axis == "class_noun" or (axis is None and noun_mode_of(info) == "correct"):
            groups[(*_base_key(info), ppl_of(info))][lab] = noun_mode_of(info)
    out: dict[str, str] = {}
    for members in groups.values():
        modes = set(members.values())
        if len(modes) >= 2 and "correct" in modes:
            out.update(members)
    return out


def inputs_ablation(labels: list[str], infos: dict[str, dict]) -> dict[str, int]:
    """``label -> num_inputs`` for every num_inputs-ablation label with the correct class noun."""
    return {
        lab: num_inputs_of(infos[lab])
        for lab in labels
        if lab in infos and _axis(lab, infos) == "num_inputs" and num_inputs_of(infos[lab]) is not None
        and noun_mode_of(infos[lab]) == "correct"
    }


def method_of(label: str, infos: dict[str, dict]) -> str:
    """The registry method behind a label (the label itself when there is no method.json)."""
    return str(infos.get(label, {}).get("method") or label)
