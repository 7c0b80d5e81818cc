"""The run's method labels from the CLI's words: ``--method [LABEL=]METHOD`` (:func:`parse_method_label`),
``--set [PREFIX.]KEY=VALUE`` (:func:`parse_sets`) and both with ``--tables paper`` (:func:`method_runs`).
"""

from __future__ import annotations

from ..errors import DreambenchError
from ..methods.base import list_methods
from ..protocol import name_problem
from .paper import PAPER_CLASS_PROMPT_SAMPLES, paper_method_runs
from .replace import ALL
from .runspec import MethodRun, field_names


def parse_method_label(item: str) -> tuple[str, str]:
    """``--method LABEL=METHOD`` -> ``(label, method)``; a plain ``--method M`` is ``(M, M)``. The label
    becomes a folder name, so it must be a valid name (:func:`dreambench.protocol.name_problem`), and not
    ``all`` (``--replace all``)."""
    label, _, method = item.partition("=")
    label, method = label.strip(), (method.strip() if method else label.strip())
    if not label or not method:
        raise DreambenchError(f"--method {item!r}: expected METHOD or LABEL=METHOD")
    problem = name_problem(label)
    if problem:
        raise DreambenchError(f"--method {item!r}: label {problem}")
    if label == ALL and "=" in item:  # `--replace all` means every label: this one could not be named alone
        raise DreambenchError(f"--method {item!r}: label {ALL!r} is reserved (--replace {ALL} means every label); "
                              f"choose another label, e.g. --method {method}-{ALL}={method}")
    return label, method

def parse_sets(items: list[str] | tuple[str, ...], labels: list[str] | dict[str, str]) -> dict[str, dict[str, str]]:
    """``--set key=value`` (every label whose method has the field) or ``--set PREFIX.key=value`` -> overrides
    per label. ``PREFIX`` is a label, or else a method name (every label of that method). ``labels`` maps
    label -> method (a list means label = method)."""
    methods = dict(labels) if isinstance(labels, dict) else {m: m for m in labels}
    out: dict[str, dict[str, str]] = {label: {} for label in methods}
    for item in items:
        if "=" not in item:
            raise DreambenchError(f"--set {item!r}: expected key=value or LABEL.key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if "." in key:
            prefix, k = key.split(".", 1)
            takers = [prefix] if prefix in methods else [lb for lb, m in methods.items() if m == prefix]
            if not takers:
                raise DreambenchError(f"--set {item!r}: {prefix!r} is neither a label nor a method of the run "
                                      f"(labels: {', '.join(methods) or 'none'})")
            for label in takers:
                if k not in field_names(methods[label]):
                    which = "" if label == methods[label] else f" (label {label})"
                    raise DreambenchError(f"--set {item!r}{which}: method {methods[label]} has no config field "
                                          f"{k!r}; fields: {', '.join(sorted(field_names(methods[label])))}")
                out[label][k] = value
        else:
            # A bare key goes to every label whose method's config has that field (real has no learning rate).
            takers = [lb for lb, m in methods.items() if key in field_names(m)]
            if not takers:
                fields = sorted(set().union(*(field_names(m) for m in methods.values()))) if methods else []
                raise DreambenchError(f"--set {item!r}: no method among {sorted(set(methods.values()))} has a "
                                      f"config field {key!r}; fields: {', '.join(fields) or '(none)'}")
            for label in takers:
                out[label][key] = value
    return out


def method_runs(methods: tuple[str, ...], tables: str | None, sets: tuple[str, ...], recipe: str | None,
                class_samples: int | None) -> list[MethodRun]:
    """The run's labels: ``--tables paper``'s labels, then each ``--method [LABEL=]METHOD`` (a label the
    paper plan already has is not planned twice), with ``--set`` overrides per label and ``--recipe`` for
    every label of the methods given with ``--method``."""
    given = dict(parse_method_label(m) for m in methods)  # label -> method; a repeated identical pair once
    pairs = [parse_method_label(m) for m in methods]
    clash = sorted({lb for lb, m in pairs if given[lb] != m})
    if clash:
        raise DreambenchError(f"--method: label(s) {', '.join(clash)} given for two different methods")
    paper_names = ["dreambooth", "textual-inversion", "real", "pretrained"] if tables else []
    labels = {**{m: m for m in paper_names}, **given}
    overrides = parse_sets(sets, labels)
    runs: list[MethodRun] = []
    if tables == "paper":
        registered = list_methods()
        runs.extend(paper_method_runs({m: overrides.get(m, {}) for m in paper_names if m in registered},
                                      PAPER_CLASS_PROMPT_SAMPLES if class_samples is None else class_samples))
    for label, method in given.items():
        if any(r.label == label for r in runs):
            continue
        runs.append(MethodRun(label, method, overrides.get(label, {}), class_prompt_samples=class_samples or 0))
    if recipe:
        for r in runs:
            if r.recipe is None and (r.label in given or r.method in given.values()):
                r.recipe = recipe
    return runs
