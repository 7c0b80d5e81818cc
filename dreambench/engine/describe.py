"""What ``dreambench run --dry-run`` prints of a plan: its labels, jobs, size and estimate
(:func:`format_plan`), and the labels it would replace (:func:`format_replacements`)."""

from __future__ import annotations

from pathlib import Path

from .replace import ALL


def _label_hours(est: dict, label: str) -> str:
    per_label = est["device_seconds_per_label"]
    return "-" if per_label is None else f"{per_label.get(label, 0) / 3600:.2f}"


def format_plan(plan, est: dict, results_dir: Path) -> str:
    lines = [(f"plan for {results_dir}: profile {plan.spec.profile}, seed {plan.spec.seed}, "
              f"{plan.spec.images_per_prompt} images per prompt")]
    rows = []
    for label in plan.labels():
        jobs = [j for j in plan.jobs if j.kind == "subject" and j.label == label]
        spec = jobs[0].spec["job"]
        mr = next(m for m in plan.spec.methods if m.label == label)
        rows.append((label, spec["method"], mr.table or "-", str(len(jobs)), str(sum(j.images for j in jobs)),
                     str(sum(j.train_steps for j in jobs)), _label_hours(est, label)))
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
    if est["device_hours"] is None:
        lines.append("estimated GPU-hours: not estimated (no measured rate; see rates)")
    else:
        lines.append(f"estimated GPU-hours: {est['device_hours']} on one device "
                     f"(class images {est['device_seconds']['class_images']:.0f} s, subjects "
                     f"{est['device_seconds']['subject']:.0f} s, scoring {est['device_seconds']['score']:.0f} s)")
    if est.get("reference_device_hours") is not None:
        lines.append(f"(the plain reference loop at batch 4 would take {est['reference_device_hours']} GPU-hours)")
    lines.append(f"rates: {est['basis']}")
    return "\n".join(lines)


def format_replacements(found: list, replace: tuple[str, ...]) -> str:
    """What ``--dry-run`` says of labels made before with other settings."""
    if not found:
        return "replaces: nothing (no label of this plan was made before with other settings)"
    lines = []
    for r in found:
        allowed = ALL in replace or r.label in replace
        lines.append(f"would replace {r.describe()}" + ("" if allowed else f" (refused without --replace {r.label})"))
    return "\n".join(lines)
