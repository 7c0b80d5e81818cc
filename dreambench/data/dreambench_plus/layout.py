"""The DreamBench++ data folder (Peng et al., ICLR 2025; github yuangpeng/dreambench_plus, commit 66ca27e),
read and validated the way the reference code's ``DreamBenchPlus`` dataset reads it::

    <folder>/images/live_subject/animal/NN.jpg     45 subjects
    <folder>/images/live_subject/human/NN.jpg      20
    <folder>/images/object/NN.jpg                  65
    <folder>/images/style/NN.jpg                   20
    <folder>/captions/<same path>/NN.txt           line 0: the subject noun; lines 1-9: the 9 prompts

One reference image per subject. Prompts 0-3 are photorealistic, 4-6 style transfer, 7-8 imaginative
(:data:`PROMPT_GROUPS`); they contain the subject noun itself (no identifier token). A subject's
``collection_id`` is ``[live_subject_]<category>_<NN>_<subject, lower-case, spaces -> _>``
(``live_subject_animal_00_kitten``, ``object_12_t-shirt``): the name the reference code's samples layout
files it under, and the subject name the suite uses.

Only ``.jpg`` images count (the reference globs ``images/**/*.jpg``) and stems must be digits (``NN``): the
category folder and the index then identify a subject, so two collection_ids can never be equal (with
free stems, ``01`` + "big dog" and ``01_big`` + "dog" would both be ``..._01_big_dog``). Files beside ``images/`` and
``captions/`` (the published zip's ``preview.py``) and hidden files are ignored; anything else inside those
two trees is an error, as is a caption without an image or an image without a caption.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError, first_problems
from ...protocol import name_problem

IMAGES = "images"
CAPTIONS = "captions"
#: Category -> its folder under ``images/`` and ``captions/``, in the reference code's order.
CATEGORY_DIRS = {"animal": "live_subject/animal", "human": "live_subject/human", "object": "object",
                 "style": "style"}
#: Subjects per category in the published set (150 in all).
PUBLISHED_COUNTS = {"animal": 45, "human": 20, "object": 65, "style": 20}
#: Prompts per subject (the caption file's lines 1-9).
N_PROMPTS = 9
#: The group of each prompt index, as the reference code's breakdowns name them.
PROMPT_GROUPS = ("photorealistic",) * 4 + ("style_transfer",) * 3 + ("imaginative",) * 2
_LIVE = ("animal", "human")


@dataclass(frozen=True)
class DbpSubject:
    """One DreamBench++ subject.

    Attributes:
        category: ``animal``, ``human``, ``object`` or ``style``.
        index: the file stem ``NN`` (a string: ``"00"``), unique within its category.
        subject: the subject noun, caption line 0 as written (``"Spider-Man"``).
        collection_id: :func:`collection_id` of the three above.
        image: the reference image, relative to the data folder (POSIX, ``images/object/12.jpg``).
        prompts: the 9 prompts, caption lines 1-9 (:data:`PROMPT_GROUPS` gives each one's group).
    """

    category: str
    index: str
    subject: str
    collection_id: str
    image: str
    prompts: tuple[str, ...]

    @property
    def caption(self) -> str:
        """The caption file, relative to the data folder."""
        return f"{CAPTIONS}/{CATEGORY_DIRS[self.category]}/{self.index}.txt"


def collection_id(category: str, index: str, subject: str) -> str:
    """``[live_subject_]<category>_<index>_<subject lower-cased, spaces -> _>``, as the reference builds it."""
    prefix = "live_subject_" if category in _LIVE else ""
    return f"{prefix}{category}_{index}_{subject.lower().replace(' ', '_')}"


def category_of(collection_id: str) -> str | None:
    """The category a collection_id names (``live_subject_animal_00_kitten`` -> ``animal``), or None when it
    is not a DreamBench++ collection_id. Parsed from the prefix: the reference's ``filter in k`` substring
    test would also count ``object_05_style_lamp`` as style."""
    for category in CATEGORY_DIRS:
        prefix = f"live_subject_{category}_" if category in _LIVE else f"{category}_"
        if collection_id.startswith(prefix) and collection_id[len(prefix):].split("_", 1)[0].isdigit():
            return category
    return None


def prompt_group(prompt_index: int) -> str:
    """The group of a prompt index 0-8: photorealistic, style_transfer or imaginative."""
    if not 0 <= prompt_index < N_PROMPTS:
        raise DataError(f"prompt index {prompt_index} is outside 0-{N_PROMPTS - 1}")
    return PROMPT_GROUPS[prompt_index]


def _hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name == "__MACOSX"


def _tree_files(root: Path) -> list[Path]:
    """Every non-hidden file under ``root`` (hidden folders skipped), sorted."""
    out = []
    for p in sorted(root.rglob("*")):
        if any(_hidden(Path(part)) for part in p.relative_to(root).parts):
            continue
        if p.is_file() or p.is_symlink():
            out.append(p)
    return out


def _read_caption(path: Path) -> tuple[str, tuple[str, ...]]:
    """(subject noun, 9 prompts) of a caption file, or :class:`DataError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: caption is not UTF-8 text") from None
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # a trailing blank line is harmless: the reference strips every line
    if len(lines) != 1 + N_PROMPTS:
        raise DataError(f"{path}: {len(lines)} lines, expected {1 + N_PROMPTS} (the subject noun, then "
                        f"{N_PROMPTS} prompts)")
    empty = [i for i, ln in enumerate(lines) if not ln]
    if empty:
        raise DataError(f"{path}: line {empty[0] + 1} is empty")
    return lines[0], tuple(lines[1:])


@dataclass
class _Scan:
    subjects: list[DbpSubject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _scan_category(folder: Path, category: str, scan: _Scan, check_image) -> None:
    rel_dir = CATEGORY_DIRS[category]
    images = {p.stem: p for p in sorted((folder / IMAGES / rel_dir).glob("*.jpg")) if p.stem.isdigit()}
    captions = {p.stem: p for p in sorted((folder / CAPTIONS / rel_dir).glob("*.txt")) if p.stem.isdigit()}
    for stem in sorted(set(images) - set(captions)):
        scan.problems.append(f"{images[stem]}: missing caption {folder / CAPTIONS / rel_dir / (stem + '.txt')}")
    for stem in sorted(set(captions) - set(images)):
        scan.problems.append(f"{captions[stem]}: caption without an image "
                             f"({folder / IMAGES / rel_dir / (stem + '.jpg')} not found)")
    for stem in sorted(set(images) & set(captions)):
        try:
            if images[stem].is_symlink():
                raise DataError(f"{images[stem]}: is a symlink; refused")
            subject, prompts = _read_caption(captions[stem])
            cid = collection_id(category, stem, subject)
            problem = name_problem(cid)
            if problem:
                raise DataError(f"{captions[stem]}: collection_id {problem}")
            check_image(images[stem])
        except DataError as e:
            scan.problems.append(str(e))
            continue
        scan.subjects.append(DbpSubject(category, stem, subject, cid, f"{IMAGES}/{rel_dir}/{stem}.jpg", prompts))


def _unexpected(folder: Path) -> list[str]:
    """Files inside ``images/`` and ``captions/`` that are not ``<category dir>/NN.jpg`` / ``.txt``."""
    out = []
    for top, suffix in ((IMAGES, ".jpg"), (CAPTIONS, ".txt")):
        allowed = {f"{d}/" for d in CATEGORY_DIRS.values()}
        for p in _tree_files(folder / top):
            rel = p.relative_to(folder / top).as_posix()
            parent = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
            if parent not in allowed or p.suffix != suffix or not p.stem.isdigit():
                out.append(f"{p}: unexpected file (expected only <category>/NN{suffix} under {folder / top})")
    return out


def scan_layout(folder: str | Path, check_image=None) -> tuple[list[DbpSubject], list[str]]:
    """Every well-formed subject of ``folder`` (sorted by collection_id, as the reference sorts them) and
    one line per problem (naming the file). ``check_image(path)`` raises :class:`DataError` for an
    unusable image (default: the header check :func:`dreambench.photos.check_header`)."""
    folder = Path(folder)
    if check_image is None:
        from ...photos import check_header  # PIL: only once a folder is actually read

        check_image = check_header
    for top in (IMAGES, CAPTIONS):
        if not (folder / top).is_dir():
            raise DataError(f"{folder}: no {top}/ folder; not a DreamBench++ data folder (run `dreambench data "
                            "fetch --protocol dreambench-plus`)")
    scan = _Scan(problems=_unexpected(folder))
    for category in CATEGORY_DIRS:
        _scan_category(folder, category, scan, check_image)
    return sorted(scan.subjects, key=lambda s: s.collection_id), scan.problems


def read_layout(folder: str | Path, check_image=None) -> list[DbpSubject]:
    """The subjects of a DreamBench++ data folder, sorted by collection_id; :class:`DataError` (one line,
    naming the first files at fault) when any file is wrong: missing caption, caption without image, wrong
    line count, unreadable image, unexpected file (a non-digit stem included). Any number of subjects is
    accepted (a test folder holds a few): :func:`is_complete` says whether it is the published set."""
    subjects, problems = scan_layout(folder, check_image)
    if problems:
        raise DataError(f"{folder}: not a valid DreamBench++ data folder: {first_problems(problems)}")
    if not subjects:
        raise DataError(f"{folder}: no subjects (no images/<category>/NN.jpg with a caption)")
    return subjects


def category_counts(subjects: list[DbpSubject]) -> dict[str, int]:
    """Subjects per category, every category listed (0 when absent)."""
    counts = Counter(s.category for s in subjects)
    return {c: counts.get(c, 0) for c in CATEGORY_DIRS}


def is_complete(subjects: list[DbpSubject]) -> bool:
    """Whether the subjects are as many per category as the published set (45, 20, 65, 20)."""
    return category_counts(subjects) == PUBLISHED_COUNTS


def by_collection_id(subjects: list[DbpSubject]) -> dict[str, DbpSubject]:
    """``collection_id -> subject``."""
    return {s.collection_id: s for s in subjects}
