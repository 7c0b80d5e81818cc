#!/usr/bin/env bash
# Every GPU target of issues 3-5 and 15 in ONE device call, from the repository root:
#   bash benchmarks/gpu_bench.sh [all|sdxl|dreambooth|others|variants]      (results in $OUT, default benchmarks/out)
# `sdxl` is the SECOND prepared call (issue 24): SDXL rows at 1024 px on sdxl-random, budgeted like `all`.
# `all` (the default) is one `dreambench bench` process: the reference loop, dreambooth with the CUDA defaults,
# dreambooth-lora, textual-inversion, packed dreambooth training, sampling at batch 25 and `dreambench score`
# on 3,000 PNGs. It writes $OUT/bench.json and the one-page $OUT/summary.md, and is budgeted to end within
# 8 minutes on one H100/H200, machine start not included (benchmarks/README.md has the budget).
# On the device tool's machine: carry .whl (benchmarks/README.md says how to fill it); the dataset does not
# travel there, so bench uses its synthetic stand-in photos (throughput does not depend on what they show).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}" PY="${PYTHON:-python3}"
mkdir -p "$OUT"
t0=$(date +%s)
if [ -d .whl ] && ! "$PY" -c "import diffusers, open_clip, lpips" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# One compile per shape: the packed workers (separate processes) and every bench phase read the kernels and
# FX/autograd graphs compiled first from this cache instead of compiling their own.
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/dreambench-inductor}" \
       TORCHINDUCTOR_FX_GRAPH_CACHE=1 TORCHINDUCTOR_AUTOGRAD_CACHE=1
# DEVICE=cpu PROFILE=tiny STEPS=2 PACK=0 SCORE_IMAGES=8 smoke-tests this script on a machine without a GPU (CI).
DEVICE="${DEVICE:-cuda}" PROFILE="${PROFILE:-sd15-random}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
fi
"$PY" -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee "$OUT/versions.txt"
bench() {  # bench NAME ARGS...: one `dreambench bench` into $OUT/NAME, its log in $OUT/NAME.log
  local name=$1; shift
  "$PY" -m dreambench --results "$OUT/$name" bench --profile "$PROFILE" --device "$DEVICE" "$@" 2>&1 | tee "$OUT/$name.log"
}
what="${1:-all}"
summarize() {  # summarize NAME RC: $OUT/NAME/bench.json -> $OUT/bench[-NAME].json and $OUT/summary[-NAME].md
  local suffix=""; [ "$1" = all ] || suffix="-$1"
  [ -f "$OUT/$1/bench.json" ] && cp "$OUT/$1/bench.json" "$OUT/bench$suffix.json"
  "$PY" - "$OUT" "$2" "$(( $(date +%s) - t0 ))" "$suffix" <<'PYEOF'
import json, sys
from pathlib import Path
out, rc, wall, suffix = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = [f"# dreambench GPU bench{suffix}: one call, {wall} s in the script (exit {rc})", ""]
if (out / f"bench{suffix}.json").is_file():
    from dreambench.bench import format_bench
    lines += ["```", format_bench(json.loads((out / f"bench{suffix}.json").read_text())), "```"]
else:
    lines += [f"bench{suffix}.json was not written (see the log): the run failed or overran BUDGET_S."]
(out / f"summary{suffix}.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
}
if [ "$what" = sdxl ]; then
  # SDXL at 1024 px (sdxl-random: the base model's shapes, random init): the diffusers SDXL LoRA script's
  # step (the reference loop) beside dreambooth-lora's own loop, and sampling at batch 4 (50 Euler steps).
  # No packing (one SDXL LoRA job already fills the GPU far more than an SD 1.5 one) and no score folder
  # (scoring does not depend on the model; `all` measures it).
  set +e
  timeout "${BUDGET_S:-450}" "$PY" -m dreambench --results "$OUT/sdxl" bench --profile "${PROFILE_SDXL:-sdxl-random}" \
    --device "$DEVICE" --steps "${STEPS:-20}" --method dreambooth-lora --batch "${BATCH_SDXL:-4}" --pack 0 \
    --score-images 0 2>&1 | tee "$OUT/sdxl.log"
  rc=${PIPESTATUS[0]}
  set -e
  summarize sdxl "$rc"
  exit "$rc"
fi
if [ "$what" = all ]; then
  # 20 timed steps (after the warm-up at the timed shapes) keep steps/s within a few percent; BUDGET_S bounds
  # the whole process so that the call returns with its log even if a phase overruns.
  set +e
  timeout "${BUDGET_S:-450}" "$PY" -m dreambench --results "$OUT/all" bench --profile "$PROFILE" --device "$DEVICE" \
    --steps "${STEPS:-20}" --method dreambooth --method dreambooth-lora --method textual-inversion \
    --pack "${PACK:-4}" --score-images "${SCORE_IMAGES:-3000}" 2>&1 | tee "$OUT/all.log"
  rc=${PIPESTATUS[0]}
  set -e
  [ -f "$OUT/all/bench.json" ] && cp "$OUT/all/bench.json" "$OUT/bench.json"
  "$PY" - "$OUT" "$rc" "$(( $(date +%s) - t0 ))" <<'PYEOF'
import json, sys
from pathlib import Path
out, rc, wall = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lines = [f"# dreambench GPU bench: one call, {wall} s in the script (exit {rc})", ""]
if (out / "bench.json").is_file():
    from dreambench.bench import format_bench
    lines += ["```", format_bench(json.loads((out / "bench.json").read_text())), "```"]
else:
    lines += ["bench.json was not written (see all.log): the run failed or overran BUDGET_S."]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
  exit "$rc"
fi
if [ "$what" = dreambooth ]; then
  # Reference loop, dreambooth (CUDA defaults), packed dreambooth jobs, sampling at batch 25, score on PNGs.
  bench dreambooth --steps "${STEPS:-30}" --method dreambooth --pack "${PACK:-4}" --score-images "${SCORE_IMAGES:-3000}"
fi
if [ "$what" = others ]; then
  # The other training methods, and dreambooth without compile for comparison.
  bench others --steps "${STEPS:-30}" --method dreambooth-lora --method textual-inversion --pack 0 --score-images 0
  bench eager --steps "${STEPS:-30}" --method dreambooth --set compile=no --pack 0 --score-images 0
fi
if [ "$what" = variants ]; then
  # Levers not on by default yet: CUDA graphs for training, a compiled UNet for sampling.
  bench variants --steps "${STEPS:-30}" --method dreambooth --set compile_mode=reduce-overhead --set sample_compile=yes \
    --pack 0 --score-images 0
fi
