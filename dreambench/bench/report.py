"""The table ``dreambench bench`` prints."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_bench(r: dict) -> str:
    """A table of the measured figures (what ``dreambench bench`` prints)."""
    p = r["peak"]
    lines = [f"bench: profile {r['profile']} ({r['weights']}), {r['device_name']} [{r['device']}], torch {r['torch']}",
             (f"bf16 matmul measured: {p['matmul']['tflops']:.2f} TFLOP/s; datasheet peak: "
             f"{p['datasheet_tflops'] if p['datasheet_tflops'] else 'unknown'}"),
             f"photos: {r.get('data')}",
             f"{'work':<28}{'rate':>16}{'peak mem':>10}{'TFLOP/unit':>12}{'TFLOP/s':>10}{'% sheet':>9}{'% matmul':>9}"]

    def row(label: str, rate: float, unit: str, mem: float | None, flops: float | None, d: dict) -> None:
        lines.append(f"{label:<28}{rate:>11.3f} {unit:<4}{('-' if mem is None else f'{mem:.1f} GB'):>10}"
                     f"{('-' if flops is None else f'{flops / 1e12:.4f}'):>12}{(d.get('achieved_tflops') or 0):>10.3f}"
                     f"{_pct(d.get('fraction_of_datasheet_peak')):>9}{_pct(d.get('fraction_of_measured_matmul')):>9}")

    ref = r["reference"]
    row("train: reference loop", ref["train_steps_per_s"], "st/s", ref["peak_mem_GB"], ref["flops_per_step"], ref)
    for m, v in r["methods"].items():
        if v.get("trains"):
            row(f"train: {m}", v["train_steps_per_s"], "st/s", v["peak_mem_GB"], v["flops_per_step"], v)
    pk = r.get("packing")
    if pk:
        row(f"train: {pk['method']} x{pk['jobs']} packed", pk["aggregate_steps_per_s"], "st/s",
            max(pk["peak_mem_GB_per_job"]) if pk["peak_mem_GB_per_job"] else None, None, pk)
        lines.append(f"  packing: {pk['speedup_vs_reference']:.2f}x the reference loop, "
                     f"{pk['speedup_vs_one_job']:.2f}x one job (peak mem is per job; CUDA MPS "
                     f"{'running' if r.get('cuda_mps') else 'not running'})")
    pi = r.get("packing_inprocess")
    if pi and pi.get("supported"):
        row(f"train: {pi['method']} x{pi['jobs']} in-process", pi["aggregate_steps_per_s"], "st/s",
            pi["peak_mem_GB_total"], None, pi)
        vs = f", {pi['vs_process_packing']:.2f}x process packing" if pi.get("vs_process_packing") else ""
        lines.append(f"  in-process packing: {pi['speedup_vs_reference']:.2f}x the reference loop, "
                     f"{pi['speedup_vs_one_job']:.2f}x one job{vs} (peak mem is all jobs; {pi['streams']})")
    elif pi:
        lines.append(f"  in-process packing: not measured ({pi['why']})")
    s = r["sampling"]
    row(f"sample: b{s['batch']} x{s['sample_steps']} steps", s["images_per_s"], "im/s", None, s["flops_per_image"], s)
    sc = r["scoring"]
    row(f"score: dino+clip b{sc['batch']}", sc["images_per_s"], "im/s", None, sc["flops_per_image"], sc)
    sf = r.get("score_folder")
    if sf:
        lines.append(f"score: dreambench score on {sf['images']} PNGs ({sf['size']} px): {sf['seconds']:.1f} s, "
                     f"{sf['images_per_s']:.1f} im/s end to end")
    e = r["estimate"]
    lines.append(f"estimated full protocol ({e['subjects']} subjects x {e['prompts']} prompts x "
                 f"{e['images_per_prompt']} images) on this device: {e['total_h']:.2f} h")
    for m, v in e["per_method"].items():
        lines.append(f"  {m}: {v['total_h']:.2f} h (train {v['train_s'] / 3600:.2f} h"
                     f"{' at ' + v['train_rate'] if v['train_rate'] else ''}, {v['class_images']} class images "
                     f"{v['class_images_s'] / 3600:.2f} h, generate {v['generate_s'] / 3600:.2f} h)")
    lines.append(f"  scoring: {e['score_s'] / 3600:.3f} h")
    if r["weights"] == "random-init":
        lines.append("(random-init weights: throughput figures only, not quality)")
    return "\n".join(lines)
