"""A VLM judge: DreamBench++'s Concept Preservation (CP) and Prompt Following (PF) scores on any
OpenAI-compatible chat-completions endpoint, with the reference's requests reproduced field for field.

One data flow, one module per step::

    profiles  (the rubric set and the request settings, as data)
    rubrics   (the rubric texts: fetched at the pinned commit or read from a folder, sha256-checked)
    items     (what to judge: one generated image per (label, subject, prompt), its reference photo,
               prompt text and kind; built from a results folder)
    encode    (the reference's image preprocessing: 512x512 JPEG as a base64 data URL)
    messages  (the reference's message lists for CP and PF)
    parse     (the reference's score regex)
    store     (content-addressed, append-only record of every finished call)
    client    (transport over the ``openai`` library)
    runner    (calls, concurrency, the bounded retry of unparseable answers, the request budget)
    aggregate (per-run means / 4, mean +- sample std over runs, CP*PF, breakdowns, subject bootstrap)
    evaluate  (``judge_results``: the library twin of ``dreambench judge``; writes the CSVs)
    table     (``judge_rows``: what a table reads)

Definitions and the deliberate differences from the reference: docs/judge.md.
"""

from __future__ import annotations

from ..lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "JudgeProfile": "profiles", "get_profile": "profiles", "PROFILES": "profiles",
    "JudgeItem": "items", "items_from_results": "items",
    "judge_results": "evaluate", "JudgeOptions": "evaluate",
    "judge_rows": "table",
})

__all__ = ["PROFILES", "JudgeItem", "JudgeOptions", "JudgeProfile", "get_profile", "items_from_results",
           "judge_results", "judge_rows"]
