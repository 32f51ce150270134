"""What a run report says, independent of how it is written: the HTML page and its markdown twin render the
same :class:`RunReport`, so the two never drift apart. Everything here is plain data (figures as PNG bytes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """A PNG figure. ``name`` is its file name beside the markdown twin; the HTML page inlines ``png``."""

    name: str
    png: bytes
    alt: str


@dataclass
class SplitResult:
    """One split × task: the confusion matrix (rows true, columns predicted) and per-class precision/recall."""

    split: str
    task: str
    labels: list[str]
    confusion: list[list[int]]
    per_class: list[dict[str, Any]]
    figure: Figure | None = None


@dataclass
class ExampleCard:
    """One misclassified post: what it says, what it shows, what the model thought."""

    post_id: str
    text: str
    true_label: str
    predicted: str
    p_predicted: float
    p_true: float
    thumbnail: Figure | None
    image_note: str = ""        # why there is no thumbnail ("no image", "image not shown: ...")


@dataclass
class ClassErrorSection:
    label: str
    support: int
    n_errors: int
    examples: list[ExampleCard] = field(default_factory=list)
    task: str = ""              # named in a run with several tasks; "" in a one-task run


@dataclass
class RunReport:
    """Every section of the report. ``warnings`` say, at the top, what the page cannot show and why (a
    text-only run, ITC off, data that could not be read); each section has its own notes."""

    title: str
    facts: list[str]
    warnings: list[str] = field(default_factory=list)
    metrics: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    metrics_notes: list[str] = field(default_factory=list)
    splits: list[SplitResult] = field(default_factory=list)
    curves: Figure | None = None
    curve_notes: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    embedding_map: Figure | None = None
    map_notes: list[str] = field(default_factory=list)
    errors: list[ClassErrorSection] = field(default_factory=list)
    error_notes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        """Every figure of the report, once each (what the markdown twin writes beside itself)."""
        found = [s.figure for s in self.splits] + [self.curves, self.embedding_map]
        found += [e.thumbnail for section in self.errors for e in section.examples]
        return [f for f in found if f is not None]


METRIC_COLUMNS = (("weighted_f1", "weighted F1"), ("macro_f1", "macro F1"), ("accuracy", "accuracy"), ("mcc", "MCC"))
SCALE_NOTE = ("MCC ranges from −1 to 1 (0 = chance); the others from 0 to 1. The interval is a 95% percentile "
              "bootstrap over the test posts.")


def history_columns(history: list[dict[str, float]]) -> list[str]:
    return [k for k in dict.fromkeys(k for row in history for k in row) if k != "epoch"]


def empty_class_note(c: ClassErrorSection) -> str:
    """What to say for a class with no example cards."""
    if not c.support:
        return "No post of this class here."
    return "No mistakes in this class." if not c.n_errors else f"{c.n_errors} mistakes; none shown (examples=0)."


def error_heading(c: ClassErrorSection) -> str:
    """A class's mistakes, as headed in the report (plain text; each renderer escapes it)."""
    return f"{c.task + ' · ' if c.task else ''}true {c.label} · {c.n_errors} of {c.support} wrong"


def splits_by_task(report: RunReport) -> dict[str, list[SplitResult]]:
    """The split results grouped by task, tasks in the order they first appear."""
    groups: dict[str, list[SplitResult]] = {}
    for s in report.splits:
        groups.setdefault(s.task, []).append(s)
    return groups
