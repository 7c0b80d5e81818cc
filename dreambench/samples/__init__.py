"""The DreamBench++ reference code's samples layout, both ways: reading and validating a samples folder
(:mod:`.layout`), importing one as a label of a results folder (:mod:`.importer`), exporting a label into one
(:mod:`.exporter`). Names resolve on first use (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_HOMES = {
    "Sample": "layout",
    "read_samples": "layout",
    "ImportResult": "importer",
    "import_samples": "importer",
    "ExportResult": "exporter",
    "export_samples": "exporter",
}

__all__ = ["ExportResult", "ImportResult", "Sample", "export_samples", "import_samples", "read_samples"]

if TYPE_CHECKING:
    from .exporter import ExportResult, export_samples
    from .importer import ImportResult, import_samples
    from .layout import Sample, read_samples

__getattr__ = lazy_exports(__name__, _HOMES)
