"""The markdown twin of the HTML run report: the same sections as text and tables, figures as PNG files in a
folder beside it (markdown viewers do not all show inlined images, and a diff of base64 helps no one).

Post texts, ids and labels come from users' data: they are escaped so that a ``|`` cannot break a table, a
``<script>`` stays text and ``*stars*`` stay stars."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from mmpost.evaluation.formatting import weighted_f1_cell
from mmpost.evaluation.report_content import (
    METRIC_COLUMNS,
    SCALE_NOTE,
    ClassErrorSection,
    Figure,
    RunReport,
    SplitResult,
    empty_class_note,
    error_heading,
    history_columns,
    splits_by_task,
)

MAX_TEXT_CHARS = 300
_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~!#])")


def md_escape(value: object) -> str:
    """One line of literal text, safe in a paragraph or a table cell."""
    return _SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(value)).strip())


def num(x: object) -> str:
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.3f}"
    return md_escape(x)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    align = "|" + "".join("---:|" if i >= numeric_from else "---|" for i in range(len(headers)))
    lines = ["| " + " | ".join(headers) + " |", align] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def figure(fig: Figure, folder: str) -> str:
    return f"![{md_escape(fig.alt)}]({folder}/{fig.name})\n"


def metrics_section(report: RunReport) -> str:
    rows = [[md_escape(name), weighted_f1_cell(m, num), *(num(float(m[k])) for k, _ in METRIC_COLUMNS[1:]),
             num(m.get("n", ""))] for name, m in report.metrics]
    headers = ["split · task", "weighted F1 (95% CI)", *(h for _, h in METRIC_COLUMNS[1:]), "n"]
    return "## Metrics\n\n" + table(headers, rows) + "\n" + "\n\n".join([SCALE_NOTE, *report.metrics_notes]) + "\n"


def split_block(s: SplitResult, folder: str, level: str = "###") -> str:
    labels = [md_escape(x) for x in s.labels]
    conf = table(["true \\\\ predicted", *labels], ([labels[i], *(str(v) for v in row)]
                                                    for i, row in enumerate(s.confusion))) if s.confusion else ""
    per = table(["label", "precision", "recall", "F1", "support"],
                ([md_escape(r["label"]), num(r["precision"]), num(r["recall"]), num(r["f1"]), str(r["support"])]
                 for r in s.per_class))
    fig = figure(s.figure, folder) + "\n" if s.figure else ""
    return f"\n{level} {md_escape(s.split)} · {md_escape(s.task)}\n\n{fig}{conf}\n{per}"


def confusion_blocks(report: RunReport, folder: str) -> list[str]:
    """One block per split × task; with several tasks, grouped under one heading per task."""
    groups = splits_by_task(report)
    if len(groups) <= 1:
        return [split_block(s, folder) for s in report.splits]
    return [f"\n### Task {md_escape(task)}\n" + "".join(split_block(s, folder, "####") for s in splits)
            for task, splits in groups.items()]


def class_block(c: ClassErrorSection, folder: str) -> str:
    head = f"\n### {md_escape(error_heading(c))}\n\n"
    if not c.examples:
        return head + empty_class_note(c) + "\n"
    rows = []
    for e in c.examples:
        text = e.text if len(e.text) <= MAX_TEXT_CHARS else e.text[:MAX_TEXT_CHARS] + "…"
        picture = f"![{md_escape(e.thumbnail.alt)}]({folder}/{e.thumbnail.name})" if e.thumbnail \
            else md_escape(e.image_note or "no image")
        rows.append([picture, md_escape(e.post_id),
                     f"{md_escape(e.predicted)} ({e.p_predicted:.2f})", f"{e.p_true:.2f}", md_escape(text)])
    return head + table(["image", "id", "predicted (p)", "p true", "text"], rows, numeric_from=99)


def render_markdown(report: RunReport, figures_folder: str) -> str:
    """The report as markdown; figures are linked as ``figures_folder/<name>`` (relative to the markdown file)."""
    parts = [f"# {md_escape(report.title)}\n\n", "".join(f"{f}  \n" for f in report.facts), "\n"]
    parts += [f"> **Note.** {w}\n\n" for w in report.warnings]
    parts += [metrics_section(report), "\n## Confusion matrices\n"]
    parts += confusion_blocks(report, figures_folder) or [
        "\nNo confusion matrix: the run's posts could not be read again (see the note above).\n"]
    parts.append("\n## Training curves\n\n")
    if report.curves:
        parts.append(figure(report.curves, figures_folder) + "\n")
    parts += [f"{n}\n\n" for n in report.curve_notes]
    if report.history:
        keys = history_columns(report.history)
        parts.append(table(["epoch", *keys], ([str(int(h.get("epoch", i + 1))),
                                                *(num(float(h.get(k, float("nan")))) for k in keys)]
                                               for i, h in enumerate(report.history))))
    parts.append("\n## Text and image embeddings\n\n")
    if report.embedding_map:
        parts.append(figure(report.embedding_map, figures_folder) + "\n")
    parts += [f"{n}\n\n" for n in report.map_notes]
    parts.append("\n## Mistakes, class by class\n\n")
    parts += [f"{n}\n\n" for n in report.error_notes]
    parts += [class_block(c, figures_folder) for c in report.errors]
    if report.notes:
        parts += ["\n## Notes\n\n"] + [f"- {n}\n" for n in report.notes]
    return "".join(parts)
