"""The ``emoticon`` task: posts → emoji labels (``mmpost.data.emoji``) → validated, split :class:`PreparedData`.

``prepare(cfg.data, "emoticon")`` comes here, so ``mmpost train configs/emoticon.yaml`` and the benchmark share
one path. Synthetic posts first get their emoji (``mmpost.data.synthetic.emoticon_posts``); any other source's
texts are read for the emoji they already carry. The label emoji is removed from each text (no leak).
"""
from __future__ import annotations

import dataclasses

from mmpost.apps.prepare import PreparedData, load_source, subsample
from mmpost.config import DataConfig
from mmpost.data.emoji import EmoticonReport, emoticon_task
from mmpost.data.sources import get_source
from mmpost.data.splits import by_split, stratified_split
from mmpost.data.synthetic import emoticon_posts
from mmpost.data.validate import apply_policy, validate_posts

__all__ = ["prepare_emoticon"]


def prepare_emoticon(data: DataConfig, task: str = "emoticon", *,
                     progress: bool = False) -> tuple[PreparedData, EmoticonReport]:
    """``data`` → PreparedData for the emoticon ``task``: load the source, give synthetic posts their emoji,
    label them from the emoji (``mmpost.data.emoji``), validate, and split (again, with ``data.emoticon.resplit``)."""
    posts, notes = load_source(data)
    if data.source == "synthetic":
        posts = emoticon_posts(posts)
    elif data.source != "manifest" and task not in get_source(data.source).tasks:
        notes = [n for n in notes if n.startswith("images:")]     # the rest speaks of the source's own tasks
    opts = {k: v for k, v in dataclasses.asdict(data.emoticon).items() if k != "resplit"}
    made = emoticon_task(posts, task=task, **opts)
    notes += made.report.lines()
    report = validate_posts(made.posts, {task: made.labels}, progress=progress)
    kept, counts = apply_policy(made.posts, report, data.policy)
    if data.emoticon.resplit or not all(p.meta.get("split") for p in kept):
        stratified_split(kept, task, tuple(data.split_fractions), seed=data.split_seed, overwrite=True)
        notes.append(f"split again, stratified by {task} {list(data.split_fractions)} "
                     f"(seed {data.split_seed})")
    splits = by_split(kept)
    splits = {s: splits.get(s, []) for s in ("train", "dev", "test")}
    if data.max_train and len(splits["train"]) > data.max_train:
        splits["train"] = subsample(splits["train"], task, data.max_train, seed=data.split_seed)
        notes.append(f"training posts: a stratified sample of {data.max_train} (seed {data.split_seed})")
    counts.update({s: len(v) for s, v in splits.items()})
    made.report.recount([p for v in splits.values() for p in v])
    return PreparedData(task=task, labels=made.labels, splits=splits, notes=notes, counts=counts), made.report
