"""Size and cost of a plan: jobs, images, training steps and estimated device-hours.

Rates come from a ``dreambench bench`` result (``<results>/bench.json``) when one was measured for the
plan's model profile (a method's training at its packed rate when packing beat one job), else from the
packaged calibration (``calibration.json``: SD1.5-shaped models on one H100, copied from a measured file
whose source it names: loops with the suite's CUDA defaults, and the plain reference loop for comparison).
Estimates are sums of work divided by rates on one device; they assume no other overlap between workers.
A bench result applies to every profile of the same model family at the same resolution (random-init and
pretrained weights cost the same FLOPs). A family with neither (SDXL until a device measures it) is not
estimated: the plan's size is given, its hours are not, and the basis says which command measures them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .jobs import Plan

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"
BENCH_FILE = "bench.json"


def load_rates(results_dir: Path | None, profile: str) -> dict:
    """Rates (``train_steps_per_s`` per label/method or overall, ``sample_images_per_s`` at
    ``sample_steps``, ``score_images_per_s``), ``basis`` (a line saying where they come from) and
    ``reference``: the same rates for the plain reference loop, for comparison."""
    bench = Path(results_dir) / BENCH_FILE if results_dir else None
    if bench is not None and bench.is_file():
        b = json.loads(bench.read_text())
        if b.get("profile") == profile or _same_shapes(b.get("profile"), profile):
            per_method = {m: v["train_steps_per_s"] for m, v in b.get("methods", {}).items()
                          if v.get("train_steps_per_s")}
            pk = b.get("packing") or {}
            if pk.get("method") in per_method and pk["aggregate_steps_per_s"] > per_method[pk["method"]]:
                per_method[pk["method"]] = pk["aggregate_steps_per_s"]  # --jobs-per-gpu K, as measured
            sampling = {"sample_images_per_s": b["sampling"]["images_per_s"],
                        "sample_steps": b["sampling"]["sample_steps"],
                        "score_images_per_s": (b.get("score_folder") or b["scoring"])["images_per_s"]}
            return {"train_steps_per_s": b["reference"]["train_steps_per_s"], "train_per_method": per_method,
                    **sampling,
                    "basis": f"{bench} (measured by dreambench bench on {b.get('device_name', b.get('device'))})",
                    "reference": {"train_steps_per_s": b["reference"]["train_steps_per_s"], "train_per_method": {},
                                  **sampling, "basis": f"{bench}: reference loop"}}
    c = json.loads(CALIBRATION_FILE.read_text())
    family = _family(profile)
    if family is not None and family != _family(c["profile"]):
        return {"unmeasured": True,
                "basis": f"no measured rate for model family {family} (profile {profile}): run `bash "
                         f"benchmarks/gpu_bench.sh {family}` on a GPU and copy its bench.json into the results folder"}
    note = "" if profile == c["profile"] else f"; measured for profile {c['profile']}, not {profile}"

    def rates(d: dict, what: str) -> dict:
        return {"train_steps_per_s": d["train_steps_per_s"], "train_per_method": {},
                "sample_images_per_s": d["sample_images_per_s"], "sample_steps": d["sample_steps"],
                "score_images_per_s": d["score_images_per_s"],
                "basis": f"packaged calibration {c['name']}, {what} ({c['device']}{note}); source: {c['source']}"}

    out = rates(c, "loops with the suite's CUDA defaults")
    out["reference"] = rates(c["reference"], "reference loop")
    return out


def _family(profile: str | None) -> str | None:
    from ..models.profiles import PROFILES

    return PROFILES.get(profile).family if profile in PROFILES else None


def _same_shapes(measured: str | None, profile: str) -> bool:
    """Whether a bench of profile ``measured`` times ``profile``'s work: same family and resolution."""
    from ..models.profiles import PROFILES

    if measured not in PROFILES or profile not in PROFILES:
        return False
    a, b = PROFILES.get(measured), PROFILES.get(profile)
    return (a.family, a.resolution) == (b.family, b.resolution)


def estimate(plan: Plan, rates: dict, sample_steps: int) -> dict:
    """Jobs, images, training steps and estimated device-seconds per kind and per label (None when the
    rates are ``unmeasured``: no figure is made up)."""
    if rates.get("unmeasured"):
        subject_jobs = plan.by_kind("subject")
        return {"jobs": {k: len(plan.by_kind(k)) for k in ("class_images", "subject", "score", "score_merge", "tables")},
                "images": sum(j.images for j in plan.jobs if j.kind in ("subject", "class_images")),
                "train_steps": sum(j.train_steps for j in subject_jobs), "device_seconds": None,
                "device_seconds_per_label": None, "device_hours": None, "reference_device_hours": None,
                "basis": rates["basis"]}
    per_label: dict[str, float] = {}
    kinds: dict[str, float] = {"class_images": 0.0, "subject": 0.0, "score": 0.0, "score_merge": 0.0,
                               "tables": 0.0}
    sample_s = (sample_steps / rates["sample_steps"]) / rates["sample_images_per_s"]
    steps_total = 0
    for j in plan.jobs:
        if j.kind == "class_images":
            s = j.images * sample_s
        elif j.kind == "subject":
            method = j.spec["job"]["method"]
            rate = rates["train_per_method"].get(j.label) or rates["train_per_method"].get(method) \
                or rates["train_steps_per_s"]
            s = j.train_steps / rate + (j.images * sample_s if j.spec.get("needs_model", True) else 0.0)
            steps_total += j.train_steps
            per_label[j.label] = per_label.get(j.label, 0.0) + s
        elif j.kind == "score":  # one (label, subject) part: its images
            s = j.images / rates["score_images_per_s"]
        else:
            s = 0.0
        kinds[j.kind] += s
    total = sum(kinds.values())
    reference = estimate(plan, rates["reference"], sample_steps)["device_hours"] if "reference" in rates else None
    return {
        "jobs": {k: len(plan.by_kind(k)) for k in kinds},
        "images": sum(j.images for j in plan.jobs if j.kind in ("subject", "class_images")),
        "train_steps": steps_total,
        "device_seconds": {k: round(v, 1) for k, v in kinds.items()},
        "device_seconds_per_label": {k: round(v, 1) for k, v in per_label.items()},
        "device_hours": round(total / 3600.0, 3),
        "reference_device_hours": reference,
        "basis": rates["basis"],
    }
