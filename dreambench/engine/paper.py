"""The paper's table design: which labels Tables 1, 3, 4, 5 and 6 need (``--tables paper``)."""

from __future__ import annotations

from ..errors import DreambenchError
from ..methods.base import list_methods
from ..methods.priors import PPL_FIELD
from .runspec import MethodRun, field_names, role

#: Subjects of the number-of-inputs ablation (paper Tables 5 and 6).
NUM_INPUTS_SUBJECTS = ("backpack", "dog")

#: Class-prompt samples per (label, subject) in the paper plan: the PRES metric's images.
PAPER_CLASS_PROMPT_SAMPLES = 4


def paper_method_runs(overrides: dict[str, dict] | None = None, class_prompt_samples: int = PAPER_CLASS_PROMPT_SAMPLES,
                      num_inputs: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[MethodRun]:
    """The labels the paper's tables need.

    Table 1: dreambooth, textual-inversion, real (upper bound), pretrained (lower bound, when registered).
    Table 3: dreambooth with and without prior preservation, with class-prompt samples (PRES) and
    4 images per prompt (DIV). Table 4: class noun correct / none / wrong. Tables 5/6: 1..5 instance
    images on backpack and dog.
    """
    registered = list_methods()
    overrides = overrides or {}

    def need(name: str) -> None:
        if name not in registered:
            raise DreambenchError(f"--tables paper needs method {name!r}, which is not registered "
                                  f"(registered: {', '.join(registered) or 'none'})")

    for name in ("dreambooth", "textual-inversion", "real"):
        need(name)
    db = dict(overrides.get("dreambooth", {}))
    ppl = PPL_FIELD
    if ppl not in field_names("dreambooth"):
        raise DreambenchError("--tables paper: the dreambooth config has no prior-preservation switch "
                              f"({PPL_FIELD}) for Table 3")
    main = role()
    runs = [
        MethodRun("dreambooth", "dreambooth", {**db, ppl: True}, class_prompt_samples=class_prompt_samples,
                  table="1,3,4", role=main),
        MethodRun("textual-inversion", "textual-inversion", dict(overrides.get("textual-inversion", {})),
                  table="1", role=main),
        MethodRun("real", "real", dict(overrides.get("real", {})), table="1", role=main),
    ]
    if "pretrained" in registered:
        runs.append(MethodRun("pretrained", "pretrained", dict(overrides.get("pretrained", {})), table="1",
                              role=main))
    runs.append(MethodRun("dreambooth-noppl", "dreambooth", {**db, ppl: False},
                          class_prompt_samples=class_prompt_samples, table="3", role=role("ablation", "ppl", False)))
    for mode in ("none", "wrong"):
        runs.append(MethodRun(f"dreambooth-noun-{mode}", "dreambooth", {**db, ppl: True}, class_noun_mode=mode,
                              table="4", role=role("ablation", "class_noun", mode)))
    for k in num_inputs:
        runs.append(MethodRun(f"dreambooth-n{k}", "dreambooth", {**db, ppl: True}, num_inputs=k,
                              subjects=list(NUM_INPUTS_SUBJECTS), table="5,6", role=role("ablation", "num_inputs", k)))
    return runs
