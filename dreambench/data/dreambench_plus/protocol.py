"""The DreamBench++ data folder as a suite protocol: its subjects and per-subject prompts in the protocol
format (:mod:`dreambench.protocol`), and one folder of real photos per subject.

:func:`prepare` writes, inside the data folder (``dreambench data fetch --protocol dreambench-plus`` runs
it after extracting)::

    <data>/protocol/subjects.csv     name = collection_id, class = the subject noun, kind = the category
    <data>/protocol/prompts.yaml     the 9 prompts of each subject, the protocol's conventions
    <data>/subjects/<collection_id>/NN.jpg   the reference image, bytes unchanged

so ``--protocol dreambench-plus`` loads like any protocol folder and every stage that reads
``<data>/<subject>/*`` (training, real-photo scoring, the report, the study) reads the reference image.
Nothing of the data is committed to the repository: the files are made from the fetched captions.

A prompt's template is its caption line with each occurrence of the subject noun replaced by ``{class}``:
rendered with the noun it is the caption as written (the text CLIP-T and the judge compare against); a
method that learns a token (textual inversion) puts its token there instead, as the reference code's
``text_prompt_input.replace(subject, "<sks>")`` does. The protocol's conventions: no identifier, training
prompt ``"a photo of {class}"`` (the reference's ``--instance_prompt``), 1 image per prompt, the
``dreambench-plus`` metric profile, kinds animal/human/object/style, prompt groups photorealistic (0-3),
style_transfer (4-6), imaginative (7-8).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from ...errors import DataError
from ...io import write_text_atomic
from ...paths import default_plus_data_dir
from .layout import CATEGORY_DIRS, PROMPT_GROUPS, DbpSubject, prompt_group, read_layout
from .subject_folders import write_subject_folders

NAME = "dreambench-plus"
#: Under the data folder: the protocol files, and the one-folder-per-subject view of the reference images.
PROTOCOL_DIR = "protocol"
SUBJECTS_DIR = "subjects"
#: The protocol's conventions (keys of :mod:`dreambench.protocol`'s prompts YAML).
SETTINGS = {
    "name": NAME,
    "kinds": list(CATEGORY_DIRS),
    "categories": list(dict.fromkeys(PROMPT_GROUPS)),
    "identifier": False,
    "instance_prompt": "a photo of {class}",
    "class_prompt": "a {class}",
    "images_per_prompt": 1,
    "metric_profile": "dreambench-plus",
    "data_dir": f"../{SUBJECTS_DIR}",
}


def template(caption: str, noun: str, where: str = "") -> str:
    """The protocol template of one caption line: the subject noun replaced by ``{class}``."""
    if "{class}" in caption or "{V}" in caption:
        raise DataError(f"{where or 'caption'}: {caption!r} contains a protocol placeholder ({{class}} or {{V}})")
    return caption.replace(noun, "{class}")


def protocol_texts(subjects: list[DbpSubject]) -> tuple[str, str]:
    """The (subjects CSV, prompts YAML) texts of ``subjects``, in collection_id order."""
    rows = io.StringIO(newline="")
    w = csv.writer(rows, lineterminator="\n")
    w.writerow(["name", "class", "kind"])
    prompts = {}
    for s in sorted(subjects, key=lambda s: s.collection_id):
        w.writerow([s.collection_id, s.subject, s.category])
        prompts[s.collection_id] = [{"template": template(text, s.subject, s.caption), "category": prompt_group(i)}
                                    for i, text in enumerate(s.prompts)]
    head = ("# DreamBench++ (Peng et al., ICLR 2025) as a dreambench protocol, generated from the fetched captions\n"
            "# by dreambench.data.dreambench_plus.protocol.prepare: do not edit, fetch again.\n")
    doc = {**SETTINGS, "subject_prompts": prompts}
    return rows.getvalue(), head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def prepare(data_dir: str | Path) -> Path:
    """Write the protocol files and the subject folders into the DreamBench++ data folder ``data_dir``
    (module docstring) and return the protocol folder. Reads and checks the whole layout first
    (:func:`~.layout.read_layout`), so a bad folder leaves nothing half-written."""
    data_dir = Path(data_dir)
    subjects = read_layout(data_dir)
    subjects_csv, prompts_yaml = protocol_texts(subjects)
    write_subject_folders(data_dir, data_dir / SUBJECTS_DIR, subjects)
    out = data_dir / PROTOCOL_DIR
    out.mkdir(exist_ok=True)
    write_text_atomic(out / "subjects.csv", subjects_csv)
    write_text_atomic(out / "prompts.yaml", prompts_yaml)
    return out


def protocol_dir(data_dir: str | Path | None = None) -> Path:
    """The protocol folder of the DreamBench++ data (default: :func:`dreambench.paths.default_plus_data_dir`);
    :class:`DataError` naming the command that makes it when it is missing."""
    root = Path(data_dir) if data_dir is not None else default_plus_data_dir()
    folder = root / PROTOCOL_DIR
    if not (folder / "subjects.csv").is_file() or not (folder / "prompts.yaml").is_file():
        raise DataError(f"protocol {NAME!r}: no DreamBench++ data prepared in {root} (looked for {folder}); run "
                        f"`dreambench data fetch --protocol {NAME}` (or set $DREAMBENCH_PLUS_DATA to its folder)")
    return folder
