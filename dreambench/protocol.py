"""The evaluation protocol as data: subjects, prompt templates, rendering.

A protocol is two files: ``subjects/<name>.csv`` (columns ``name,class,kind``) and ``prompts/<name>.yaml``.
The YAML holds ``prompts`` (a mapping from kind to a list of ``{template, category}``, shared by every
subject of that kind) and/or ``subject_prompts`` (a mapping from subject name to its own list), plus
optional keys, each with the DreamBooth protocol's value as default:

- ``kinds`` (``[object, live]``): the subject kinds, in table order;
- ``categories`` (``[recontextualization, accessorization, property]``): the prompt groups tables break
  down by, in order;
- ``identifier`` (``true``): whether prompts carry the method's rare-token identifier ``{V}``. Without
  one (DreamBench++), prompts name the subject by its noun, and a method that learns a token of its own
  (textual inversion) puts its token in place of the noun (``{class}``), as the reference code does;
- ``instance_prompt`` (``"a {V} {class}"``): the training prompt of methods that fine-tune on the photos;
- ``class_prompt`` (``"a {class}"``): class images and PRES samples;
- ``images_per_prompt`` (4) and ``metric_profile`` (``paper``): a run's defaults on this protocol;
- ``data_dir`` (none): the folder of subject photos, relative to the prompts file (a fetched protocol,
  such as DreamBench++'s, lives beside its data); without it runs use ``--data`` / ``$DREAMBENCH_DATA``.

Named protocols are the packaged ``dreambooth`` and those made from fetched data (:data:`FETCHED`:
``dreambench-plus``).

Templates use ``{V}`` for the unique identifier and ``{class}`` for the class noun:
``"a {V} {class} in the jungle"`` renders to ``"a sks dog in the jungle"`` and, without identifier (the text
CLIP-T compares against), to ``"a dog in the jungle"``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import DataError, UnknownNameError
from .paths import protocol_files
from .registry import Registry

#: The DreamBooth protocol's subject kinds and prompt categories: the defaults of a protocol's ``kinds``
#: and ``categories``.
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


def free_name(base: str, taken: set[str] | frozenset[str]) -> str:
    """``base-N`` with the smallest N >= 2 not in ``taken``: a label to suggest where ``base`` clashes."""
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


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
        """The prompt given to the personalized model, e.g. ``"a sks dog in the jungle"``. Spaces are tidied
        only where a placeholder became empty: a prompt used as written stays byte for byte."""
        text = self.template.replace("{V}", identifier).replace("{class}", class_noun)
        emptied = (not identifier and "{V}" in self.template) or (not class_noun and "{class}" in self.template)
        return _tidy(text) if emptied else text

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
    """Subjects plus their prompts, in protocol order, and the protocol's conventions (module docstring)."""

    name: str
    subjects: list[Subject]
    prompts: dict[str, list[Prompt]]
    class_prompt: str = "a {class}"
    source: tuple[str, str] = field(default=("", ""))
    #: The texts of the (subjects CSV, prompts YAML) it was read from: workers rebuild it from these.
    content: tuple[str, str] = field(default=("", ""))
    #: Subject name -> its own prompts (a protocol with per-subject prompts, such as DreamBench++).
    subject_prompts: dict[str, list[Prompt]] = field(default_factory=dict)
    kinds: tuple[str, ...] = KINDS
    categories: tuple[str, ...] = CATEGORIES
    identifier: bool = True
    instance_prompt: str = "a {V} {class}"
    images_per_prompt: int = 4
    metric_profile: str = "paper"
    data_dir: Path | None = None

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
        """The subject's own prompts when the protocol has them, else those of its kind."""
        own = self.subject_prompts.get(subject.name)
        return own if own is not None else self.prompts[subject.kind]

    def wording(self, token: str, learns_token: bool, class_noun: str) -> tuple[str, str]:
        """What replaces ``{V}`` and ``{class}`` in a method's prompts: ``token`` is the method's
        :meth:`~dreambench.methods.interface.Method.prompt_identifier`, ``learns_token`` whether it is a
        token the method learns (textual inversion). With an identifier: ``(token, class_noun)``. Without
        (prompts name the subject by its noun): ``("", token)`` for a method that learns a token, else
        ``("", class_noun)``."""
        if self.identifier:
            return token, class_noun
        return "", (token if learns_token and token else class_noun)

    def instance_prompt_for(self, identifier: str, class_noun: str) -> str:
        """The training prompt, e.g. ``"a sks dog"`` (DreamBooth) or ``"a photo of dog"`` (DreamBench++)."""
        return _tidy(self.instance_prompt.replace("{V}", identifier).replace("{class}", class_noun))

    def class_prompt_for(self, class_noun: str) -> str:
        """The class prompt ("a dog"): prior-preservation class images and PRES samples use it."""
        return _tidy(self.class_prompt.replace("{class}", class_noun).replace("{V}", ""))

    def truncated(self, prompts: int | None) -> Protocol:
        """The protocol with at most ``prompts`` prompts per kind and per subject (quick runs); itself
        for None."""
        if prompts is None:
            return self
        return dataclasses.replace(self, prompts={k: v[:prompts] for k, v in self.prompts.items()},
                                   subject_prompts={k: v[:prompts] for k, v in self.subject_prompts.items()})

    def to_records(self, identifier: str = "sks") -> list[dict]:
        """JSON-ready description: one record per subject with its rendered prompts in protocol order."""
        out = []
        for s in self.subjects:
            v, noun = self.wording(identifier, False, s.class_noun)
            out.append({"name": s.name, "class": s.class_noun, "kind": s.kind,
                        "prompts": [p.render(v, noun) for p in self.prompts_for(s)],
                        "categories": [p.category for p in self.prompts_for(s)]})
        return out


def _load_subjects(path: Path | str, text: str, kinds: tuple[str, ...]) -> list[Subject]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if not rows or not {"name", "class", "kind"} <= set(rows[0]):
        raise DataError(f"{path}: a subjects file needs the columns name,class,kind")
    subjects = []
    for i, r in enumerate(rows, start=2):
        kind = (r["kind"] or "").strip()
        if kind not in kinds:
            raise DataError(f"{path}:{i}: kind {kind!r} is not one of {', '.join(kinds)}")
        if not (r["name"] or "").strip():
            raise DataError(f"{path}:{i}: empty subject name")
        check_name(r["name"].strip(), "subject", f"{path}:{i}")
        subjects.append(Subject(r["name"].strip(), (r["class"] or "").strip(), kind))
    names = [s.name for s in subjects]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate subjects {', '.join(dupes)}")
    return subjects


@dataclass(frozen=True)
class _PromptsFile:
    """What a prompts YAML declares (see the module docstring for the keys and their defaults)."""

    prompts: dict[str, list[Prompt]]
    subject_prompts: dict[str, list[Prompt]]
    settings: dict


def _names(path: Path | str, doc: dict, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = doc.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise DataError(f"{path}: {key!r} must be a non-empty list of names")
    return tuple(value)


def _prompt_list(path: Path | str, where: str, items: object, categories: tuple[str, ...],
                 identifier: bool) -> list[Prompt]:
    if not isinstance(items, list):
        raise DataError(f"{path}: {where}: expected a list of {{template, category}}")
    out = []
    for i, item in enumerate(items):
        template = item.get("template", "") if isinstance(item, dict) else ""
        category = item.get("category", "") if isinstance(item, dict) else ""
        if not isinstance(template, str) or not template.strip():
            raise DataError(f"{path}: {where} prompt {i} has no template")
        if identifier and "{class}" not in template and "{V}" not in template:
            raise DataError(f"{path}: {where} prompt {i} ({template!r}) has neither {{V}} nor {{class}}")
        if category not in categories:
            raise DataError(f"{path}: {where} prompt {i} has category {category!r}, not one of {categories}")
        out.append(Prompt(i, template, category))
    return out


def _settings(path: Path | str, doc: dict) -> dict:
    """The protocol's conventions from the YAML, checked (module docstring: keys and defaults)."""
    out = {"kinds": _names(path, doc, "kinds", KINDS), "categories": _names(path, doc, "categories", CATEGORIES),
           "identifier": doc.get("identifier", True), "instance_prompt": doc.get("instance_prompt", "a {V} {class}"),
           "class_prompt": doc.get("class_prompt", "a {class}"),
           "images_per_prompt": doc.get("images_per_prompt", 4), "metric_profile": doc.get("metric_profile", "paper"),
           "data_dir": doc.get("data_dir")}
    if not isinstance(out["identifier"], bool):
        raise DataError(f"{path}: 'identifier' must be true or false")
    n = out["images_per_prompt"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"{path}: 'images_per_prompt' must be an integer >= 1")
    for key in ("instance_prompt", "class_prompt", "metric_profile"):
        if not isinstance(out[key], str) or not out[key].strip():
            raise DataError(f"{path}: {key!r} must be a non-empty string")
    if out["data_dir"] is not None:
        if not isinstance(out["data_dir"], str) or not out["data_dir"].strip():
            raise DataError(f"{path}: 'data_dir' must be a folder path")
        base = Path(path).parent  # relative to the prompts file; only a file read from disk has a place
        out["data_dir"] = (base / out["data_dir"]).resolve() if Path(path).is_absolute() else None
    return out


def _load_prompts(path: Path | str, text: str) -> _PromptsFile:
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a YAML mapping with a 'prompts' key")
    settings = _settings(path, doc)
    kinds, categories, identifier = settings["kinds"], settings["categories"], settings["identifier"]
    lists, own = doc.get("prompts", {}), doc.get("subject_prompts", {})
    if not isinstance(lists, dict) or not isinstance(own, dict) or not (lists or own):
        raise DataError(f"{path}: expected a 'prompts' mapping from kind to a list of prompts "
                        "(or a 'subject_prompts' mapping from subject to its list)")
    prompts: dict[str, list[Prompt]] = {}
    for kind, items in lists.items():
        if kind not in kinds:
            raise DataError(f"{path}: prompt kind {kind!r} is not one of {', '.join(kinds)}")
        prompts[kind] = _prompt_list(path, kind, items, categories, identifier)
    subject_prompts = {str(name): _prompt_list(path, f"subject {name}", items, categories, identifier)
                       for name, items in own.items()}
    return _PromptsFile(prompts, subject_prompts, settings)


#: Protocols made from fetched data: name -> a function (lazy ``"module:function"``) returning the protocol
#: folder (its ``subjects.csv`` and ``prompts.yaml``), raising :class:`DataError` with the fetch command when
#: absent.
FETCHED: Registry[Callable[[], Path]] = Registry("fetched protocol")
FETCHED.register("dreambench-plus", "dreambench.data.dreambench_plus.protocol:protocol_dir")


def protocol_names() -> list[str]:
    """The named protocols: the packaged ones and those made from fetched data."""
    packaged = sorted(p.stem for p in (Path(protocol_files("dreambooth")[0]).parent).glob("*.csv"))
    return packaged + sorted(set(FETCHED) - set(packaged))


def load_protocol(name_or_dir: str | Path = "dreambooth") -> Protocol:
    """Load a protocol by name (``subjects/<name>.csv`` + ``prompts/<name>.yaml`` in the repository, or a
    :data:`FETCHED` one from its data folder) or from a folder holding ``subjects.csv`` and ``prompts.yaml``
    (a user's own protocol; its path is made absolute, so the result does not depend on the working
    directory)."""
    p, name = Path(name_or_dir), str(name_or_dir)
    if not p.is_dir() and name in FETCHED:
        p = FETCHED.get(name)()
    if p.is_dir():
        p = p.resolve()
        subjects_path, prompts_path = p / "subjects.csv", p / "prompts.yaml"
        name = name if name in FETCHED else p.name
    else:
        subjects_path, prompts_path = protocol_files(name)
        if not subjects_path.is_file() and not prompts_path.is_file():
            raise DataError(f"unknown protocol {name!r}; valid: {', '.join(protocol_names())}, or a folder with "
                            "subjects.csv and prompts.yaml")
    for f in (subjects_path, prompts_path):
        if not f.is_file():
            raise DataError(f"protocol {name!r}: missing {f}")
    return protocol_from_content(name, subjects_path.read_text(), prompts_path.read_text(),
                                 (str(subjects_path), str(prompts_path)))


def protocol_from_content(name: str, subjects_text: str, prompts_text: str,
                          source: tuple[str, str] = ("subjects.csv", "prompts.yaml")) -> Protocol:
    """A protocol from the texts of its two files (what a worker gets in its job spec); ``source`` names
    the files in error messages."""
    declared = _load_prompts(source[1], prompts_text)
    settings = dict(declared.settings)
    subjects = _load_subjects(source[0], subjects_text, settings["kinds"])
    unknown = sorted(set(declared.subject_prompts) - {s.name for s in subjects})
    if unknown:
        raise DataError(f"{source[1]}: prompts for unknown subject(s) {', '.join(unknown[:5])}")
    missing = sorted({s.kind for s in subjects if s.name not in declared.subject_prompts} - set(declared.prompts))
    if missing:
        raise DataError(f"{source[1]}: no prompts for kind(s) {', '.join(missing)}")
    return Protocol(name, subjects, declared.prompts, settings.pop("class_prompt"), (str(source[0]), str(source[1])),
                    (subjects_text, prompts_text), declared.subject_prompts, **settings)
