"""Device-level measuring helpers of ``dreambench bench``: synchronisation, peak memory, FLOP counting,
the achieved bf16 matmul rate and the datasheet peak it is compared with."""

from __future__ import annotations

import time
from typing import Any

import torch

#: Dense bf16 tensor-core peaks from NVIDIA datasheets (TFLOP/s, no sparsity), by device-name substring.
DATASHEET_BF16_TFLOPS = {
    "H100 80GB HBM3": 989.4,   # H100 SXM5
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.05,
    "L4": 121.0,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def count_flops(fn: Any) -> int:
    """FLOPs of one call of ``fn`` as counted by ``FlopCounterMode`` (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def datasheet_peak(device_name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def measure_matmul(device: torch.device, n: int | None = None, reps: int = 10) -> dict:
    """Achieved bf16 matmul TFLOP/s (n x n x n products): the practical peak of this device."""
    n = n or (8192 if device.type == "cuda" else 512)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    s = time.perf_counter() - t0
    return {"n": n, "reps": reps, "tflops": 2 * n**3 * reps / s / 1e12}


def fractions(flops: float | None, rate: float, peaks: dict) -> dict:
    """Achieved TFLOP/s for ``rate`` units/s of ``flops`` each, and its fraction of each peak."""
    if not flops or not rate:
        return {"achieved_tflops": None, "fraction_of_datasheet_peak": None, "fraction_of_measured_matmul": None}
    achieved = flops * rate / 1e12
    return {
        "achieved_tflops": achieved,
        "fraction_of_datasheet_peak": achieved / peaks["datasheet_tflops"] if peaks.get("datasheet_tflops") else None,
        "fraction_of_measured_matmul": achieved / peaks["matmul"]["tflops"],
    }
