"""Options shared by several commands (kept apart from cli.py, which imports every command module)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import DreambenchError


def results_option(f):
    """``--results DIR`` on a subcommand, defaulting to the global ``--results``."""
    return click.option(
        "--results", "results", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Results folder (default: the global --results).",
    )(f)


def resolve_results(ctx: click.Context, results: Path | None) -> Path:
    """The subcommand's ``--results``, else the global one."""
    return results or ctx.find_root().obj["results"]


#: The metric weights options shared by ``run``, ``score``, ``doctor`` and ``profiles build``.
WEIGHTS_HELP = {
    "dino": "DINO weights file: timm ViT state dict, DINO {'teacher': ...} checkpoint or transformers ViTModel "
            "(.safetensors or weights-only torch file).",
    "clip": "CLIP weights file: open_clip state dict or transformers CLIPModel (.safetensors or weights-only "
            "torch file); the OpenAI TorchScript .pt is refused with its conversion command.",
    "lpips": "LPIPS trunk weights file (DIV): the torchvision checkpoint, e.g. alexnet-owt-7be5be79.pth.",
}


def weights_options(f):
    """``--dino-weights``, ``--clip-weights``, ``--lpips-weights`` (files; checked before any job)."""
    for kind in ("lpips", "clip", "dino"):
        f = click.option(f"--{kind}-weights", f"{kind}_weights", type=click.Path(path_type=Path), default=None,
                         help=WEIGHTS_HELP[kind])(f)
    return f


def metric_weights_spec(dino: Path | None, clip: Path | None, lpips: Path | None) -> dict[str, str]:
    """``{"dino"|"clip"|"lpips": absolute path}`` of the weights files given (JSON-ready, for job specs)."""
    given = {"dino": dino, "clip": clip, "lpips": lpips}
    return {k: str(Path(v).expanduser().resolve()) for k, v in given.items() if v is not None}


#: ``--judge`` and the judge options it passes on (``dreambench judge``'s, prefixed): name -> (click kwargs).
JUDGE_OPTIONS = {
    "base_url": {"default": None, "metavar": "URL",
                 "help": "The judge's OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI)."},
    "model": {"default": None, "help": "The judge's model (default: the profile's, gpt-4o-2024-05-13)."},
    "runs": {"type": click.IntRange(min=1, max=100), "default": None,
             "help": "The judge's runs per call (default: the profile's, 3)."},
    "api_key_env": {"default": None, "metavar": "VAR", "help": "Variable holding the judge's API key "
                                                               "(default: OPENAI_API_KEY)."},
    "concurrency": {"type": click.IntRange(min=1, max=512), "default": None,
                    "help": "The judge's requests in flight at once (default: 8)."},
    "rubrics": {"type": click.Path(file_okay=False, path_type=Path), "default": None,
                "help": "Folder with the judge's rubric files (default: $DREAMBENCH_JUDGE_RUBRICS, else fetched)."},
}


def judge_options(f):
    """``--judge`` and ``--judge-<option>`` for each of :data:`JUDGE_OPTIONS` (read by :func:`judge_request`)."""
    for name, kw in reversed(JUDGE_OPTIONS.items()):
        f = click.option(f"--judge-{name.replace('_', '-')}", f"judge_{name}", **kw)(f)
    return click.option(
        "--judge", "judge", is_flag=True,
        help="After scoring, judge the folder with DreamBench++'s CP and PF (`dreambench judge` with its "
             "defaults; --judge-* change them). Its options are checked before any work.")(f)


def judge_request(judge: bool, quiet: bool = False, **given):
    """The :class:`~dreambench.judge.evaluate.JudgeOptions` of ``--judge`` and its ``judge_*`` options,
    checked (:func:`~dreambench.judge.evaluate.check_judge`: a bad one exits 2 before any work), or None
    without ``--judge`` (a ``--judge-*`` option given then is a usage error, exit status 2)."""
    values = {k.removeprefix("judge_"): v for k, v in given.items() if v is not None}
    if not judge:
        if values:
            names = ", ".join(f"--judge-{k.replace('_', '-')}" for k in values)
            raise click.UsageError(f"{names} given without --judge")
        return None
    from ..judge.evaluate import JudgeOptions, check_judge

    opts = JudgeOptions(**values)
    try:
        check_judge(opts)
    except DreambenchError as e:  # the judge names its own options; here they are --judge-*
        raise DreambenchError(re.sub(r"^--", "--judge-", str(e))) from None
    return opts

