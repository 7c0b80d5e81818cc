"""The metrics as pure functions of embeddings (no models, files or devices).

Inputs are 2-D arrays of embeddings, one row per image (or text); numpy arrays and CPU torch tensors
are both accepted. Every function L2-normalizes its inputs itself, so a cosine is always
``<a/|a|, b/|b|>`` in [-1, 1], and computes in float64.

Definitions (docs/metrics.md has the full protocol):

- DINO / CLIP-I of a generated image: the mean cosine between its embedding and each real image of the
  subject (:func:`mean_cosine_to_reference`); the subject's value is the mean over its generated images,
  which equals the mean over all (generated, real) pairs (:func:`mean_pairwise_cosine`).
- CLIP-T of a generated image: cosine between its CLIP image embedding and the CLIP text embedding of
  its prompt without the identifier (:func:`rowwise_cosine`).
- Real Images: the mean cosine over all ordered pairs (i, j), i != j, of a subject's real images
  (:func:`real_pairs_mean`), n (n - 1) pairs.
- Copy check: the highest cosine between a generated image and any real image (:func:`max_cosine_to_reference`).
- One-reference pairing (profiles with ``pairing="one"``: DreamBench++, Kosmos-G, ImagenHub): the cosine
  of each generated image with its own reference photo (:func:`cosine_to_reference` with ``index``).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def as_matrix(x) -> np.ndarray:
    """A float64 2-D array from a numpy array, a CPU torch tensor or a list of vectors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {a.shape}")
    return a


def l2_normalize(x) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    a = as_matrix(x)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), EPS)


def cosine_matrix(a, b) -> np.ndarray:
    """``C[i, j] = cos(a_i, b_j)``, shape (len(a), len(b))."""
    return l2_normalize(a) @ l2_normalize(b).T


def mean_cosine_to_reference(generated, reference) -> np.ndarray:
    """Per generated image, the mean cosine to every reference (real) image: shape (len(generated),)."""
    return cosine_matrix(generated, reference).mean(axis=1)


def cosine_to_reference(generated, reference, index=None) -> np.ndarray:
    """Per generated image: with ``index`` None, the mean cosine to every reference image (as
    :func:`mean_cosine_to_reference`); else the cosine to ``reference[index[i]]`` alone."""
    if index is None:
        return mean_cosine_to_reference(generated, reference)
    ref = l2_normalize(reference)[np.asarray(index, dtype=int)]
    return rowwise_cosine(generated, ref)


def max_cosine_to_reference(generated, reference) -> np.ndarray:
    """Per generated image, the highest cosine to any reference image (the copy check)."""
    return cosine_matrix(generated, reference).max(axis=1)


def mean_pairwise_cosine(generated, reference) -> float:
    """Mean cosine over all (generated, reference) pairs: the subject-level DINO / CLIP-I / PRES."""
    return float(cosine_matrix(generated, reference).mean())


def rowwise_cosine(a, b) -> np.ndarray:
    """``cos(a_i, b_i)`` for aligned rows (CLIP-T: image i against the text of its prompt)."""
    a, b = l2_normalize(a), l2_normalize(b)
    if a.shape != b.shape:
        raise ValueError(f"rowwise cosine needs aligned rows, got {a.shape} and {b.shape}")
    return np.einsum("ij,ij->i", a, b)


def offdiagonal(matrix: np.ndarray) -> np.ndarray:
    """The entries ``M[i, j]`` with i != j, each ordered pair once (n (n - 1) values)."""
    m = np.asarray(matrix)
    return m[~np.eye(m.shape[0], dtype=bool)]


def real_pairs_mean(real) -> tuple[float, int]:
    """Mean cosine over all ordered pairs i != j of distinct real images, and the number of pairs.

    Returns (NaN, 0) for fewer than two images."""
    vals = offdiagonal(cosine_matrix(real, real))
    return (float(vals.mean()), int(vals.size)) if vals.size else (float("nan"), 0)


def real_pairs_stat(real, reduce=np.max) -> float:
    """A statistic (``np.max``, ``np.mean``) of the cosines between distinct real images (NaN if < 2)."""
    vals = offdiagonal(cosine_matrix(real, real))
    return float(reduce(vals)) if vals.size else float("nan")


def copy_flags(max_to_real, reference_level) -> np.ndarray:
    """True where a generated image's highest cosine to a real image exceeds ``reference_level`` (a
    real-vs-real statistic of its subject; a scalar or one level per image). A NaN level (a subject
    with one real image) flags nothing."""
    m = np.asarray(max_to_real, dtype=np.float64)
    level = np.broadcast_to(np.asarray(reference_level, dtype=np.float64), m.shape)
    return np.where(np.isnan(level), False, m > np.nan_to_num(level, nan=np.inf))


def unordered_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of all unordered pairs i < j of n items: n (n - 1) / 2 pairs (DIV)."""
    i, j = np.triu_indices(n, k=1)
    return i, j
