"""What ``dreambench run --dry-run`` prints of a plan: its labels, jobs, size and estimate
(:func:`format_plan`), and the labels it would replace (:func:`format_replacements`)."""

from __future__ import annotations

from pathlib import Path

from .replace import ALL


def format_plan(plan, est: dict, results_dir: Path) -> str:
    lines = [(f"plan for {results_dir}: profile {plan.spec.profile}, seed {plan.spec.seed}, "
              f"{plan.spec.images_per_prompt} images per prompt")]
    rows = []
    for label in plan.labels():
        jobs = [j for j in plan.jobs if j.kind == "subject" and j.label == label]
        spec = jobs[0].spec["job"]
        mr = next(m for m in plan.spec.methods if m.label == label)
        rows.append((label, spec["method"], mr.table or "-", str(len(jobs)), str(sum(j.images for j in jobs)),
                     str(sum(j.train_steps for j in jobs)),
                     f"{est['device_seconds_per_label'][label] / 3600:.2f}" if label in est['device_seconds_per_label']
                     else "-"))
    header = ("label", "method", "table", "subjects", "images", "train steps", "device-h")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for cj in plan.by_kind("class_images"):
        lines.append(f"shared: class images '{cj.subject}' x{cj.images} (job {cj.id})")
    n = est["jobs"]
    lines.append(f"jobs: {sum(n.values())} ({n['class_images']} class-image, {n['subject']} subject, "
                 f"{n['score']} score, {n['tables']} tables); images: {est['images']}; "
                 f"training steps: {est['train_steps']}")
    lines.append(estimate_line(est))
    if est.get("reference_device_hours") is not None:
        lines.append(f"(the plain reference loop at batch 4 would take {est['reference_device_hours']} GPU-hours)")
    lines.append(f"rates: {est['basis']}")
    return "\n".join(lines)


def estimate_line(est: dict) -> str:
    """The estimate in one line: device-hours and their parts, or why there is none."""
    if est["device_hours"] is None:
        return "estimated device-hours: none (no calibration for this device; see rates below)"
    sec = est["device_seconds"]
    scoring = f"{sec['score']:.0f} s" if est.get("scoring_estimated") else "not estimated"
    return (f"estimated device-hours: {est['device_hours']} on one device (class images {sec['class_images']:.0f} s, "
            f"subjects {sec['subject']:.0f} s, scoring {scoring})")


def format_replacements(found: list, replace: tuple[str, ...]) -> str:
    """What ``--dry-run`` says of labels made before with other settings."""
    if not found:
        return "replaces: nothing (no label of this plan was made before with other settings)"
    lines = []
    for r in found:
        if not r.refusable:  # the method's code changed: its jobs run again, without asking
            lines.append(f"would re-make {r.describe()} (a method's code is not a setting: re-made without --replace)")
            continue
        allowed = ALL in replace or r.label in replace
        lines.append(f"would replace {r.describe()}" + ("" if allowed else f" (refused without --replace {r.label})"))
    return "\n".join(lines)
