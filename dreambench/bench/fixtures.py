"""Inputs that ``dreambench bench`` makes for itself: noise class images, photo-like images, a folder laid out
like the protocol's generated images, a synthetic stand-in for the dataset, and the subject trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..images import list_images
from ..manifest import write_part
from ..methods.base import SubjectData
from ..protocol import load_protocol


def noise_images(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    from PIL import Image

    gen = torch.Generator("cpu").manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8).numpy()
        p = folder / f"{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def bench_subject(data_dir: Path, workdir: Path, resolution: int) -> Any:
    """The first protocol subject with its real photos, and two noise class images: a step uses one
    class image, so how many exist does not change its cost."""
    subject = load_protocol("dreambooth").subjects[0]
    class_images = noise_images(workdir / "class", 2, resolution, seed=1)
    return SubjectData(subject, list_images(data_dir / subject.name), "sks", subject.class_noun,
                       class_images=class_images)


def photo_like(size: int, seed: int):
    """A smooth random RGB image (upsampled 16x16 colours plus mild noise): compresses and decodes like a
    generated image, unlike pure noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    arr = np.asarray(small, np.int16) + rng.integers(-6, 7, (size, size, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def write_protocol_folder(images_dir: Path, n: int, size: int, distinct: int = 100) -> int:
    """``n`` PNGs of ``size`` px laid out as the protocol's first ``n`` (subject, prompt, seed) images of a
    method ``bench`` (4 per prompt, subjects in protocol order), with the manifest. ``distinct`` images
    are encoded and the rest are byte copies of them (each file is still decoded and scored). Returns n."""
    import shutil

    proto = load_protocol("dreambooth")
    sources: list[Path] = []
    rows: dict[str, list[dict]] = {}
    i = 0
    for subject in proto.subjects:
        for prompt in proto.prompts_for(subject):
            for k in range(4):
                if i >= n:
                    break
                rel = Path("bench") / subject.name / f"{prompt.index:02d}_{k}.png"
                path = images_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if len(sources) < distinct:
                    photo_like(size, seed=i).save(path)
                    sources.append(path)
                else:
                    shutil.copyfile(sources[i % distinct], path)
                rows.setdefault(subject.name, []).append(
                    {"method": "bench", "subject": subject.name, "prompt_index": prompt.index,
                     "prompt": prompt.render("sks", subject.class_noun),
                     "prompt_plain": prompt.render_plain(subject.class_noun), "seed": k, "path": str(rel)})
                i += 1
    for subject, part in rows.items():
        write_part(part, images_dir, "bench", subject)
    return i


def synthetic_dataset(folder: Path, photos: int = 5, size: int = 768) -> Path:
    """A stand-in for the dataset where it is absent (a GPU machine the 107 MB dataset cannot travel to):
    ``photos`` photo-like JPEGs per protocol subject. Throughput does not depend on what the photos show."""
    for k, subject in enumerate(load_protocol("dreambooth").subjects):
        (folder / subject.name).mkdir(parents=True, exist_ok=True)
        for i in range(photos):
            photo_like(size, seed=1000 * k + i).save(folder / subject.name / f"{i:02d}.jpg", quality=90)
    return folder
