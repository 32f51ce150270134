"""Prediction on a Ray cluster, with Ray Data (the optional extra ``pip install "mmpost[ray]"``; Ray is imported only
here and in :mod:`mmpost.apps.predict_ray`, so nothing else needs it)::

    import ray
    import mmpost.ray

    posts = ray.data.read_parquet("s3://bucket/posts/")          # columns id, text, image (paths), or the run's own
    probs = posts.map_batches(mmpost.ray.Predictor, fn_constructor_kwargs={"run_dir": "runs/my-run"},
                              concurrency=8, batch_size=1024, batch_format="pandas")
    probs.write_parquet("s3://bucket/predictions/")

Each Ray worker loads the run once. A batch is read with the run's column mapping exactly as ``mmpost predict``
reads a file (the usual names ``id``, ``text``, ``image`` where the run's columns are absent), and comes back as one
row per post: ``id``, ``label``, ``p_<label>`` per label (calibrated; several tasks: ``<task>.label``,
``<task>.p_<label>``) and ``image_used``. ``mmpost predict RUN --data FILE --engine ray`` does this for a file.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["Predictor"]

DECIMALS = 6        # as mmpost predict rounds


class Predictor:
    """A callable class for ``ray.data.Dataset.map_batches``: a pandas DataFrame (or a dict of columns) of posts in,
    a DataFrame of probabilities out. ``image_root``: where image paths are resolved on the workers (default: the
    run's ``data.columns.image_root``)."""

    def __init__(self, run_dir: str | Path, *, batch_size: int = 128, image_root: str | None = None) -> None:
        from mmpost.apps.predictor import Predictor as RunPredictor
        self.run = RunPredictor(run_dir)
        self.batch_size = batch_size
        if image_root is not None:
            data = self.run.config.data
            self.run.config.data = replace(data, columns=replace(data.columns, image_root=str(image_root)))

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        from mmpost.apps.frames import frame_posts, is_frame, records_frame
        frame = batch if is_frame(batch) else pd.DataFrame(dict(batch))
        posts = frame_posts(self.run, frame)
        with tempfile.TemporaryDirectory(prefix="mmpost-ray-") as scratch:     # no feature cache grows on workers
            s = self.run.scores(posts, batch_size=self.batch_size, cache_dir=scratch)
        records = self.run.records([p.id for p in posts], s.probs, s.image_used, decimals=DECIMALS)
        return records_frame(records, self.run.tasks)
