"""The page a reviewer reads to check suspected label errors: one self-contained HTML file.

A summary (posts ranked, posts flagged, the method), then the most doubtful posts as cards: the image as a small
JPEG thumbnail inlined as base64 (the page keeps working when moved or mailed), the text, the given and the
suggested label, the doubt score and every probability. It follows :mod:`mmpost.evaluation.html_report`: every
string from the data is HTML-escaped, and the same Content-Security-Policy forbids scripts and any fetch.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mmpost.data.images import ImageError, open_image
from mmpost.evaluation.html_report import CSP, STYLE, esc
from mmpost.evaluation.label_issues import IssuePost

__all__ = ["THUMBNAIL_SIZE", "PageSummary", "thumbnail_data_uri", "render_label_issues_page"]

THUMBNAIL_SIZE = 160
MAX_TEXT_CHARS = 2000
EXTRA_STYLE = """
.card.flagged{border-color:#cf222e;border-width:2px}.flag{color:#cf222e;font-weight:600}
.probs{list-style:none;padding:0;margin:6px 0 0;font-size:13px;font-variant-numeric:tabular-nums}
.probs b{font-weight:600}.labels{margin:4px 0}
"""


@dataclass(frozen=True)
class PageSummary:
    """What the page says above the cards."""

    title: str
    task: str
    method: str
    n_posts: int
    n_flagged: int
    n_without_gold: int = 0
    n_seeds: int = 1
    notes: tuple[str, ...] = ()


def thumbnail_data_uri(path: str | Path | None, size: int = THUMBNAIL_SIZE) -> tuple[str | None, str]:
    """(a ``data:image/jpeg;base64,...`` URI of the image scaled to fit ``size`` × ``size``, "") — or
    (None, why not) for a post without an image or with one that cannot be read. Opened with the training
    guards (content-sniffed, size and pixel limits); a small image is not enlarged."""
    if not path:
        return None, "the post has no image"
    try:
        img = open_image(path, draft_size=size)
    except (ImageError, OSError) as e:
        return None, str(e)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=82, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), ""


def _picture(post: IssuePost) -> str:
    uri, why = thumbnail_data_uri(post.image)
    if uri is None:
        return f'<div class="noimg" title="{esc(why)}">no image</div>'
    return f'<img alt="image of post {esc(post.post_id)}" src="{uri}">'


def _probabilities(post: IssuePost) -> str:
    """Every label's probability, highest first; the given label is marked, the suggested one bold."""
    items = []
    for name, p in sorted(post.probs.items(), key=lambda kv: -kv[1]):
        label = f"<b>{esc(name)}</b>" if name == post.suggested else esc(name)
        mark = " ← given" if name == post.given else ""
        items.append(f"<li>{p:.3f} {label}{mark}</li>")
    return f'<ul class="probs">{"".join(items)}</ul>'


def _card(post: IssuePost) -> str:
    text = post.text if len(post.text) <= MAX_TEXT_CHARS else post.text[:MAX_TEXT_CHARS] + "…"
    row = f" · row {post.row}" if post.row is not None else ""
    flag = ' · <span class="flag">flagged</span>' if post.is_issue else ""
    return (f'<div class="card{" flagged" if post.is_issue else ""}">{_picture(post)}'
            f'<div class="meta">#{post.rank} · id <code>{esc(post.post_id)}</code>{row} · doubt '
            f"{post.score:.3f}{flag}</div>"
            f'<div class="labels">given <b>{esc(post.given)}</b> → suggested <b>{esc(post.suggested)}</b></div>'
            f'<p class="text">{esc(text)}</p>{_probabilities(post)}</div>')


def _summary(s: PageSummary, n_shown: int) -> str:
    facts = [f"task <code>{esc(s.task)}</code> · method <code>{esc(s.method)}</code>",
             f"{s.n_posts} posts ranked, {s.n_flagged} flagged as suspected label errors"
             + (f" · {s.n_without_gold} posts without a label for this task left out" if s.n_without_gold else "")
             + (f" · probabilities averaged over {s.n_seeds} seeds" if s.n_seeds > 1 else ""),
             "doubt = 1 − the out-of-fold probability of the given label; the flagged posts come first, then "
             "the rest, each by doubt",
             f"showing the {n_shown} most doubtful posts" if n_shown else "no post to show"]
    notes = "".join(f'<p class="warn">{esc(n)}</p>' for n in s.notes)
    return "".join(f'<p class="facts">{f}</p>' for f in facts) + notes


def render_label_issues_page(posts: Sequence[IssuePost], summary: PageSummary) -> str:
    """The page: ``summary`` on top, then one card per post of ``posts`` (already cut to the ones to show),
    in the order given."""
    cards = '<div class="cards">' + "".join(_card(p) for p in posts) + "</div>" if posts else ""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(summary.title)}</title><style>{STYLE}{EXTRA_STYLE}</style></head>\n<body><main>"
            f"<h1>{esc(summary.title)}</h1>{_summary(summary, len(posts))}{cards}</main></body></html>\n")
