"""Images as the reference sends them: a base64 JPEG of the image squashed to 512 x 512.

The reference (``eval_concept_preservation.py`` with ``utils/image_utils.load_image`` and
``utils/gpt_utils.encode_image_into_base64``) does, in order: open, ``ImageOps.exif_transpose``, RGBA
composited on white, ``convert("RGB")``, ``resize((512, 512))`` (Pillow's default filter, aspect ratio not
kept), ``load_image`` again on the result (exif transpose and conversion, no-ops by then), and
``save(format="JPEG")`` at Pillow's default quality, base64-encoded. :func:`encode_image` makes the same
calls in the same order, so the bytes are equal for the same Pillow version.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

from PIL import Image, ImageOps

from ..errors import DataError
from ..io import sha256_file

#: Image modes the reference accepts (it raises on any other).
SUPPORTED_MODES = ("L", "RGB", "RGBA", "CMYK")


def _load(image: Image.Image) -> Image.Image:
    """The reference's ``load_image`` on an opened image: exif transpose, RGBA on white, RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode not in SUPPORTED_MODES:
        raise DataError(f"image mode {image.mode} is not one of {', '.join(SUPPORTED_MODES)} (the reference's "
                        "load_image refuses it)")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def encode_image(path: str | Path, size: int = 512) -> str:
    """The base64 text (no ``data:`` prefix) of ``path`` preprocessed as the reference does."""
    try:
        with Image.open(path) as im:
            image = _load(im).resize((size, size))
    except (OSError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    image = _load(image)  # encode_image_into_base64 calls load_image again
    buffered = io.BytesIO()
    image.save(buffered, format="JPEG")
    return base64.b64encode(buffered.getvalue()).decode("utf-8")


def data_url(b64: str) -> str:
    """The ``image_url.url`` of an encoded image."""
    return f"data:image/jpeg;base64,{b64}"


class ImageCache:
    """Encodes each image once (thread-safe): ``get(path)`` returns the base64 text; ``sha256(path)`` the
    sha256 of the file's bytes (the content key), also computed once."""

    def __init__(self, size: int = 512):
        self.size = size
        self._b64: dict[str, str] = {}
        self._sha: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, path: str | Path) -> str:
        key = str(path)
        with self._lock(key):
            if key not in self._b64:
                self._b64[key] = encode_image(key, self.size)
            return self._b64[key]

    def sha256(self, path: str | Path) -> str:
        key = str(path)
        with self._lock(key):
            if key not in self._sha:
                self._sha[key] = sha256_file(key)
            return self._sha[key]

    @property
    def encoded(self) -> int:
        """How many images were encoded."""
        return len(self._b64)
