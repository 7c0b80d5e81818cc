"""Class (prior-preservation) images: samples of the frozen model for the class prompt "a [class noun]".

They are made once per (model source and weights, class prompt, seed, resolution, sampler settings) and
shared by every subject of that class and every method that needs them, in
``<cache_root>/<key>/`` (normally ``<results>/class_images/<key>/``)::

    00000.png 00001.png ...   image i is sampled with seed ``seed * 100_000 + i``
    done.json                 written last: the key's inputs and how many images are complete

Image ``i`` depends only on its own seed, never on ``count``: a cache holding 1000 images serves a
request for 200 (the first 200), and a request for more generates only the missing ones. That is why
``count`` is not part of the key. Every PNG is written atomically, so an interrupted run resumes where it
stopped; an image that is not a complete PNG (:func:`dreambench.verify.png_problem`) is made again from its
seed. Must be called with pristine (not fine-tuned) weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import save_image_atomic, write_text_atomic
from ..verify import png_problem

if TYPE_CHECKING:  # the plan imports this module; torch and the sampler load only when images are made
    import torch

DONE = "done.json"
#: Seed stride between class-image sets of different base seeds (images per set stay below it).
SEED_STRIDE = 100_000
DEFAULT_CLASS_STEPS = 50


def class_prompt(class_noun: str) -> str:
    """The class prompt of the DreamBooth paper, "a [class noun]"."""
    return f"a {class_noun}".strip()


#: The config field that switches prior preservation on: the one name every reader asks
#: (:func:`prior_preservation`, :func:`class_image_need`, the paper plan's Table 3 labels).
PPL_FIELD = "with_prior_preservation"


def prior_preservation(config: Any) -> bool | None:
    """Prior preservation on (True) or off (False) in ``config``; None when it has no :data:`PPL_FIELD`."""
    if not hasattr(config, PPL_FIELD):
        return None
    return bool(getattr(config, PPL_FIELD))


def class_image_need(config: Any, class_noun: str) -> dict | None:
    """The class-image set a training config reads for ``class_noun``, as keyword arguments of
    :func:`ensure_class_images` (less components, cache root, device, progress): ``class_noun``, ``count``
    (``num_class_images``), ``seed``, ``sample_steps`` (``class_sample_steps``, else ``sample_steps``; None
    when both are 0), ``batch_size``, ``sampler``, ``guidance_scale``. None when the config reads none:
    prior preservation off, no class images asked for, or no class noun (nothing to preserve).

    The one place this is decided: the planner schedules these sets, a subject job prepares them, and
    DreamBooth's training reads them."""
    count = int(getattr(config, "num_class_images", 0) or 0)
    if not getattr(config, PPL_FIELD, False) or count <= 0 or not class_noun:
        return None
    steps = config.class_sample_steps or config.sample_steps
    return {"class_noun": class_noun, "count": count, "seed": int(config.seed),
            "sample_steps": int(steps) if steps else None, "batch_size": int(config.sample_batch_size),
            "sampler": config.sampler, "guidance_scale": float(config.guidance_scale)}


def class_images_key(components: Any, prompt: str, seed: int, sample_steps: int, sampler: str = "ddim",
                     guidance_scale: float = 7.5) -> str:
    """Cache key: hash of model source, weights kind, class prompt, seed, resolution and sampler settings."""
    parts = {
        "source": str(components.source), "pretrained_weights": bool(components.pretrained_weights),
        "prompt": prompt, "seed": int(seed), "resolution": int(components.resolution),
        "sampler": sampler, "steps": int(sample_steps), "guidance": float(guidance_scale),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(ch if ch.isalnum() else "-" for ch in prompt.lower()).strip("-")[:40]
    return f"{slug}-{digest}"


def _read_done(folder: Path) -> dict:
    """A class-image folder's ``done.json`` ({} when absent or unreadable)."""
    try:
        record = json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _done_count(record: dict) -> int:
    """How many images a ``done.json`` record says were made (0 when it says nothing usable)."""
    try:
        return int(record.get("count", 0))
    except (ValueError, TypeError):
        return 0


def _file_stamp(path: Path) -> list:
    """``[size, mtime_ns, sha256]`` of a made class image, as done.json records it."""
    from ..io import sha256_file

    st = path.stat()
    return [st.st_size, st.st_mtime_ns, sha256_file(path)]


def class_image_problems(folder: Path, count: int, record: dict | None = None) -> dict[int, str]:
    """Index -> why, for the first ``count`` images of a class-image folder that cannot be trusted: not
    a complete PNG (:func:`png_problem`), or other bytes than done.json recorded when they were made
    (a file swapped since; hashed only when its size or mtime changed). Images made before done.json
    recorded digests are checked as PNGs only. ``record``: the folder's done.json when already read."""
    recorded = (record if record is not None else _read_done(folder)).get("files")
    recorded = recorded if isinstance(recorded, dict) else {}
    out = {}
    for i in range(count):
        path = folder / f"{i:05d}.png"
        why = png_problem(path)
        stamp = recorded.get(path.name)
        if why is None and isinstance(stamp, list) and len(stamp) == 3:
            st = path.stat()
            if [st.st_size, st.st_mtime_ns] != stamp[:2] and _file_stamp(path)[2] != stamp[2]:
                why = "other bytes than it was made with"
        if why is not None:
            out[i] = why
    return out


def class_image_seed(seed: int, index: int) -> int:
    return int(seed) * SEED_STRIDE + int(index)


def ensure_class_images(components: Any, class_noun: str, count: int, seed: int, cache_root: str | Path,
                        device: torch.device | str = "cpu", sample_steps: int | None = None,
                        batch_size: int = 16, progress: bool = True, prompt: str | None = None,
                        sampler: str = "ddim", guidance_scale: float = 7.5,
                        remade: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Paths of ``count`` class images for ``class_noun``, generating only those not yet cached (or
    cached but not complete PNGs).

    ``prompt`` defaults to "a [class noun]"; ``sample_steps`` to 50. Returns the first ``count`` images
    of the key's folder, in index order. ``remade`` (when given) receives ``(path, why)`` for each image
    that was made before (broken, or missing below ``done.json``'s count) and is made again."""
    if count <= 0:
        return []
    steps = int(sample_steps or DEFAULT_CLASS_STEPS)
    prompt = prompt or class_prompt(class_noun)
    key = class_images_key(components, prompt, seed, steps, sampler, guidance_scale)
    folder = Path(cache_root) / key
    paths = [folder / f"{i:05d}.png" for i in range(count)]
    record = _read_done(folder)
    problems: dict[int, str | None] = {i: None for i in range(count)}
    problems.update(class_image_problems(folder, count, record))
    missing = [i for i, why in problems.items() if why is not None]
    made = _done_count(record)
    if remade is not None:
        remade.extend((paths[i], problems[i]) for i in missing if problems[i] != "missing" or i < made)
    if missing:
        # Here, not at the top: sampling imports torch, and class_prompt/class_images_key are read by planning.
        from .sampling import SamplingConfig, sample_images

        cfg = SamplingConfig(sampler=sampler, guidance_scale=guidance_scale, sample_batch_size=batch_size)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(missing), desc=f"class images '{prompt}'", unit="img", leave=False)
        # The batches of a fresh run (images [0, b), [b, 2b), ...), each saved at once, so an interrupted run
        # keeps what it made. A batch holding a missing image is sampled whole: an image's pixels depend on
        # the batch it was sampled in (kernels differ with batch size), so a lone remade image would differ
        # from the one its seed made before; only the missing ones are written.
        b, total = max(1, batch_size), max(count, made)  # an earlier run may have made more: its batches
        for start in sorted({i - i % b for i in missing}):
            batch = list(range(start, min(start + b, total)))
            images = sample_images(components, [prompt] * len(batch), [class_image_seed(seed, i) for i in batch],
                                   cfg, steps, device)
            todo = [i for i in batch if problems.get(i) is not None]
            for i in todo:
                save_image_atomic(images[batch.index(i)], paths[i])
            if bar is not None:
                bar.update(len(todo))
        if bar is not None:
            bar.close()
    done = folder / DONE
    have = sum(1 for _ in folder.glob("[0-9]*.png"))
    if missing or made < count or not record.get("files"):
        files = {p.name: _file_stamp(p) for p in sorted(folder.glob("[0-9]*.png"))}
        write_text_atomic(done, json.dumps({
            "prompt": prompt, "class_noun": class_noun, "seed": seed, "count": max(have, count),
            "source": str(components.source), "pretrained_weights": bool(components.pretrained_weights),
            "resolution": components.resolution, "sampler": sampler, "sample_steps": steps,
            "guidance_scale": guidance_scale, "seed_rule": f"image i uses seed {seed}*{SEED_STRIDE}+i",
            "files": files,  # name -> [size, mtime_ns, sha256]: a file swapped later is found and remade
        }, indent=1))
    return paths
