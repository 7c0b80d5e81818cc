"""Judge profiles: a rubric set and the request settings of one judge, declared as data.

A profile names where its rubric files come from (a repository pinned at a commit, and their sha256), which
rubric each metric uses for which subject kind, and how requests and answers look (model, temperature,
image size, the score regex and range). Adding a judge (an ablation rubric, a VIEScore-style profile) is
one more :class:`JudgeProfile` registered here, not an ``if``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.dreambench_plus.layout import CATEGORY_DIRS
from ..data.dreambench_plus.layout import PROMPT_GROUPS as _GROUP_OF_INDEX
from ..registry import Registry

#: The two metrics of DreamBench++: concept preservation (reference photo vs generated image) and prompt
#: following (prompt text vs generated image).
METRICS = ("cp", "pf")
#: The subject kinds of DreamBench++, in its table's order (its data layout's categories).
KINDS = tuple(CATEGORY_DIRS)
#: The prompt groups of DreamBench++'s nine prompts per subject, in order (declared with its data layout).
PROMPT_GROUPS = tuple(dict.fromkeys(_GROUP_OF_INDEX))


@dataclass(frozen=True)
class Rubric:
    """One conversation prefix: the user turn (the rubric) and the assistant's "internal thinking" turn."""

    user: str      # file name of the user turn, relative to the profile's folder
    thinking: str  # file name of the assistant turn


@dataclass(frozen=True)
class JudgeProfile:
    """A judge, as data.

    Attributes:
        name: the profile's name (``--profile``).
        repo, commit, folder: where the rubric files live (``https://github.com/<repo>``, ``<folder>/<file>``).
        sha256: file name -> sha256 of its bytes; a file that differs is refused.
        rubrics: rubric key -> :class:`Rubric`.
        cp_rubric: subject kind -> rubric key of CP (kinds not listed use ``cp_default``).
        pf_rubric: rubric key of PF.
        model, temperature, runs: request defaults (``--model``, ``--temperature``, ``--runs``).
        image_size: images are resized to ``image_size`` x ``image_size`` (aspect ratio not kept).
        detail: the ``image_url.detail`` field.
        score_pattern: a regex whose ``findall`` must match exactly once; its last group is the score.
        score_range: the inclusive range of a valid score; a score is divided by its upper end.
        max_attempts: requests per call until an answer parses (the reference's ``max_retry``).
    """

    name: str
    description: str
    repo: str
    commit: str
    folder: str
    sha256: dict[str, str]
    rubrics: dict[str, Rubric]
    cp_rubric: dict[str, str]
    cp_default: str
    pf_rubric: str
    model: str = "gpt-4o-2024-05-13"
    temperature: float = 1.0
    runs: int = 3
    image_size: int = 512
    detail: str = "high"
    score_pattern: str = r"(score|Score):\s*[a-zA-Z]*\s*(\d+)"
    score_range: tuple[int, int] = (0, 4)
    max_attempts: int = 3
    licence: str = "Apache-2.0"
    extra: dict = field(default_factory=dict)

    def rubric_for(self, metric: str, kind: str) -> str:
        """The rubric key a call of ``metric`` on a subject of ``kind`` uses."""
        if metric == "pf":
            return self.pf_rubric
        return self.cp_rubric.get(kind, self.cp_default)

    def raw_url(self, file: str) -> str:
        """Where the file is fetched from: raw.githubusercontent.com at the pinned commit."""
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.folder}/{file}"


DREAMBENCH_PLUS = JudgeProfile(
    name="dreambench-plus",
    description="DreamBench++ (Peng et al., ICLR 2025) GPT-4o judge, 'full' rubrics, as published",
    repo="yuangpeng/dreambench_plus",
    commit="66ca27e52b5e7daa350bdb92ac8c60d4a9339c5e",
    folder="dreambench_plus/prompts",
    sha256={
        "gpt_prompt_style_full.txt": "734e58952797bc2b6aabbf0fb3e8a373ec7e9c48a473923ca23a484427ec7d4d",
        "gpt_prompt_subject_full.txt": "6e915593038f996827da4f087f0ea30bda2fffbd233eb0d5b93bd1a952af3b62",
        "gpt_prompt_text_full.txt": "77622056433fcd4d91ca644d0ec1af04e4e59f0dcc86ec6169f52994b5be745a",
        "user_prompt_style_full.txt": "d55d95c08ff59af37e384246d83b70bed8a7982e3d31da1e895dad29c8790b84",
        "user_prompt_subject_full.txt": "01f964fa90af86ff9489f66775f642485f90c1351628b861e0f4fd26f300c00c",
        "user_prompt_text_full.txt": "7fca8de6285c01e337d1279b648d1c2fb46101af1327e7cf2a08053775362f32",
    },
    rubrics={
        "subject": Rubric("user_prompt_subject_full.txt", "gpt_prompt_subject_full.txt"),
        "style": Rubric("user_prompt_style_full.txt", "gpt_prompt_style_full.txt"),
        "text": Rubric("user_prompt_text_full.txt", "gpt_prompt_text_full.txt"),
    },
    cp_rubric={"style": "style"},
    cp_default="subject",
    pf_rubric="text",
)

#: Judge profiles by name.
PROFILES: Registry[JudgeProfile] = Registry("judge profile")
PROFILES.register(DREAMBENCH_PLUS.name, DREAMBENCH_PLUS)


def get_profile(name: str) -> JudgeProfile:
    """The profile named ``name``; an unknown name raises :class:`~dreambench.errors.UnknownNameError`."""
    return PROFILES.get(name)


def prompt_group(prompt_index: int) -> str:
    """The DreamBench++ prompt group of a prompt index, or ``""`` outside 0-8 (another protocol's prompts)."""
    return _GROUP_OF_INDEX[prompt_index] if 0 <= prompt_index < len(_GROUP_OF_INDEX) else ""
