"""The DreamBench++ reference code's samples layout, read and validated (the code's commit 66ca27e)::

    <samples>/src_image/<collection_id>/<p>_<k>.jpg   the subject's reference image (one copy per sample)
    <samples>/tgt_image/<collection_id>/<p>_<k>.jpg   the generated image
    <samples>/text/<collection_id>/<p>_<k>.txt        the prompt as written in the caption file (no newline)
    <samples>/negative_prompt.txt                     written by generate_images.py; not read by its evals

``p`` is the prompt index (0-8, unpadded), ``k`` the image's index among that prompt's images (0 when one image
per prompt). ``generate_images.py`` saves both images with ``PIL.Image.save`` and no options: JPEG at Pillow's
default quality (75), the reference image after ``exif_transpose`` and conversion to RGB (RGBA composited on
white). Its DINO / CLIP evaluations (``eval_clip_and_dino.py``) glob ``**/*.{png,jpeg,jpg}`` (either case) in
each tree, sort them and pair files by path without extension; its GPT evaluations open ``<p>_0.jpg`` only.

Reading here accepts ``.jpg``, ``.jpeg`` and ``.png`` images (any case), requires the three trees to hold the
same ``(collection_id, p, k)`` keys, and ignores files at the top (``negative_prompt.txt``, score files) and
hidden files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, first_problems
from ..protocol import name_problem

SRC = "src_image"
TGT = "tgt_image"
TEXT = "text"
TREES = (SRC, TGT, TEXT)
#: Image suffixes the reference code's evaluations read (``IMAGE_EXT``, compared lower-cased here).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_NAME_RE = re.compile(r"^(0|[1-9][0-9]*)_(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class Sample:
    """One sample of a samples folder.

    Attributes:
        collection_id: the subject (the reference code's collection id, the suite's subject name).
        prompt_index: ``p``, the prompt's index in the subject's caption file (0-based).
        image_index: ``k``, the image's index among the prompt's images.
        src: the reference image copy; tgt: the generated image; text: the prompt file (absolute paths).
        prompt: the text file's content, stripped.
    """

    collection_id: str
    prompt_index: int
    image_index: int
    src: Path
    tgt: Path
    text: Path
    prompt: str

    @property
    def key(self) -> tuple[str, int, int]:
        return self.collection_id, self.prompt_index, self.image_index


def sample_name(prompt_index: int, image_index: int) -> str:
    """``<p>_<k>``, the stem of a sample's three files."""
    return f"{prompt_index}_{image_index}"


def _tree(folder: Path, tree: str, problems: list[str]) -> dict[tuple[str, int, int], Path]:
    """``(collection_id, p, k) -> file`` of one tree; a badly named or placed file is a problem."""
    found: dict[tuple[str, int, int], Path] = {}
    suffixes = (".txt",) if tree == TEXT else IMAGE_SUFFIXES
    root = folder / tree
    for sub in sorted(root.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir() or sub.is_symlink():
            problems.append(f"{sub}: unexpected {'symlink' if sub.is_symlink() else 'file'} (expected "
                            f"{tree}/<collection_id>/<p>_<k> files)")
            continue
        if name_problem(sub.name):
            problems.append(f"{sub}: collection_id {name_problem(sub.name)}")
            continue
        for f in sorted(sub.iterdir()):
            if f.name.startswith("."):
                continue
            m = _NAME_RE.match(f.stem)
            if f.is_symlink() or not f.is_file() or not m or f.suffix.lower() not in suffixes:
                problems.append(f"{f}: unexpected entry (expected <p>_<k>{'|'.join(suffixes)}, a plain file)")
                continue
            key = (sub.name, int(m[1]), int(m[2]))
            if key in found:
                problems.append(f"{f}: a second file for sample {sub.name}/{f.stem} (also {found[key].name})")
                continue
            found[key] = f
    return found


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise DataError(f"{path}: prompt file is not UTF-8 text") from None
    if not text:
        raise DataError(f"{path}: empty prompt")
    if "\n" in text:
        raise DataError(f"{path}: the prompt spans several lines (one prompt per file expected)")
    return text


def _unpaired(trees: dict[str, dict], keys: set) -> list[str]:
    out = []
    for tree, files in trees.items():
        for key in sorted(keys - set(files)):
            cid, p, k = key
            other = next(files_[key] for files_ in trees.values() if key in files_)
            out.append(f"{other}: no {tree}/{cid}/{sample_name(p, k)}.* beside it")
    return out


def read_samples(folder: str | Path) -> list[Sample]:
    """Every sample of a samples folder, sorted by (collection_id, p, k); :class:`DataError` (one line, naming
    the first files at fault) when a tree is missing, a file is misnamed or misplaced, a sample lacks one of
    its three files, two files claim one sample, or a prompt file is empty or not UTF-8. Images are not
    decoded here."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: samples folder not found")
    missing = [t for t in TREES if not (folder / t).is_dir()]
    if missing:
        raise DataError(f"{folder}: no {', '.join(t + '/' for t in missing)} folder; not a samples folder "
                        f"(expected {', '.join(t + '/' for t in TREES)})")
    problems: list[str] = []
    trees = {t: _tree(folder, t, problems) for t in TREES}
    keys = set().union(*(set(f) for f in trees.values()))
    problems.extend(_unpaired(trees, keys))
    samples = []
    for key in sorted(keys):
        if all(key in f for f in trees.values()):
            try:
                prompt = _read_text(trees[TEXT][key])
            except DataError as e:
                problems.append(str(e))
                continue
            samples.append(Sample(*key, trees[SRC][key], trees[TGT][key], trees[TEXT][key], prompt))
    if problems:
        raise DataError(f"{folder}: not a valid samples folder: {first_problems(problems)}")
    if not samples:
        raise DataError(f"{folder}: no samples (no {TGT}/<collection_id>/<p>_<k>.jpg files)")
    return samples
