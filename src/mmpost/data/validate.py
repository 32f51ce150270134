"""Check imported posts before training and report every problem at once.

:func:`validate_posts` collects :class:`Issue` records (missing or undecodable images, image paths outside the image
root, empty or overlong texts, unknown or missing labels, duplicate ids) into one :class:`ValidationReport`;
:func:`apply_policy` then stops, skips the bad posts, or keeps their text without the bad images.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from mmpost.progress import bar as progress_bar

from .groups import IMAGE_KEY
from .images import check_image
from .manifest import REFUSED_IMAGES
from .missing_images import missing_images_hint
from .post import Post
from .tasks import label_names

__all__ = [
    "Issue",
    "ValidationReport",
    "DataValidationError",
    "POLICIES",
    "ISSUE_KINDS",
    "IMAGE_KINDS",
    "MAX_TEXT_CHARS",
    "validate_posts",
    "apply_policy",
]

POLICIES = ("stop", "skip", "text-only")
ISSUE_KINDS = ("missing_image", "bad_image", "unsafe_image_path", "empty_text", "long_text", "unknown_label",
               "missing_label", "duplicate_id")
IMAGE_KINDS = frozenset({"missing_image", "bad_image", "unsafe_image_path"})
# A post's text is cut to a few hundred tokens by every encoder; a text this long is almost always a CSV quote left
# open that swallowed the rows after it, so it is reported rather than silently truncated.
MAX_TEXT_CHARS = 100_000


@dataclass
class Issue:
    """One problem with one post. ``index`` is the post's position in the list that was validated."""

    kind: str
    post_id: str
    source: str | None
    row: int | None
    field: str
    message: str
    index: int | None = None

    def where(self) -> str:
        src = self.source if self.source is not None else "<posts>"
        return f"{src}:{self.row}" if self.row is not None else src


@dataclass
class ValidationReport:
    n_posts: int
    issues: list[Issue] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)      # what probably went wrong (e.g. an image pattern)

    @property
    def ok(self) -> bool:
        return not self.issues

    def counts(self) -> dict[str, int]:
        """Issues per kind (kinds with no issue are left out)."""
        c = Counter(i.kind for i in self.issues)
        order = {k: n for n, k in enumerate(ISSUE_KINDS)}
        return {k: c[k] for k in sorted(c, key=lambda k: (order.get(k, len(order)), k))}

    def bad_post_ids(self, kinds: Iterable[str] | None = None) -> set[str]:
        wanted = None if kinds is None else set(kinds)
        return {i.post_id for i in self.issues if wanted is None or i.kind in wanted}

    def bad_indices(self, kinds: Iterable[str] | None = None) -> set[int]:
        """Positions (in the validated list) of posts with an issue of the given kinds."""
        wanted = None if kinds is None else set(kinds)
        return {i.index for i in self.issues if i.index is not None and (wanted is None or i.kind in wanted)}

    def format(self, max_lines: int = 50) -> str:
        """A readable report: a summary line per kind, then one line per issue (``file:row  field  id  message``)."""
        if self.ok:
            return f"Validated {self.n_posts} posts: no issues."
        n_bad = len({(i.index if i.index is not None else i.post_id) for i in self.issues})
        lines = [f"Validated {self.n_posts} posts: {len(self.issues)} issues in {n_bad} posts."]
        for kind, n in self.counts().items():
            lines.append(f"  {kind:<14} {n}")
        lines += [f"hint: {h}" for h in self.hints]
        shown = self._pick(max(0, int(max_lines)))
        if shown:
            lines.append("")
            w_where = max(len(i.where()) for i in shown)
            w_field = max(len(i.field) for i in shown)
            w_id = min(32, max(len(i.post_id) for i in shown))
            for i in shown:
                lines.append(f"{i.where():<{w_where}}  {i.field:<{w_field}}  {i.post_id:<{w_id}}  "
                             f"[{i.kind}] {i.message}")
        more = len(self.issues) - len(shown)
        if more > 0:
            lines.append(f"... {more} more issues not shown (showing {len(shown)} of {len(self.issues)}; "
                         "raise max_lines to see more).")
        return "\n".join(lines)

    def _pick(self, limit: int) -> list[Issue]:
        """All issues in file order, or — when there are too many — a round-robin over kinds so rare
        problems still show next to common ones."""
        ordered = sorted(enumerate(self.issues), key=lambda t: (_pos(t[1]), t[0]))
        if len(ordered) <= limit:
            return [i for _, i in ordered]
        by_kind: dict[str, list[tuple[int, Issue]]] = {}
        for t in ordered:
            by_kind.setdefault(t[1].kind, []).append(t)
        picked: list[tuple[int, Issue]] = []
        queues = [list(reversed(v)) for v in by_kind.values()]
        while len(picked) < limit and any(queues):
            for q in queues:
                if q and len(picked) < limit:
                    picked.append(q.pop())
        picked.sort(key=lambda t: (_pos(t[1]), t[0]))
        return [i for _, i in picked]

    def __str__(self) -> str:
        return self.format()


def _pos(i: Issue) -> tuple:
    return (i.index if i.index is not None else -1, i.source or "", i.row or 0)


class DataValidationError(ValueError):
    """Raised by the ``stop`` policy; ``.report`` holds the :class:`ValidationReport`."""

    def __init__(self, report: ValidationReport, max_lines: int = 50):
        self.report = report
        self.max_lines = max_lines
        super().__init__(report.format(max_lines))

    def __str__(self) -> str:
        return self.report.format(self.max_lines)


def _shorten(values: Sequence[str], n: int = 12) -> str:
    vals = [repr(v) for v in values[:n]]
    if len(values) > n:
        vals.append(f"... ({len(values)} in all)")
    return "[" + ", ".join(vals) + "]"


def _check_paths(paths: list[str], guards: dict, workers: int, progress: bool) -> dict[str, str | None]:
    """path → None (usable) / reason; files that do not exist are not passed here."""
    results: dict[str, str | None] = {}
    if not paths:
        return results
    bar = progress_bar(total=len(paths), desc="checking images", unit="img") if progress else None
    try:
        if workers <= 1 or len(paths) < 8:
            for p in paths:
                results[p] = check_image(p, **guards)
                if bar is not None:
                    bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmpost-imgcheck") as ex:
                futs = {ex.submit(check_image, p, **guards): p for p in paths}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def validate_posts(
    posts: Sequence[Post],
    tasks: dict[str, list[str]] | None = None,
    *,
    check_images: bool = True,
    require_labels: bool = False,
    image_guards: dict | None = None,
    progress: bool = False,
    workers: int | None = None,
    max_text_chars: int | None = MAX_TEXT_CHARS,
    image_hint: str | None = None,
) -> ValidationReport:
    """Check every post and return one report.

    ``unsafe_image_path``: the importer refused an image cell that pointed outside the image root (listed in
    ``meta["refused_images"]``); such a file is never opened. ``long_text``: a text over ``max_text_chars``
    characters (``None``: no limit).

    ``tasks`` maps a task to its label names: a label outside them is ``unknown_label``; with
    ``require_labels`` a post without a label for a task is ``missing_label``. With ``check_images`` every
    referenced file is decoded (each distinct path once, on ``workers`` threads, default 4) with
    :func:`mmpost.data.images.check_image` and ``image_guards`` (``max_bytes``, ``max_pixels``); without it only
    existence is checked. When several image files are missing, the report's ``hints`` say where they were looked
    for (``image_hint``: the pattern and folder that were tried) and the nearest existing names.
    """
    posts = list(posts)
    if require_labels and not tasks:
        raise ValueError("require_labels=True needs tasks (task name -> label names)")
    tasks = dict(tasks or {})
    allowed = {t: set(v) for t, v in tasks.items() if v}
    exists, decoded = _image_status(posts, check_images, dict(image_guards or {}),
                                    4 if workers is None else int(workers), progress)
    issues: list[Issue] = []
    first_seen: dict[str, int] = {}
    for idx, p in enumerate(posts):
        def add(kind: str, fld: str, msg: str, _idx: int = idx, _p: Post = p) -> None:
            issues.append(Issue(kind=kind, post_id=_p.id, source=_src(_p), row=_row(_p), field=fld, message=msg,
                                index=_idx))

        _duplicate_issue(posts, idx, first_seen, add)
        _image_issues(p, exists, decoded if check_images else {}, add)
        _text_issues(p, max_text_chars, add)
        _label_issues(p, allowed, list(tasks) if require_labels else [], add)
    issues.sort(key=lambda i: (i.index if i.index is not None else -1, ISSUE_KINDS.index(i.kind)
                               if i.kind in ISSUE_KINDS else 99))
    missing = [path for path, ok in exists.items() if not ok]
    hint = missing_images_hint(missing, image_hint)
    return ValidationReport(n_posts=len(posts), issues=issues, hints=[hint] if hint else [])


_Add = Callable[[str, str, str], None]          # add(kind, field, message) for the post being checked


def _image_status(posts: list[Post], check_images: bool, guards: dict, workers: int,
                  progress: bool) -> tuple[dict[str, bool], dict[str, str | None]]:
    """(path → the file exists, path → None or why it does not decode): existence first (cheap), then each
    distinct existing file decoded once (with ``check_images``)."""
    exists: dict[str, bool] = {}
    for p in posts:
        for path in p.images:
            if path not in exists:
                exists[path] = os.path.isfile(path)
    decoded: dict[str, str | None] = {}
    if check_images:
        todo = [pth for pth, ok in exists.items() if ok]
        decoded = _check_paths(todo, guards, workers, progress)
    return exists, decoded


def _duplicate_issue(posts: list[Post], idx: int, first_seen: dict[str, int], add: _Add) -> None:
    p = posts[idx]
    if p.id not in first_seen:
        first_seen[p.id] = idx
        return
    j = first_seen[p.id]
    q = posts[j]
    first = f"{_src(q)}:{_row(q)}" if _src(q) is not None and _row(q) is not None else f"post #{j}"
    add("duplicate_id", "id", f"duplicate id {p.id!r}: first used at {first}")


def _image_issues(p: Post, exists: dict[str, bool], decoded: dict[str, str | None], add: _Add) -> None:
    for k, path in enumerate(p.images):
        fld = "images" if len(p.images) == 1 else f"images[{k}]"
        if not exists.get(path, False):
            add("missing_image", fld, f"image file not found: {path}")
        elif decoded.get(path) is not None:
            add("bad_image", fld, f"{decoded[path]}: {path}")
    for refused in p.meta.get(REFUSED_IMAGES) or ():
        add("unsafe_image_path", "images",
            f"image path {refused.get('name')!r} points outside the image root {refused.get('root')!r}: "
            "refused, never opened ('../' and absolute paths must stay inside the image root)")


def _text_issues(p: Post, max_text_chars: int | None, add: _Add) -> None:
    if not (p.text or "").strip():
        add("empty_text", "text", "text is empty" if not p.text else "text is only whitespace")
    elif max_text_chars is not None and len(p.text) > max_text_chars:
        add("long_text", "text",
            f"text is {len(p.text):,} characters (limit {max_text_chars:,}); a cell this long is usually a quote "
            "left open in the CSV that swallowed the rows after it")


def _label_issues(p: Post, allowed: dict[str, set[str]], required: list[str], add: _Add) -> None:
    for task, value in p.labels.items():
        ok = allowed.get(task)
        for name in (label_names(value) if ok is not None else ()):
            if name not in ok:
                add("unknown_label", f"labels.{task}",
                    f"label {name!r} is not one of {_shorten(sorted(ok))} for task {task!r}")
    for task in required:
        if _missing(p.labels.get(task)):
            add("missing_label", f"labels.{task}", f"no label for task {task!r}")


def _missing(value: object) -> bool:
    """No label: absent or a blank name (an empty tuple of a multi-label task is a label: none of the classes)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _src(p: Post) -> str | None:
    s = p.meta.get("source")
    return None if s is None else str(s)


def _row(p: Post) -> int | None:
    r = p.meta.get("row")
    try:
        return None if r is None else int(r)
    except (TypeError, ValueError):
        return None


def apply_policy(posts: Sequence[Post], report: ValidationReport,
                 policy: str = "stop") -> tuple[list[Post], dict[str, int]]:
    """Act on a report for the same ``posts`` it was made from.

    ``stop``: raise :class:`DataValidationError` unless the report is clean. ``skip``: drop every post with an
    issue (for duplicate ids the later occurrences; the first stays). ``text-only``: posts whose only issues
    are image issues keep their text with ``images=[]`` and ``meta["image_masked"] = True`` (and keep their
    image key, ``meta["image_key"]``, set from the first image where absent, so that splits grouped by image
    still keep them with the posts that share the image); other bad posts are dropped. Returns the posts and
    counts ``{"kept": unchanged, "image_masked": n, "skipped": n}``. Input posts are not modified (masked posts
    are copies).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    posts = list(posts)
    if report.n_posts != len(posts):
        raise ValueError(f"the report covers {report.n_posts} posts but {len(posts)} were given; "
                         "apply a report to the same posts it was made from")
    if policy == "stop":
        if not report.ok:
            raise DataValidationError(report)
        return posts, {"kept": len(posts), "image_masked": 0, "skipped": 0}

    kinds_by_index: dict[int, set[str]] = {}
    ids_unindexed: dict[str, set[str]] = {}
    for i in report.issues:
        if i.index is not None:
            kinds_by_index.setdefault(i.index, set()).add(i.kind)
        else:
            ids_unindexed.setdefault(i.post_id, set()).add(i.kind)

    out: list[Post] = []
    counts = {"kept": 0, "image_masked": 0, "skipped": 0}
    for idx, p in enumerate(posts):
        kinds = kinds_by_index.get(idx, set()) | ids_unindexed.get(p.id, set())
        if not kinds:
            out.append(p)
            counts["kept"] += 1
        elif policy == "text-only" and kinds <= IMAGE_KINDS:
            meta = dict(p.meta)
            meta["image_masked"] = True
            if IMAGE_KEY not in meta and p.images:
                meta[IMAGE_KEY] = str(p.images[0])
            out.append(replace(p, images=[], meta=meta, labels=dict(p.labels)))
            counts["image_masked"] += 1
        else:
            counts["skipped"] += 1
    return out, counts
