"""Calibration at the end of training: one temperature per task fitted on dev (``calibration: temperature``, the
default; ``temperature+bias`` adds a bias per label; ``none`` keeps T = 1), saved to ``calibration.json``, applied
to every split's probabilities, with ECE and NLL before and after and a reliability diagram per task."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mmpost.data.tasks import TaskSpec
from mmpost.engine.loop import Predictions
from mmpost.evaluation.bias_temperature import fit_bias_temperature
from mmpost.evaluation.calibration import (
    CALIBRATION_FILE,
    Calibration,
    apply_temperature,
    calibration_metrics,
    fit_temperature,
    reliability_bins,
)
from mmpost.evaluation.reliability_plot import reliability_png

log = logging.getLogger(__name__)


def fit_calibration(method: str, tasks: Sequence[TaskSpec], dev: Predictions | None) -> Calibration:
    """Per task, the temperature that minimises dev NLL (T = 1 with ``method="none"`` or without dev posts)."""
    if method == "none" or dev is None:
        return Calibration.identity([t.name for t in tasks])
    if method == "temperature+bias":
        fitted = {t.name: fit_bias_temperature(dev.logits[t.name], dev.labels[t.name], multi_label=t.multi_label)
                  for t in tasks}
        return Calibration({k: v[0] for k, v in fitted.items()}, {}, {k: v[1] for k, v in fitted.items()})
    return Calibration({t.name: fit_temperature(dev.logits[t.name], dev.labels[t.name], multi_label=t.multi_label)
                        for t in tasks}, {})


def calibrated(pred: Predictions, calibration: Calibration, tasks: Sequence[TaskSpec]) -> Predictions:
    """The same predictions with every task's probabilities from logits / T."""
    probs = {t.name: apply_temperature(pred.logits[t.name], calibration.temperatures[t.name],
                                       multi_label=t.multi_label, bias=calibration.biases.get(t.name))
             for t in tasks}
    return Predictions(probs=probs, labels=pred.labels, losses=pred.losses, logits=pred.logits)


def calibration_rows(pred: Predictions, calibration: Calibration, task: TaskSpec) -> dict[str, float]:
    """``{"temperature", "ece_raw", "ece", "nll_raw", "nll"}`` of one task on one split."""
    return calibration_metrics(pred.logits[task.name], pred.labels[task.name], calibration.temperatures[task.name],
                               multi_label=task.multi_label, bias=calibration.biases.get(task.name))


def reliability_file(task: str, n_tasks: int) -> str:
    return "reliability.png" if n_tasks == 1 else f"reliability_{task}.png"


def reliability_figure(run_dir: Path, split: str, pred: Predictions, calibration: Calibration, task: TaskSpec,
                       n_tasks: int) -> str:
    """The task's reliability diagram on ``split``, before and after calibration; returns its file name."""
    raw = apply_temperature(pred.logits[task.name], 1.0, multi_label=task.multi_label)
    after = apply_temperature(pred.logits[task.name], calibration.temperatures[task.name],
                              multi_label=task.multi_label, bias=calibration.biases.get(task.name))
    y = pred.labels[task.name]
    rows = calibration_rows(pred, calibration, task)
    name = reliability_file(task.name, n_tasks)
    reliability_png(run_dir / name, reliability_bins(raw, y, multi_label=task.multi_label),
                    reliability_bins(after, y, multi_label=task.multi_label),
                    f"{task.name} · {split} · T = {rows['temperature']:.2f}", rows["ece_raw"], rows["ece"])
    return name


def load_calibration(run_dir: str | Path, tasks: Sequence[str]) -> Calibration:
    """A run's ``calibration.json``; runs saved before calibration existed get T = 1 for every task, and so does a
    task the file has no temperature for (it is predicted uncalibrated, with a warning)."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.exists():
        return Calibration.identity(list(tasks))
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    cal = Calibration.from_json(info, str(path))
    missing = [t for t in tasks if t not in cal.temperatures]
    if missing:
        log.warning("%s: no temperature for task(s) %s; predicted uncalibrated (T = 1)", path, ", ".join(missing))
        cal = Calibration({**cal.temperatures, **{t: 1.0 for t in missing}}, cal.thresholds, cal.biases)
    return cal
