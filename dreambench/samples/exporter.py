"""``dreambench export-samples``: a label of a results folder written in the reference code's samples layout
(:mod:`.layout`), so the reference code's evaluations (``eval_clip_and_dino.py``, the GPT scripts) score the
suite's images.

Per image of the label (class-prompt samples excluded): ``k`` is its rank by seed among its prompt's images
(0, 1, ...); ``text/<cid>/<p>_<k>.txt`` is the subject's prompt ``p`` from the DreamBench++ caption file, written
as the reference writes it (no newline); ``src_image/<cid>/<p>_<k>.<ext>`` is the subject's reference image and
``tgt_image/<cid>/<p>_<k>.<ext>`` the generated one, both decoded (EXIF applied, RGB) and saved as:

- ``jpg`` (default): JPEG with Pillow's defaults (quality 75), exactly as ``generate_images.py`` saves both.
  Lossy: the reference scores what its own runs would have written, not the suite's PNG pixels;
- ``png``: lossless. ``eval_clip_and_dino.py`` reads it (it globs png/jpeg/jpg); the GPT scripts, which open
  ``<p>_0.jpg``, do not. An export in png imported back scores exactly as the label did.

Everything is checked before anything is written (the label's manifest rows, their files, every subject and
prompt against the data folder); the folder is written beside ``dest`` and renamed into place. An existing
non-empty ``dest`` is replaced only with ``force``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..data.dreambench_plus.layout import DbpSubject
from ..errors import DataError, first_problems
from ..images import load_rgb
from ..layout import ResultsLayout
from ..manifest import read_manifest, row_problem
from ..schema import CLASS_PROMPT_INDEX
from .importer import check_images
from .layout import SRC, TEXT, TGT, sample_name
from .staging import run_all, staged_folder

#: ``--format`` -> (file suffix, Pillow format).
FORMATS = {"jpg": (".jpg", "JPEG"), "png": (".png", "PNG")}


@dataclass(frozen=True)
class ExportRow:
    """One image to export: its subject, ``p``, ``k``, the generated file and the prompt to write."""

    subject: DbpSubject
    prompt_index: int
    image_index: int
    image: Path

    @property
    def prompt(self) -> str:
        return self.subject.prompts[self.prompt_index]


@dataclass(frozen=True)
class ExportResult:
    dest: Path
    images: int
    subjects: int


def _label_rows(images_dir: Path, label: str):
    manifest = read_manifest(images_dir)
    rows = manifest[(manifest["method"].astype(str) == label) & (manifest["prompt_index"] != CLASS_PROMPT_INDEX)]
    if rows.empty:
        labels = ", ".join(sorted(set(manifest["method"].astype(str)))) or "(none)"
        raise DataError(f"{images_dir}: no images of label {label!r}; labels: {labels}")
    return rows.sort_values(["subject", "prompt_index", "seed"], kind="stable")


def _row_problem(images_dir: Path, r: dict, subj: DbpSubject | None, data_dir: Path) -> str | None:
    where = f"{images_dir / str(r['path'])}"
    unsafe = row_problem(images_dir, r)
    if unsafe:
        return f"{where}: {unsafe}"
    if not (images_dir / str(r["path"])).is_file():
        return f"{where}: file not found"
    if subj is None:
        return f"{where}: subject {r['subject']!r} is not a DreamBench++ subject of {data_dir}"
    p = int(r["prompt_index"])
    if not 0 <= p < len(subj.prompts):
        return f"{where}: prompt index {p}, but {subj.collection_id} has {len(subj.prompts)} prompts"
    plain = str(r.get("prompt_plain") or "").strip()
    if plain and plain != subj.prompts[p]:
        return (f"{where}: the manifest's prompt {plain!r} is not prompt {p} of {subj.collection_id} "
                f"({subj.prompts[p]!r}); is {data_dir} the data the label was made from?")
    return None


def plan_export(results_dir: Path, label: str, subjects: list[DbpSubject], data_dir: Path) -> list[ExportRow]:
    """The label's images to export, each with its ``k``; :class:`DataError` naming the first bad rows."""
    images_dir = ResultsLayout(results_dir).images
    by_id = {s.collection_id: s for s in subjects}
    out, problems, counts = [], [], {}
    for r in _label_rows(images_dir, label).to_dict("records"):
        subj = by_id.get(str(r["subject"]))
        problem = _row_problem(images_dir, r, subj, data_dir)
        if problem:
            problems.append(problem)
            continue
        key = (subj.collection_id, int(r["prompt_index"]))
        counts[key] = counts.get(key, -1) + 1  # rows are sorted by seed: k counts up within a prompt
        out.append(ExportRow(subj, key[1], counts[key], images_dir / str(r["path"])))
    if problems:
        raise DataError(f"cannot export label {label!r}: {first_problems(problems)}")
    return out


def _encode(path: Path, fmt: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EXIF / mode conversions are part of the format, as in the reference
        im = load_rgb(path)
    buf = io.BytesIO()
    im.save(buf, format=fmt)  # Pillow's defaults, as the reference's save_image
    return buf.getvalue()


def _write(staged: Path, rows: list[ExportRow], data_dir: Path, image_format: str, progress: bool) -> None:
    suffix, fmt = FORMATS[image_format]
    refs: dict[str, bytes] = {}
    for r in rows:
        cid, name = r.subject.collection_id, sample_name(r.prompt_index, r.image_index)
        if cid not in refs:  # the reference re-saves the same image per sample: encode once, copy the bytes
            refs[cid] = _encode(data_dir / r.subject.image, fmt)
            for tree in (SRC, TGT, TEXT):
                (staged / tree / cid).mkdir(parents=True)
        (staged / SRC / cid / f"{name}{suffix}").write_bytes(refs[cid])
        (staged / TEXT / cid / f"{name}.txt").write_text(r.prompt, encoding="utf-8")

    def write_tgt(r: ExportRow) -> None:
        name = sample_name(r.prompt_index, r.image_index)
        (staged / TGT / r.subject.collection_id / f"{name}{suffix}").write_bytes(_encode(r.image, fmt))

    run_all(write_tgt, rows, "export", progress)


def export_samples(results_dir: str | Path, label: str, dest: str | Path, subjects: list[DbpSubject],
                   data_dir: str | Path, *, image_format: str = "jpg", force: bool = False,
                   progress: bool = False) -> ExportResult:
    """Write ``label`` of ``results_dir`` into ``dest`` in the samples layout (see the module docstring).

    Args:
        subjects: the DreamBench++ subjects of ``data_dir`` (:func:`dreambench.data.dreambench_plus.read_layout`):
            each label subject must be one; its reference image and prompts come from there.
        image_format: ``jpg`` (the reference's format, lossy) or ``png`` (lossless).
        force: replace a non-empty ``dest``.
        progress: show a progress bar over the conversions.

    Steps: 1. check ``dest`` and the format; 2. plan the rows (every check); 3. check every image's header;
    4. write into a hidden folder beside ``dest`` and rename it into place.
    """
    results_dir, data_dir, dest = Path(results_dir), Path(data_dir), Path(dest).expanduser().absolute()
    if image_format not in FORMATS:
        raise DataError(f"image format {image_format!r}; valid: {', '.join(FORMATS)}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not force:  # 1.
        raise DataError(f"{dest}: already exists and is not empty; pass --force to replace it")
    rows = plan_export(results_dir, label, subjects, data_dir)  # 2.
    check_images([r.image for r in rows] + sorted({data_dir / r.subject.image for r in rows}))  # 3.
    with staged_folder(dest, replace=True) as staged:  # 4.
        _write(staged, rows, data_dir, image_format, progress)
    return ExportResult(dest, len(rows), len({r.subject.collection_id for r in rows}))
