"""Predict class probabilities for a manifest of posts and write them as JSONL, chunk by chunk."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import load_posts
from mmpost.atomic import atomic_write
from mmpost.config import ColumnsConfig, load_config


def predict_file(run_dir: str | Path, data: str, out: str | Path, *, overrides: list[str] | None = None,
                 chunk: int = 2048, progress: bool = True) -> dict[str, int]:
    """Read ``data`` with the run's column mapping (label columns are not needed), predict every post and write
    one JSON object per line: ``{"id", "label", "probs": {label: p}, "image_used"}``. The output appears in one
    rename when complete. Returns counts."""
    run_dir = Path(run_dir)
    predictor = Predictor(run_dir)
    cfg = load_config(run_dir / "config.yaml", overrides)
    p = Path(data).expanduser()
    columns: ColumnsConfig = replace(cfg.data.columns, labels={}, label_values={}, split=None)
    dcfg = replace(cfg.data, source="manifest", path=str(p.resolve()) if p.exists() else data, columns=columns)
    posts = load_posts(dcfg)
    counts = {"posts": len(posts), "without_image": 0}

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for start in range(0, len(posts), chunk):
                part = posts[start:start + chunk]
                probs, has_image = predictor.predict_with_mask(part, progress=progress)
                for post, row, used in zip(part, probs, has_image):
                    counts["without_image"] += int(not used)
                    f.write(json.dumps({"id": post.id, "label": predictor.labels[int(row.argmax())],
                                        "probs": {k: round(float(v), 6) for k, v in zip(predictor.labels, row)},
                                        "image_used": bool(used)}, ensure_ascii=False) + "\n")

    atomic_write(out, write)
    return counts
