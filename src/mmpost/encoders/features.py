"""Run towers over posts in batches: length-sorted text batches, threaded image decoding, and the cache
for frozen towers. A post whose image fails to decode is reported and treated as image-less, never a crash."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmpost.data.post import Post
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.encoders.cache import FeatureCache, content_key, file_key
from mmpost.encoders.concat import ConcatTextTower
from mmpost.encoders.frozen_text import FeatureTextTower
from mmpost.encoders.precision import extraction_batch
from mmpost.progress import bar

log = logging.getLogger(__name__)


@dataclass
class PostFeatures:
    """Pooled features for N posts, rows in post order."""
    text: np.ndarray            # [N, Dt] float32
    image: np.ndarray           # [N, Dv] float32 pooled, or [N, T, Dv] float16 tokens (zeros where no image)
    has_image: np.ndarray       # [N] bool
    image_errors: dict[str, str] = field(default_factory=dict)   # post id -> reason


def to_device(x: Any, module: torch.nn.Module) -> Any:
    """``x`` (a tensor or a dict of tensors) moved to the device of ``module``'s parameters; unchanged on CPU or for
    a module without parameters."""
    param = next(module.parameters(), None)
    if param is None or param.device.type == "cpu":
        return x
    if isinstance(x, dict):
        return {k: v.to(param.device) if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    return x.to(param.device)


@torch.inference_mode()
def encode_texts(tower: TextTower, texts: Sequence[str], *, batch_size: int = 64,
                 progress: bool = True, first_token: bool = False) -> np.ndarray:
    """Pooled text features [N, D] — or, with ``first_token``, the first output token (CLS) — in batches of
    texts of similar length (less padding), through the tower's extraction pass (:meth:`TextTower.extract`).
    A frozen-features tower gives its :meth:`~FeatureTextTower.embed` vectors (as the first token too); a concat
    tower, its parts' features side by side."""
    if isinstance(tower, ConcatTextTower):
        return np.concatenate([encode_texts(p, texts, batch_size=batch_size, progress=progress,
                                            first_token=first_token) for p in tower.parts], axis=1)
    tower.eval()
    order = np.argsort(tower.token_lengths(list(texts)), kind="stable")
    batch_size = extraction_batch(tower, batch_size)
    out = np.zeros((len(texts), tower.dim), dtype=np.float32)
    for start in bar(range(0, len(order), batch_size), desc="text features", unit="batch",
                     enabled=progress and len(order) > batch_size):
        idx = order[start:start + batch_size]
        if isinstance(tower, FeatureTextTower):
            out[idx] = tower.embed([texts[i] for i in idx])
            continue
        inputs = to_device(tower.tokenize([texts[i] for i in idx]), tower)
        result = tower.extract(inputs)
        out[idx] = (result.tokens[:, 0] if first_token else result.pooled).float().cpu().numpy()
    return out


def _load(tower: ImageTower, path: str) -> tuple[np.ndarray | None, str | None]:
    try:
        return tower.load(path), None
    except Exception as e:  # a bad image must not stop a long run: it is reported and masked
        return None, f"{type(e).__name__}: {e}"


def _decoded_chunks(tower: ImageTower, paths: Sequence[str], batch_size: int,
                    workers: int) -> Iterator[tuple[list[int], list[tuple[np.ndarray | None, str | None]]]]:
    """(positions, decoded images or errors) per chunk of ``batch_size`` paths. With ``workers`` > 0 the next chunk
    is decoded on that many threads (PIL releases the GIL) while the caller runs the tower on this one."""
    chunks = [list(range(s, min(s + batch_size, len(paths)))) for s in range(0, len(paths), batch_size)]
    if workers <= 0:
        for chunk in chunks:
            yield chunk, [_load(tower, paths[i]) for i in chunk]
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        def submit(chunk: list[int]) -> list[Future]:     # a chunk split over the threads
            return [pool.submit(lambda part=chunk[k::workers]: [_load(tower, paths[i]) for i in part])
                    for k in range(workers)]

        pending = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            current = pending
            if n + 1 < len(chunks):
                pending = submit(chunks[n + 1])
            loaded: list = [None] * len(chunk)
            for k, future in enumerate(current):
                loaded[k::workers] = future.result()
            yield chunk, loaded


@torch.inference_mode()
def encode_images(tower: ImageTower, paths: Sequence[str], *, batch_size: int = 32, workers: int | None = None,
                  progress: bool = True, tokens: bool = False) -> tuple[np.ndarray, list[str | None]]:
    """Pooled image features [N, D] float32 — or, with ``tokens``, the token grid [N, T, D] float16 — and, per
    path, None or the reason it could not be read (its row stays zero).

    Images are decoded ``batch_size`` at a time, the next chunk on ``workers`` threads (default: the tower's
    ``decode_workers``) while the tower runs on the current one; the tower sees them in sub-batches of its
    ``extract_batch_size`` (a CNN on CPU is faster per image in small batches) through its extraction pass
    (:meth:`ImageTower.extract`)."""
    tower.eval()
    step = min(batch_size, extraction_batch(tower, batch_size))
    out = None if tokens else np.zeros((len(paths), tower.dim), dtype=np.float32)
    errors: list[str | None] = [None] * len(paths)
    chunks = _decoded_chunks(tower, paths, batch_size, tower.decode_workers if workers is None else workers)
    for chunk, loaded in bar(chunks, desc="image features", unit="batch", total=-(-len(paths) // batch_size),
                             enabled=progress and len(paths) > batch_size):
        for i, (_, err) in zip(chunk, loaded):
            errors[i] = err
        ok = [k for k, (arr, _) in enumerate(loaded) if arr is not None]
        for s in range(0, len(ok), step):
            part = ok[s:s + step]
            rows = [chunk[k] for k in part]
            pixels = to_device(torch.from_numpy(np.stack([loaded[k][0] for k in part])), tower)  # type: ignore[misc]
            result = tower.extract(pixels)
            if tokens:
                grid = result.tokens.half().cpu().numpy()
                if out is None:
                    out = np.zeros((len(paths), *grid.shape[1:]), dtype=np.float16)
                out[rows] = grid
            else:
                out[rows] = result.pooled.float().cpu().numpy()
    if out is None:     # nothing readable (or no paths): an empty grid of unknown length
        out = np.zeros((len(paths), 0, tower.dim), dtype=np.float16)
    return out, errors


def _cached_texts(tower: TextTower, texts: list[str], cache_dir: Path, batch_size: int,
                  progress: bool, first_token: bool = False) -> np.ndarray:
    if isinstance(tower, ConcatTextTower):      # each part under its own identity: a tower's cache is shared
        return np.concatenate([_cached_texts(p, texts, cache_dir, batch_size, progress, first_token)
                               for p in tower.parts], axis=1)
    if isinstance(tower, FeatureTextTower):
        first_token = False                     # one vector per text: the same either way
    kind = "first-token" if first_token else "pooled"
    cache = FeatureCache(cache_dir / "text", identity=f"{tower.identity}:{kind}", description={"kind": f"{kind} text"})
    keys = [content_key(t) for t in texts]
    return cache.get_or_compute(keys, lambda pos: encode_texts(tower, [texts[i] for i in pos], batch_size=batch_size,
                                                               progress=progress, first_token=first_token))


def _cached_images(tower: ImageTower, paths: list[str], cache_dir: Path, batch_size: int,
                   progress: bool, tokens: bool = False) -> tuple[np.ndarray, list[str | None]]:
    kind = "tokens" if tokens else "pooled"
    cache = FeatureCache(cache_dir / "image", identity=f"{tower.identity}:{tower.preprocess_spec()}:{kind}",
                         description={"kind": f"{kind} image"})
    keys: list[str | None] = []
    errors: list[str | None] = [None] * len(paths)
    for j, p in enumerate(paths):
        try:
            keys.append(file_key(p))
        except OSError as e:
            keys.append(None)
            errors[j] = f"{type(e).__name__}: {e}"
    todo = [j for j, k in enumerate(keys) if k is not None and k not in cache]
    todo = list({keys[j]: j for j in reversed(todo)}.values())[::-1]          # one per distinct image
    feats, errs = encode_images(tower, [paths[j] for j in todo], batch_size=batch_size, progress=progress,
                                tokens=tokens)
    good = [n for n, e in enumerate(errs) if e is None]
    cache.put([keys[todo[n]] for n in good], feats[good])                     # type: ignore[misc]
    ready = [j for j, k in enumerate(keys) if k is not None and k in cache]
    rows = cache.get([keys[j] for j in ready]) if ready else None               # type: ignore[misc]
    shape = rows.shape[1:] if rows is not None else ((0, tower.dim) if tokens else (tower.dim,))
    out = np.zeros((len(paths), *shape), dtype=np.float16 if tokens else np.float32)
    if rows is not None:
        out[ready] = rows
    failed = {keys[todo[n]]: e for n, e in enumerate(errs) if e is not None}
    for j, k in enumerate(keys):
        if k in failed:
            errors[j] = failed[k]
    return out, errors


def post_features(posts: Sequence[Post], text_tower: TextTower | None, image_tower: ImageTower | None, *,
                  cache_dir: str | Path | None = None, batch_size: int = 32, progress: bool = True,
                  image_tokens: bool = False, text_first_token: bool = False) -> PostFeatures:
    """Pooled features of each post's text and images. A post with several images gets the mean of its readable
    images' vectors. A tower given as None is skipped (its rows stay empty); with ``cache_dir`` set, features
    are read from and written to the on-disk cache."""
    texts = [p.text for p in posts]
    owners = [i for i, p in enumerate(posts) for _ in p.images]       # the post of each (post, image) pair
    paths = [path for p in posts for path in p.images]
    text = np.zeros((len(posts), 0), dtype=np.float32)
    if text_tower is not None:
        text = (encode_texts(text_tower, texts, batch_size=2 * batch_size, progress=progress,
                             first_token=text_first_token) if cache_dir is None
                else _cached_texts(text_tower, texts, Path(cache_dir), 2 * batch_size, progress, text_first_token))
    image = np.zeros((len(posts), image_tower.dim if image_tower is not None else 0), dtype=np.float32)
    has_image = np.zeros(len(posts), dtype=bool)
    image_errors: dict[str, str] = {}
    if image_tower is not None:
        img, errs = (encode_images(image_tower, paths, batch_size=batch_size, progress=progress, tokens=image_tokens)
                     if cache_dir is None else
                     _cached_images(image_tower, paths, Path(cache_dir), batch_size, progress, tokens=image_tokens))
        shape = img.shape[1:]
        if image_tokens and shape[0] == 0:     # no readable image at all: one token, the "no image" vector's slot
            shape = (1, shape[1])
        image = np.zeros((len(posts), *shape), dtype=np.float32)
        counts = np.zeros(len(posts), dtype=np.float32)
        for j, i in enumerate(owners):
            if errs[j] is None:
                image[i] += img[j]
                counts[i] += 1
            else:
                image_errors.setdefault(posts[i].id, f"{paths[j]}: {errs[j]}")
        has_image = counts > 0
        image[has_image] /= counts[has_image].reshape(-1, *([1] * (image.ndim - 1)))
        if image_tokens:
            image = image.astype(np.float16)
    else:
        has_image[owners] = True
    if image_errors:
        log.warning("%d post(s) have an image that could not be read; a post with no readable image is treated "
                    "as image-less (first: %s)", len(image_errors), next(iter(image_errors.values())))
    return PostFeatures(text=np.asarray(text, dtype=np.float32), image=image, has_image=has_image,
                        image_errors=image_errors)
