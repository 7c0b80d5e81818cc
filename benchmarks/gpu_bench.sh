#!/usr/bin/env bash
# The GPU figures of issues 3-5, on one CUDA machine, from the repository root:
#   bash benchmarks/gpu_bench.sh [all|dreambooth|others|variants]      (results in $OUT, default benchmarks/out)
# On the device tool's machine: carry .whl (benchmarks/README.md says how to fill it); the dataset does not
# travel there, so bench uses its synthetic stand-in photos (throughput does not depend on what they show).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}" PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if [ -d .whl ] && ! "$PY" -c "import diffusers, open_clip, lpips" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# DEVICE=cpu PROFILE=tiny STEPS=2 PACK=2 SCORE_IMAGES=40 smoke-tests this script on a machine without a GPU.
DEVICE="${DEVICE:-cuda}" PROFILE="${PROFILE:-sd15-random}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
fi
"$PY" -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee "$OUT/versions.txt"
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = dreambooth ]; then
  # Reference loop, dreambooth (compile + channels_last: the CUDA defaults), 4 packed dreambooth jobs,
  # sampling at batch 25, and `dreambench score` on 3,000 512 px PNGs; writes $OUT/dreambooth/bench.json.
  "$PY" -m dreambench --results "$OUT/dreambooth" bench --profile "$PROFILE" --device "$DEVICE" --steps "${STEPS:-30}" \
    --method dreambooth --pack "${PACK:-4}" --score-images "${SCORE_IMAGES:-3000}" 2>&1 | tee "$OUT/dreambooth.log"
fi
if [ "$what" = all ] || [ "$what" = others ]; then
  # Steps/s and peak memory of the other training methods, and dreambooth without compile for comparison.
  "$PY" -m dreambench --results "$OUT/others" bench --profile "$PROFILE" --device "$DEVICE" --steps "${STEPS:-30}" \
    --method dreambooth-lora --method textual-inversion --pack 0 --score-images 0 2>&1 | tee "$OUT/others.log"
  "$PY" -m dreambench --results "$OUT/eager" bench --profile "$PROFILE" --device "$DEVICE" --steps "${STEPS:-30}" \
    --method dreambooth --set compile=no --pack 0 --score-images 0 2>&1 | tee "$OUT/eager.log"
fi
if [ "$what" = variants ]; then
  # Levers not on by default yet: CUDA graphs for training, a compiled UNet for sampling.
  "$PY" -m dreambench --results "$OUT/variants" bench --profile "$PROFILE" --device "$DEVICE" --steps "${STEPS:-30}" \
    --method dreambooth --set compile_mode=reduce-overhead --set sample_compile=yes --pack 0 --score-images 0 \
    2>&1 | tee "$OUT/variants.log"
fi
