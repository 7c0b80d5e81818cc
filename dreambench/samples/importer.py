"""``dreambench import-samples``: a folder in the reference code's samples layout (:mod:`.layout`) becomes a
label of a results folder, which ``dreambench score`` then scores like a label the suite generated.

What lands in ``<results>/images/<label>/``:

- ``<collection_id>/<PP>_<k>.png``: each generated image (``tgt_image``) decoded (EXIF orientation applied,
  converted to 8-bit RGB, :func:`dreambench.images.load_rgb`) and saved as PNG, the suite's image format, so
  the pixels scored are those of the JPEG as any decoder reads it;
- ``<collection_id>/manifest.csv``: one row per image: ``method`` = the label, ``subject`` = the
  collection_id, ``prompt_index`` = ``p``, ``prompt`` and ``prompt_plain`` = the text file (the prompt as
  written: no identifier), ``category`` = the prompt's group (photorealistic, style_transfer, imaginative),
  and ``seed`` = ``k``: the samples layout records no seed (the reference code draws every image of a run from
  one generator seeded once), so the column holds the image's index within its prompt, which is what tells
  the images of a prompt apart;
- ``method.json``: every key of :data:`dreambench.schema.METHOD_INFO_KEYS` (null where unknown, role
  ``main``) and ``imported``: where the samples came from and the two conventions above.

The subject's real photo is *not* taken from ``src_image`` (a JPEG re-encoding, quality 75, of the reference
image): scoring reads the DreamBench++ data folder's original. ``src_image`` is checked (present, an image)
only because the reference code's evaluations need it.

Everything is validated before anything is written: the samples folder (:func:`.layout.read_samples`),
every collection_id against the data folder, every prompt against the subject's caption, every image's
header. Images are then converted into a hidden folder beside the label's and renamed into place, and the
images folder's ``manifest.csv`` is merged again.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..data.dreambench_plus.layout import DbpSubject, prompt_group
from ..engine.lock import run_lock
from ..errors import DataError, first_problems
from ..images import load_rgb
from ..layout import ResultsLayout
from ..manifest import merge_manifest, write_part
from ..photos import check_header
from ..protocol import check_name
from ..schema import METHOD_INFO, METHOD_INFO_KEYS, image_relpath
from .layout import Sample, read_samples
from .staging import run_all, staged_folder

#: The key of method.json that marks a label as imported (and so replaceable by ``--force``).
IMPORTED_KEY = "imported"


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_samples` wrote: the label's folder, how many images and subjects."""

    label: str
    label_dir: Path
    images: int
    subjects: int


def _check_label(layout: ResultsLayout, label: str, force: bool) -> None:
    check_name(label, "label", "--label")
    dest = layout.label_images(label)
    if not dest.exists():
        return
    info_path = dest / METHOD_INFO
    try:
        imported = IMPORTED_KEY in json.loads(info_path.read_text())
    except (OSError, ValueError):
        imported = False
    if not imported:
        raise DataError(f"{dest}: label {label!r} already holds images the suite generated; choose another --label")
    if not force:
        raise DataError(f"{dest}: label {label!r} already holds imported samples; pass --force to replace them")


def check_against_data(samples: list[Sample], subjects: dict[str, DbpSubject], data_dir: Path) -> None:
    """:class:`DataError` naming the first files whose collection_id is no subject of the data folder, whose
    ``p`` is no prompt of it, or whose text differs from that prompt."""
    problems = []
    for s in samples:
        subj = subjects.get(s.collection_id)
        if subj is None:
            problems.append(f"{s.text.parent}: collection_id {s.collection_id!r} is not a subject of {data_dir}")
        elif s.prompt_index >= len(subj.prompts):
            problems.append(f"{s.text}: prompt index {s.prompt_index}, but {s.collection_id} has "
                            f"{len(subj.prompts)} prompts")
        elif s.prompt != subj.prompts[s.prompt_index]:
            problems.append(f"{s.text}: prompt {s.prompt!r} is not prompt {s.prompt_index} of {s.collection_id} "
                            f"in {data_dir / subj.caption} ({subj.prompts[s.prompt_index]!r})")
    if problems:
        raise DataError(f"samples do not match the DreamBench++ data: {first_problems(problems)}")


def check_images(paths: list[Path]) -> None:
    """Each file's header (:func:`dreambench.photos.check_header`: an image, not animated, not a
    decompression bomb); :class:`DataError` naming the first bad ones."""
    problems = []
    for p in paths:
        try:
            check_header(p)
        except DataError as e:
            problems.append(str(e))
    if problems:
        raise DataError(f"unusable sample images: {first_problems(problems)}")


def _method_info(samples_dir: Path) -> dict:
    info = {k: None for k in METHOD_INFO_KEYS}
    info["role"] = {"table": "main"}
    info[IMPORTED_KEY] = {
        "from": str(samples_dir.resolve()),
        "layout": "DreamBench++ samples (src_image/, tgt_image/, text/; yuangpeng/dreambench_plus 66ca27e)",
        "images": "tgt_image decoded (EXIF applied, RGB) and saved as PNG",
        "seed": "unknown; the manifest's seed column holds k, the image's index within its prompt",
        "real_photos": "the DreamBench++ data folder's reference images, not src_image",
    }
    return info


def _write_label(staged: Path, label: str, samples: list[Sample], samples_dir: Path, progress: bool) -> None:
    """Convert every image into ``staged`` (the label's future folder) and write its manifest parts and
    method.json."""
    rows: dict[str, list[dict]] = defaultdict(list)
    targets = []
    for s in samples:
        rel = image_relpath(label, s.collection_id, s.prompt_index, s.image_index)
        targets.append((s.tgt, staged / Path(rel).relative_to(label)))
        rows[s.collection_id].append({
            "method": label, "subject": s.collection_id, "prompt_index": s.prompt_index, "prompt": s.prompt,
            "seed": s.image_index, "path": rel, "prompt_plain": s.prompt, "category": prompt_group(s.prompt_index),
        })
    for cid in rows:
        (staged / cid).mkdir()
    run_all(_to_png, targets, "import", progress)
    for cid, part in rows.items():
        write_part(part, staged.parent, staged.name, cid)
    (staged / METHOD_INFO).write_text(json.dumps(_method_info(samples_dir), indent=2) + "\n")


def _to_png(pair: tuple[Path, Path]) -> None:
    src, target = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # conversions (mode, EXIF) are what import means; not a problem
        load_rgb(src).save(target, format="PNG")


def import_samples(samples_dir: str | Path, results_dir: str | Path, label: str,
                   subjects: list[DbpSubject], data_dir: str | Path, *, force: bool = False,
                   progress: bool = False) -> ImportResult:
    """Import a samples folder as ``label`` of ``results_dir`` (see the module docstring).

    Args:
        samples_dir: the folder holding ``src_image/``, ``tgt_image/`` and ``text/``.
        results_dir: the results folder; images go to ``<results>/images/<label>/``.
        label: the label (a plain name) the samples are filed under.
        subjects: the DreamBench++ subjects (:func:`dreambench.data.dreambench_plus.read_layout` of
            ``data_dir``) every collection_id and prompt is checked against.
        data_dir: the data folder ``subjects`` were read from (named in errors).
        force: replace a label that was imported before (never a label the suite generated).
        progress: show a progress bar over the conversions.

    Steps: 1. check the label; 2. read and validate the samples; 3. check them against the data; 4. check
    every image's header; 5. convert into a hidden folder and rename it into place; 6. merge the manifest.
    """
    samples_dir, data_dir = Path(samples_dir), Path(data_dir)
    layout = ResultsLayout(Path(results_dir))
    _check_label(layout, label, force)  # 1.
    samples = read_samples(samples_dir)  # 2.
    check_against_data(samples, {s.collection_id: s for s in subjects}, data_dir)  # 3.
    check_images([s.tgt for s in samples] + [s.src for s in samples])  # 4.
    dest = layout.label_images(label)
    layout.root.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(run_lock(layout.root)):  # a run writing the folder now would race the manifest
        with staged_folder(dest, replace=force) as staged:  # 5.
            _write_label(staged, label, samples, samples_dir, progress)
        merge_manifest(layout.images)  # 6.
    return ImportResult(label, dest, len(samples), len({s.collection_id for s in samples}))
