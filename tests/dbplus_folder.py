"""A folder in DreamBench++'s exact data layout, built from DreamBooth photos, for tests.

The DreamBench++ images are not redistributed (and tests never reach the network), so tests build the
same layout (``images/{live_subject/animal, live_subject/human, object, style}/NN.jpg`` with
``captions/<same path>/NN.txt``: the subject noun, then 9 prompts) from the DreamBooth dataset in
``../shared/dreambooth-dataset``; the captions are written here. Stand-ins, not DreamBench++ data:

- animal: the DreamBooth dog and cat photos;
- human: the DreamBooth dataset has no person, so a plush toy photo stands in for a person (only the layout
  and the category matter to the tests);
- object: DreamBooth objects; style: cartoon/toy photos standing in for style references.

Subject nouns carry spaces and hyphens (``spider-man figure``, ``t-shirt``, ``ukiyo-e painting``) as the
published ones do, so collection_id building is exercised.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

from dreambench.data.dreambench_plus.layout import CATEGORY_DIRS, N_PROMPTS
from dreambench.data.dreambench_plus.source import PinnedZip

#: Per category: (DreamBooth subject folder, the subject noun its captions use).
STAND_INS = {
    "animal": [("dog", "Corgi dog"), ("cat", "kitten"), ("dog2", "dog"), ("cat2", "tabby cat")],
    "human": [("grey_sloth_plushie", "young man"), ("wolf_plushie", "Spider-Man"), ("bear_plushie", "girl")],
    "object": [("backpack", "backpack"), ("colorful_sneaker", "t-shirt"), ("teapot", "teapot"), ("clock", "clock")],
    "style": [("red_cartoon", "ukiyo-e painting"), ("poop_emoji", "cartoon"), ("monster_toy", "pixel art")],
}

#: The 9 prompt templates (photorealistic 0-3, style transfer 4-6, imaginative 7-8), the noun inserted.
PROMPTS = (
    "a {} on a wooden table", "a {} in the snow", "a {} on the beach", "a close-up photo of a {}",
    "a watercolor painting of a {}", "a {} in the style of Van Gogh", "a pencil sketch of a {}",
    "a {} flying through outer space", "a {} made of glass floating in a bubble",
)
assert len(PROMPTS) == N_PROMPTS


def captions_for(noun: str) -> str:
    """A caption file's text: the noun, then the 9 prompts (one a line, trailing newline)."""
    return "\n".join([noun, *(p.format(noun) for p in PROMPTS)]) + "\n"


def build_folder(dreambooth_dir: Path, dest: Path, per_category: int = 2) -> Path:
    """``dest`` in the DreamBench++ layout: ``per_category`` subjects per category (at most as many as
    :data:`STAND_INS` lists), each the first photo of a DreamBooth subject (its bytes copied) and a caption."""
    dest = Path(dest)
    for category, rel in CATEGORY_DIRS.items():
        stand_ins = STAND_INS[category]
        if per_category > len(stand_ins):
            raise ValueError(f"at most {len(stand_ins)} {category} stand-ins")
        (dest / "images" / rel).mkdir(parents=True, exist_ok=True)
        (dest / "captions" / rel).mkdir(parents=True, exist_ok=True)
        for i, (folder, noun) in enumerate(stand_ins[:per_category]):
            photo = min(p for p in (Path(dreambooth_dir) / folder).iterdir() if p.suffix.lower() == ".jpg")
            shutil.copyfile(photo, dest / "images" / rel / f"{i:02d}.jpg")
            (dest / "captions" / rel / f"{i:02d}.txt").write_text(captions_for(noun), encoding="utf-8")
    return dest


def build_zip(folder: Path, zip_path: Path, prefix: str = "data/", extra: dict[str, bytes] | None = None) -> Path:
    """A ``data.zip`` of ``folder`` with its files under ``prefix`` (as the published zip puts them in a
    top folder), plus ``extra`` members (name -> bytes), e.g. a stray ``preview.py``."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zip_path


def pinned(zip_path: Path) -> PinnedZip:
    """A :class:`PinnedZip` whose size and sha256 are those of ``zip_path``: what a test passes as ``source``
    (the CLI always verifies against the published data.zip)."""
    data = Path(zip_path).read_bytes()
    return PinnedZip("test/dreambench_plus", "data.zip", len(data), hashlib.sha256(data).hexdigest())


def build_samples(data_dir: Path, dest: Path, prompts=(0, 4, 7), images_per_prompt: int = 2) -> Path:
    """A samples folder as the reference code's ``generate_images.py`` writes one, for the subjects of the data
    folder ``data_dir``: ``src_image``: the reference image (EXIF applied, RGB) saved as JPEG with Pillow's
    defaults; ``tgt_image``: a stand-in for a generated image (the reference image at 256 px, rotated by an
    angle that depends on ``p`` and ``k``: deterministic, different per sample), saved the same way;
    ``text``: the prompt without a newline; ``negative_prompt.txt`` empty."""
    from PIL import Image, ImageOps

    from dreambench.data.dreambench_plus.layout import read_layout

    dest = Path(dest)
    dest.mkdir(parents=True)
    (dest / "negative_prompt.txt").write_text("")
    for s in read_layout(data_dir):
        with Image.open(Path(data_dir) / s.image) as im:
            ref = ImageOps.exif_transpose(im).convert("RGB")
        for p in prompts:
            for k in range(images_per_prompt):
                for tree in ("src_image", "tgt_image", "text"):
                    (dest / tree / s.collection_id).mkdir(parents=True, exist_ok=True)
                ref.save(dest / "src_image" / s.collection_id / f"{p}_{k}.jpg")
                tgt = ref.resize((256, 256)).rotate(20 * p + 7 * k)
                tgt.save(dest / "tgt_image" / s.collection_id / f"{p}_{k}.jpg")
                (dest / "text" / s.collection_id / f"{p}_{k}.txt").write_text(s.prompts[p], encoding="utf-8")
    return dest
