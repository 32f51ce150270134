"""``mmpost label-issues CV_DIR``: the posts whose given label the out-of-fold model doubts, for a person to review.

    result = find_label_issues_in("runs/sentiment-cv")             # the first task; writes runs/.../label_issues/

Reads the folder ``mmpost cv`` wrote: ``labels.json`` (the tasks) and ``oof.jsonl`` (one out-of-fold prediction per
post per seed; see :mod:`mmpost.evaluation.predictions` for the record). A post's probabilities are averaged over
its seeds; posts without a label for the task are left out and counted. The ranking is
:func:`mmpost.evaluation.label_issues.rank_label_issues` (confident learning). Written, each in one atomic step:

- ``label_issues.csv``: every ranked post, most doubtful first;
- ``label_issues.html``: the page to review the top posts (every flagged post, at most 500, unless ``top``);
- ``label_studio.json`` + ``label_studio_config.xml``: the same posts as a Label Studio project, the suggested
  label pre-filled (see :mod:`mmpost.evaluation.label_studio` for the image URLs).

Single-label tasks only: a multi-label task is refused with a ValueError.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.evaluation.label_issues import METHODS, IssuePost, RankedIssues, rank_label_issues
from mmpost.evaluation.label_issues_page import PageSummary, render_label_issues_page
from mmpost.evaluation.label_studio import label_studio_config, label_studio_tasks
from mmpost.evaluation.predictions import LABELS_FILE, Task, record_tasks, run_tasks

log = logging.getLogger(__name__)

__all__ = ["OOF_FILE", "OUT_FOLDER", "MAX_PAGE_POSTS", "LabelIssuesResult", "find_label_issues_in"]

OOF_FILE = "oof.jsonl"
OUT_FOLDER = "label_issues"
MAX_PAGE_POSTS = 500
CSV_COLUMNS = ("rank", "id", "row", "given", "suggested", "score", "is_issue", "p_given", "p_suggested", "text",
               "image")


@dataclass
class LabelIssuesResult:
    """What :func:`find_label_issues_in` wrote and found. ``ids`` and ``scores`` are the ranking, most doubtful
    first (``scores[i]`` is the doubt of ``ids[i]``); ``flagged`` the ids confident learning flagged."""

    task: str
    method: str
    csv: Path
    html: Path
    label_studio: Path
    label_studio_config: Path
    n_posts: int
    n_flagged: int
    n_without_gold: int
    n_seeds: int
    n_shown: int
    ids: list[str]
    scores: list[float]
    flagged: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class _Post:
    """One post while its seeds are read: the sum of its probabilities and where it was first seen."""

    post_id: str
    line: int
    probs_sum: np.ndarray
    n: int
    gold: str | None
    text: str
    images: list[str]
    row: int | None


# ----------------------------------------------------------------------------------------------- reading


def _pick_task(cv_dir: Path, task: str | None) -> Task:
    """The task by name (default: the first one) — a single-label one."""
    tasks = run_tasks(cv_dir)
    if task is None:
        chosen = tasks[0]
    else:
        found = [t for t in tasks if t.name == task]
        if not found:
            raise ValueError(f"{cv_dir / LABELS_FILE}: no task {task!r}; the tasks are "
                             f"{', '.join(t.name for t in tasks)}")
        chosen = found[0]
    if chosen.multi_label:
        raise ValueError(f"{cv_dir / LABELS_FILE}: task {chosen.name!r} is multi-label; label-issue finding "
                         "supports single-label tasks only")
    return chosen


def _oof_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line of ``oof.jsonl``."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {n}: expected a JSON object, got {type(record).__name__}")
            yield n, record


def _probs(part: Mapping[str, Any], task: Task, where: str) -> np.ndarray:
    """The task's probabilities in label order; every label must be there, as a finite number."""
    probs = part.get("probs")
    if not isinstance(probs, dict):
        raise ValueError(f"{where}: `probs` must map each label of task {task.name} to a probability, got {probs!r}")
    missing = [name for name in task.labels if name not in probs]
    extra = [name for name in probs if name not in task.labels]
    if missing or extra:
        raise ValueError(f"{where}: `probs` must have the labels {list(task.labels)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
    values = [probs[name] for name in task.labels]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in values):
        raise ValueError(f"{where}: `probs` must hold finite non-negative numbers, got {probs!r}")
    return np.asarray(values, dtype=float)


def _gold(part: Mapping[str, Any], task: Task, where: str) -> str | None:
    gold = part.get("gold")
    if gold is not None and gold not in task.labels:
        raise ValueError(f"{where}: `gold` {gold!r} is not a label of task {task.name} {list(task.labels)}")
    return gold


def _post_fields(record: Mapping[str, Any], where: str) -> tuple[str, str, list[str], int | None]:
    """(id, text, images, row) of a record, checked."""
    post_id = record.get("id")
    if not isinstance(post_id, (str, int)) or isinstance(post_id, bool) or post_id == "":
        raise ValueError(f"{where}: `id` must be a non-empty string, got {post_id!r}")
    text = record.get("text", "")
    images = record.get("images", [])
    row = record.get("row")
    if not isinstance(text, str):
        raise ValueError(f"{where}: `text` must be a string, got {type(text).__name__}")
    if images is None:
        images = []
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise ValueError(f"{where}: `images` must be a list of paths, got {images!r}")
    if row is not None and (not isinstance(row, int) or isinstance(row, bool)):
        raise ValueError(f"{where}: `row` must be an integer, got {row!r}")
    return str(post_id), text, images, row


def _read_oof(path: Path, tasks: Sequence[Task], task: Task) -> tuple[list[_Post], set[Any]]:
    """Every post of ``oof.jsonl`` in first-seen order, its seeds' probabilities summed; and the seeds seen.
    The same post twice under one seed, or with two different gold labels, is an error naming both lines."""
    posts: dict[str, _Post] = {}
    seen: dict[tuple[str, str], int] = {}
    seeds: set[Any] = set()
    for n, record in _oof_lines(path):
        where = f"{path}, line {n}"
        post_id, text, images, row = _post_fields(record, where)
        try:
            part = record_tasks(record, tasks).get(task.name)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: {e}") from None
        if not isinstance(part, dict):
            raise ValueError(f"{where}: no prediction for task {task.name!r} (expected `tasks.{task.name}` "
                             "or, with one task, `probs` at the top)")
        probs, gold = _probs(part, task, where), _gold(part, task, where)
        seed = record.get("seed")
        key = (post_id, json.dumps(seed))
        if key in seen:
            raise ValueError(f"{where}: post {post_id!r} appears again for seed {seed!r} (first on line {seen[key]})")
        seen[key] = n
        seeds.add(json.dumps(seed))
        post = posts.get(post_id)
        if post is None:
            posts[post_id] = _Post(post_id, n, probs, 1, gold, text, images, row)
            continue
        if post.gold != gold:
            raise ValueError(f"{where}: post {post_id!r} has `gold` {gold!r}, but {post.gold!r} on line {post.line}")
        post.probs_sum = post.probs_sum + probs
        post.n += 1
    return list(posts.values()), seeds


# ----------------------------------------------------------------------------------------------- writing


def _issue_posts(posts: Sequence[_Post], probs: np.ndarray, given: np.ndarray, ranked: RankedIssues,
                 task: Task) -> list[IssuePost]:
    """The ranked posts, most doubtful first, as the writers show them."""
    out = []
    for rank, i in enumerate(ranked.order, start=1):
        p = posts[i]
        out.append(IssuePost(rank=rank, post_id=p.post_id, row=p.row, text=p.text,
                             image=p.images[0] if p.images else None, given=task.labels[given[i]],
                             suggested=task.labels[ranked.suggested[i]], score=float(ranked.score[i]),
                             is_issue=bool(ranked.is_issue[i]),
                             probs={name: float(v) for name, v in zip(task.labels, probs[i])}))
    return out


def _csv_text(posts: Sequence[IssuePost]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in posts:
        writer.writerow([p.rank, p.post_id, "" if p.row is None else p.row, p.given, p.suggested, f"{p.score:.6f}",
                         str(p.is_issue).lower(), f"{p.p_given:.6f}", f"{p.p_suggested:.6f}", p.text, p.image or ""])
    return buf.getvalue()


def _n_shown(top: int | None, n_posts: int, n_flagged: int) -> int:
    """How many cards the page shows: ``top``, or every flagged post up to :data:`MAX_PAGE_POSTS`."""
    if top is None:
        return min(n_flagged, MAX_PAGE_POSTS)
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"top must be a non-negative number of posts, got {top!r}")
    return min(top, n_posts)


# ------------------------------------------------------------------------------------------------- the app


def find_label_issues_in(cv_dir: str | Path, *, task: str | None = None, out_dir: str | Path | None = None,
                         top: int | None = None, method: str = "cleanlab",
                         image_root: str | Path | None = None) -> LabelIssuesResult:
    """Rank the posts of a cross-validation folder by label doubt and write the CSV, the review page and the
    Label Studio files to ``out_dir`` (default ``CV_DIR/label_issues/``); see the module docstring.
    ``method`` is passed to :func:`rank_label_issues`; ``image_root`` is the Label Studio document root the
    image URLs are relative to (default the file-system root)."""
    cv_dir = Path(cv_dir)
    if method not in METHODS:
        raise ValueError(f"unknown label-issue method {method!r}; expected one of {', '.join(METHODS)}")
    oof = cv_dir / OOF_FILE
    if not oof.is_file():
        raise FileNotFoundError(f"{oof} is missing: run `mmpost cv` first (it writes the out-of-fold predictions)")
    tasks = run_tasks(cv_dir)
    chosen = _pick_task(cv_dir, task)
    all_posts, seeds = _read_oof(oof, tasks, chosen)
    posts = [p for p in all_posts if p.gold is not None]
    n_without_gold = len(all_posts) - len(posts)
    if n_without_gold:
        log.info("label-issues: %d of %d posts have no %s label and are left out", n_without_gold, len(all_posts),
                 chosen.name)
    if not posts:
        raise ValueError(f"{oof}: no post has a `gold` label for task {chosen.name!r} "
                         f"({len(all_posts)} posts read): there is nothing to check")
    probs = np.stack([p.probs_sum / p.n for p in posts])
    given = np.asarray([chosen.labels.index(p.gold) for p in posts], dtype=np.int64)
    ranked = rank_label_issues(probs, given, method=method)
    ranked_posts = _issue_posts(posts, probs, given, ranked, chosen)
    n_shown = _n_shown(top, len(posts), ranked.n_flagged)

    out = Path(out_dir) if out_dir is not None else cv_dir / OUT_FOLDER
    paths = {name: out / name for name in ("label_issues.csv", "label_issues.html", "label_studio.json",
                                           "label_studio_config.xml")}
    summary = PageSummary(title=f"Suspected label errors · {chosen.name} · {cv_dir.name}", task=chosen.name,
                          method=ranked.method, n_posts=len(posts), n_flagged=ranked.n_flagged,
                          n_without_gold=n_without_gold, n_seeds=len(seeds), notes=ranked.notes)
    ls_tasks = label_studio_tasks(ranked_posts, image_root)      # before any write: a bad image root fails early
    atomic_write_text(paths["label_issues.csv"], _csv_text(ranked_posts))
    atomic_write_text(paths["label_issues.html"], render_label_issues_page(ranked_posts[:n_shown], summary))
    atomic_write_json(paths["label_studio.json"], ls_tasks)
    atomic_write_text(paths["label_studio_config.xml"], label_studio_config(chosen.labels))
    log.info("label-issues: %d of %d posts flagged (%s); written to %s", ranked.n_flagged, len(posts),
             ranked.method, out)
    return LabelIssuesResult(
        task=chosen.name, method=ranked.method, csv=paths["label_issues.csv"], html=paths["label_issues.html"],
        label_studio=paths["label_studio.json"], label_studio_config=paths["label_studio_config.xml"],
        n_posts=len(posts), n_flagged=ranked.n_flagged, n_without_gold=n_without_gold, n_seeds=len(seeds),
        n_shown=n_shown, ids=[p.post_id for p in ranked_posts], scores=[p.score for p in ranked_posts],
        flagged=[p.post_id for p in ranked_posts if p.is_issue], notes=list(ranked.notes))
