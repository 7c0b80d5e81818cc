"""Whether the device a run or ``doctor`` asks for is on this machine, checked before anything loads.

``--device cuda`` without a visible CUDA GPU, ``--gpus`` on a machine without one (which would otherwise
run on CPU, silently), a GPU index the machine does not show, or ``--gpus`` with ``--device cpu`` are each
refused with one line (:class:`dreambench.errors.ConfigError`), instead of a traceback from the first
tensor moved to the device or hours on the wrong device. torch is imported only when a GPU is asked for.
"""

from __future__ import annotations

from ..errors import ConfigError


def check_device(device: str | None, gpus: list[int] | None = None) -> None:
    """Refuse a ``device`` (``auto``/None, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) or a ``gpus`` list
    (CUDA indices) this machine cannot run; return quietly when it can."""
    device = device or "auto"
    given = f"--gpus {','.join(map(str, gpus))}" if gpus else ""
    if device == "cpu":
        if gpus:
            raise ConfigError(f"{given}: GPU indices with --device cpu; drop --gpus (CPU workers: --jobs-per-gpu)")
        return
    if device == "auto" and not gpus:
        return
    import torch

    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("--device mps: no Apple MPS device is available here; use --device cpu")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "no NVIDIA driver or GPU is visible")
        what = given if device == "auto" else f"--device {device}"
        raise ConfigError(f"{what}: no CUDA GPU on this machine ({why}); run on CPU with --device cpu"
                          + (" and without --gpus" if gpus else "") + ", or on a machine with a GPU")
    index = int(device.split(":")[1]) if device.startswith("cuda:") and device.split(":")[1].isdigit() else None
    wanted = ([index] if index is not None else []) + list(gpus or [])
    missing = [g for g in wanted if not 0 <= g < count]
    if missing:
        what = given or f"--device {device}"
        raise ConfigError(f"{what}: GPU {', '.join(map(str, missing))} not visible; this machine shows {count} "
                          f"GPU(s), indices 0-{count - 1}")
