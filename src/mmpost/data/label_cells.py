"""A manifest row's labels for one task: one cell, a cell of several labels (a JSON list, or a ``label_sep``
separated string), or several 0/1 columns (one per label, the label named after its column)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .columns import ColumnMapping, ManifestError

__all__ = ["read_labels", "FLAG_ON", "FLAG_OFF"]

FLAG_ON = frozenset({"1", "1.0", "true", "yes"})
FLAG_OFF = frozenset({"0", "0.0", "false", "no", ""})

LabelValue = str | tuple[str, ...]


def read_labels(mapping: ColumnMapping, get: Callable[[str], Any], to_str: Callable[[Any, str], str],
                where: str) -> dict[str, LabelValue]:
    """Task → label (a name, or a tuple of names for a multi-label task) for one row; tasks without a label are
    absent. ``to_str(value, field)`` turns a raw cell into text; ``where`` (file and row) names a bad 0/1 cell."""
    out: dict[str, LabelValue] = {}
    for task, col in mapping.labels.items():
        if isinstance(col, list):
            value: LabelValue | None = _flag_columns(task, col, get, to_str, where)
        else:
            value = _cell(mapping, task, get(col), to_str)
        if value is not None:
            out[task] = value
    return out


def _rename(mapping: ColumnMapping, task: str, name: str) -> str:
    table = mapping.label_values.get(task)
    return str(table.get(name, name)) if table is not None else name


def _cell(mapping: ColumnMapping, task: str, raw: Any, to_str: Callable[[Any, str], str]) -> LabelValue | None:
    fld = f"labels.{task}"
    sep = mapping.label_sep.get(task)
    if isinstance(raw, (list, tuple)):                      # a JSON list cell
        names = [to_str(x, fld).strip() for x in raw]
    else:
        text = to_str(raw, fld).strip()
        if not text:
            return None
        if sep is None:
            return _rename(mapping, task, text)
        names = [part.strip() for part in text.split(sep)]
    return tuple(dict.fromkeys(_rename(mapping, task, n) for n in names if n))


def _flag_columns(task: str, columns: list[str], get: Callable[[str], Any], to_str: Callable[[Any, str], str],
                  where: str) -> tuple[str, ...] | None:
    """The columns holding 1; ``None`` when every one of them is empty (no label for the task)."""
    on, seen = [], False
    for col in columns:
        text = to_str(get(col), f"labels.{task}").strip().lower()
        seen = seen or bool(text)
        if text in FLAG_ON:
            on.append(col)
        elif text not in FLAG_OFF:
            raise ManifestError(f"{where}, column {col!r} (data.columns.labels.{task}): a 0/1 label column holds "
                                f"{text!r}; expected 0 or 1 (or empty)")
    return tuple(on) if seen else None
