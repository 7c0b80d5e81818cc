"""docs/architecture.md's module table matches the package (issue 21.7): every module of ``dreambench`` is
named in the row of its package (the nearest folder with a row), and every ``name.py`` a row names exists
in that package. A module added without a line in the map, or one removed and still described, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def _rows() -> dict[str, str]:
    """``package folder or file (relative to the repo) -> row text`` of the module table."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `dreambench"):
            continue
        first = line[2:].split(" | ", 1)[0]
        paths = re.findall(r"`([^`]+)`", first)
        base = Path(paths[0]).parent if paths[0].endswith(".py") else Path(paths[0])
        for p in paths:
            key = p if p.startswith("dreambench") else str(base / p)
            rows[key.rstrip("/")] = line
    return rows


def _row_of(module: Path, rows: dict[str, str]) -> str | None:
    rel = module.relative_to(ROOT)
    if str(rel) in rows:
        return rows[str(rel)]
    for folder in rel.parents:
        if str(folder) in rows:
            return rows[str(folder)]
    return None


def _named(module: Path, row: str) -> bool:
    name = module.stem if module.stem != "__init__" else module.parent.name
    return bool(re.search(rf"`([\w/]*/)?{re.escape(name)}(\.py|/)?[`(]", row)) or f"{name}.py" in row


def test_every_module_is_in_the_map():
    rows = _rows()
    missing = []
    for module in sorted((ROOT / "dreambench").rglob("*.py")):
        if str(module.relative_to(ROOT)) in rows:
            continue  # named in the first cell of a row
        row = _row_of(module, rows)
        if module.stem == "__init__" and row is not None and _row_of(module.parent, rows) is not None:
            continue  # a package with its own row: the row is its description
        if row is None or not _named(module, row):
            missing.append(str(module.relative_to(ROOT)))
    assert missing == [], f"modules docs/architecture.md does not name in their package's row: {missing}"


def test_every_module_the_map_names_exists():
    gone = []
    for key, row in _rows().items():
        folder = ROOT / key
        if not folder.is_dir():
            continue
        for name in re.findall(r"`([\w/]+)\.py`", row):
            if not any((base / f"{name}.py").is_file() for base in (folder, folder.parent, ROOT)) \
                    and not list(folder.rglob(f"{name}.py")):
                gone.append(f"{key}: {name}.py")
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"
