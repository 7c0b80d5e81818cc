"""File layouts and column names shared by generation, scoring, tables and reports.

An *images folder* (what ``dreambench generate`` writes and ``dreambench score`` reads)::

    <images>/<method>/<subject>/<prompt-index>_<seed>.png
    <images>/manifest.csv     one row per image, columns MANIFEST_COLUMNS (+ optional ones)
    <images>/methods.json     optional: method label -> how it was made (method, config, recipe, ablation)

``prompt_index`` is the prompt's 0-based position in its kind's list, or ``CLASS_PROMPT_INDEX`` (-1) for
samples of the class prompt "a [class noun]" (PRES). ``path`` is relative to the images folder.

A *results folder* (what ``dreambench run`` writes)::

    <results>/state.sqlite              job states (engine)
    <results>/images/                   an images folder as above
    <results>/artifacts/<method>/<subject>/   trained weights (safetensors)
    <results>/class_images/<key>/       prior-preservation images, shared per (model, class, count, seed)
    <results>/scores/per_image.csv      MANIFEST_COLUMNS + SCORE_COLUMNS (+ metric profile columns)
    <results>/tables/                   Table 1-6 as CSV, LaTeX, Markdown
    <results>/logs/<job-id>.log
"""

from __future__ import annotations

from .protocol import CLASS_PROMPT_INDEX

MANIFEST = "manifest.csv"
METHODS_FILE = "methods.json"
MANIFEST_COLUMNS = ["method", "subject", "prompt_index", "prompt", "seed", "path"]
#: Optional manifest columns written by ``dreambench generate``: the identifier-free prompt (CLIP-T
#: text), the prompt category, the class noun used and the model profile / weights label.
MANIFEST_OPTIONAL = ["prompt_plain", "category", "class_noun", "profile", "weights"]
SCORE_COLUMNS = ["dino", "clip_i", "clip_t"]
PER_IMAGE = "per_image.csv"


def image_relpath(method: str, subject: str, prompt_index: int, seed: int) -> str:
    """``<method>/<subject>/<prompt-index>_<seed>.png`` (class-prompt samples use index ``class``)."""
    idx = "class" if prompt_index == CLASS_PROMPT_INDEX else f"{prompt_index:02d}"
    return f"{method}/{subject}/{idx}_{seed}.png"


__all__ = [
    "CLASS_PROMPT_INDEX",
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "MANIFEST_OPTIONAL",
    "METHODS_FILE",
    "PER_IMAGE",
    "SCORE_COLUMNS",
    "image_relpath",
]
