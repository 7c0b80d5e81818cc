"""Size and cost of a plan: jobs, images, training steps and estimated device-hours.

Rates come from the device the run will use: a ``dreambench bench`` result (``<results>/bench.json``)
measured for the plan's model profile on that device type (a method's training at its packed rate when
packing beat one job), else, on CUDA for the SD1.5-shaped profiles, from the packaged calibration
(``calibration.json``: one H100, copied from a measured file whose source it names: loops with the suite's
CUDA defaults, and the plain reference loop for comparison). Anything else (a CPU run, the tiny profile)
has no calibration: the plan says so instead of showing another device's figures. Scoring is estimated
only from an end-to-end rate (``dreambench score`` on a folder of PNGs, bench.json's ``score_folder``):
the embedding throughput alone leaves out decoding, I/O and DIV, and is not used. Estimates are sums of
work divided by rates on one device; they assume no other overlap between workers.
A bench result applies to every profile of the same model family at the same resolution (random-init
and pretrained weights cost the same FLOPs); SDXL has no packaged calibration until a device measures it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..layout import BENCH_FILE
from ..models.profiles import PROFILES
from .jobs import Plan
from .kinds import ORDER, get_kind

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"


#: Model profiles with the calibration's architecture (random-init weights have the same FLOPs).
CALIBRATED_PROFILES = ("sd15", "sd15-random")


def device_type(device: str | None) -> str:
    """``cuda`` or ``cpu`` (or another torch type) of a run's ``--device``; ``auto``/None: ``cuda`` when this
    machine shows an NVIDIA driver (no torch import: a dry run stays light)."""
    if device and device != "auto":
        return device.split(":")[0]
    return "cuda" if Path("/proc/driver/nvidia/version").exists() else "cpu"


def load_rates(results_dir: Path | None, profile: str, device: str | None = None) -> dict | None:
    """Rates for a run of ``profile`` on ``device`` (see :func:`device_type`): ``train_steps_per_s`` per
    label/method or overall, ``sample_images_per_s`` at ``sample_steps``, ``score_images_per_s`` (None
    without an end-to-end measurement), ``basis`` (a line saying where they come from) and ``reference``:
    the same rates for the plain reference loop, for comparison. ``{"basis": why}`` alone when nothing was
    measured for this device and profile."""
    kind = device_type(device)
    bench = Path(results_dir) / BENCH_FILE if results_dir else None
    if bench is not None and bench.is_file():
        b = json.loads(bench.read_text())
        if (b.get("profile") == profile or _same_shapes(b.get("profile"), profile)) and str(b.get("device", kind)).split(":")[0] == kind:
            return _bench_rates(b, bench)
    c = json.loads(CALIBRATION_FILE.read_text())
    if kind != "cuda" or profile not in CALIBRATED_PROFILES:
        family = _family(profile)
        how = (f"`bash benchmarks/gpu_bench.sh {family}` on a GPU, its bench.json copied into the results folder,"
               if kind == "cuda" and family not in (None, _family(c["profile"])) else
               f"`dreambench --results {results_dir or 'DIR'} bench --profile {profile} --device {kind}`")
        return {"basis": f"no calibration for this device ({kind}, profile {profile}): the packaged one is "
                         f"{c['profile']} on {c['device']}; {how} measures this one and later plans use it"}
    note = "" if profile == c["profile"] else f"; measured for profile {c['profile']}, not {profile}"

    def rates(d: dict, what: str) -> dict:
        return {"train_steps_per_s": d["train_steps_per_s"], "train_per_method": {},
                "sample_images_per_s": d["sample_images_per_s"], "sample_steps": d["sample_steps"],
                "score_images_per_s": None,
                "basis": f"packaged calibration {c['name']}, {what} ({c['device']}{note}); scoring not estimated "
                         "(no end-to-end scoring rate measured here: `dreambench bench` measures one)"}

    out = rates(c, "loops with the suite's CUDA defaults")
    out["reference"] = rates(c["reference"], "reference loop")
    return out


def _family(profile: str | None) -> str | None:
    return PROFILES.get(profile).family if profile in PROFILES else None


def _same_shapes(measured: str | None, profile: str) -> bool:
    """Whether a bench of profile ``measured`` times ``profile``'s work: same family and resolution."""
    if measured not in PROFILES or profile not in PROFILES:
        return False
    a, b = PROFILES.get(measured), PROFILES.get(profile)
    return (a.family, a.resolution) == (b.family, b.resolution)


def _bench_rates(b: dict, bench: Path) -> dict:
    per_method = {m: v["train_steps_per_s"] for m, v in b.get("methods", {}).items() if v.get("train_steps_per_s")}
    pk = b.get("packing") or {}
    if pk.get("method") in per_method and pk["aggregate_steps_per_s"] > per_method[pk["method"]]:
        per_method[pk["method"]] = pk["aggregate_steps_per_s"]  # --jobs-per-gpu K, as measured
    whole = b.get("score_folder") or {}
    sampling = {"sample_images_per_s": b["sampling"]["images_per_s"], "sample_steps": b["sampling"]["sample_steps"],
                "score_images_per_s": whole.get("images_per_s")}
    scoring = "" if whole.get("images_per_s") else "; scoring not estimated (bench.json has no end-to-end score_folder rate)"
    basis = f"{bench} (measured by dreambench bench on {b.get('device_name', b.get('device'))}){scoring}"
    return {"train_steps_per_s": b["reference"]["train_steps_per_s"], "train_per_method": per_method, **sampling,
            "basis": basis, "reference": {"train_steps_per_s": b["reference"]["train_steps_per_s"],
                                          "train_per_method": {}, **sampling, "basis": f"{bench}: reference loop"}}


def job_seconds(plan: Plan, rates: dict, sample_steps: int) -> dict[str, float]:
    """Estimated device-seconds of each job of ``plan`` (0 for the merge and tables jobs, and for scoring
    without an end-to-end rate)."""
    sample_s = (sample_steps / rates["sample_steps"]) / rates["sample_images_per_s"]
    out = {}
    for j in plan.jobs:
        kind = get_kind(j.kind)
        out[j.id] = kind.seconds(j, rates, sample_s) if kind is not None and kind.seconds is not None else 0.0
    return out


def _makes_images(name: str) -> bool:
    return (kind := get_kind(name)) is not None and kind.makes_images


def estimate(plan: Plan, rates: dict | None, sample_steps: int) -> dict:
    """Jobs, images, training steps and estimated device-seconds per kind, per label and per job
    (``job_seconds``); ``device_hours`` None when ``rates`` has none for this device."""
    kinds: dict[str, float] = dict.fromkeys(ORDER, 0.0)
    size = {"jobs": {k: len(plan.by_kind(k)) for k in kinds},
            "images": sum(j.images for j in plan.jobs if _makes_images(j.kind)),
            "train_steps": sum(j.train_steps for j in plan.jobs)}
    if not rates or "train_steps_per_s" not in rates:
        return {**size, "device_seconds": None, "device_seconds_per_label": {}, "device_hours": None,
                "reference_device_hours": None, "job_seconds": {}, "scoring_estimated": False,
                "basis": (rates or {}).get("basis", "no rates")}
    seconds = job_seconds(plan, rates, sample_steps)
    per_label: dict[str, float] = {}
    for j in plan.jobs:
        kinds[j.kind] = kinds.get(j.kind, 0.0) + seconds[j.id]
        if (kind := get_kind(j.kind)) is not None and kind.writes_label:
            per_label[j.label] = per_label.get(j.label, 0.0) + seconds[j.id]
    reference = estimate(plan, rates["reference"], sample_steps)["device_hours"] if "reference" in rates else None
    return {
        **size,
        "device_seconds": {k: round(v, 1) for k, v in kinds.items()},
        "device_seconds_per_label": {k: round(v, 1) for k, v in per_label.items()},
        "device_hours": round(sum(kinds.values()) / 3600.0, 3),
        "reference_device_hours": reference,
        "job_seconds": seconds,
        "scoring_estimated": bool(rates.get("score_images_per_s")),
        "basis": rates["basis"],
    }


def relative_job_seconds(plan: Plan, rates: dict | None, sample_steps: int) -> dict[str, float]:
    """Each job's estimated device-seconds from ``rates`` when they are whole for this device (scoring
    included), else from the packaged calibration, whose scoring rate is the embeddings' alone: only the
    ratios between jobs are meant (the progress bar's weights)."""
    if rates and rates.get("train_steps_per_s") and rates.get("score_images_per_s"):
        return job_seconds(plan, rates, sample_steps)
    c = json.loads(CALIBRATION_FILE.read_text())
    whole = {"train_steps_per_s": c["train_steps_per_s"], "train_per_method": {}, "sample_steps": c["sample_steps"],
             "sample_images_per_s": c["sample_images_per_s"], "score_images_per_s": c["score_images_per_s"]}
    return job_seconds(plan, whole, sample_steps)
