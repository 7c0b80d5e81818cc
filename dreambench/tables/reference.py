"""The paper's published figures (Ruiz et al., "DreamBooth", CVPR 2023, Tables 1-4), for ``--reference paper``.

Reported rows are shown next to measured ones but are never part of them: they carry
``source = "reported"`` (measured rows ``"measured"``), "(reported)" in their display name, no interval
(the paper prints none) and the paper's model and subject count, which the table note repeats (the
ablations of Tables 3 and 4 used Imagen, not Stable Diffusion). Figures are exactly as printed.
"""

from __future__ import annotations

import math

import pandas as pd

#: ``paper``: the DreamBooth paper's Tables 1-4 (here); ``dreambench-plus``: DreamBench++'s published rows
#: (:mod:`dreambench.tables.dreambench_plus`).
REFERENCES = ("paper", "dreambench-plus")
CITATION = "Ruiz et al. 2023 (DreamBooth, CVPR)"
MEASURED = "measured"
REPORTED = "reported"
_NAN = math.nan

#: Table number -> rows: (label key, display name, model, subjects, extra id columns, figures).
_PAPER: dict[int, list[tuple[str, str, str, int | None, dict, dict]]] = {
    1: [
        ("paper:real-images", "Real Images", "real photos", 30, {}, {"dino": 0.774, "clip_i": 0.885, "clip_t": _NAN}),
        ("paper:dreambooth-imagen", "DreamBooth (Imagen)", "Imagen", 30, {},
         {"dino": 0.696, "clip_i": 0.812, "clip_t": 0.306}),
        ("paper:dreambooth-sd", "DreamBooth (Stable Diffusion)", "Stable Diffusion", 30, {},
         {"dino": 0.668, "clip_i": 0.803, "clip_t": 0.305}),
        ("paper:textual-inversion-sd", "Textual Inversion (Stable Diffusion)", "Stable Diffusion", 30, {},
         {"dino": 0.569, "clip_i": 0.780, "clip_t": 0.255}),
    ],
    2: [
        ("paper:subject", "subject", "Stable Diffusion", None,
         {"question_type": "subject", "method_a": "DreamBooth (Stable Diffusion)",
          "method_b": "Textual Inversion (Stable Diffusion)"},
         {"pct_a": 68.0, "pct_b": 22.0, "pct_undecided": 10.0}),
        ("paper:prompt", "prompt", "Stable Diffusion", None,
         {"question_type": "prompt", "method_a": "DreamBooth (Stable Diffusion)",
          "method_b": "Textual Inversion (Stable Diffusion)"},
         {"pct_a": 81.0, "pct_b": 12.0, "pct_undecided": 7.0}),
    ],
    3: [
        ("paper:dreambooth-ppl", "DreamBooth (Imagen)", "Imagen", 15, {"ppl": "yes"},
         {"pres": 0.493, "div": 0.391, "dino": 0.684, "clip_i": 0.815, "clip_t": 0.308}),
        ("paper:dreambooth-no-ppl", "DreamBooth (Imagen)", "Imagen", 15, {"ppl": "no"},
         {"pres": 0.664, "div": 0.371, "dino": 0.712, "clip_i": 0.828, "clip_t": 0.306}),
    ],
    4: [
        ("paper:noun-correct", "DreamBooth (Imagen)", "Imagen", 5, {"class_noun": "correct"},
         {"dino": 0.744, "clip_i": 0.853}),
        ("paper:noun-none", "DreamBooth (Imagen)", "Imagen", 5, {"class_noun": "none"},
         {"dino": 0.303, "clip_i": 0.607}),
        ("paper:noun-wrong", "DreamBooth (Imagen)", "Imagen", 5, {"class_noun": "wrong"},
         {"dino": 0.454, "clip_i": 0.728}),
    ],
}


def reported_name(name: str) -> str:
    return f"{name} (reported)"


def reported_rows(reference: str, number: int) -> pd.DataFrame:
    """The reported rows of Table ``number`` in the tidy layout of the measured table (``method``,
    ``name``, id columns, ``<m>``, ``<m>_lo``, ``<m>_hi``, ``n_subjects``, ``source``, ``model``);
    empty when the reference has no such table."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)}")
    if reference != "paper":  # DreamBench++'s published rows are its own table's (tables/dreambench_plus.py)
        return pd.DataFrame()
    rows = []
    for key, name, model, n, ids, figures in _PAPER.get(number, []):
        row = {"method": key, "name": reported_name(name), **ids}
        for m, v in figures.items():
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = v, _NAN, _NAN
        row.update(n_subjects=n, source=REPORTED, model=model)
        rows.append(row)
    return pd.DataFrame(rows)


def reported_note(reference: str, number: int) -> str | None:
    """The table note naming the model and subject count behind each reported row."""
    rows = _PAPER.get(number, []) if reference == "paper" else []
    if not rows:
        return None
    seen: dict[str, None] = {}
    for _key, name, model, n, ids, _f in rows:
        what = name if number != 2 else f"{ids['method_a']} vs {ids['method_b']}"
        extra = {3: ids.get("ppl") and f"PPL {ids['ppl']}", 4: ids.get("class_noun")}.get(number)
        who = f"{model}, {n} subjects" if n else f"{model}, user study"
        seen[f"{what}{f' [{extra}]' if extra else ''}: {who}"] = None
    return (f"rows marked (reported): figures published in {CITATION}, Table {number}, not measured here and "
            f"not part of any interval; " + "; ".join(seen))
