"""The wall time of the full protocol on one device, from the rates ``dreambench bench`` measured."""

from __future__ import annotations

from ..methods.base import get_method
from ..methods.recipes import resolve_config
from ..models.profiles import PROFILES, get_profile
from ..protocol import load_protocol


def estimate_protocol(result: dict, subjects: int, prompts: int = 25, per_prompt: int = 4) -> dict:
    """Wall time of the full protocol per method on one device, from the measured rates."""
    proto = load_protocol("dreambooth")
    family = get_profile(result["profile"]).family if result.get("profile") in PROFILES else None
    classes = len({s.class_noun for s in proto.subjects[:subjects]})
    sample_rate = result["sampling"]["images_per_s"]
    images = subjects * prompts * per_prompt
    packing = result.get("packing") or {}
    per_method = {}
    for name, m in result["methods"].items():
        steps = m.get("default_steps") or 0
        packed = packing.get("method") == name and packing["aggregate_steps_per_s"] > m["train_steps_per_s"]
        rate = packing["aggregate_steps_per_s"] if packed else m.get("train_steps_per_s")
        train_s = subjects * steps / rate if m.get("trains") else 0.0
        cfg, _ = resolve_config(get_method(name), None, {}, family=family)
        class_images = classes * int(getattr(cfg, "num_class_images", 0) or 0) \
            if getattr(cfg, "with_prior_preservation", False) else 0
        class_steps = getattr(cfg, "class_sample_steps", 0) or result["sampling"]["sample_steps"]
        class_s = class_images / sample_rate * class_steps / result["sampling"]["sample_steps"]
        gen_s = images / sample_rate
        per_method[name] = {"train_steps_per_subject": steps, "train_s": train_s,
                            "train_rate": (f"{packing['jobs']} packed jobs" if packed else "one job")
                            if m.get("trains") else None, "class_images": class_images,
                            "class_images_s": class_s, "images": images, "generate_s": gen_s,
                            "total_s": train_s + class_s + gen_s,
                            "total_h": (train_s + class_s + gen_s) / 3600}
    whole = result.get("score_folder")
    score_rate = whole["images_per_s"] if whole else result["scoring"]["images_per_s"]
    score_s = images * max(1, len(per_method)) / score_rate
    total = sum(v["total_s"] for v in per_method.values()) + score_s
    return {"subjects": subjects, "prompts": prompts, "images_per_prompt": per_prompt, "classes": classes,
            "per_method": per_method, "score_s": score_s, "total_s": total, "total_h": total / 3600,
            "note": "one device; training at the packed aggregate rate when packing beat one job, else one job "
                    "at a time; sampling and scoring in sequence at the measured batch sizes and sampler steps"}
