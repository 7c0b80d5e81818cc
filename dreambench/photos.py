"""Subject photos decoded once per job, at the resolution training needs.

A job used to decode each photo twice at full size (once to check it, once in ``load_pixels``) and resize
float tensors. Now :func:`decode_photo` reads each photo once: the header gives its size, frame count and
mode (what a data check needs, see :class:`Photo`), JPEG's draft mode decodes it straight to a reduced
size (libjpeg's DCT scaling by 1/2, 1/4 or 1/8, never below ``DRAFT_MARGIN`` times the short side
training needs), and :func:`square_pixels` makes the training square with one exact bicubic resize of the
centre square of the reduced image.

:func:`prepare_subject_data <dreambench.engine.subject_job.prepare_subject_data>` decodes the job's photos and
hands them to :func:`load_pixels <dreambench.methods.training.load_pixels>` through :func:`keep` /
:func:`take` (a small in-process hand-off, emptied as training reads it), so the photos of a job are
decoded once.

The pixels differ from the old full-decode path (float bicubic resize of the full image) by more than one
level on the DreamBooth photos (at 512 px: up to 9 levels, 2% of the values more than 1 level apart), so
the change is versioned: :data:`PHOTO_DECODE` is part of every subject job's id, and a results folder made
with the old decoding re-trains rather than mixing artifacts made from different pixels.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from .errors import DataError
from .images import ImageWarning, decode_errors, describe_mode, to_rgb

#: How subject photos become training pixels. Part of every subject job's id (engine/kinds/subject.py).
PHOTO_DECODE = "photos-v2: JPEG draft >= 2x short side, one bicubic resize of the centre square"
#: The draft size keeps at least this many times the needed short side, so the final bicubic resize
#: (antialiased) still does the filtering and DCT scaling only drops detail the resize would discard.
DRAFT_MARGIN = 2
_KEEP_MAX = 32  # decoded photos waiting in the hand-off (a job has 3-6)

_EXIF_SWAPS = {5, 6, 7, 8}  # orientations that turn the image by 90 degrees


@dataclass(frozen=True)
class Photo:
    """One decoded photo.

    Attributes:
        path: the file.
        size: (width, height) in pixels of the full image after its EXIF orientation, from the header
            (a minimum-size check reads this, not ``image.size``).
        frames: frames in the file (1 for a still photo; animated files and multi-picture JPEGs have more).
        format: the file's format as PIL names it, e.g. ``JPEG``, ``MPO``, ``PNG``.
        mode: the file's PIL mode before the RGB conversion, e.g. ``RGB``, ``CMYK``, ``P``.
        image: 8-bit RGB, EXIF orientation applied, reduced to a short side of at least
            ``DRAFT_MARGIN * short_side`` (or the full size when that is smaller or no size was asked).
    """

    path: Path
    size: tuple[int, int]
    frames: int
    format: str
    mode: str
    image: Image.Image

    @property
    def short_side(self) -> int:
        return min(self.size)


def _draft(im: Image.Image, short_side: int | None) -> None:
    if not short_side:
        return
    w, h = im.size
    r = min(1.0, DRAFT_MARGIN * short_side / min(w, h))
    if r < 1.0:  # draft() is a no-op for formats other than JPEG (and MPO, its multi-picture form)
        im.draft("RGB", (math.ceil(w * r), math.ceil(h * r)))


def decode_photo(path: str | Path, short_side: int | None = None) -> Photo:
    """Decode ``path`` once, reduced for a training short side of ``short_side`` pixels (None: full size).

    Raises :class:`DataError` naming the file when it cannot be decoded (missing, not an image, truncated);
    emits :class:`dreambench.images.ImageWarning` for an EXIF rotation or a mode conversion."""
    path = Path(path)
    with decode_errors(path), Image.open(path) as im:
        w, h = im.size
        frames = int(getattr(im, "n_frames", 1) or 1)
        fmt, mode = im.format or "", im.mode
        orientation = im.getexif().get(0x0112, 1)
        _draft(im, short_side)
        im.load()  # decode now: a truncated file fails here, naming the file
        out = ImageOps.exif_transpose(im)
    if orientation not in (1, None):
        warnings.warn(f"{path}: EXIF orientation {orientation} applied", ImageWarning, stacklevel=2)
    if out.mode != "RGB":
        out = to_rgb(out)
    if mode != "RGB":
        warnings.warn(f"{path}: {describe_mode(mode)} image converted to RGB", ImageWarning, stacklevel=2)
    size = (h, w) if orientation in _EXIF_SWAPS else (w, h)
    return Photo(path, size, frames, fmt, mode, out)


def photo_problem(path: Path, size: tuple[int, int], frames: int, fmt: str, min_short_side: int = 0) -> str | None:
    """Why a photo of this header (full ``size`` after its EXIF orientation, ``frames``, PIL ``fmt``) is no
    usable subject photo, as a message naming ``path``, or None: animated (more than one frame: which one
    would be the photo?) or a short side below ``min_short_side``. A multi-picture JPEG (MPO: phones store
    a preview or depth picture after the photo; 42 of the 158 DreamBooth photos) is a still photo: its
    first picture is decoded."""
    if frames > 1 and fmt != "MPO":
        return f"{path}: animated image ({frames} frames); use a still photo"
    if min_short_side and min(size) < min_short_side:
        return f"{path}: {size[0]}x{size[1]} px, short side below {min_short_side} px"
    return None


def check_photo(photo: Photo, min_short_side: int = 0) -> Photo:
    """``photo`` if it is usable as a subject photo (:func:`photo_problem`), else :class:`DataError` naming it."""
    problem = photo_problem(photo.path, photo.size, photo.frames, photo.format, min_short_side)
    if problem:
        raise DataError(problem)
    return photo


def check_header(path: str | Path, min_short_side: int = 0) -> None:
    """The checks of :func:`check_photo` from the file's header alone (no pixel decoded: a few
    milliseconds): :class:`DataError` naming the file when it is missing, not an image, a decompression
    bomb (a header claiming more pixels than Pillow's limit), animated or too small. A truncated file
    passes here; decoding it fails (:func:`decode_photo`)."""
    path = Path(path)
    with decode_errors(path), Image.open(path) as im:
        w, h = im.size
        frames = int(getattr(im, "n_frames", 1) or 1)
        fmt = im.format or ""
        orientation = im.getexif().get(0x0112, 1)
    size = (h, w) if orientation in _EXIF_SWAPS else (w, h)
    problem = photo_problem(path, size, frames, fmt, min_short_side)
    if problem:
        raise DataError(problem)


def square_pixels(image: Image.Image, resolution: int) -> Image.Image:
    """The centre square of ``image`` resized to ``resolution`` x ``resolution`` (bicubic, antialiased),
    in one resampling: the same framing as resizing the short side to ``resolution`` and cropping the
    centre."""
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) / 2, (h - s) / 2
    return image.resize((resolution, resolution), Image.Resampling.BICUBIC, box=(left, top, left + s, top + s))


# ------------------------------------------------------------------------------ the hand-off of a job
_kept: OrderedDict[tuple, Photo] = OrderedDict()


def _key(path: Path, short_side: int | None) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size, short_side)


def keep(photo: Photo, short_side: int | None) -> None:
    """Hold ``photo`` (decoded for ``short_side``) for the next :func:`take` of its file in this process;
    the oldest is dropped beyond a few dozen."""
    _kept[_key(photo.path, short_side)] = photo
    while len(_kept) > _KEEP_MAX:
        _kept.popitem(last=False)


def take(path: str | Path, short_side: int | None) -> Photo:
    """The photo :func:`keep` holds for this unchanged file and size (removing it), else a fresh decode."""
    path = Path(path)
    try:
        photo = _kept.pop(_key(path, short_side), None)
    except OSError:
        photo = None
    return photo if photo is not None else decode_photo(path, short_side)
