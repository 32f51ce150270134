"""What a dataset is labelled for: one :class:`TaskSpec` per task, and how a post's label for a task is read.

A single-label task gives each post one label name (``Post.labels["sentiment"] == "positive"``). A multi-label task
gives each post a tuple of label names, possibly empty (``Post.labels["emotion"] == ("joy", "surprise")``). A post
without the task in ``Post.labels`` has no label for it: it stays in the data and is masked from that task's loss.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .post import Post

__all__ = ["TaskSpec", "label_names", "multi_label_in", "configured_labels"]


@dataclass
class TaskSpec:
    """A task: its name, its label names in class-id order, and whether a post may hold several labels."""

    name: str
    labels: list[str]
    multi_label: bool = False


def label_names(value: Any) -> tuple[str, ...]:
    """The label names in one ``Post.labels`` value: a name → one name; a tuple or list → its names."""
    if value is None:
        return ()
    if isinstance(value, (tuple, list)):
        return tuple(str(v) for v in value)
    return (str(value),)


def multi_label_in(posts: Sequence[Post], task: str) -> bool:
    """Whether any post holds several-label (tuple) values for ``task``."""
    return any(isinstance(p.labels.get(task), (tuple, list)) for p in posts)


def configured_labels(given: Any, task: str, *, first: bool) -> list[str] | None:
    """The label list for ``task`` from ``data.labels`` or a caller's ``labels``: a list is the first task's, a
    mapping ``{task: [labels]}`` gives each task its own; ``None`` where nothing is given for ``task``."""
    if not given:
        return None
    if isinstance(given, Mapping):
        value = given.get(task)
        return [str(v) for v in value] if value else None
    return [str(v) for v in given] if first else None
