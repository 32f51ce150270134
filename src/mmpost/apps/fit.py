"""``mmpost.fit(df, text=..., label=...)``: train on a pandas DataFrame from a notebook, through the same path as
``mmpost train posts.csv --text ... --label ...`` (the frame is written into the run folder as its manifest)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmpost.apps.frames import FRAME_FILE, write_frame
from mmpost.apps.predictor import Predictor
from mmpost.apps.quick_recipe import label_columns, manifest_overrides
from mmpost.apps.train import train
from mmpost.config import load_config


def fit(df: Any, *, text: str | Sequence[str], label: str | dict[str, str], image: str | None = None,
        image_root: str | Path | None = None, image_pattern: str | None = None, id: str | None = None,
        out_dir: str | Path = "runs", name: str | None = None, **overrides: Any):
    """Train on a DataFrame and return the loaded model. ``label``: a column (the task takes its name) or
    ``{task: column}``; ``overrides``: any recipe key, as ``train__epochs=5`` or ``**{"train.epochs": 5}``."""
    labels = label_columns([label] if isinstance(label, str) else [f"{t}={c}" for t, c in label.items()])
    name = name or f"{next(iter(labels))}-fit-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(out_dir).expanduser() / name
    if (run_dir / "metrics.json").exists():
        raise FileExistsError(f"{run_dir} already holds a finished run; choose another name=")
    data = write_frame(df, run_dir / FRAME_FILE)
    over = manifest_overrides(data, text=[text] if isinstance(text, str) else list(text), labels=labels, image=image,
                              image_root=image_root, image_pattern=image_pattern, id_column=id)
    over += [f"out_dir={run_dir.parent}", f"name={name}"]
    over += [f"{key.replace('__', '.')}={value}" for key, value in overrides.items()]
    result = train(load_config(None, over))
    return Predictor(result.run_dir)
