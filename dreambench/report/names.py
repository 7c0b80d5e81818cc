"""The report's page file names: one file-name-safe form of a label or subject, used by every page."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """A file-name-safe form of a label or subject name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def page_name(method: str, subject: str) -> str:
    """The file name of one method/subject page (``report/pages/``)."""
    return f"{slug(method)}__{slug(subject)}.html"


def compare_name(subject: str) -> str:
    """The file name of one subject's comparison page (``report/compare/``)."""
    return f"{slug(subject)}.html"
