"""``mmpost evaluate RUN [--data FILE]``: a finished run on its own test split or on another manifest, every task
of the run (the scoring is :mod:`mmpost.apps.evaluate_posts`)."""
from __future__ import annotations

from pathlib import Path

from mmpost.apps.evaluate_posts import evaluate_loaded
from mmpost.apps.predictor import Predictor


def evaluate(run_dir: str | Path, data: str | None = None, overrides: list[str] | None = None,
             progress: bool = True) -> tuple[dict, Path]:
    """Metrics {split: {task: {...}}} and the folder they were written to (see :func:`evaluate_loaded`)."""
    return evaluate_loaded(Predictor(Path(run_dir)), data, overrides, progress)
