"""pandas DataFrames in and out, for notebooks: ``model.predict(df)``, ``model.evaluate(df)`` (and
``mmpost.fit(df, ...)``, :mod:`mmpost.apps.fit`). A frame goes through exactly the path a file takes on the command
line: it is written as a Parquet manifest and read with the run's column mapping (no second reader), and
predictions come back as the shared prediction records, flattened into columns."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmpost.evaluation.predictions import Task, record_tasks

FRAME_FILE = "posts.parquet"


def is_frame(x: Any) -> bool:
    return type(x).__name__ == "DataFrame" and hasattr(x, "to_parquet")


def write_frame(df: Any, path: Path) -> Path:
    """The frame as a Parquet manifest (the index dropped; every column as pandas gives it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def frame_posts(predictor: Any, df: Any) -> list:
    """The posts of a frame, read with the run's column mapping (labels kept where the columns are there); relative
    image paths start from the run's ``data.columns.image_root``, else the working folder."""
    from mmpost.apps.prepare import column_mapping
    from mmpost.data.file_columns import complete_mapping
    from mmpost.data.manifest import load_manifest
    cols = predictor.config.data.columns
    present = set(df.columns)
    labels = {t: c for t, c in cols.labels.items() if (c in present if isinstance(c, str) else set(c) <= present)}
    root = cols.image_root if cols.image_root is not None else os.getcwd()     # relative paths: from here
    data = replace(predictor.config.data, columns=replace(cols, labels=labels, split=None, image_root=root))
    with tempfile.TemporaryDirectory(prefix="mmpost-frame-") as tmp:
        path = str(write_frame(df, Path(tmp) / FRAME_FILE))
        tasks = [t.name for t in predictor.tasks]
        return load_manifest(path, complete_mapping(path, column_mapping(data), tasks))


def records_frame(records: Sequence[dict], tasks: Sequence[Task]) -> Any:
    """Prediction records as a DataFrame: ``id``, ``label``, ``p_<label>`` per label (several tasks:
    ``<task>.label``, ``<task>.p_<label>``), ``image_used``, and ``gold`` where known."""
    import pandas as pd
    rows = []
    for r in records:
        row: dict[str, Any] = {"id": r["id"]}
        for name, part in record_tasks(r, tasks).items():
            prefix = "" if len(tasks) == 1 else f"{name}."
            row[f"{prefix}label"] = part["label"]
            row.update({f"{prefix}p_{lab}": p for lab, p in part["probs"].items()})
            if "gold" in part:
                row[f"{prefix}gold"] = part["gold"]
        row["image_used"] = r["image_used"]
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_frame(predictor: Any, df: Any, progress: bool = False) -> dict:
    """``mmpost evaluate RUN --data FRAME``: the metrics of the frame's labelled posts."""
    from mmpost.apps.evaluate_posts import evaluate_loaded
    with tempfile.TemporaryDirectory(prefix="mmpost-frame-") as tmp:
        metrics, _ = evaluate_loaded(predictor, str(write_frame(df, Path(tmp) / "dataframe.parquet")),
                                     progress=progress)
    return metrics
