"""File layouts and column names shared by generation, scoring, tables and reports.

An *images folder* (what ``dreambench generate`` writes and ``dreambench score`` reads)::

    <images>/<method>/<subject>/<prompt-index>_<seed>.png
    <images>/manifest.csv     one row per image, columns MANIFEST_COLUMNS (+ optional ones)
    <images>/<method>/method.json   optional: how that method label was made (METHOD_INFO_KEYS)

``prompt_index`` is the prompt's 0-based position in its kind's list, or ``CLASS_PROMPT_INDEX`` (-1) for
samples of the class prompt "a [class noun]" (PRES). ``path`` is relative to the images folder.

A *results folder* (what ``dreambench run`` writes)::

    <results>/state.sqlite              job states (engine)
    <results>/images/                   an images folder as above
    <results>/artifacts/<method>/<subject>/   trained weights (safetensors)
    <results>/class_images/<key>/       prior-preservation images, shared per (model, class, count, seed)
    <results>/scores/                   what `dreambench score` writes (see dreambench/metrics/scoring.py):
                                        per_image.csv, div.csv, real.csv, aggregates.csv, ...
    <results>/tables/                   Table 1-6 as CSV, LaTeX, Markdown
    <results>/logs/<job-id>.log
"""

from __future__ import annotations

from .layout import MANIFEST, METHOD_INFO, PER_IMAGE
from .metrics.registry import SCORED_COLUMNS
from .protocol import CLASS_PROMPT_INDEX

#: Keys of ``<images>/<label>/method.json``: the registry method, its config and recipe, the ablation
#: settings (``ppl``: prior preservation true = on, false = off, null = does not apply;
#: ``class_noun_mode``: correct | none | wrong; ``num_inputs``: instance images used, null = all), the
#: label's ``role`` in the tables (``{"table": "main"}`` or ``{"table": "ablation", "axis": ..., "value":
#: ...}``, see dreambench.tables.select), the model profile and weights label, identifier, and the
#: method's ``method_identity`` (provider, version, revision, code digest: dreambench.methods.identity).
METHOD_INFO_KEYS = ["method", "config", "recipe", "ppl", "class_noun_mode", "num_inputs", "role", "profile",
                    "weights", "identifier", "method_identity"]
MANIFEST_COLUMNS = ["method", "subject", "prompt_index", "prompt", "seed", "path"]
#: Optional manifest columns written by ``dreambench generate``: the identifier-free prompt (CLIP-T
#: text), the prompt category, the class noun used and the model profile / weights label.
MANIFEST_OPTIONAL = ["prompt_plain", "category", "class_noun", "profile", "weights"]
#: The per-image score columns of per_image.csv (declared in dreambench.metrics.registry).
SCORE_COLUMNS = list(SCORED_COLUMNS)


def image_relpath(method: str, subject: str, prompt_index: int, seed: int) -> str:
    """``<method>/<subject>/<prompt-index>_<seed>.png`` (class-prompt samples use index ``class``)."""
    idx = "class" if prompt_index == CLASS_PROMPT_INDEX else f"{prompt_index:02d}"
    return f"{method}/{subject}/{idx}_{seed}.png"


__all__ = [
    "CLASS_PROMPT_INDEX",
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "MANIFEST_OPTIONAL",
    "METHOD_INFO",
    "METHOD_INFO_KEYS",
    "PER_IMAGE",
    "SCORE_COLUMNS",
    "image_relpath",
]
