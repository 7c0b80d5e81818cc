"""The real-images row (the upper bound of Table 1): the subject's own photos, no model.

Image ``k`` of every prompt (seed ``base * 1000 + k``, see :mod:`dreambench.engine.subject_job`) is real image
``k mod N`` of the subject's N photos, EXIF-corrected, resized (short side = ``size``) and center-cropped
to a square like the generated images, so metrics see both through the same preprocessing. The prompt is
ignored: the row measures how alike real photos of one subject are, not prompt fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..images import load_rgb
from .interface import GenerationRequest, Method, MethodConfig, SubjectData

#: Seeds of one job are ``base * SEED_BLOCK + k`` (k = image number within a prompt).
SEED_BLOCK = 1000


@dataclass
class RealConfig(MethodConfig):
    size: int = field(default=512, metadata={"min": 0,
        "help": "side of the square output in pixels (resize short side + center crop); 0 = keep as is"})


def square(image, size: int):
    """Resize the short side to ``size`` (bicubic) and center-crop to ``size`` x ``size``."""
    from PIL import Image, ImageOps

    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)


class RealImages(Method):
    name = "real"
    description = "the subject's real images (upper bound); image k of a prompt is photo k mod N"
    Config = RealConfig
    trains = False
    needs_model = False

    def train(self, data: SubjectData, workdir: Path) -> None:
        return None

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        out = []
        for r in requests:
            im = load_rgb(data.images[(r.seed % SEED_BLOCK) % len(data.images)])
            out.append(square(im, self.config.size) if self.config.size else im)
        return out
