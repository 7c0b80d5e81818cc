"""Is an output file whole? Cheap structural checks of the files a job writes, without torch or Pillow.

A done job is trusted only when its outputs pass these checks (:func:`dreambench.engine.runner._outputs_present`),
and a job remakes any output that fails them. The checks read headers, not pixels, so a no-op resume over
thousands of images stays fast:

- a *complete PNG* starts with the PNG signature and an ``IHDR`` chunk, and its chunk chain (each chunk:
  4-byte length, 4-byte type, data, 4-byte CRC) ends with ``IEND`` exactly at the end of the file. A
  truncated file, a file of other bytes, or bytes appended after ``IEND`` fail. (Chunk CRCs are not
  checked: that would read every byte; a file rewritten by another valid PNG passes, and its changed
  bytes are caught by the score keys.)
- a *complete safetensors file* holds an 8-byte header length, a JSON header, and exactly the data its
  tensors' offsets describe.
"""

from __future__ import annotations

import csv
import json
import os
import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(path: str | Path) -> str | None:
    """None when ``path`` is a complete PNG (see the module docstring), else why not: ``missing``,
    ``empty``, ``not a PNG``, ``truncated``, ``bytes after the end`` or ``unreadable (...)``."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            return "empty"
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return "not a PNG"
            pos, first = 8, True
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return "truncated"
                length, kind = struct.unpack(">I4s", head)
                if first and kind != b"IHDR":
                    return "not a PNG (no IHDR chunk first)"
                end = pos + 12 + length  # length, type, data, CRC
                if end > size:
                    return "truncated"
                if kind == b"IEND":
                    return None if end == size else "bytes after the end"
                f.seek(end)
                pos, first = end, False
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"


def safetensors_problem(path: str | Path) -> str | None:
    """None when ``path`` is a complete safetensors file (header length, JSON header, and exactly the
    bytes its tensors' offsets describe), else why not."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "truncated" if head else "empty"
            (n,) = struct.unpack("<Q", head)
            if 8 + n > size:
                return "truncated (or not a safetensors file)"
            try:
                header = json.loads(f.read(n))
            except (ValueError, UnicodeDecodeError):
                return "not a safetensors file (bad header)"
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if not isinstance(header, dict):
        return "not a safetensors file (bad header)"
    try:
        data = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "not a safetensors file (bad header)"
    if 8 + n + data > size:
        return "truncated"
    return None if 8 + n + data == size else "bytes after the end"


def artifact_problem(path: str | Path) -> str | None:
    """:func:`safetensors_problem` for a ``.safetensors`` artifact; for another format (a plug-in's),
    only whether the file is there and not empty."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    try:
        return None if path.stat().st_size > 0 else "empty"
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"


def manifest_paths(part: str | Path) -> list[str] | None:
    """The ``path`` column of a manifest part (relative to the images folder), read with :mod:`csv`
    (no pandas on a resume); None when the part is missing or unreadable."""
    try:
        with open(part, newline="") as f:
            return [row["path"] for row in csv.DictReader(f) if row.get("path")]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
