"""Preflight: load every model a run needs and run one tiny forward pass of each on the target device.

``dreambench doctor`` prints the rows; ``dreambench run`` runs the same checks in the driver before any
job, so a missing or wrong weights file is found in seconds, before class images, training or sampling.
A passing set of checks is remembered under a key made of everything that decides the outcome (profile,
SD source and weights digest, metric profile, backbone weights digests, device type, library versions):
a resumed run with the same key pays nothing.

Rows (:class:`Check`): what was loaded, where from (``folder``, ``hub cache``, ``file``, ``config``,
``random-init``, ``package``), dtype, short weights digest, ``pretrained`` or ``random-init``, seconds,
and the problem, if any, as one line.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__
from .errors import DreambenchError
from .io import write_text_atomic
from .lazy import LazyModule
from .metrics.profiles import get_metric_profile
from .models.digest import file_digest
from .models.hub_cache import pretrained_repo, repo_weights, torch_hub_dir, trunk_weights_cached
from .models.profiles import get_profile
from .models.weights_formats import weights_path
from .provenance import sd_provenance

# A resume answers from the cached check (check_key, cached_ok) and must not pay for importing torch.
torch = LazyModule("torch")

CACHE_NAME = "preflight.json"


@dataclass
class Check:
    """One model of the run: what, where from, dtype, digest, weights label, seconds, problem (or None)."""

    what: str
    where: str = ""
    source: str = ""
    dtype: str = ""
    digest: str | None = None
    weights: str = ""
    seconds: float = 0.0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Needs:
    """What a run needs: the SD parts (any method that samples or trains) and the scoring models."""

    sd: bool = True
    scoring: bool = True


def _timed(check: Check, fn: Callable[[Check], None]) -> Check:
    t = time.perf_counter()
    try:
        fn(check)
    except DreambenchError as e:
        check.problem = str(e).splitlines()[0]
    except Exception as e:  # noqa: BLE001  (a library failure is a problem row, not a traceback)
        first = (str(e).strip().splitlines() or [""])[0][:240]
        check.problem = f"{check.what}: {type(e).__name__}: {first}"
    check.seconds = round(time.perf_counter() - t, 2)
    return check


def _dtype(module: torch.nn.Module) -> str:
    dts = sorted({str(p.dtype).replace("torch.", "") for p in module.parameters()})
    return "/".join(dts)


def check_sd(profile, model: str | None, device: torch.device, vae: str | None = None) -> list[Check]:
    """Rows for the UNet, VAE and text encoder(s) (loaded with :func:`load_sd`, one forward pass each; the
    UNet with its family's conditioning, :mod:`dreambench.methods.conditioning`)."""
    from .methods.conditioning import prompt_conditioning  # here: imports torch
    from .models.sd import load_sd  # here: sd imports torch

    encoders = ["sd text encoder"] + (["sd text encoder 2"] if profile.family == "sdxl" else [])
    rows = [Check("sd unet"), Check("sd vae"), *map(Check, encoders)]
    state: dict = {}

    def load(c: Check) -> None:
        state["sd"] = load_sd(profile, model, vae=vae)

    _timed(rows[0], load)
    sd = state.get("sd")
    if sd is None:
        for r in rows[1:]:
            r.problem = rows[0].problem
        rows[0].what = f"sd (unet, vae, {', '.join(e[3:] for e in encoders)})"
        return rows[:1]
    try:
        size = 8  # latent pixels: the smallest input every UNet level accepts
        parts = {"sd unet": sd.unet, "sd vae": sd.vae, "sd text encoder": sd.text_encoder,
                 "sd text encoder 2": getattr(sd, "text_encoder_2", None)}

        def text() -> None:
            for name in encoders:
                parts[name].to(device)
            state["cond"] = prompt_conditioning(sd, ["a dog"], device)

        fwd = {
            "sd text encoder": text,
            "sd text encoder 2": lambda: None,  # run with the first: the conditioning needs both
            "sd unet": lambda: sd.unet.to(device)(torch.zeros(1, sd.unet.config.in_channels, size, size, device=device),
                                                  torch.tensor([10], device=device),
                                                  **state["cond"].unet_kwargs()).sample,
            "sd vae": lambda: sd.vae.to(device).decode(torch.zeros(1, sd.vae.config.latent_channels, size, size,
                                                                   device=device)).sample,
        }
        order = [*rows[2:], rows[0], rows[1]]  # the text encoders' output feeds the UNet
        for r in order:
            r.where, r.source, r.digest = sd.where, sd.source, sd.digest
            r.weights = "pretrained" if sd.pretrained_weights else "random-init"
            r.dtype = _dtype(parts[r.what])
            if r.what == "sd vae" and getattr(sd, "vae_override", None):
                r.where, r.source = "--vae", sd.vae_override["vae_source"]
                r.digest = sd.vae_override["vae_digest"]
            load_s = r.seconds
            with torch.no_grad():
                _timed(r, lambda c, f=fwd[r.what]: f())
            r.seconds = round(r.seconds + load_s, 2)
    finally:
        for m in sd.modules():
            m.to("cpu")
        del state["sd"]
    return rows


def check_backbones(profile, metric_profile: str, weights: dict, device: torch.device) -> list[Check]:
    """Rows for DINO, CLIP, the LPIPS trunk and its linear layers (one forward pass each)."""
    from .models.backbones import build_clip, build_dino  # here: backbones imports torch

    mp = get_metric_profile(metric_profile)
    x = torch.zeros(1, 3, 224, 224, device=device)
    rows = []

    def dino(c: Check) -> None:
        bb = build_dino(profile, mp.dino.arch, weights.get("dino"))
        _fill(c, bb, "dino" in weights, profile)
        with torch.no_grad():
            bb.model.to(device)(x)

    def clip(c: Check) -> None:
        bb = build_clip(profile, mp.clip.arch, mp.clip.tag, weights.get("clip"))
        _fill(c, bb, "clip" in weights, profile)
        with torch.no_grad():
            m = bb.model.to(device)
            m.encode_image(x)
            m.encode_text(bb.tokenizer(["a dog"]).to(device))

    rows.append(_timed(Check(f"dino {mp.dino.arch}"), dino))
    rows.append(_timed(Check(f"clip {mp.clip.arch}/{mp.clip.tag}"), clip))
    rows += check_lpips(profile, mp, weights.get("lpips"), device)
    return rows


def _fill(c: Check, bb, from_file: bool, profile) -> None:
    c.where, c.digest = bb.where, bb.digest
    c.source = bb.weights_id
    c.dtype = _dtype(bb.model)
    c.weights = "pretrained" if (from_file or (profile.pretrained_weights and bb.where == "hub cache")) \
        else "random-init"


def check_lpips(profile, mp, trunk_file, device: torch.device) -> list[Check]:
    """The LPIPS trunk (file, torch hub cache or random-init) and the linear layers the package ships."""
    from .metrics.embed import build_lpips, trunk_is_pretrained  # here: embed imports torch

    trunk, lin = Check(f"lpips trunk {mp.div.net}"), Check(f"lpips linear {mp.div.net}")
    state: dict = {}

    def load(c: Check) -> None:
        model, label = build_lpips(mp.div, profile.pretrained_weights, trunk_file)
        state["model"] = model.to(device)
        c.source, c.dtype = label, _dtype(model.net)
        c.weights = "pretrained" if trunk_is_pretrained(label) else "random-init"
        c.where = "file" if trunk_file else ("hub cache" if c.weights == "pretrained" else "random-init")
        c.digest = label.split("@", 1)[1] if "@" in label else _trunk_cache_digest(mp.div.net, c.weights)
        x = torch.zeros(2, 3, 64, 64, device=device)
        with torch.no_grad():
            state["model"](x[:1], x[1:])

    _timed(trunk, load)
    if profile.pretrained_weights and not trunk.problem and trunk.weights != "pretrained":
        # A pretrained run whose DIV would silently come from a random trunk: a problem, like DINO/CLIP.
        trunk.problem = (f"lpips trunk {mp.div.net}: no pretrained weights (torchvision's ImageNet {mp.div.net} "
                         f"is not in the torch hub cache {torch_hub_dir()}/checkpoints); pass --lpips-weights FILE")
    lin_file = _lpips_lin_file(mp.div.net)
    lin.where, lin.weights, lin.dtype = "package", "pretrained", trunk.dtype
    lin.source = str(lin_file) if lin_file else ""
    if trunk.problem:
        lin.problem = trunk.problem
    elif lin_file is None or not lin_file.is_file():
        lin.problem = f"lpips linear layers for {mp.div.net}: {lin_file} missing from the lpips package"
    else:
        lin.digest = file_digest(lin_file)
    state.clear()
    return [trunk, lin]


def _lpips_lin_file(net: str) -> Path | None:
    try:
        import lpips
    except ImportError:
        return None
    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


def _trunk_cache_digest(net: str, weights: str) -> str | None:
    if weights != "pretrained":
        return None
    path = trunk_weights_cached(net)
    return file_digest(path) if path else None


def run_checks(profile_name: str, model: str | None, metric_profile: str, weights: dict, device: str | None,
               needs: Needs = Needs(), vae: str | None = None) -> list[Check]:
    """Every row of the run's models on ``device`` (default: CUDA when available)."""
    profile = get_profile(profile_name)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    if needs.sd:
        rows += check_sd(profile, model, dev, vae)
    if needs.scoring:
        rows += check_backbones(profile, metric_profile, weights, dev)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def check_key(profile_name: str, model: str | None, metric_profile: str, weights: dict, device: str | None,
              needs: Needs, vae: str | None = None) -> str:
    """Everything that decides the checks' outcome, hashed. Cheap, so that a resume pays nothing: file
    digests are cached, and library versions come from the installed metadata, not from importing
    torch, diffusers, open_clip, timm and transformers (seconds of imports on every resume)."""
    parts = {"profile": profile_name, "metric_profile": metric_profile, "device": _device_type(device),
             "needs": asdict(needs), "versions": [__version__, *map(_version, _LIBRARIES)],
             "weights": {k: file_digest(weights_path(v, f"--{k}-weights")) for k, v in sorted(weights.items())},
             "hub_cache": os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "",
             "torch_hub": torch_hub_dir(), "hub_files": _hub_files(profile_name, metric_profile, weights)}
    if needs.sd:
        parts["sd"] = sd_provenance(profile_name, model, vae=vae)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: Distributions whose versions decide whether a model loads (part of the check key).
_LIBRARIES = ("torch", "diffusers", "transformers", "open_clip_torch", "timm", "lpips")


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _device_type(device: str | None) -> str:
    """``cuda``/``cpu``/... as given; for the default, whether this machine shows an NVIDIA driver (the
    key only has to change when the default device would: torch is not imported for that)."""
    if device:
        return device.split(":")[0]
    return "auto-cuda" if Path("/proc/driver/nvidia/version").exists() else "auto-cpu"


def cache_file() -> Path:
    root = Path(os.environ.get("DREAMBENCH_CACHE", Path.home() / ".cache" / "dreambench")).expanduser()
    return root / CACHE_NAME


def _hub_files(profile_name: str, metric_profile: str, weights: dict) -> dict:
    """The hub-cache files pretrained backbones would load (None when absent): part of the key, so a
    cache emptied since the last check is checked again."""
    if not get_profile(profile_name).pretrained_weights:
        return {}
    mp = get_metric_profile(metric_profile)
    out = {}
    if "dino" not in weights:
        out["dino"] = str(repo_weights(pretrained_repo("timm", mp.dino.arch)))
    if "clip" not in weights:
        out["clip"] = str(repo_weights(pretrained_repo("open_clip", mp.clip.arch, mp.clip.tag)))
    return out


def cached_ok(cache_file: Path, key: str) -> bool:
    try:
        return key in json.loads(cache_file.read_text()).get("passed", [])
    except (OSError, ValueError, AttributeError):
        return False


def remember_ok(cache_file: Path, key: str, rows: list[Check]) -> None:
    try:
        data = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, ValueError):
        data = {}
    data["passed"] = sorted(set(data.get("passed", [])) | {key})
    data["last"] = [asdict(r) for r in rows]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cache_file, json.dumps(data, indent=1))


def problems(rows: list[Check]) -> list[str]:
    """One line per problem (duplicates, e.g. one SD folder failing every part, once)."""
    return list(dict.fromkeys(r.problem for r in rows if r.problem))


def format_rows(rows: list[Check]) -> str:
    """The table ``dreambench doctor`` prints: one row per model."""
    header = ("model", "where", "dtype", "digest", "weights", "seconds", "source")
    table = [(r.what, r.where or "-", r.dtype or "-", r.digest or "-", r.weights or "-", f"{r.seconds:.2f}",
              ("FAILED: " + r.problem) if r.problem else r.source) for r in rows]
    widths = [max(len(str(x[i])) for x in [header, *table]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1]
             for row in [header, *table]]
    return "\n".join(lines)


class PreflightError(DreambenchError):
    """The models a run needs did not pass their checks: one problem a line. ``str()`` joins the lines so
    that the CLI's ``error: `` prefix starts each of them."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = self.problems + ["preflight failed (see `dreambench doctor` with the same options); no job was run"]
        super().__init__("\nerror: ".join(lines))


def problem_lines(profile: str, model: str | None, metric_profile: str, weights: dict, device: str | None,
                  needs: Needs | None = None, vae: str | None = None) -> tuple[list, list[str]]:
    """(rows, one line per problem) of the run's models; validation errors of the options are problems."""
    try:
        rows = run_checks(profile, model, metric_profile, weights, device, needs or Needs(), vae)
    except DreambenchError as e:
        return [], [str(e)]
    return rows, problems(rows)


def _plan_needs(plan) -> Needs:
    subject_jobs = plan.by_kind("subject")
    return Needs(sd=bool(plan.by_kind("class_images")) or any(j.spec.get("needs_model") for j in subject_jobs),
                 scoring=bool(plan.by_kind("score")))


def check_plan_options(plan, device: str | None) -> str | None:
    """The part of :func:`check_plan` that loads no model: the model options of the plan (profile, --model,
    weights files) are valid and their digests known, or :class:`PreflightError`. ``run --dry-run`` applies
    it, so it refuses what ``run`` refuses. Returns the check key (None when the plan needs no model)."""
    spec, needs = plan.spec, _plan_needs(plan)
    if not (needs.sd or needs.scoring):
        return None
    try:
        return check_key(spec.profile, spec.model, spec.metric_profile, spec.metric_weights, device, needs,
                         getattr(spec, "vae", None))
    except DreambenchError as e:
        raise PreflightError([str(e)]) from None


def check_plan(plan, device: str | None) -> None:
    """The doctor's checks for a planned run, in the driver before any job: :class:`PreflightError` with
    one line per problem. Passing checks are remembered (``$DREAMBENCH_CACHE/preflight.json``) by a key of
    every digest and setting that decides them, so a resumed run loads nothing here."""
    spec, needs = plan.spec, _plan_needs(plan)
    key = check_plan_options(plan, device)
    cache = cache_file()
    if key is None or cached_ok(cache, key):
        return
    # Through the module's own name: tests wrap run_checks on the module.
    rows, bad = problem_lines(spec.profile, spec.model, spec.metric_profile, spec.metric_weights, device, needs,
                              getattr(spec, "vae", None))
    if bad:
        raise PreflightError(bad)
    remember_ok(cache, key, rows)
