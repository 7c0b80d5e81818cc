"""What the judge judges: a plain list of :class:`JudgeItem`, and how one is built from a results folder.

From a results folder: the rows of ``images/manifest.csv`` (checked as scoring checks them,
:func:`dreambench.metrics.inputs.validate_rows`), one per (label, subject, prompt index): *image 0*, the
row of the lowest seed, as the reference judges only ``<prompt>_0.jpg``. Class-prompt samples (prompt index
-1) are not judged. The PF text is the prompt without the identifier (the manifest's ``prompt_plain``, else
the prompt with the identifier token removed, as CLIP-T reads it), since DreamBench++ prompts name the
subject by its noun. The reference photo is the subject's first photo in sorted file-name order in the
dataset folder (DreamBench++ subjects have exactly one; DreamBooth subjects have 4-6 and the first is
used). The subject's kind comes from the protocol (DreamBooth's ``live`` subjects are ``animal``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, DreambenchError
from ..io import connect_readonly
from ..layout import ResultsLayout
from ..paths import default_data_dir
from ..protocol import load_protocol
from .profiles import KINDS

#: Protocol kinds that are named differently in DreamBench++ (DreamBooth's live subjects are cats and dogs).
KIND_ALIASES = {"live": "animal"}


@dataclass(frozen=True)
class JudgeItem:
    """One generated image to judge.

    Attributes:
        label: the method label (row of the tables).
        subject: the subject's name (DreamBench++: its ``collection_id``).
        prompt_index: the prompt's 0-based index in the subject's list (DreamBench++: 0-3 photorealistic,
            4-6 style transfer, 7-8 imaginative).
        kind: ``animal``, ``human``, ``object`` or ``style``: picks the CP rubric and the breakdown.
        prompt: the text PF judges the image against.
        image: the generated image file.
        reference: the subject's reference photo (what CP compares against).
        seed: the generation seed of the image (for display only).
    """

    label: str
    subject: str
    prompt_index: int
    kind: str
    prompt: str
    image: Path
    reference: Path
    seed: int = 0


def recorded_protocol(results_dir: Path) -> str | None:
    """The protocol the subject jobs of a results folder were planned with (state.sqlite), or None."""
    path = ResultsLayout(results_dir).state
    if not path.is_file():
        return None
    try:
        con = connect_readonly(path)
        try:
            specs = [json.loads(s or "{}") for (s,) in con.execute("SELECT spec FROM jobs WHERE kind='subject'")]
        finally:
            con.close()
    except (sqlite3.Error, ValueError):
        return None
    found = sorted({str(s["protocol"]) for s in specs if s.get("protocol")})
    if len(found) > 1:
        raise DataError(f"{results_dir} was run with several protocols ({', '.join(found)}); give --protocol")
    return found[0] if found else None


def protocol_data_dir(results_dir: str | Path, protocol: str | None = None) -> Path:
    """The folder of subject photos a results folder's images are compared against: the data folder of
    ``protocol`` (else of the protocol its subject jobs were planned with, :func:`recorded_protocol`) when
    that protocol has its own (DreamBench++'s prepared ``subjects/``), else the DreamBooth dataset's
    default (:func:`dreambench.paths.default_data_dir`). An unknown or unloadable protocol falls back
    to the default too: the caller that needs the protocol names the problem."""
    name = protocol or recorded_protocol(Path(results_dir))
    if name:
        try:
            own = load_protocol(name).data_dir
        except DreambenchError:
            own = None
        if own is not None:
            return own
    return default_data_dir()


def subject_kinds(protocol: str) -> dict[str, str]:
    """Subject name -> judge kind (``animal``, ``human``, ``object``, ``style``) of a protocol."""
    proto = load_protocol(protocol)
    out = {}
    for s in proto.subjects:
        kind = KIND_ALIASES.get(s.kind, s.kind)
        if kind not in KINDS:
            raise DataError(f"protocol {protocol!r}: subject {s.name} has kind {s.kind!r}, which the judge does "
                            f"not know (one of {', '.join(KINDS)}, or live)")
        out[s.name] = kind
    return out


def items_from_results(results_dir: str | Path, data_dir: str | Path, protocol: str | None = None,
                       labels: list[str] | None = None, identifier: str = "sks") -> tuple[list[JudgeItem], list[str]]:
    """The items of a results folder (module docstring) and the problems that left rows out (one line each:
    a bad manifest row, a subject without usable photos or unknown to the protocol). ``labels`` keeps only
    those labels (an unknown one raises :class:`DataError`)."""
    from ..manifest import read_manifest
    from ..metrics.inputs import find_real_sets, method_identifiers, validate_rows

    layout = ResultsLayout(Path(results_dir))
    manifest = read_manifest(layout.images)
    if labels:
        unknown = sorted(set(labels) - set(manifest["method"].astype(str)))
        if unknown:
            raise DataError(f"--labels: {', '.join(unknown)} not in {layout.images}/manifest.csv (labels there: "
                            f"{', '.join(sorted(set(manifest['method'].astype(str))))})")
        manifest = manifest[manifest["method"].astype(str).isin(labels)]
    manifest = manifest[manifest["prompt_index"] >= 0].reset_index(drop=True)
    errors: list = []
    rows = validate_rows(manifest, layout.images, method_identifiers(layout.images, set(manifest["method"]),
                                                                     identifier), errors)
    problems = [str(e) for e in errors]
    kinds = subject_kinds(protocol or recorded_protocol(layout.root) or "dreambooth")
    subjects = sorted(set(rows["subject"].astype(str)))
    unknown = [s for s in subjects if s not in kinds]
    problems += [f"subject {s}: not in the protocol, so its kind is unknown (give --protocol); not judged"
                 for s in unknown]
    photos, bad = find_real_sets([s for s in subjects if s in kinds], Path(data_dir))
    problems += [f"subject {s}: {why}; not judged" for s, why in sorted(bad.items())]
    rows = rows.sort_values(["method", "subject", "prompt_index", "seed"], kind="stable")
    first = rows.drop_duplicates(["method", "subject", "prompt_index"], keep="first")
    items = [JudgeItem(str(r.method), str(r.subject), int(r.prompt_index), kinds[str(r.subject)],
                       str(r.clip_t_text), Path(r.abspath), photos[str(r.subject)][0][0], int(r.seed))
             for r in first.itertuples(index=False) if str(r.subject) in photos]
    return items, problems
