"""From a data config to validated, split posts with a fixed label list: what every app starts with."""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmpost.config import DataConfig, data_root, default_cache_dir, resolve
from mmpost.data.emoji_options import EMOTICON_TASK
from mmpost.data.manifest import ColumnMapping, load_manifest
from mmpost.data.post import Post
from mmpost.data.splits import assign_splits, by_split, stratified_split
from mmpost.data.validate import apply_policy, validate_posts

if TYPE_CHECKING:
    from mmpost.data.emoji import EmoticonReport, EmoticonTask

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")


@dataclass
class PreparedData:
    task: str
    labels: list[str]
    splits: dict[str, list[Post]]
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    emoticon: EmoticonReport | None = None     # the emoticon task: what the emoji labeller read, kept and dropped


def column_mapping(cfg: DataConfig) -> ColumnMapping:
    cols = cfg.columns
    kwargs = {f.name: getattr(cols, f.name) for f in dataclasses.fields(cols)}
    kwargs["image_root"] = resolve(cfg, cols.image_root) if cols.image_root else None
    return ColumnMapping(**kwargs)


def synthetic_dir(cfg: DataConfig) -> Path:
    from mmpost.data.synthetic import SPEC_VERSION
    s = cfg.synthetic
    name = f"v{SPEC_VERSION}-n{s.n}-px{s.size}-seed{s.seed}-w{int(s.words_in_image)}"
    return default_cache_dir() / "synthetic" / name


def load_posts(cfg: DataConfig, path: str | None = None) -> list[Post]:
    """Posts from the embedded generator, a dataset adapter or a manifest (``path`` overrides both)."""
    return load_source(cfg, path)[0]


def load_source(cfg: DataConfig, path: str | None = None) -> tuple[list[Post], list[str]]:
    """Posts and the source's notes (an adapter says what it inferred, which images are absent, ...)."""
    if cfg.source == "synthetic" and path is None:
        from mmpost.data.synthetic import generate_posts
        s = cfg.synthetic
        posts = generate_posts(synthetic_dir(cfg), n=s.n, size=s.size, seed=s.seed, words_in_image=s.words_in_image)
        return posts, []
    if cfg.source not in ("synthetic", "manifest") and path is None:
        from mmpost.data.sources import get_source
        root = data_root(cfg)
        if root is None:
            raise ValueError(f"dataset {cfg.source!r} reads its files under the data root: set MMPOST_DATA_ROOT "
                             "or data.data_root")
        image_root = resolve(cfg, cfg.image_root) if cfg.image_root else None
        loaded = get_source(cfg.source).load(root, image_root=Path(image_root) if image_root else None,
                                             **dict(cfg.options))
        for note in loaded.notes:
            log.info("%s: %s", cfg.source, note)
        return loaded.posts, list(loaded.notes)
    manifest = resolve(cfg, path or cfg.path)
    return load_manifest(manifest, column_mapping(cfg)), []  # type: ignore[arg-type]


def default_labels(task: str, cfg: DataConfig, posts: list[Post]) -> list[str]:
    if cfg.labels:
        return list(cfg.labels)
    if cfg.source == "synthetic":
        from mmpost.data.synthetic import SYNTHETIC_TASKS
        if task not in SYNTHETIC_TASKS:
            raise ValueError(f"the embedded dataset has no task {task!r}; tasks: {', '.join(SYNTHETIC_TASKS)}")
        return list(SYNTHETIC_TASKS[task])
    if cfg.source != "manifest":
        from mmpost.data.sources import get_source
        tasks = get_source(cfg.source).tasks
        if task not in tasks:
            raise ValueError(f"dataset {cfg.source!r} has no task {task!r}; its tasks: {', '.join(tasks)}")
        return list(tasks[task])
    return sorted({p.labels[task] for p in posts if task in p.labels})


def subsample(posts: list[Post], task: str, n: int, *, seed: int) -> list[Post]:
    """``n`` of ``posts``, stratified by the task's label and seeded; the kept posts stay in their order."""
    from sklearn.model_selection import train_test_split
    y = [p.labels.get(task, "") for p in posts]
    try:
        keep, _ = train_test_split(list(range(len(posts))), train_size=n, stratify=y, random_state=seed)
    except ValueError:      # a class too small to stratify: a plain seeded sample
        keep, _ = train_test_split(list(range(len(posts))), train_size=n, random_state=seed)
    return [posts[i] for i in sorted(keep)]


def emoticon_labelled(cfg: DataConfig, posts: list[Post], task: str, notes: list[str], *,
                      labels: list[str] | None = None, from_source: bool = True) -> EmoticonTask:
    """Loaded posts → posts labelled with the emoji in their texts (``mmpost.data.emoji``), the label emoji removed
    from each text. Synthetic posts first get their emoji; ``labels`` fixes the label set (else
    ``data.emoticon``'s ``top_k`` / ``labels``). ``notes`` is updated: a source's notes on its own tasks go, the
    labeller's report lines come."""
    from mmpost.data.emoji import emoticon_task       # the Unicode emoji data loads only for this task
    if cfg.source == "synthetic" and from_source:
        from mmpost.data.synthetic import emoticon_posts
        posts = emoticon_posts(posts)
    elif cfg.source not in ("synthetic", "manifest") and from_source:
        from mmpost.data.sources import get_source
        if task not in get_source(cfg.source).tasks:      # the other notes speak of the source's own tasks
            notes[:] = [n for n in notes if n.startswith("images:")]
    opts = {k: v for k, v in dataclasses.asdict(cfg.emoticon).items() if k != "resplit"}
    if labels:
        opts.update(labels=list(labels), top_k=None)
    made = emoticon_task(posts, task=task, **opts)
    notes += made.report.lines()
    return made


def _load(cfg: DataConfig, task: str, path: str | None, labels: list[str] | None
          ) -> tuple[list[Post], list[str], dict[str, int], list[str], EmoticonReport | None]:
    """Loaded posts after data.require_image and data.limit, with their labels: (posts, notes, counts, labels,
    the emoticon report where the task's labels come from emoji)."""
    posts, notes = load_source(cfg, path)
    counts: dict[str, int] = {"loaded": len(posts)}
    if cfg.require_image:
        before = len(posts)
        posts = [p for p in posts if p.images and os.path.isfile(p.images[0])]
        if before != len(posts):
            notes.append(f"{before - len(posts)} posts without an image file were left out (data.require_image)")
            log.info("data.require_image: %d of %d posts have an image file", len(posts), before)
    if cfg.limit:
        posts = posts[: cfg.limit]
        notes.append(f"only the first {cfg.limit} posts are used (data.limit)")
    emoticon: EmoticonReport | None = None
    if task == EMOTICON_TASK:
        made = emoticon_labelled(cfg, posts, task, notes, labels=labels, from_source=path is None)
        posts, labels, emoticon = made.posts, made.labels, made.report
    labels = labels or default_labels(task, cfg, posts)
    if not labels:
        raise ValueError(f"no post has a label for task {task!r}: map a column to it in data.columns.labels")
    return posts, notes, counts, labels, emoticon


def _split(cfg: DataConfig, posts: list[Post], task: str, notes: list[str], *, resplit: bool) -> list[Post]:
    """Give every post a split (data.split_method); ``resplit``: ignore the splits the posts came with."""
    if resplit:
        notes.append(f"split again, stratified by {task} {list(cfg.split_fractions)} (seed {cfg.split_seed})"
                     if cfg.split_method == "stratified" else "split again by a hash of their id")
    elif not any("split" in p.meta and p.meta["split"] for p in posts):
        how = ("stratified by label and grouped by image (seed {})".format(cfg.split_seed)
               if cfg.split_method == "stratified" else "by a hash of their id")
        notes.append(f"no split column: posts were split {list(cfg.split_fractions)} {how}")
    if cfg.split_method == "stratified":
        return stratified_split(posts, task, tuple(cfg.split_fractions), seed=cfg.split_seed, overwrite=resplit)
    return assign_splits(posts, tuple(cfg.split_fractions), salt=cfg.split_salt, overwrite=resplit)


def _validated(cfg: DataConfig, posts: list[Post], tasks: dict[str, list[str]], notes: list[str],
               counts: dict[str, int], progress: bool) -> list[Post]:
    """Posts after validation and data.policy."""
    report = validate_posts(posts, tasks, progress=progress)
    posts, done = apply_policy(posts, report, cfg.policy)
    counts.update(done)
    if not report.ok:
        notes.append(f"data policy `{cfg.policy}`: " + ", ".join(f"{k} {v}" for k, v in done.items())
                     + " (" + ", ".join(f"{k} {v}" for k, v in report.counts().items()) + ")")
        log.warning("data policy %s applied: %s", cfg.policy, done)
    return posts


def prepare(cfg: DataConfig, task: str, *, labels: list[str] | None = None, path: str | None = None,
            progress: bool = True, require_splits: bool = True) -> PreparedData:
    """``cfg`` → validated posts in train / dev / test with a fixed label list. The ``emoticon`` task's labels
    come from the emoji in the texts (:func:`emoticon_labelled`), after data.require_image and data.limit and
    before validation, so every data option applies to it the same way."""
    posts, notes, counts, labels, emoticon = _load(cfg, task, path, labels)
    posts = _validated(cfg, posts, {task: labels}, notes, counts, progress)
    unlabelled = sum(task not in p.labels for p in posts)
    if unlabelled:
        posts = [p for p in posts if task in p.labels]
        notes.append(f"{unlabelled} posts without a `{task}` label were left out")
    resplit = emoticon is not None and (cfg.emoticon.resplit or not all(p.meta.get("split") for p in posts))
    splits = by_split(_split(cfg, posts, task, notes, resplit=resplit))
    splits = {name: splits.get(name, []) for name in SPLITS}
    if cfg.max_train and len(splits["train"]) > cfg.max_train:
        splits["train"] = subsample(splits["train"], task, cfg.max_train, seed=cfg.split_seed)
        notes.append(f"training posts: a stratified sample of {cfg.max_train} (data.max_train, seed {cfg.split_seed})")
    if not any(p.images for s in splits.values() for p in s) and not any(n.startswith("images:") for n in notes):
        notes.append("no post has an image: every post ran text-only, with the image masked by the learned "
                     "no-image vector (image-text objectives have no pairs to learn from)")
    if require_splits:
        empty = [s for s in ("train", "dev") if not splits[s]]
        if empty:
            raise ValueError(f"split(s) {', '.join(empty)} are empty after validation; "
                             f"sizes: { {k: len(v) for k, v in splits.items()} }")
    counts.update({k: len(v) for k, v in splits.items()})
    if emoticon is not None:
        emoticon.recount([p for v in splits.values() for p in v])
    return PreparedData(task=task, labels=labels, splits=splits, notes=notes, counts=counts, emoticon=emoticon)
