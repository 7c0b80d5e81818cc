"""Display names of method labels: the text a table row shows instead of the raw label.

Given as ``--name LABEL=TEXT`` to ``dreambench tables`` / ``report`` (this call only) or to ``dreambench
run`` (recorded in ``<results>/names.json`` and used by every later ``tables`` / ``report`` of the
folder). A label without a name shows the label itself; ``--name`` on ``tables`` wins over the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError, DreambenchError
from ..io import write_text_atomic
from ..layout import ResultsLayout


def parse_names(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``{"LABEL": "TEXT"}`` from ``LABEL=TEXT`` strings; a malformed item is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        label, sep, text = str(item).partition("=")
        if not sep or not label.strip() or not text.strip():
            raise DreambenchError(f"--name {item!r}: expected LABEL=TEXT, e.g. dreambooth=\"DreamBooth (SD)\"")
        out[label.strip()] = text.strip()
    return out


def read_names(results_dir: Path) -> dict[str, str]:
    """The names recorded in ``<results_dir>/names.json`` (empty when there is none)."""
    path = ResultsLayout(results_dir).names
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping label -> display name")
    return {str(k): str(v) for k, v in data.items()}


def record_names(results_dir: Path, names: dict[str, str]) -> Path | None:
    """Merge ``names`` into ``<results_dir>/names.json`` (later names win); nothing written when empty."""
    if not names:
        return None
    merged = {**read_names(results_dir), **names}
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return write_text_atomic(ResultsLayout(results_dir).names, json.dumps(merged, indent=1, sort_keys=True) + "\n")


def display(label: str, names: dict[str, str]) -> str:
    return names.get(label, label)
