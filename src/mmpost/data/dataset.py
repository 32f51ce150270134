"""Posts as a map-style dataset that hands out whole :class:`Batch` objects.

Each modality comes either precomputed (features from a frozen tower, usually from the cache) or raw (texts
tokenized per batch, images decoded per batch for a tower being fine-tuned). A post with several images:
precomputed features average its readable images; a fine-tuned image tower reads the first one. A raw image
that fails to decode is masked for that batch and counted, never a crash mid-epoch.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mmpost.data.batch import Batch
from mmpost.data.post import Post
from mmpost.data.tasks import TaskSpec, label_names

log = logging.getLogger(__name__)


def group_ids(keys: Sequence[str]) -> np.ndarray:
    """Equal keys → equal ids (used to mask duplicate texts or images as false negatives)."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(k, len(seen)) for k in keys], dtype=np.int64)


def label_ids(posts: Sequence[Post], task: str, labels: Sequence[str]) -> np.ndarray:
    """Class id per post, -1 where the post has no label for ``task`` (an unknown label raises)."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.full(len(posts), -1, dtype=np.int64)
    for i, p in enumerate(posts):
        value = p.labels.get(task)
        if value is None:
            continue
        if value not in index:
            where = f"{p.meta['source']}:{p.meta['row']}: " if "source" in p.meta and "row" in p.meta else ""
            raise ValueError(f"{where}post {p.id}: field labels.{task}: label {value!r} is not one of {list(labels)}")
        out[i] = index[value]
    return out


def multi_hot(posts: Sequence[Post], task: str, labels: Sequence[str]) -> np.ndarray:
    """[N, C] float 0/1 per post for a multi-label task, the whole row -1 where the post has no label for
    ``task`` (an unknown label raises)."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(posts), len(labels)), dtype=np.float32)
    for i, p in enumerate(posts):
        if task not in p.labels:
            out[i] = -1.0
            continue
        for name in label_names(p.labels[task]):
            if name not in index:
                where = f"{p.meta['source']}:{p.meta['row']}: " if "source" in p.meta and "row" in p.meta else ""
                raise ValueError(f"{where}post {p.id}: field labels.{task}: label {name!r} is not one of "
                                 f"{list(labels)}")
            out[i, index[name]] = 1.0
    return out


def task_label_arrays(posts: Sequence[Post], tasks: Sequence[TaskSpec]) -> dict[str, np.ndarray]:
    """Task name → its labels for ``posts``, in the order of ``tasks``: class ids [N] (-1: no label) for a
    single-label task, :func:`multi_hot` [N, C] for a multi-label one. What :class:`PostDataset` takes."""
    return {t.name: multi_hot(posts, t.name, t.labels) if t.multi_label else label_ids(posts, t.name, t.labels)
            for t in tasks}


def _label_tensors(labels: np.ndarray | Mapping[str, np.ndarray], n: int) -> tuple[torch.Tensor, dict]:
    """(the first task's class ids [N], {task: labels}) from one array or a mapping task → array."""
    if not isinstance(labels, Mapping):
        return torch.as_tensor(labels, dtype=torch.long), {}
    per_task = {t: torch.as_tensor(a, dtype=torch.float32 if np.ndim(a) == 2 else torch.long)
                for t, a in labels.items()}
    first = next(iter(per_task.values()), None)
    if first is None or first.ndim != 1:        # a multi-label first task has no class id: read task_labels
        return torch.full((n,), -1, dtype=torch.long), per_task
    return first, per_task


class PostDataset(Dataset):
    """``labels``: the class ids [N] of one task, or a mapping task → labels (:func:`task_label_arrays`) for
    several; with a mapping, a batch's ``labels`` are the first task's and ``task_labels`` hold every task's."""

    def __init__(self, posts: Sequence[Post], labels: np.ndarray | Mapping[str, np.ndarray], *,
                 text_features: np.ndarray | None = None, image_features: np.ndarray | None = None,
                 has_image: np.ndarray | None = None,
                 tokenize: Callable[[list[str]], dict[str, torch.Tensor]] | None = None,
                 load_image: Callable[[str], np.ndarray] | None = None, image_size: int = 224,
                 regions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        if text_features is None and tokenize is None:
            raise ValueError("give text_features or a tokenize function")
        self.posts = list(posts)
        self.labels, self.task_labels = _label_tensors(labels, len(self.posts))
        self.text_features = None if text_features is None else torch.as_tensor(text_features)
        self.image_features = None if image_features is None else torch.as_tensor(image_features)
        hi = has_image if has_image is not None else np.array([p.has_image for p in self.posts], dtype=bool)
        self.has_image = torch.as_tensor(hi, dtype=torch.bool)
        self.text_ids = torch.as_tensor(group_ids([" ".join(p.text.lower().split()) for p in self.posts]))
        self.image_ids = torch.as_tensor(group_ids([p.images[0] if p.images else f"\x00{p.id}"
                                                    for p in self.posts]))
        self.tokenize = tokenize
        self.load_image = load_image
        self.image_size = image_size
        self.image_failures = 0
        # (features [N, R, Dr], boxes [N, R, 4], mask [N, R]) for families that read region features
        self.regions = None if regions is None else tuple(torch.as_tensor(a) for a in regions)

    def __len__(self) -> int:
        return len(self.posts)

    def __getitem__(self, i: int) -> Batch:
        return self.__getitems__([i])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        has_image = self.has_image[idx].clone()
        batch = Batch(index=idx, labels=self.labels[idx], has_image=has_image,
                      text_ids=self.text_ids[idx], image_ids=self.image_ids[idx],
                      task_labels={t: y[idx] for t, y in self.task_labels.items()})
        if self.text_features is not None:
            batch.text_features = self.text_features[idx].float()
        else:
            batch.text_inputs = self.tokenize([self.posts[i].text for i in indices])  # type: ignore[misc]
        if self.image_features is not None:
            batch.image_features = self.image_features[idx].float()
        elif self.load_image is not None:
            before = self.image_failures
            batch.pixels = self._pixels(indices, has_image)
            batch.unreadable_images = self.image_failures - before
        if self.regions is not None:
            feats, boxes, mask = self.regions
            batch.regions, batch.region_boxes, batch.region_mask = feats[idx].float(), boxes[idx].float(), mask[idx]
        return batch

    def _pixels(self, indices: Sequence[int], has_image: torch.Tensor) -> torch.Tensor:
        arrays = []
        for k, i in enumerate(indices):
            arr = None
            if has_image[k]:
                try:
                    arr = self.load_image(self.posts[i].images[0])  # type: ignore[misc]
                except Exception as e:  # masked for this batch, counted, reported
                    self.image_failures += 1
                    log.warning("post %s: image %s unreadable, masked: %s", self.posts[i].id,
                                self.posts[i].images[0], e)
                    has_image[k] = False
            arrays.append(arr if arr is not None
                          else np.zeros((3, self.image_size, self.image_size), dtype=np.float32))
        return torch.from_numpy(np.stack(arrays))


def unwrap(batch: Batch) -> Batch:
    """collate_fn for a DataLoader over a PostDataset (the dataset already returns a whole batch)."""
    return batch
