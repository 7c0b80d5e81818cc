"""The evaluation protocol as data: subjects, prompt templates, rendering.

A protocol is two files: ``subjects/<name>.csv`` (columns ``name,class,kind``; kind is ``object`` or
``live``) and ``prompts/<name>.yaml`` (a ``prompts`` mapping from kind to a list of
``{template, category}``, plus ``class_prompt``). Templates use ``{V}`` for the unique identifier and
``{class}`` for the class noun: ``"a {V} {class} in the jungle"`` renders to ``"a sks dog in the jungle"``
and, without identifier (the text CLIP-T compares against), to ``"a dog in the jungle"``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import DataError, UnknownNameError
from .paths import protocol_files

KINDS = ("object", "live")
CATEGORIES = ("recontextualization", "accessorization", "property")
#: Prompt index used in manifests for images sampled from the class prompt ("a dog"), used by PRES.
CLASS_PROMPT_INDEX = -1
#: A subject name (or method label) becomes a folder name: letters, digits, ``_``, ``-`` and ``.`` only.
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a subject name or method label (a folder under the results folder), or
    None when it can: letters, digits, ``_ - .`` only, no path separator, not ``.`` or ``..``."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        return f"{name!r} is not a valid name (letters, digits, _ - . only; no path separators; not . or ..)"
    return None


def check_name(name: str, what: str = "subject", where: str = "") -> str:
    """``name`` itself when valid (see :func:`name_problem`), else :class:`DataError` naming ``where``."""
    problem = name_problem(name)
    if problem:
        raise DataError(f"{where + ': ' if where else ''}{what} {problem}")
    return name


def _tidy(text: str) -> str:
    # An empty identifier or class noun (Table 4's "no class noun") must not leave double spaces.
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Prompt:
    """One prompt template of a protocol. ``index`` is its 0-based position in its kind's list."""

    index: int
    template: str
    category: str

    def render(self, identifier: str, class_noun: str) -> str:
        """The prompt given to the personalized model, e.g. ``"a sks dog in the jungle"``."""
        return _tidy(self.template.replace("{V}", identifier).replace("{class}", class_noun))

    def render_plain(self, class_noun: str) -> str:
        """The prompt without identifier, e.g. ``"a dog in the jungle"`` (the text side of CLIP-T)."""
        return self.render("", class_noun)


@dataclass(frozen=True)
class Subject:
    """A subject of the protocol: its folder name, class noun and kind (``object`` or ``live``)."""

    name: str
    class_noun: str
    kind: str


@dataclass
class Protocol:
    """Subjects plus the prompt list of each kind, in protocol order."""

    name: str
    subjects: list[Subject]
    prompts: dict[str, list[Prompt]]
    class_prompt: str = "a {class}"
    source: tuple[str, str] = field(default=("", ""))
    #: The texts of the (subjects CSV, prompts YAML) it was read from: workers rebuild it from these.
    content: tuple[str, str] = field(default=("", ""))

    @property
    def digest(self) -> str:
        """First 16 hex digits of the sha256 of the protocol files' content ("" for in-memory ones)."""
        if not any(self.content):
            return ""
        return hashlib.sha256("\0".join(self.content).encode()).hexdigest()[:16]

    def subject(self, name: str) -> Subject:
        for s in self.subjects:
            if s.name == name:
                return s
        raise UnknownNameError("subject", name, [s.name for s in self.subjects])

    def select(self, names: list[str] | None) -> list[Subject]:
        """The subjects named (in the order given), or all of them for ``None``/empty."""
        for n in names or []:
            check_name(n, "--subjects: subject")
        return [self.subject(n) for n in names] if names else list(self.subjects)

    def prompts_for(self, subject: Subject) -> list[Prompt]:
        return self.prompts[subject.kind]

    def class_prompt_for(self, class_noun: str) -> str:
        """The class prompt ("a dog"): prior-preservation class images and PRES samples use it."""
        return _tidy(self.class_prompt.replace("{class}", class_noun).replace("{V}", ""))

    def to_records(self, identifier: str = "sks") -> list[dict]:
        """JSON-ready description: one record per subject with its rendered prompts in protocol order."""
        return [
            {
                "name": s.name,
                "class": s.class_noun,
                "kind": s.kind,
                "prompts": [p.render(identifier, s.class_noun) for p in self.prompts_for(s)],
            }
            for s in self.subjects
        ]


def _load_subjects(path: Path | str, text: str) -> list[Subject]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if not rows or not {"name", "class", "kind"} <= set(rows[0]):
        raise DataError(f"{path}: a subjects file needs the columns name,class,kind")
    subjects = []
    for i, r in enumerate(rows, start=2):
        kind = (r["kind"] or "").strip()
        if kind not in KINDS:
            raise DataError(f"{path}:{i}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if not (r["name"] or "").strip():
            raise DataError(f"{path}:{i}: empty subject name")
        check_name(r["name"].strip(), "subject", f"{path}:{i}")
        subjects.append(Subject(r["name"].strip(), (r["class"] or "").strip(), kind))
    names = [s.name for s in subjects]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate subjects {', '.join(dupes)}")
    return subjects


def _load_prompts(path: Path | str, text: str) -> tuple[dict[str, list[Prompt]], str]:
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a YAML mapping with a 'prompts' key")
    lists = doc.get("prompts")
    if not isinstance(lists, dict):
        raise DataError(f"{path}: expected a 'prompts' mapping from kind to a list of prompts")
    prompts: dict[str, list[Prompt]] = {}
    for kind, items in lists.items():
        if kind not in KINDS:
            raise DataError(f"{path}: prompt kind {kind!r} is not one of {', '.join(KINDS)}")
        out = []
        for i, item in enumerate(items):
            template, category = item.get("template", ""), item.get("category", "")
            if "{class}" not in template and "{V}" not in template:
                raise DataError(f"{path}: {kind} prompt {i} ({template!r}) has neither {{V}} nor {{class}}")
            if category not in CATEGORIES:
                raise DataError(f"{path}: {kind} prompt {i} has category {category!r}, not one of {CATEGORIES}")
            out.append(Prompt(i, template, category))
        prompts[kind] = out
    return prompts, doc.get("class_prompt", "a {class}")


def load_protocol(name_or_dir: str | Path = "dreambooth") -> Protocol:
    """Load a protocol by name (``subjects/<name>.csv`` + ``prompts/<name>.yaml`` in the repository) or
    from a folder holding ``subjects.csv`` and ``prompts.yaml`` (a user's own protocol; its path is made
    absolute, so the result does not depend on the working directory)."""
    p = Path(name_or_dir)
    if p.is_dir():
        p = p.resolve()
        subjects_path, prompts_path, name = p / "subjects.csv", p / "prompts.yaml", p.name
    else:
        name = str(name_or_dir)
        subjects_path, prompts_path = protocol_files(name)
    for f in (subjects_path, prompts_path):
        if not f.is_file():
            raise DataError(f"protocol {name!r}: missing {f}")
    return protocol_from_content(name, subjects_path.read_text(), prompts_path.read_text(),
                                 (str(subjects_path), str(prompts_path)))


def protocol_from_content(name: str, subjects_text: str, prompts_text: str,
                          source: tuple[str, str] = ("subjects.csv", "prompts.yaml")) -> Protocol:
    """A protocol from the texts of its two files (what a worker gets in its job spec); ``source`` names
    the files in error messages."""
    subjects = _load_subjects(source[0], subjects_text)
    prompts, class_prompt = _load_prompts(source[1], prompts_text)
    missing = sorted({s.kind for s in subjects} - set(prompts))
    if missing:
        raise DataError(f"{source[1]}: no prompts for kind(s) {', '.join(missing)}")
    return Protocol(name, subjects, prompts, class_prompt, (str(source[0]), str(source[1])),
                    (subjects_text, prompts_text))
