"""Reading images the way every part of the suite must: EXIF orientation applied, converted to RGB.

The DreamBooth photos are phone JPEGs: some carry an EXIF rotation, and user folders may hold CMYK,
palette, alpha or 16-bit files. All of them are read through :func:`load_rgb`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Smallest short side (pixels) accepted for a subject image: SD trains at 512, metrics crop 224.
MIN_SHORT_SIDE = 256


class ImageWarning(UserWarning):
    """An image that was usable after a conversion (mode, EXIF orientation)."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        p for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


@contextlib.contextmanager
def decode_errors(path: Path) -> Iterator[None]:
    """Turn Pillow's decoding failures inside the block into one :class:`DataError` naming ``path``: the one
    wording of "missing / not an image / truncated / decompression bomb" for every decoder of the suite (a
    header claiming more than twice ``Image.MAX_IMAGE_PIXELS`` is refused by ``Image.open``)."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: unreadable: not an image file (or a format Pillow cannot decode)") from None
    except Image.DecompressionBombError as e:  # not an OSError: the header claims too many pixels
        raise DataError(f"{path}: refused: decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def load_rgb(path: str | Path, min_short_side: int = 0) -> Image.Image:
    """Decode an image fully, apply its EXIF orientation and convert it to 8-bit RGB.

    Raises :class:`DataError` naming the file when it cannot be decoded (truncated, not an image), is
    animated (more than one frame) or its short side is below ``min_short_side``. Emits :class:`ImageWarning` for conversions."""
    path = Path(path)
    with decode_errors(path), Image.open(path) as im:
        frames = int(getattr(im, "n_frames", 1) or 1)
        # An MPO (camera JPEG with an embedded preview or depth picture) is a still photo: frame 0 is
        # the primary image. Only a real animation leaves "which frame is the photo?" unanswered.
        if frames > 1 and im.format != "MPO":
            raise DataError(f"{path}: animated image ({frames} frames); use a still photo")
        im.load()  # decode now: a truncated file fails here, not later inside a worker
        mode = im.mode
        exif_orientation = im.getexif().get(0x0112, 1)
        out = ImageOps.exif_transpose(im)
    if exif_orientation not in (1, None):
        warnings.warn(f"{path}: EXIF orientation {exif_orientation} applied", ImageWarning, stacklevel=2)
    if mode != "RGB":
        out = to_rgb(out)
        warnings.warn(f"{path}: {describe_mode(mode)} image converted to RGB", ImageWarning, stacklevel=2)
    if min_short_side and min(out.size) < min_short_side:
        raise DataError(f"{path}: {out.size[0]}x{out.size[1]} px, short side below {min_short_side} px")
    return out


_MODE_NAMES = {
    "CMYK": "CMYK",
    "P": "palette (P)",
    "PA": "palette with alpha (PA)",
    "RGBA": "RGBA (alpha composited on white)",
    "LA": "grayscale with alpha (LA)",
    "L": "grayscale (L)",
    "1": "1-bit (1)",
    "I;16": "16-bit (I;16)",
    "I;16B": "16-bit (I;16B)",
    "I;16L": "16-bit (I;16L)",
    "I": "32-bit integer (I)",
    "F": "32-bit float (F)",
    "YCbCr": "YCbCr",
    "LAB": "Lab",
    "HSV": "HSV",
}


def describe_mode(mode: str) -> str:
    """A reader's name for a PIL mode, e.g. ``"palette (P)"``, ``"16-bit (I;16)"``."""
    return _MODE_NAMES.get(mode, mode)


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: alpha composited on white, 16-bit and float scaled to 0..255."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        return Image.fromarray((a / hi * 255).round().clip(0, 255).astype("uint8")).convert("RGB")
    if im.mode == "F":
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        return Image.fromarray((a.clip(0, 1) * 255).round().astype("uint8")).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")
