"""ITRp's multimodal embedding ``e = f_t(text) ⊕ f_v(image)`` (paper Eq. 1), for frozen and fine-tuned towers.

* text part: the text tower's ``pooled`` output. For ``minilm`` that is the mean of the last hidden states over the
  real tokens, exactly ITRp's text embedding.
* image part: the image tower's ``pooled`` output. For ``efficientnet-lite0`` that is the global average of the last
  conv map, ITRp's image embedding. A post with several images gets the mean of its readable images' vectors.
* **a post without a (readable) image gets zeros for the image part**. The clusterers' default L2 normalisation
  keeps such rows finite; they simply cluster by their text.

Three ways in:

* :func:`relation_features` - frozen towers, both parts through the on-disk feature cache (``post_features``);
* :func:`embed_posts` - the same features while a tower is being fine-tuned: the *live* tower(s) run now, in
  inference mode and batches, **never through the cache** (a fine-tuned tower keeps its ``identity``, so its cached
  rows would be the pre-trained ones); the frozen side is read from the cache or from rows passed in;
* :func:`live_text_pooled` / :func:`live_image_pooled` - the gradient-carrying forward used in training.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mmpost.data.post import Post
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.encoders.features import post_features, to_device

log = logging.getLogger(__name__)

__all__ = ["text_part", "image_part", "relation_features", "embed_posts", "live_text_pooled", "live_image_pooled"]

LIVE_SIDES = ("text", "image")


def text_part(posts: Sequence[Post], tower: TextTower, *, cache_dir: str | Path | None = None, batch_size: int = 32,
              progress: bool = False) -> np.ndarray:
    """[N, Dt] float32 pooled text features (cached when ``cache_dir`` is given, computed now otherwise)."""
    return post_features(posts, tower, None, cache_dir=cache_dir, batch_size=batch_size, progress=progress).text


def image_part(posts: Sequence[Post], tower: ImageTower, *, cache_dir: str | Path | None = None, batch_size: int = 32,
               progress: bool = False) -> np.ndarray:
    """[N, Dv] float32 pooled image features; zeros for a post without a readable image."""
    feats = post_features(posts, None, tower, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    return np.asarray(feats.image, dtype=np.float32)


def relation_features(posts: Sequence[Post], text_tower: TextTower, image_tower: ImageTower, *,
                      cache_dir: str | Path | None = None, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """[N, Dt + Dv] float32 ``text ⊕ image`` of frozen towers, through the feature cache when ``cache_dir`` is set.
    Image-less posts have zeros in the image part."""
    return embed_posts(posts, text_tower, image_tower, live=(), cache_dir=cache_dir, batch_size=batch_size,
                       progress=progress)


def embed_posts(posts: Sequence[Post], text_tower: TextTower, image_tower: ImageTower, *,
                live: Sequence[str] = ("text",), cache_dir: str | Path | None = None,
                frozen_text: np.ndarray | None = None, frozen_image: np.ndarray | None = None,
                batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """[N, Dt + Dv] float32 ``text ⊕ image`` with the towers named in ``live`` run now (inference mode, batched,
    no cache) and the others frozen.

    A frozen side comes from ``frozen_text`` / ``frozen_image`` ([N, D] rows for these posts, e.g. sliced from
    features computed once for the whole training set) when given, else from :func:`text_part` /
    :func:`image_part` through ``cache_dir``. Live towers are left in eval mode (callers that train switch back).
    """
    unknown = set(live) - set(LIVE_SIDES)
    if unknown:
        raise ValueError(f"live sides must be among {LIVE_SIDES}, got {sorted(unknown)}")
    if "text" in live:
        t = text_part(posts, text_tower, cache_dir=None, batch_size=batch_size, progress=progress)
    elif frozen_text is not None:
        t = np.asarray(frozen_text, dtype=np.float32)
    else:
        t = text_part(posts, text_tower, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    if "image" in live:
        v = image_part(posts, image_tower, cache_dir=None, batch_size=batch_size, progress=progress)
    elif frozen_image is not None:
        v = np.asarray(frozen_image, dtype=np.float32)
    else:
        v = image_part(posts, image_tower, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    if t.shape[0] != len(posts) or v.shape[0] != len(posts):
        raise ValueError(f"feature rows ({t.shape[0]} text, {v.shape[0]} image) differ from {len(posts)} posts")
    return np.ascontiguousarray(np.concatenate([t, v], axis=1), dtype=np.float32)


# --------------------------------------------------------------------------------------------------- training forward


def live_text_pooled(tower: TextTower, texts: Sequence[str]) -> torch.Tensor:
    """[B, Dt] pooled text features with gradients (the tower's current train/eval mode is kept)."""
    return tower(to_device(tower.tokenize(list(texts)), tower)).pooled


def _try_load(tower: ImageTower, path: str) -> np.ndarray | None:
    try:
        return tower.load(path)
    except Exception as e:  # the embedding pass already reported unreadable images; here they are just masked
        log.debug("image %s could not be read: %s", path, e)
        return None


def live_image_pooled(tower: ImageTower, posts: Sequence[Post], *, workers: int = 2) -> torch.Tensor:
    """[B, Dv] pooled image features with gradients: the mean over each post's readable images, zeros for a post
    without one (those rows carry no gradient)."""
    pairs = [(i, path) for i, p in enumerate(posts) for path in p.images]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        arrays = list(pool.map(lambda ip: _try_load(tower, ip[1]), pairs))
    ok = [(i, a) for (i, _), a in zip(pairs, arrays) if a is not None]
    param = next(tower.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    if not ok:
        return torch.zeros(len(posts), tower.dim, dtype=dtype, device=device)
    pooled = tower(torch.from_numpy(np.stack([a for _, a in ok])).to(device)).pooled
    owners = torch.tensor([i for i, _ in ok], dtype=torch.long, device=device)
    sums = torch.zeros(len(posts), pooled.shape[1], dtype=pooled.dtype, device=device).index_add(0, owners, pooled)
    ones = torch.ones(owners.shape[0], dtype=pooled.dtype, device=device)
    counts = torch.zeros(len(posts), dtype=pooled.dtype, device=device).index_add(0, owners, ones)
    return sums / counts.clamp(min=1).unsqueeze(1)
