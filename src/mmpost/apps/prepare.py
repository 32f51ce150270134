"""From a data config to validated, split posts with a fixed label list per task: what every app starts with.

    data = prepare(cfg.data, "sentiment")                       # one task: data.task, data.labels
    data = prepare(cfg.data, ["sentiment", "sarcasm", "emotion"])  # several: data.tasks (TaskSpec each)

One pipeline for every task: load (data.path, data.files or an adapter) → data.require_image → data.limit → (the
emoticon task: labels from the emoji in the texts) → validation and data.policy → posts with at least one task's
label → split (data.splits_from, or data.split_method stratified by the first task and grouped by data.group_by)
→ data.max_train.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmpost.config import DataConfig, data_root, default_cache_dir, resolve
from mmpost.data.emoji_options import EMOTICON_TASK
from mmpost.data.groups import describe_groups
from mmpost.data.manifest import ColumnMapping, load_manifest
from mmpost.data.post import Post
from mmpost.data.saved_splits import apply_saved_splits, read_splits, splits_file
from mmpost.data.splits import assign_splits, by_split, stratified_split
from mmpost.data.tasks import TaskSpec, configured_labels, label_names, multi_label_in
from mmpost.data.validate import apply_policy, validate_posts

if TYPE_CHECKING:
    from mmpost.data.emoji import EmoticonReport, EmoticonTask

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")


@dataclass(init=False)
class PreparedData:
    """Validated posts in train / dev / test and the tasks they are labelled for (the first task stratified the
    split). ``PreparedData(task, labels, splits)`` still builds single-task data."""

    tasks: list[TaskSpec]
    splits: dict[str, list[Post]]
    notes: list[str]
    counts: dict[str, int]
    emoticon: EmoticonReport | None     # the emoticon task: what the emoji labeller read, kept and dropped

    def __init__(self, task: str | None = None, labels: list[str] | None = None,
                 splits: dict[str, list[Post]] | None = None, notes: list[str] | None = None,
                 counts: dict[str, int] | None = None, *, tasks: list[TaskSpec] | None = None,
                 emoticon: EmoticonReport | None = None) -> None:
        if tasks is None:
            if task is None or labels is None:
                raise TypeError("PreparedData needs tasks=[TaskSpec, ...], or a task and its labels")
            tasks = [TaskSpec(task, list(labels))]
        elif task is not None or labels is not None:
            raise TypeError("give PreparedData either tasks= or task and labels, not both")
        self.tasks, self.splits = list(tasks), dict(splits or {})
        self.notes, self.counts, self.emoticon = list(notes or []), dict(counts or {}), emoticon

    @property
    def task(self) -> str:
        """The first task's name (what single-task callers train on)."""
        return self.tasks[0].name

    @property
    def labels(self) -> list[str]:
        """The first task's label names."""
        return self.tasks[0].labels


def column_mapping(cfg: DataConfig) -> ColumnMapping:
    """The manifest columns to read; a ``column:NAME`` of data.group_by is kept (in ``meta``) for grouping."""
    cols = cfg.columns
    kwargs = {f.name: getattr(cols, f.name) for f in dataclasses.fields(cols)}
    kwargs["image_root"] = resolve(cfg, cols.image_root) if cols.image_root else None
    grouped = [g.split(":", 1)[1] for g in cfg.group_by if g.startswith("column:")]
    kwargs["keep"] = list(dict.fromkeys([*cols.keep, *grouped]))
    return ColumnMapping(**kwargs)


def split_files(cfg: DataConfig) -> list[Post]:
    """data.files: one manifest per split, each read with data.columns; every post gets its file's split."""
    posts: list[Post] = []
    mapping = column_mapping(cfg)
    for split in SPLITS:
        if split not in cfg.files:
            continue
        for p in load_manifest(resolve(cfg, cfg.files[split]), mapping):  # type: ignore[arg-type]
            p.meta["split"] = split
            posts.append(p)
    return posts


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
    if path is not None and in_own_layout(cfg, path):
        return adapter_file(cfg, path)
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
    if path is None and cfg.files:
        listed = ", ".join(f"{k} {v}" for k, v in cfg.files.items())
        return split_files(cfg), [f"one file per split (data.files): {listed}"]
    manifest = resolve(cfg, path or cfg.path)
    return load_manifest(manifest, column_mapping(cfg)), []  # type: ignore[arg-type]


def in_own_layout(cfg: DataConfig, path: str) -> bool:
    """Whether ``cfg.source`` is a dataset adapter and ``path`` a file in that dataset's own layout (its header has
    the adapter's columns: :mod:`mmpost.data.sources.layout`); such a file is read by the adapter, not as a
    manifest."""
    if cfg.source in ("synthetic", "manifest"):
        return False
    from mmpost.data.sources import get_source
    from mmpost.data.sources.layout import reads_layout
    return reads_layout(get_source(cfg.source), Path(path).expanduser())


def adapter_file(cfg: DataConfig, path: str) -> tuple[list[Post], list[str]]:
    """The posts (split ``test``) and notes of ``path``, a file in the layout of the dataset ``cfg.source``."""
    from mmpost.data.sources import get_source
    from mmpost.data.sources.layout import read_in_layout
    loaded = read_in_layout(get_source(cfg.source), Path(path).expanduser(), data_root=data_root(cfg),
                            image_root=cfg.image_root)
    for note in loaded.notes:
        log.info("%s: %s", cfg.source, note)
    return loaded.posts, list(loaded.notes)


def default_labels(task: str, cfg: DataConfig, posts: list[Post], *, first: bool = True) -> list[str]:
    """The label names of ``task``: ``data.labels`` (a list is the ``first`` task's; a mapping names each task's),
    else the embedded set's or the adapter's, else the 0/1 columns of a multi-label task, else those seen."""
    given = configured_labels(cfg.labels, task, first=first)
    if given:
        return given
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
    columns = cfg.columns.labels.get(task)
    if isinstance(columns, (list, tuple)):          # one 0/1 column per label, named after it
        return [str(c) for c in columns]
    return sorted({name for p in posts if task in p.labels for name in label_names(p.labels[task])})


def is_multi_label(task: str, cfg: DataConfig, posts: list[Post]) -> bool:
    """A task read as several 0/1 columns or with a separator, or whose posts hold several labels each."""
    columns = cfg.columns.labels.get(task) if cfg.source == "manifest" else None
    return (isinstance(columns, (list, tuple)) or (cfg.source == "manifest" and task in cfg.columns.label_sep)
            or multi_label_in(posts, task))


def task_specs(cfg: DataConfig, tasks: list[str], posts: list[Post], labels: object = None) -> list[TaskSpec]:
    """One TaskSpec per task: its labels from ``labels`` (the caller's: a list for the first task or a mapping),
    else :func:`default_labels`."""
    specs = []
    for i, task in enumerate(tasks):
        names = configured_labels(labels, task, first=i == 0) or default_labels(task, cfg, posts, first=i == 0)
        if not names:
            raise ValueError(f"no post has a label for task {task!r}: map a column to it in data.columns.labels")
        specs.append(TaskSpec(task, names, is_multi_label(task, cfg, posts)))
    return specs


def subsample(posts: list[Post], task: str, n: int, *, seed: int) -> list[Post]:
    """``n`` of ``posts``, stratified by the task's label and seeded; the kept posts stay in their order."""
    from sklearn.model_selection import train_test_split
    y = [str(p.labels.get(task, "")) for p in posts]
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
    from mmpost.data.emoji import emoticon_task  # the Unicode emoji data loads only for this task
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


def _load(cfg: DataConfig, tasks: list[str], path: str | None, labels: object
          ) -> tuple[list[Post], list[str], dict[str, int], list[TaskSpec], EmoticonReport | None]:
    """Loaded posts after data.require_image and data.limit, labelled: (posts, notes, counts, one TaskSpec per
    task, the emoticon report where a task's labels come from emoji)."""
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
    if EMOTICON_TASK in tasks:
        first = tasks[0] == EMOTICON_TASK
        made = emoticon_labelled(cfg, posts, EMOTICON_TASK, notes, from_source=path is None,
                                 labels=configured_labels(labels, EMOTICON_TASK, first=first))
        posts, emoticon = made.posts, made.report
        labels = {**_by_task(labels, tasks), EMOTICON_TASK: made.labels}
    return posts, notes, counts, task_specs(cfg, tasks, posts, labels), emoticon


def _by_task(labels: object, tasks: list[str]) -> dict[str, list[str]]:
    """A caller's ``labels`` (a list: the first task's; or a mapping) as a mapping task → labels."""
    found = {t: configured_labels(labels, t, first=i == 0) for i, t in enumerate(tasks)}
    return {t: v for t, v in found.items() if v}


def _split(cfg: DataConfig, posts: list[Post], task: str, notes: list[str], *, resplit: bool) -> list[Post]:
    """Give every post a split: data.splits_from, else data.split_method (grouped by data.group_by);
    ``resplit``: ignore the splits the posts came with."""
    if cfg.splits_from:
        source = splits_file(cfg.splits_from)
        posts, said = apply_saved_splits(posts, read_splits(source), str(source))
        notes += said
        return posts
    if cfg.files and "dev" not in cfg.files:
        train = [p for p in posts if p.meta.get("split") == "train"]
        for p in train:
            p.meta.pop("split")
        stratified_split(train, task, (0.9, 0.1), seed=cfg.split_seed, names=("train", "dev"),
                         group_by=tuple(cfg.group_by))
        notes.append(f"data.files has no dev file: a stratified, grouped 10% of the training file is dev "
                     f"(seed {cfg.split_seed})")
    if resplit:
        notes.append(f"split again, stratified by {task} {list(cfg.split_fractions)} (seed {cfg.split_seed})"
                     if cfg.split_method == "stratified" else "split again by a hash of their id")
    elif not any("split" in p.meta and p.meta["split"] for p in posts):
        how = ("stratified by label and grouped (data.group_by) (seed {})".format(cfg.split_seed)
               if cfg.split_method == "stratified" else "by a hash of their id")
        notes.append(f"no split column: posts were split {list(cfg.split_fractions)} {how}")
    if cfg.split_method == "stratified":
        return stratified_split(posts, task, tuple(cfg.split_fractions), seed=cfg.split_seed, overwrite=resplit,
                                group_by=tuple(cfg.group_by))
    return assign_splits(posts, tuple(cfg.split_fractions), salt=cfg.split_salt, overwrite=resplit)


def _validated(cfg: DataConfig, posts: list[Post], tasks: dict[str, list[str]], notes: list[str],
               counts: dict[str, int], progress: bool) -> list[Post]:
    """Posts after validation and data.policy."""
    report = validate_posts(posts, tasks, progress=progress, image_hint=image_hint(cfg))
    posts, done = apply_policy(posts, report, cfg.policy)
    counts.update(done)
    if not report.ok:
        notes.append(f"data policy `{cfg.policy}`: " + ", ".join(f"{k} {v}" for k, v in done.items())
                     + " (" + ", ".join(f"{k} {v}" for k, v in report.counts().items()) + ")")
        notes += report.hints
        log.warning("data policy %s applied: %s", cfg.policy, done)
    return posts


def image_hint(cfg: DataConfig) -> str | None:
    """What a manifest's image names were made with, for the missing-images hint of validation."""
    cols = cfg.columns
    if cfg.source != "manifest" or not cols.image:
        return None
    pattern = f"data.columns.image_pattern {cols.image_pattern!r}" if cols.image_pattern else "the cells as names"
    return f"{pattern} on column {cols.image!r}"


def _labelled(posts: list[Post], tasks: list[str], notes: list[str]) -> list[Post]:
    """The posts with a label for at least one of ``tasks``; a post lacking some task's label stays (masked from
    that task's loss), one lacking every task's is left out."""
    unlabelled = sum(not any(t in p.labels for t in tasks) for p in posts)
    if not unlabelled:
        return posts
    notes.append(f"{unlabelled} posts without a `{tasks[0]}` label were left out" if len(tasks) == 1 else
                 f"{unlabelled} posts without a label for any of {', '.join(tasks)} were left out")
    return [p for p in posts if any(t in p.labels for t in tasks)]


def _final_checks(splits: dict[str, list[Post]], notes: list[str], require_splits: bool) -> None:
    if not any(p.images for s in splits.values() for p in s) and not any(n.startswith("images:") for n in notes):
        notes.append("no post has an image: every post ran text-only, with the image masked by the learned "
                     "no-image vector (image-text objectives have no pairs to learn from)")
    if require_splits:
        empty = [s for s in ("train", "dev") if not splits[s]]
        if empty:
            raise ValueError(f"split(s) {', '.join(empty)} are empty after validation; "
                             f"sizes: { {k: len(v) for k, v in splits.items()} }")


def prepare(cfg: DataConfig, tasks: str | list[str], *, labels: list[str] | dict[str, list[str]] | None = None,
            path: str | None = None, progress: bool = True, require_splits: bool = True) -> PreparedData:
    """``cfg`` → validated posts in train / dev / test, labelled for one task or several (``tasks``), each with a
    fixed label list: ``labels`` (a list: the first task's; a mapping task → labels), else data.labels, else the
    source's. A post needs a label for at least one task; the split and data.max_train stratify by the first.
    The ``emoticon`` task's labels come from the emoji in the texts (:func:`emoticon_labelled`), after
    data.require_image and data.limit and before validation, so every data option applies to it the same way."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"prepare needs one task or several distinct ones, got {tasks!r}")
    posts, notes, counts, specs, emoticon = _load(cfg, names, path, labels)
    posts = _validated(cfg, posts, {t.name: t.labels for t in specs}, notes, counts, progress)
    posts = _labelled(posts, names, notes)
    first = names[0]
    resplit = emoticon is not None and (cfg.emoticon.resplit or not all(p.meta.get("split") for p in posts))
    splits = by_split(_split(cfg, posts, first, notes, resplit=resplit))
    unknown = [name for name in splits if name not in SPLITS]
    if unknown:
        notes.append(f"{sum(len(splits[n]) for n in unknown):,} posts in split(s) {', '.join(map(repr, unknown))} "
                     "were left out (mmpost trains on train, chooses on dev and scores test)")
    splits = {name: splits.get(name, []) for name in SPLITS}
    notes.append(describe_groups([p for v in splits.values() for p in v], list(cfg.group_by), splits))
    if cfg.max_train and len(splits["train"]) > cfg.max_train:
        splits["train"] = subsample(splits["train"], first, cfg.max_train, seed=cfg.split_seed)
        notes.append(f"training posts: a stratified sample of {cfg.max_train} (data.max_train, seed {cfg.split_seed})")
    _final_checks(splits, notes, require_splits)
    counts.update({k: len(v) for k, v in splits.items()})
    if emoticon is not None:
        emoticon.recount([p for v in splits.values() for p in v])
    return PreparedData(tasks=specs, splits=splits, notes=notes, counts=counts, emoticon=emoticon)
