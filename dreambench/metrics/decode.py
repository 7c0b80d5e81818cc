"""Image decoding for scoring: load, resize and crop on a thread pool, ahead of the GPU.

Each image is decoded once (:func:`dreambench.images.load_rgb`: EXIF orientation, RGB conversion) and
turned into one uint8 CHW tensor per requested geometry (short-side resize + center crop). Mean/std
normalization happens later on the device, in batch. PIL releases the GIL while decoding and resizing,
so threads scale with cores without the start-up and pickling costs of worker processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from ..images import load_rgb

T = TypeVar("T")
R = TypeVar("R")

#: (short-side resize, center crop, interpolation): the geometry part of a transform.
Geometry = tuple[int, int, str]
#: The geometry of "no resize, no crop": the decoded image as it is (DIV at native resolution).
NATIVE: Geometry = (0, 0, "native")


def default_workers() -> int:
    """Decode threads: one per core, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def resize_crop(image: Image.Image, resize: int, crop: int, interpolation: str = "bicubic") -> Image.Image:
    """Short side to ``resize`` pixels (torchvision ``Resize`` on a PIL image), then a center crop."""
    mode = InterpolationMode(interpolation)
    return TF.center_crop(TF.resize(image, resize, interpolation=mode), crop)


def to_uint8_chw(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def decode(path: str | Path, geometries: Iterable[Geometry]) -> dict[Geometry, torch.Tensor]:
    """Decode one image and return a uint8 (3, crop, crop) tensor per geometry (for :data:`NATIVE`, the
    image at its own size).

    Raises :class:`dreambench.errors.DataError` naming the file when it cannot be decoded."""
    image = load_rgb(path)
    resized: dict[tuple[int, str], Image.Image] = {}
    out = {}
    for g in geometries:
        if g == NATIVE:
            out[g] = to_uint8_chw(image)
            continue
        resize, crop, interp = g
        key = (resize, interp)
        if key not in resized:  # DINO (256) and LPIPS (256) share one resize
            resized[key] = TF.resize(image, resize, interpolation=InterpolationMode(interp))
        out[g] = to_uint8_chw(TF.center_crop(resized[key], crop))
    return out


def prefetch_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, ahead: int | None = None
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Apply ``fn`` to ``items`` on a thread pool, yielding ``(item, result, error)`` in input order.

    At most ``ahead`` calls are in flight (default 4 per worker), so memory stays bounded while the
    consumer (the GPU loop) works on earlier results. An exception raised by ``fn`` is returned as
    ``error`` rather than raised, so one bad file does not stop the others."""
    workers = workers or default_workers()
    ahead = ahead or 4 * workers
    it = iter(items)
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for item in it:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= ahead:
                break
        while pending:
            item, fut = pending.popleft()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append((nxt, pool.submit(fn, nxt)))
            try:
                yield item, fut.result(), None
            except Exception as e:  # noqa: BLE001 - reported per item by the caller
                yield item, None, e


_END = object()
