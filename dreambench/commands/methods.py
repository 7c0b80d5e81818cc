"""``dreambench methods list``, ``dreambench train``, ``dreambench generate``: one method, one subject."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..engine.local import cpu_threads_choice
from ..engine.runspec import method_family_problem, profile_recipe
from ..engine.subject_job import SubjectJob, run_subject_job, train_subject
from ..errors import DreambenchError
from ..layout import ResultsLayout
from ..methods.base import config_fields, get_method, list_methods, method_provider
from ..methods.identity import method_identity
from ..methods.recipes import default_recipe, family_recipes, recipes_for
from ..paths import default_data_dir
from ..protocol import Protocol, load_protocol
from .options import resolve_results as _resolve_results
from .options import results_option as _results_option


def describe_methods() -> list[dict]:
    """Name, providing package, identity (:mod:`dreambench.methods.identity`), description, whether it
    trains, config options (type/default/help) and recipes of each method."""
    out = []
    for name, cls in list_methods().items():
        recipes = recipes_for(cls)
        out.append({
            "name": name, "package": method_provider(name), "identity": method_identity(cls),
            "description": cls.description, "trains": bool(cls.trains),
            "needs_model": bool(cls.needs_model), "options": config_fields(cls.Config),
            "default_recipe": default_recipe(cls),
            "recipes": [{"name": r.name, "description": r.description, "overrides": r.overrides, "source": r.source}
                        for r in recipes.values()],
            # Recipes of one model family only (docs/sdxl.md), with the family's default.
            "family_recipes": {
                family: {"default": default_recipe(cls, family),
                         "recipes": [{"name": r.name, "description": r.description, "overrides": r.overrides,
                                      "source": r.source} for r in table.values()]}
                for family, table in family_recipes(cls).items()},
            "families": list(cls.families) if getattr(cls, "families", None) else None,
        })
    return out


@click.group("methods")
def methods_group() -> None:
    """Personalization methods (built-in and plug-ins)."""


@methods_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json: bool) -> None:
    """List the methods with their config options and training recipes."""
    info = describe_methods()
    if as_json:
        click.echo(json.dumps(info, indent=1, default=str))
        return
    for m in info:
        click.echo(f"{m['name']}  ({'trains' if m['trains'] else 'no training'}; from {m['package']})  "
                   f"{m['description']}")
        for r in m["recipes"]:
            mark = " (default)" if r["name"] == m["default_recipe"] else ""
            click.echo(f"  recipe {r['name']}{mark}: {r['description']}")
        for family, fam in m["family_recipes"].items():
            for r in fam["recipes"]:
                mark = " (default)" if r["name"] == fam["default"] else ""
                click.echo(f"  recipe {r['name']} [family {family}]{mark}: {r['description']}")
        if m["families"]:
            click.echo(f"  runs on model families: {', '.join(m['families'])}")
        for o in m["options"]:
            setting = f"{o['name']}={o['default']}"
            click.echo(f"    {setting:<32} [{o['type']}] {o['help']}")


def _job_options(f):
    opts = [
        click.option("--method", required=True, help="Registered method name (see `dreambench methods list`)."),
        click.option("--subject", required=True, help="Subject name of the protocol (e.g. dog)."),
        click.option("--label", default=None, help="Output label (folder under images/); default: the method name."),
        click.option("--recipe", default=None, help="Training recipe (default: the profile's name if the method has "
                     "such a recipe, e.g. tiny, else the method's default, e.g. paper)."),
        click.option("--profile", default="sd15", show_default=True, help="Model profile (sd15 | sd15-random | tiny)."),
        click.option("--model", default=None, help="SD weights (profile sd15): diffusers folder (fp32, fp16 or fp16 variant files), hub id "
                                                "or single-file .safetensors; see docs/weights.md."),
        click.option("--steps", type=int, default=None, help="Training-steps override."),
        click.option("--sample-steps", type=int, default=None, help="Sampler-steps override (default: the profile's)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Config override (repeatable)."),
        click.option("--identifier", default="sks", show_default=True, help="Rare-token identifier [V]."),
        click.option("--class-noun-mode", type=click.Choice(["correct", "none", "wrong"]), default="correct",
                     show_default=True),
        click.option("--num-inputs", type=int, default=None, help="Instance images to use (seeded choice; default all)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Torch threads on a CPU (default: every core, as `run` gives its single worker)."),
        click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Dataset folder (default: $DREAMBENCH_DATA or the shared copy)."),
        click.option("--protocol", default="dreambooth", show_default=True),
        _results_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _parse_sets(sets: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in sets:
        if "=" not in item:
            raise DreambenchError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _setup(kw: dict, images_per_prompt: int = 4, class_samples: int = 0):
    """(job, protocol, components, data dir, results dir, device) from the command's options."""
    import torch

    from ..models import get_profile, load_sd  # heavy: torch (this module is imported by --help)

    cls = get_method(kw["method"])  # unknown names list the valid ones
    profile = get_profile(kw["profile"])
    recipe = kw["recipe"] or profile_recipe(cls, profile.name)
    protocol = load_protocol(kw["protocol"])
    protocol.subject(kw["subject"])
    job = SubjectJob(method=cls.name, label=kw["label"] or cls.name, config=_parse_sets(kw["sets"]), recipe=recipe,
                     subject=kw["subject"], identifier=kw["identifier"], class_noun_mode=kw["class_noun_mode"],
                     num_inputs=kw["num_inputs"], images_per_prompt=images_per_prompt, seed=kw["seed"],
                     class_prompt_samples=class_samples, steps=kw["steps"], sample_steps=kw["sample_steps"],
                     profile=profile.name)
    device = kw["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        threads, line = cpu_threads_choice(1, kw["threads"])
        torch.set_num_threads(threads)
        click.echo(line, err=True)
    problem = method_family_problem(cls, profile.name)
    if problem:
        raise DreambenchError(problem)
    components = load_sd(profile, kw["model"]) if cls.needs_model else None
    return job, protocol, components, kw["data_dir"] or default_data_dir(), device


@click.command("train")
@_job_options
@click.pass_context
def train_cmd(ctx: click.Context, **kw) -> None:
    """Train METHOD on one SUBJECT; writes <results>/artifacts/<label>/<subject>/ (skips if already there)."""
    results = _resolve_results(ctx, kw.pop("results"))
    job, protocol, components, data_dir, device = _setup(kw)
    info = train_subject(job, protocol, components, data_dir, results, device, log=lambda m: click.echo(m, err=True))
    stats = info.get("stats") or {}
    click.echo(f"{job.label}/{job.subject}: artifact {info['path']}"
               + (f" ({stats['steps']} steps, {stats['steps_per_s']:.2f} steps/s)" if stats else ""))


@click.command("generate")
@_job_options
@click.option("--images-per-prompt", type=int, default=4, show_default=True)
@click.option("--class-samples", type=int, default=0, show_default=True,
              help="Images of the class prompt 'a [class noun]' (prompt index -1, for PRES).")
@click.option("--prompts", type=int, default=None, help="Only the first N prompts (quick runs; default all).")
@click.option("--keep-artifacts", type=click.Choice(["yes", "no"]), default="yes", show_default=True)
@click.pass_context
def generate_cmd(ctx: click.Context, images_per_prompt: int, class_samples: int, prompts: int | None,
                 keep_artifacts: str, **kw) -> None:
    """Generate the images of METHOD for one SUBJECT (loads the artifact `dreambench train` wrote; methods
    that do not train need none); writes images, the manifest part and method.json."""
    from ..manifest import merge_manifest  # heavy: pandas

    results = _resolve_results(ctx, kw.pop("results"))
    job, protocol, components, data_dir, device = _setup(kw, images_per_prompt, class_samples)
    if prompts is not None:
        protocol = Protocol(protocol.name, protocol.subjects, {k: v[:prompts] for k, v in protocol.prompts.items()},
                            protocol.class_prompt, protocol.source)
    rows = run_subject_job(job, protocol, components, data_dir, results, device, keep_artifacts == "yes",
                           log=lambda m: click.echo(m, err=True), train_missing=False)
    layout = ResultsLayout(results)
    merge_manifest(layout.images)
    click.echo(f"{job.label}/{job.subject}: {len(rows)} images in {layout.subject_images(job.label, job.subject)}")


COMMANDS = [methods_group, train_cmd, generate_cmd]
