"""Options shared by several commands (kept apart from cli.py, which imports every command module)."""

from __future__ import annotations

from pathlib import Path

import click


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
