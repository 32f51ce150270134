"""A recipe from column names, with no YAML: what ``mmpost train posts.csv --text ... --label ...`` and
``mmpost.fit(df, text=..., label=...)`` both start from. The result is a list of ordinary ``key=value``
overrides on the defaults, so the run's ``config.yaml`` is the resolved recipe, ready to repeat and edit."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def label_columns(labels: Sequence[str]) -> dict[str, str]:
    """``["label"]`` → ``{"label": "label"}``; ``["sentiment=col_a", "sarcasm=col_b"]`` → task → column."""
    out: dict[str, str] = {}
    for item in labels:
        task, _, column = item.partition("=") if "=" in item else (item, "", item)
        task, column = task.strip(), column.strip()
        if not task or not column:
            raise ValueError(f"--label wants COLUMN or TASK=COLUMN, got {item!r}")
        if task in out:
            raise ValueError(f"--label names task {task!r} twice")
        out[task] = column
    if not out:
        raise ValueError("a data file needs --label COLUMN (or TASK=COLUMN, repeatable): the column to learn")
    return out


def _quoted(value: str) -> str:
    """A value for a dot-list override, quoted so that YAML reads it as the string it is ({}, :, # ...)."""
    return "'" + value.replace("'", "''") + "'"


def manifest_overrides(path: str | Path, *, text: Sequence[str], labels: dict[str, str], image: str | None = None,
                       image_root: str | Path | None = None, image_pattern: str | None = None,
                       id_column: str | None = None) -> list[str]:
    """The overrides that read ``path`` as a manifest with these columns and train on its ``labels`` tasks."""
    if not text:
        raise ValueError("give the text column(s): --text COLUMN (repeatable; several are joined)")
    p = Path(path).expanduser().resolve()
    over = ["data.source=manifest", f"data.path={_quoted(str(p))}",
            f"data.columns.id={_quoted(id_column) if id_column else 'null'}",
            "data.columns.text=[" + ",".join(_quoted(t) for t in text) + "]"]
    if p.suffix.lower() == ".txt":
        over += ["data.columns.format=csv", "data.columns.csv_options.delimiter='\t'"]
    if image:
        over.append(f"data.columns.image={_quoted(image)}")
        root = Path(image_root).expanduser().resolve() if image_root else p.parent
        over.append(f"data.columns.image_root={_quoted(str(root))}")
        if image_pattern:
            over.append(f"data.columns.image_pattern={_quoted(image_pattern)}")
    over += [f"data.columns.labels.{task}={_quoted(column)}" for task, column in labels.items()]
    tasks = list(labels)
    over.append(f"task={tasks[0]}" if len(tasks) == 1 else "tasks=[" + ",".join(tasks) + "]")
    return over
