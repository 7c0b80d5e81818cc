"""Thin wrappers that turn images and texts into embeddings, plus the on-disk cache of real-image ones.

- :class:`ImageEncoder`: a DINO or CLIP image tower with its :class:`~.profiles.Transform`; takes uint8
  image batches (from :mod:`.decode`), normalizes them on the device, returns L2-normalized float32
  embeddings. bf16 autocast on CUDA, fp32 elsewhere.
- :class:`TextEncoder`: the CLIP text tower (open_clip tokenizer).
- :class:`Lpips`: LPIPS distances among the images of a group (DIV), features computed once per image.
- :class:`EmbeddingCache`: real-image embeddings keyed by backbone name, weights id, transform and the
  sha256 of the file's bytes, so re-scoring never re-embeds the reference photos.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..io import atomic_path, sha256_file
from ..models.backbones import Backbone, load_lpips_trunk
from .decode import NATIVE, Geometry, decode, prefetch_map
from .functional import unordered_pairs
from .profiles import DivSpec, Transform
from .trunk import lpips_trunk_label, trunk_is_pretrained  # re-exported: their home before trunk.py


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def normalize_uint8(x: torch.Tensor, transform: Transform, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 on ``device``: ``(x / 255 - mean) / std`` (torchvision's ToTensor
    followed by Normalize, the same operations in the same order)."""
    x = x.to(device, non_blocking=True).to(torch.float32).div(255)
    mean = torch.as_tensor(transform.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(transform.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return x.sub(mean).div(std)


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


class ImageEncoder:
    """An image tower: DINO (``model(x)``, the final-norm class token) or CLIP (``model.encode_image``).

    ``images`` counts the images passed through the network (cache misses included, hits not)."""

    def __init__(self, kind: str, backbone: Backbone, transform: Transform, device: str | torch.device = "cpu"):
        if kind not in ("dino", "clip"):
            raise ValueError(f"kind must be 'dino' or 'clip', got {kind!r}")
        self.kind, self.backbone, self.transform = kind, backbone, transform
        self.device = torch.device(device)
        self.model = backbone.model.to(self.device).eval()
        self._forward = self.model if kind == "dino" else self.model.encode_image
        self.images = 0

    @property
    def geometry(self) -> Geometry:
        t = self.transform
        return (t.resize, t.crop, t.interpolation)

    @property
    def cache_id(self) -> str:
        """What determines an embedding besides the image: backbone, weights and transform."""
        return f"{self.backbone.name}|{self.backbone.weights_id}|{self.transform.id}"

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """L2-normalized float32 embeddings (N, D) of uint8 images (N, 3, crop, crop)."""
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = normalize_uint8(images[start : start + batch_size], self.transform, self.device)
            with _autocast(self.device):
                out.append(_unit(self._forward(x)))
        self.images += int(images.shape[0])
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


class TextEncoder:
    """The CLIP text tower: L2-normalized embeddings of prompts (open_clip tokenizer, 77 tokens)."""

    def __init__(self, backbone: Backbone, device: str | torch.device = "cpu"):
        self.backbone = backbone
        self.device = torch.device(device)
        self.model = backbone.model.to(self.device).eval()
        self.texts = 0

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.backbone.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            with _autocast(self.device):
                out.append(_unit(self.model.encode_text(tokens)))
        self.texts += len(texts)
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


#: Seed of the random LPIPS trunk (torchvision's own init drawn under ``torch.manual_seed``).
LPIPS_RANDOM_SEED = 0


def build_lpips(spec: DivSpec, pretrained_trunk: bool, trunk_file: str | Path | None = None
                ) -> tuple[torch.nn.Module, str]:
    """The ``lpips.LPIPS`` module (its shipped linear weights always) and a label of its trunk.

    With ``trunk_file`` (``--lpips-weights``: the torchvision checkpoint of the trunk) the trunk has that
    file's weights (label ``"<net>:file@<digest>"``); else with ``pretrained_trunk`` and the torchvision
    checkpoint in the hub cache, ImageNet weights (label ``"<net>:imagenet"``); otherwise torchvision's
    random init drawn under ``torch.manual_seed(LPIPS_RANDOM_SEED)`` (label ``"<net>:random-init"``),
    global RNG untouched."""
    import lpips

    label = lpips_trunk_label(spec, pretrained_trunk, trunk_file)
    imagenet = label.endswith(":imagenet")
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # torchvision's deprecation of `pretrained=`
        torch.manual_seed(LPIPS_RANDOM_SEED)
        model = lpips.LPIPS(net=spec.net, pretrained=True, pnet_rand=not imagenet, verbose=False)
    if trunk_file is not None:
        load_lpips_trunk(model.net, trunk_file, spec.net)
    return model.eval(), label


class Lpips:
    """LPIPS distances among the images of one group, each image's features computed once.

    Reproduces ``lpips.LPIPS.forward`` (scaling layer, trunk, unit-normalized features, squared
    differences, linear layers, spatial mean, sum over layers) for all unordered pairs of each group,
    with one trunk pass per image instead of two per pair."""

    def __init__(self, spec: DivSpec, pretrained_trunk: bool, device: str | torch.device = "cpu",
                 trunk_file: str | Path | None = None):
        self.spec, self.pretrained_trunk, self.trunk_file = spec, pretrained_trunk, trunk_file
        self.device = torch.device(device)
        self.label = lpips_trunk_label(spec, pretrained_trunk, trunk_file)
        self._model: torch.nn.Module | None = None

    @property
    def pretrained(self) -> bool:
        """Whether the trunk has trained weights (a file, or ImageNet from the cache)."""
        return trunk_is_pretrained(self.label)

    @property
    def model(self) -> torch.nn.Module:
        """The ``lpips.LPIPS`` module, built on first use (a resumed run with no DIV left skips it)."""
        if self._model is None:
            model, label = build_lpips(self.spec, self.pretrained_trunk, self.trunk_file)
            assert label == self.label
            self._model = model.to(self.device)
        return self._model

    @property
    def geometry(self) -> Geometry:
        """The decode geometry; ``(0, 0, "native")`` for native resolution (:data:`.decode.NATIVE`)."""
        if self.spec.size is None:
            return NATIVE
        return (self.spec.size, self.spec.size, self.spec.interpolation)

    @torch.inference_mode()
    def _features(self, images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        """Unit-normalized trunk features per layer of uint8 images mapped to [-1, 1]."""
        import lpips

        per_layer: list[list[torch.Tensor]] = [[] for _ in range(self.model.L)]
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(self.device).to(torch.float32).div(255).mul(2).sub(1)
            for k, f in enumerate(self.model.net.forward(self.model.scaling_layer(x))):
                per_layer[k].append(lpips.normalize_tensor(f))
        return [torch.cat(f) for f in per_layer]

    @torch.inference_mode()
    def pair_distances(self, images: torch.Tensor, i: np.ndarray, j: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """LPIPS distance of each pair (i[p], j[p]) of uint8 images (N, 3, size, size)."""
        if len(i) == 0:
            return np.zeros(0)
        feats = self._features(images, batch_size)
        ii, jj = torch.as_tensor(i, device=self.device), torch.as_tensor(j, device=self.device)
        out = []
        for start in range(0, len(i), batch_size):
            a, b = ii[start : start + batch_size], jj[start : start + batch_size]
            total = 0
            for k in range(self.model.L):
                diff = (feats[k][a] - feats[k][b]) ** 2
                total = total + self.model.lins[k](diff).mean(dim=(2, 3))
            out.append(total.flatten().double().cpu())
        return torch.cat(out).numpy()

    def groups_div(self, groups: Sequence[torch.Tensor], batch_size: int = 64) -> list[tuple[float, int]]:
        """For each group of uint8 images, the mean LPIPS over all its unordered pairs and the number of
        pairs ((NaN, 0) below two images). Groups of one image size share batched trunk passes (at native
        resolution, groups of different sizes are batched separately)."""
        out: list[tuple[float, int]] = [(float("nan"), 0)] * len(groups)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for g, images in enumerate(groups):
            by_size.setdefault(tuple(images.shape[1:]), []).append(g)
        for members in by_size.values():
            for g, v in zip(members, self._same_size_div([groups[g] for g in members], batch_size)):
                out[g] = v
        return out

    def _same_size_div(self, groups: Sequence[torch.Tensor], batch_size: int) -> list[tuple[float, int]]:
        sizes = [int(g.shape[0]) for g in groups]
        ii, jj, gid, offset = [], [], [], 0
        for g, n in enumerate(sizes):
            i, j = unordered_pairs(n)
            ii.append(i + offset)
            jj.append(j + offset)
            gid.append(np.full(i.size, g))
            offset += n
        i, j, gid = np.concatenate(ii), np.concatenate(jj), np.concatenate(gid)
        d = self.pair_distances(torch.cat(list(groups)), i, j, batch_size)
        counts = np.bincount(gid, minlength=len(groups))
        sums = np.bincount(gid, weights=d, minlength=len(groups))
        return [(float(s / c), int(c)) if c else (float("nan"), 0) for s, c in zip(sums, counts)]

    def group_div(self, images: torch.Tensor) -> tuple[float, int]:
        """Mean LPIPS over all unordered pairs of one group and the number of pairs (NaN, 0 below 2)."""
        return self.groups_div([images])[0]


def stack_group(images: Sequence[torch.Tensor], group: object = "") -> torch.Tensor:
    """The images of one DIV group as one (N, 3, H, W) batch. At native resolution they must share a size:
    a group of mixed sizes raises :class:`DataError` naming the group and the sizes."""
    sizes = sorted({tuple(im.shape[-2:]) for im in images})
    if len(sizes) > 1:
        raise DataError(f"DIV group {group}: images of different sizes {sizes} cannot be compared at native "
                        f"resolution (use a profile with a DIV size, e.g. paper)")
    return torch.stack(list(images))


class EmbeddingCache:
    """Embeddings on disk, one ``.npy`` per key under ``<root>/embeddings/``; ``root=None`` disables it.

    Writes are atomic, so concurrent scorers at worst compute the same embedding twice."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) / "embeddings" if root is not None else None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(encoder_id: str, file_digest: str) -> str:
        return hashlib.sha256(f"{encoder_id}|{file_digest}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        if self.root is not None:
            p = self._path(key)
            if p.is_file():
                try:
                    arr = np.load(p, allow_pickle=False)
                    self.hits += 1
                    return arr
                except (OSError, ValueError):
                    pass  # a corrupt entry is recomputed and overwritten
        self.misses += 1
        return None

    def put(self, key: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(value, dtype=np.float32), allow_pickle=False)


def embed_reference_images(
    paths: Sequence[Path], encoders: Sequence[ImageEncoder], cache: EmbeddingCache, *, batch_size: int = 64,
    workers: int | None = None,
) -> list[np.ndarray]:
    """Embeddings (one (N, D) array per encoder) of real images, read from ``cache`` when present.

    Only images with a missing entry are decoded and embedded; new entries are stored. Raises
    :class:`DataError` naming the first file that cannot be read."""
    digests = []
    for p in paths:
        try:
            digests.append(sha256_file(p))
        except OSError as e:
            raise DataError(f"{p}: cannot read real image ({e})") from None
    keys = [[cache.key(enc.cache_id, d) for d in digests] for enc in encoders]
    found = [[cache.get(k) for k in ks] for ks in keys]
    todo = sorted({i for per_enc in found for i, v in enumerate(per_enc) if v is None})
    if todo:
        geoms = list(dict.fromkeys(enc.geometry for enc in encoders))
        decoded = []
        for i, result, err in prefetch_map(lambda i: decode(paths[i], geoms), todo, workers):
            if err is not None:
                raise err if isinstance(err, DataError) else DataError(f"{paths[i]}: {err}")
            decoded.append(result)
        for e, enc in enumerate(encoders):
            missing = [n for n, i in enumerate(todo) if found[e][i] is None]
            if not missing:
                continue
            emb = enc.embed(torch.stack([decoded[n][enc.geometry] for n in missing]), batch_size)
            for row, n in zip(emb, missing):
                found[e][todo[n]] = row
                cache.put(keys[e][todo[n]], row)
    return [np.stack(per_enc).astype(np.float32) for per_enc in found]
