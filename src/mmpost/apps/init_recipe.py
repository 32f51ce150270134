"""``mmpost init posts.csv``: a recipe proposed from a posts file (:mod:`mmpost.data.column_guess`), written as a
YAML a person reads, checks and edits, with every guess and its reason as a comment, then trains on with
``mmpost train posts.yaml``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmpost.atomic import atomic_write_text
from mmpost.data.column_guess import Guessed, guess_columns

__all__ = ["propose_recipe", "recipe_of", "task_name"]


def task_name(column: str) -> str:
    """A task name from a column name: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_") or "label"


def recipe_of(path: Path, g: Guessed) -> dict[str, Any]:
    """The recipe's keys: a manifest read with the guessed columns, one task per label column."""
    columns: dict[str, Any] = {"id": g.id.column if g.id else None, "text": g.text.column if g.text else None}
    if g.image is not None:
        columns["image"] = g.image.column
        columns["image_root"] = str((g.image_root or path.parent).resolve())
        if g.image_pattern:
            columns["image_pattern"] = g.image_pattern
    columns["labels"] = {task_name(lab.column): lab.column for lab in g.labels}
    if g.format:
        columns["format"] = g.format
    if g.csv_options:
        columns["csv_options"] = dict(g.csv_options)
    recipe: dict[str, Any] = {"data": {"source": "manifest", "path": str(path.resolve()), "columns": columns}}
    tasks = list(columns["labels"])
    if len(tasks) == 1:
        recipe["task"] = tasks[0]
    elif tasks:
        recipe["tasks"] = tasks
    return recipe


def _comments(path: Path, g: Guessed, out: Path) -> list[str]:
    lines = [f"Proposed by `mmpost init {path.name}` from its first {g.rows_read} rows: check each guess, edit, "
             f"then run `mmpost train {out.name}`."]
    for role, guess in (("id", g.id), ("text", g.text), ("image", g.image)):
        lines.append(f"{role}: {guess.column!r}: {guess.why}" if guess else f"{role}: none found")
    lines += [f"label: {lab.column!r} (task {task_name(lab.column)}): {lab.why}" for lab in g.labels]
    lines += [f"note: {n}" for n in g.notes]
    if len(g.labels) > 1:
        lines.append("several label columns: each is a task of one model; keep only the ones you want to learn")
    return lines


def propose_recipe(data: str | Path, out: str | Path | None = None, *, force: bool = False) -> tuple[Path, list[str]]:
    """Write the proposed recipe (default: ``<data stem>.yaml`` beside the data) and return it with the lines that
    say what was guessed and why. An existing file is kept unless ``force``."""
    path = Path(data).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        raise ValueError(f"{path} is already a recipe; mmpost init proposes one from a data file (CSV/TSV/JSONL/"
                         "Parquet)")
    target = Path(out).expanduser() if out is not None else path.with_suffix(".yaml")
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists: choose another --out, or --force to replace it")
    g = guess_columns(path)
    said = _comments(path, g, target)
    body = OmegaConf.to_yaml(OmegaConf.create(recipe_of(path, g)))
    atomic_write_text(target, "".join(f"# {line}\n" for line in said) + body)
    return target, said
