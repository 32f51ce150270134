"""A run report as one self-contained HTML page: figures inlined as base64 PNG, the style inline, no script, no
font or stylesheet fetched from anywhere — it opens the same offline, attached to a mail or years later.

Every string that comes from data (post texts, ids, labels, notes) is HTML-escaped; the page also carries a
Content-Security-Policy that forbids scripts and any fetch, so even a slip in escaping cannot run code.
"""
from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence

from mmpost.evaluation.formatting import weighted_f1_cell
from mmpost.evaluation.report_content import (
    METRIC_COLUMNS,
    SCALE_NOTE,
    ClassErrorSection,
    ExampleCard,
    Figure,
    RunReport,
    SplitResult,
    empty_class_note,
    error_heading,
    history_columns,
    splits_by_task,
)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_TEXT_CHARS = 600
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:0;background:#fff}
main{max-width:1120px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:1.6em;margin:0 0 6px}h2{margin-top:2.2em;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{margin-top:1.4em}nav a{margin-right:14px}code{background:#f2f4f7;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:10px 0}th,td{border:1px solid #d0d7de;padding:4px 9px}
th{background:#f6f8fa;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts{color:#57606a;margin:2px 0}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;
border-radius:6px;margin:12px 0}.note{color:#57606a}figure{margin:12px 0}figure img{max-width:100%;
border:1px solid #eaeef2}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow-wrap:anywhere}
.card img{display:block;margin-bottom:6px;border:1px solid #eaeef2}.noimg{width:112px;height:60px;display:flex;
align-items:center;justify-content:center;background:#f6f8fa;color:#57606a;font-size:12px;margin-bottom:6px}
.text{white-space:pre-wrap;margin:6px 0 0}
.split{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}.meta{font-size:13px;color:#57606a}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def inline(text: str) -> str:
    """Escape, then show `backticked` words as code (the notes use markdown's convention)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def num(x: object) -> str:
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.3f}"
    return esc(x)


def img(fig: Figure, css_class: str = "") -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} alt="{esc(fig.alt)}" src="data:image/png;base64,{data}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    """``rows`` hold already-escaped cells; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraphs(notes: Iterable[str], css_class: str = "note") -> str:
    return "".join(f'<p class="{css_class}">{inline(n)}</p>' for n in notes)


def metrics_section(report: RunReport) -> str:
    rows = [[esc(name), weighted_f1_cell(m, num), *(num(float(m[k])) for k, _ in METRIC_COLUMNS[1:]),
             num(m.get("n", ""))] for name, m in report.metrics]
    headers = ["split · task", "weighted F1 (95% CI)", *(h for _, h in METRIC_COLUMNS[1:]), "n"]
    return ('<section id="metrics"><h2>Metrics</h2>' + table(headers, rows)
            + paragraphs([SCALE_NOTE, *report.metrics_notes]) + "</section>")


def split_block(s: SplitResult, level: str = "h3") -> str:
    conf = table(["true \\ predicted", *s.labels], ([esc(s.labels[i]), *(str(v) for v in row)]
                                                     for i, row in enumerate(s.confusion))) if s.confusion else ""
    per = table(["label", "precision", "recall", "F1", "support"],
                ([esc(r["label"]), num(r["precision"]), num(r["recall"]), num(r["f1"]), str(r["support"])]
                 for r in s.per_class))
    fig = f"<figure>{img(s.figure)}</figure>" if s.figure else ""
    return f'<{level}>{esc(s.split)} · {esc(s.task)}</{level}><div class="split">{fig}<div>{conf}{per}</div></div>'


def confusion_blocks(report: RunReport) -> str:
    """One block per split × task; with several tasks, grouped under one heading per task."""
    groups = splits_by_task(report)
    if len(groups) <= 1:
        return "".join(split_block(s) for s in report.splits)
    return "".join(f"<h3>Task {esc(task)}</h3>" + "".join(split_block(s, "h4") for s in splits)
                   for task, splits in groups.items())


def confusion_section(report: RunReport) -> str:
    body = confusion_blocks(report) or paragraphs(
        ["No confusion matrix: the run's posts could not be read again (see the warning above)."])
    return f'<section id="confusion"><h2>Confusion matrices</h2>{body}</section>'


def curves_section(report: RunReport) -> str:
    fig = f"<figure>{img(report.curves)}</figure>" if report.curves else ""
    body = fig + paragraphs(report.curve_notes)
    if report.history:
        keys = history_columns(report.history)
        rows = ([str(int(h.get("epoch", i + 1))), *(num(float(h.get(k, float("nan")))) for k in keys)]
                for i, h in enumerate(report.history))
        body += f"<details><summary>the log, epoch by epoch</summary>{table(['epoch', *keys], rows)}</details>"
    return f'<section id="curves"><h2>Training curves</h2>{body}</section>'


def map_section(report: RunReport) -> str:
    fig = f"<figure>{img(report.embedding_map)}</figure>" if report.embedding_map else ""
    return f'<section id="embeddings"><h2>Text and image embeddings</h2>{fig}{paragraphs(report.map_notes)}</section>'


def card(e: ExampleCard) -> str:
    picture = img(e.thumbnail) if e.thumbnail else f'<div class="noimg">{esc(e.image_note or "no image")}</div>'
    text = e.text if len(e.text) <= MAX_TEXT_CHARS else e.text[:MAX_TEXT_CHARS] + "…"
    return (f'<div class="card">{picture}<div class="meta">id <code>{esc(e.post_id)}</code> · true '
            f"<b>{esc(e.true_label)}</b> (p {e.p_true:.2f}) · predicted <b>{esc(e.predicted)}</b> "
            f'(p {e.p_predicted:.2f})</div><p class="text">{esc(text)}</p></div>')


def class_block(c: ClassErrorSection) -> str:
    head = f"<h3>{esc(error_heading(c))}</h3>"
    if not c.examples:
        return head + paragraphs([empty_class_note(c)])
    shown = f"the {len(c.examples)} most confident mistakes" if len(c.examples) < c.n_errors else "all mistakes"
    return head + paragraphs([shown]) + '<div class="cards">' + "".join(card(e) for e in c.examples) + "</div>"


def errors_section(report: RunReport) -> str:
    body = paragraphs(report.error_notes) + "".join(class_block(c) for c in report.errors)
    return f'<section id="errors"><h2>Mistakes, class by class</h2>{body}</section>'


def render_html(report: RunReport) -> str:
    nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("metrics", "metrics"), ("confusion", "confusion"), ("curves", "curves"), ("embeddings", "embeddings"),
        ("errors", "mistakes"), ("notes", "notes")))
    notes = f'<section id="notes"><h2>Notes</h2><ul>{"".join(f"<li>{inline(n)}</li>" for n in report.notes)}</ul>' \
            "</section>" if report.notes else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(report.title)}</title><style>{STYLE}</style></head>\n<body><main>"
        f"<h1>{esc(report.title)}</h1>" + paragraphs(report.facts, "facts") + f"<nav>{nav}</nav>"
        + paragraphs(report.warnings, "warn") + metrics_section(report) + confusion_section(report)
        + curves_section(report) + map_section(report) + errors_section(report) + notes
        + "</main></body></html>\n")
