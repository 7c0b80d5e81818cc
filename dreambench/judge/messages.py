"""The message lists of the reference judge (``eval_concept_preservation.py`` and
``eval_prompt_following.py``, setting ``full``, no few-shot), field for field.

No system message. CP: ``[user: rubric, assistant: thinking, user: [image(reference), image(generated)]]``;
PF: ``[user: rubric, assistant: thinking, user: [text(prompt), image(generated)]]``.
"""

from __future__ import annotations

from .encode import data_url
from .rubrics import RubricText


def _image_part(b64: str, detail: str) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(b64), "detail": detail}}


def cp_messages(rubric: RubricText, reference_b64: str, generated_b64: str, detail: str = "high") -> list[dict]:
    """Concept preservation: the reference photo, then the generated image."""
    return [
        {"role": "user", "content": rubric.user},
        {"role": "assistant", "content": rubric.thinking},
        {"role": "user", "content": [_image_part(reference_b64, detail), _image_part(generated_b64, detail)]},
    ]


def pf_messages(rubric: RubricText, prompt: str, generated_b64: str, detail: str = "high") -> list[dict]:
    """Prompt following: the prompt text (stripped, as the reference reads it), then the generated image."""
    return [
        {"role": "user", "content": rubric.user},
        {"role": "assistant", "content": rubric.thinking},
        {"role": "user", "content": [{"type": "text", "text": prompt.strip()}, _image_part(generated_b64, detail)]},
    ]
