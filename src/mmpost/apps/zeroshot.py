"""Zero-shot scoring with a CLIP or SigLIP checkpoint: no training, any task.

    result = zeroshot(cfg, templates=["a post that is {label}", "a meme that is {label}"])

Each label becomes prompts, one per template (``{label}`` → the label's text: its name with ``_`` as spaces, or what
``label_texts`` says). The prompts go through the text tower; each label's vector is the mean of its prompts'
unit vectors, normalised again (CLIP's prompt ensembling). A post's image vector (the image tower's pooled output)
is compared with every label's: ``logits = exp(logit_scale) · cosine``, with the checkpoint's own scale, and a
single-label task's probabilities are ``softmax(logits)``. A multi-label task needs a SigLIP checkpoint: each label
is ``sigmoid(logits + logit_bias)`` (CLIP's scores only mean something against each other). A post without an
image gets equal probabilities and ``image_used: false``.

The output folder is laid out like a run's: ``metrics.json`` (dev and test), ``report.md`` with the majority-class
baseline (the train split's majority; nothing else of train is used), ``predictions_test.jsonl`` and
``zeroshot.json`` (checkpoint, templates, label texts).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmpost.apps.build import build_tower
from mmpost.apps.datasets import cache_dir
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.apps.train_report import baseline_of, task_report
from mmpost.atomic import atomic_write_json
from mmpost.config import RunConfig
from mmpost.data.dataset import task_label_arrays
from mmpost.data.tasks import TaskSpec
from mmpost.encoders.features import encode_texts, post_features
from mmpost.encoders.hf_clip import shared_logit_scale
from mmpost.engine.loop import Predictions
from mmpost.evaluation.predictions import Task, prediction_records, write_predictions
from mmpost.evaluation.report import write_metrics, write_tasks_report

DEFAULT_TEMPLATES = ("a post that is {label}",)
SPLITS = ("dev", "test")


@dataclass
class ZeroShotResult:
    out_dir: Path
    metrics: dict[str, dict[str, dict[str, float]]]
    baselines: dict[str, dict]
    probs: dict[str, dict[str, np.ndarray]]     # split → task → [N, C]


def checkpoint_overrides(checkpoint: str) -> list[str]:
    """Recipe overrides that make both towers the CLIP or SigLIP checkpoint ``checkpoint`` (frozen)."""
    return [f"{side}_encoder.{key}={value}" for side in ("text", "image")
            for key, value in (("name", "hf-clip"), ("path", checkpoint), ("trainable", "false"))]


def label_text(label: str, label_texts: Mapping[str, str] | None = None) -> str:
    return (label_texts or {}).get(label, str(label).replace("_", " "))


def prompts(labels: Sequence[str], templates: Sequence[str], label_texts: Mapping[str, str] | None = None
            ) -> list[list[str]]:
    """One list of prompts per label, one prompt per template."""
    if not templates:
        raise ValueError("give at least one --template, e.g. \"a post that is {label}\"")
    bad = [t for t in templates if "{label}" not in t]
    if bad:
        raise ValueError(f"every template needs {{label}} where the label goes; these have none: {bad}")
    return [[t.replace("{label}", label_text(label, label_texts)) for t in templates] for label in labels]


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def label_vectors(text_tower, label_prompts: list[list[str]]) -> np.ndarray:
    """[C, D] unit vectors: per label, the normalised mean of its prompts' unit vectors."""
    flat = [p for group in label_prompts for p in group]
    vectors = unit(encode_texts(text_tower, flat, progress=False))
    per_template = len(label_prompts[0])
    return unit(vectors.reshape(len(label_prompts), per_template, -1).mean(axis=1))


def zero_shot_probs(image: np.ndarray, labels: np.ndarray, has_image: np.ndarray, logit_scale: float,
                    logit_bias: float | None, multi_label: bool) -> np.ndarray:
    """image [N, D], labels [C, D] (unit), has_image [N] → probabilities [N, C] (see the module docstring)."""
    logits = float(np.exp(logit_scale)) * unit(image) @ labels.T
    if multi_label:
        if logit_bias is None:
            raise ValueError("a multi-label task needs independent per-label probabilities, which a SigLIP checkpoint "
                             "gives (sigmoid with its bias); a CLIP checkpoint's scores are only comparable "
                             "across labels (softmax)")
        probs = 1.0 / (1.0 + np.exp(-(logits + logit_bias)))
        probs[~has_image] = 0.5
        return probs
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[~has_image] = 1.0 / labels.shape[0]
    return probs


def paired_towers(cfg: RunConfig) -> tuple:
    text_tower = build_tower(dataclasses.replace(cfg.text_encoder, trainable=False))
    image_tower = build_tower(dataclasses.replace(cfg.image_encoder, trainable=False))
    if shared_logit_scale(text_tower, image_tower) is None:
        raise ValueError("zero-shot compares one checkpoint's text and image vectors: set text_encoder and "
                         "image_encoder to hf-clip with the same path (--checkpoint DIR does both)")
    return text_tower, image_tower


def score_split(posts, tasks: Sequence[TaskSpec], towers: tuple, cfg: RunConfig, label_prompts: dict,
                progress: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{task: probabilities [N, C]} and has_image [N] for one split."""
    text_tower, image_tower = towers
    feats = post_features(posts, None, image_tower, cache_dir=cache_dir(cfg), progress=progress)
    scale, bias = shared_logit_scale(text_tower, image_tower)
    probs = {t.name: zero_shot_probs(feats.image, label_vectors(text_tower, label_prompts[t.name]), feats.has_image,
                                     scale, bias, t.multi_label) for t in tasks}
    return probs, feats.has_image


def zeroshot(cfg: RunConfig, templates: Sequence[str] = DEFAULT_TEMPLATES, *,
             label_texts: Mapping[str, str] | None = None, out_dir: str | Path | None = None,
             data: PreparedData | None = None, progress: bool = False) -> ZeroShotResult:
    """Score the recipe's dev and test splits with its hf-clip towers, untrained; write the run-like folder."""
    towers = paired_towers(cfg)
    data = data or prepare(cfg.data, cfg.tasks, progress=progress)
    label_prompts = {t.name: prompts(t.labels, templates, label_texts) for t in data.tasks}
    out = Path(out_dir) if out_dir else Path(cfg.out_dir).expanduser() / (
        cfg.name or f"zeroshot-{data.task}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    scored, image_used = {}, {}
    for split in (s for s in SPLITS if data.splits.get(s)):
        probs, image_used[split] = score_split(data.splits[split], data.tasks, towers, cfg, label_prompts, progress)
        scored[split] = Predictions(probs=probs, labels=task_label_arrays(data.splits[split], data.tasks))
    if not scored:
        raise ValueError("the recipe's data has no dev or test posts to score")
    return write_outputs(out, cfg, data, scored, image_used, templates, label_prompts, towers)


def write_outputs(out: Path, cfg: RunConfig, data: PreparedData, scored: dict[str, Predictions],
                  image_used: dict[str, np.ndarray], templates: Sequence[str], label_prompts: dict,
                  towers: tuple) -> ZeroShotResult:
    reports = [task_report(out, t, scored, len(data.tasks)) for t in data.tasks]
    eval_split = "test" if "test" in scored else "dev"
    train_labels = task_label_arrays(data.splits.get("train", []), data.tasks)
    for task, report in zip(data.tasks, reports):
        report.baseline = baseline_of(task, train_labels[task.name], scored[eval_split].labels[task.name])
    metrics = {split: {r.task: r.split_metrics[split] for r in reports} for split in scored}
    write_metrics(out, metrics)
    tasks = [Task(t.name, tuple(t.labels), t.multi_label) for t in data.tasks]
    posts = data.splits[eval_split]
    write_predictions(out / f"predictions_{eval_split}.jsonl", prediction_records(
        [p.id for p in posts], tasks, scored[eval_split].probs, image_used[eval_split].tolist(),
        gold=[p.labels for p in posts], decimals=6))
    checkpoint = cfg.image_encoder.path
    atomic_write_json(out / "zeroshot.json", {"checkpoint": checkpoint, "family": towers[0].family,
                                              "templates": list(templates), "prompts": label_prompts,
                                              "logit_scale": float(np.exp(towers[0].space.logit_scale))})
    missing = {s: int((~u).sum()) for s, u in image_used.items() if (~u).any()}
    notes = list(data.notes) + [
        f"zero-shot, no training: `{checkpoint}` ({towers[0].family}); templates: "
        + "; ".join(f"`{t}`" for t in templates),
        "the majority baseline is the train split's majority class; nothing else of train is used",
    ] + ([f"posts without a readable image get equal probabilities: {missing}"] if missing else [])
    write_tasks_report(out, title=f"zero-shot · {Path(str(checkpoint)).name} · {data.task}", tasks=reports,
                       notes=notes)
    return ZeroShotResult(out, metrics, {r.task: r.baseline for r in reports},
                          {s: p.probs for s, p in scored.items()})
