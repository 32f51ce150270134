"""A trained run, loaded for prediction: ``mmpost.load(RUN_DIR).predict(posts)``.

Probabilities are calibrated with the run's ``calibration.json`` (a temperature per task, fitted on dev; T = 1
for runs saved before it existed), and a binary task with an operating point (``mmpost calibrate``) decides by
its threshold: predict, evaluate and serve all read them through this class."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from mmpost.apps.build import build_model, build_tower
from mmpost.apps.datasets import build_datasets
from mmpost.apps.frames import evaluate_frame, frame_posts, is_frame, records_frame
from mmpost.apps.run_calibration import load_calibration
from mmpost.config import RunConfig, load_config
from mmpost.data.dataset import unwrap
from mmpost.data.post import Post
from mmpost.engine.checkpoint import load_weights
from mmpost.evaluation.predictions import Task, prediction_records, run_tasks
from mmpost.models.output import ModelOutput


def model_classes(tasks: Sequence[Task]) -> dict[str, int]:
    """What ``build_model`` is given as ``num_classes``: {task: classes} in task order (one task keeps the plain
    classifier of runs saved before several tasks)."""
    return {t.name: len(t.labels) for t in tasks}


def task_logits(output: ModelOutput, tasks: Sequence[Task]) -> dict[str, torch.Tensor]:
    """Every task's logits, in task order."""
    missing = [t.name for t in tasks if t.name not in output.task_logits]
    if missing:
        raise ValueError(f"the model gave no logits for task(s) {', '.join(missing)}")
    return {t.name: output.task_logits[t.name] for t in tasks}


def probabilities(logits: torch.Tensor, task: Task, temperature: float = 1.0,
                  bias: Sequence[float] | None = None) -> np.ndarray:
    """[B, C] probabilities of logits / T (+ a bias per label): a softmax over a task's labels, or one sigmoid per
    label for a multi-label task."""
    logits = logits.float().cpu() / float(temperature)
    if bias is not None:
        logits = logits + torch.tensor(bias, dtype=logits.dtype)
    return (logits.sigmoid() if task.multi_label else logits.softmax(-1)).cpu().numpy()


@dataclass
class Scores:
    """Per task [N, C]: ``probs`` (calibrated) and ``probs_raw`` (the model's own); per post, whether an image
    was used."""

    probs: dict[str, np.ndarray]
    probs_raw: dict[str, np.ndarray]
    image_used: np.ndarray


class Predictor:
    def __init__(self, run_dir: str | Path, device: str | torch.device | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.device = torch.device(device or "cpu")     # where the model runs (e.g. a process's own GPU)
        for needed in ("config.yaml", "labels.json", "model.safetensors"):
            if not (self.run_dir / needed).exists():
                raise FileNotFoundError(f"{self.run_dir} is not a finished mmpost run: {needed} is missing")
        self.config: RunConfig = load_config(self.run_dir / "config.yaml")
        self.calibration = load_calibration(self.run_dir, [t.name for t in run_tasks(self.run_dir)])
        self.tasks: list[Task] = [self._decision(t) for t in run_tasks(self.run_dir)]
        self.task: str = self.tasks[0].name                    # the first task: what one-task callers read
        self.labels: list[str] = list(self.tasks[0].labels)
        cfg = self.config
        self.text_tower = build_tower(cfg.text_encoder)
        self.image_tower = build_tower(cfg.image_encoder)
        self.model = build_model(cfg.model, self.text_tower, self.image_tower, model_classes(self.tasks))
        state = load_weights(self.run_dir / "model.safetensors")
        missing_unexpected = self.model.load_state_dict(state, strict=False)
        if missing_unexpected.unexpected_keys:
            raise ValueError(f"{self.run_dir}: weights do not fit the model: {missing_unexpected.unexpected_keys[:5]}")
        self.model.eval().to(self.device)

    def _decision(self, task: Task) -> Task:
        """The task as saved, or deciding by its operating point where ``mmpost calibrate`` set one."""
        op = self.calibration.thresholds.get(task.name)
        return task.with_threshold(op["positive"], op["threshold"]) if op else task

    def _loader(self, posts: Sequence[Post], batch_size: int, progress: bool,
                cache_dir: str | Path | None = None) -> tuple[DataLoader, Any]:
        cfg = replace(self.config, progress=progress, cache_dir=str(cache_dir) if cache_dir else self.config.cache_dir)
        datasets, _ = build_datasets({"all": posts}, {"all": np.full(len(posts), -1)}, cfg,
                                     self.text_tower, self.image_tower)
        ds = datasets["all"]
        dl = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), batch_size, False), collate_fn=unwrap)
        return dl, ds

    def _task_probs(self, output: ModelOutput, calibrated: bool = True) -> dict[str, np.ndarray]:
        logits = task_logits(output, self.tasks)
        cal = self.calibration
        if not calibrated:
            return {t.name: probabilities(logits[t.name], t) for t in self.tasks}
        return {t.name: probabilities(logits[t.name], t, cal.temperatures.get(t.name, 1.0), cal.biases.get(t.name))
                for t in self.tasks}

    def _joined(self, parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {t.name: np.concatenate(parts[t.name]) if parts[t.name] else np.zeros((0, len(t.labels)), np.float32)
                for t in self.tasks}

    @torch.inference_mode()
    def scores(self, posts: Sequence[Post], *, batch_size: int = 128, progress: bool = False,
               cache_dir: str | Path | None = None) -> Scores:
        """Calibrated and raw probabilities per task, ``{task: [N, C]}`` in task order (columns in the order of
        that task's labels), and, per post, whether an image was used (False: no image, or none readable — the
        learned "no image" vector stood in). ``cache_dir`` replaces the run's feature cache for these posts: a
        server passes a throwaway folder per request, so that serving never grows (nor rescans) the shared cache."""
        dl, ds = self._loader(posts, batch_size, progress, cache_dir)
        cal: dict[str, list[np.ndarray]] = {t.name: [] for t in self.tasks}
        raw: dict[str, list[np.ndarray]] = {t.name: [] for t in self.tasks}
        for batch in dl:
            output = self.model(batch.to(self.device))
            for parts, calibrated in ((cal, True), (raw, False)):
                for name, p in self._task_probs(output, calibrated).items():
                    parts[name].append(p)
        return Scores(self._joined(cal), self._joined(raw), ds.has_image.numpy())

    def predict_tasks(self, posts: Sequence[Post], **kwargs) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Calibrated probabilities per task and the image mask of :meth:`scores`."""
        s = self.scores(posts, **kwargs)
        return s.probs, s.image_used

    def predict_with_mask(self, posts: Sequence[Post], **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """The first task's probabilities [N, C] and the image mask of :meth:`predict_tasks`."""
        probs, has_image = self.predict_tasks(posts, **kwargs)
        return probs[self.task], has_image

    @torch.inference_mode()
    def embed(self, posts: Sequence[Post], *, batch_size: int = 128, progress: bool = False) -> dict[str, np.ndarray]:
        """What a report maps and inspects, per post: ``probs`` [N, C] (the first task's; every task's under
        ``probs:TASK``), ``text_embeds`` and ``image_embeds`` [N, E] (the projected vectors ITC contrasts, before
        normalisation) and ``has_image`` [N] (False where the learned "no image" vector stood in, so that image
        point means nothing)."""
        dl, ds = self._loader(posts, batch_size, progress)
        probs: dict[str, list[np.ndarray]] = {t.name: [] for t in self.tasks}
        parts: dict[str, list[np.ndarray]] = {"text_embeds": [], "image_embeds": []}
        for batch in dl:
            out = self.model(batch.to(self.device))
            for name, p in self._task_probs(out).items():
                probs[name].append(p)
            parts["text_embeds"].append(out.text_embeds.float().cpu().numpy())
            parts["image_embeds"].append(out.image_embeds.float().cpu().numpy())
        result = {k: np.concatenate(v) if v else np.zeros((0, 0), dtype=np.float32) for k, v in parts.items()}
        by_task = self._joined(probs)
        result["probs"] = by_task[self.task]
        result.update({f"probs:{name}": p for name, p in by_task.items()})
        result["has_image"] = ds.has_image.numpy().astype(bool)
        return result

    def predict_proba(self, posts: Sequence[Post], **kwargs) -> np.ndarray:
        """The first task's class probabilities [N, C], columns in the order of ``self.labels``."""
        return self.predict_with_mask(posts, **kwargs)[0]

    def records(self, ids: Sequence[str | None], probs: dict[str, np.ndarray], image_used: Sequence[bool],
                gold: Sequence[dict[str, Any]] | None = None, decimals: int | None = None,
                probs_raw: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """Prediction records (:mod:`mmpost.evaluation.predictions`) of this run's tasks."""
        return prediction_records(ids, self.tasks, probs, image_used, gold, decimals, probs_raw)

    def predict(self, posts: Sequence[Post] | Any, **kwargs) -> list[dict[str, Any]] | Any:
        """One prediction record per post (:mod:`mmpost.evaluation.predictions`): ``{"id", "label", "probs",
        "probs_raw", "image_used"}`` for a one-task run, ``{"id", "image_used", "tasks": {...}}`` for several;
        ``gold`` where the post carries a label for the task. A pandas DataFrame (read with the run's column
        mapping) gives a DataFrame: ``id``, ``label``, ``p_<label>`` ..., ``image_used``, ``gold``."""
        if is_frame(posts):
            frame_input = frame_posts(self, posts)
            return records_frame(self.predict(frame_input, **kwargs), self.tasks)
        s = self.scores(posts, **kwargs)
        return self.records([p.id for p in posts], s.probs, s.image_used, [p.labels for p in posts],
                            probs_raw=s.probs_raw)


    def evaluate(self, df: Any, progress: bool = False) -> dict:
        """Metrics ``{split: {task: {...}}}`` of a labelled DataFrame (as ``mmpost evaluate RUN --data FILE``)."""
        return evaluate_frame(self, df, progress)


def load(run_dir: str | Path) -> Predictor:
    return Predictor(run_dir)
