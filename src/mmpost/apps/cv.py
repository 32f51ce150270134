"""Cross-validation: ``mmpost cv RECIPE --folds 5 --seeds 0,1 [--compare OTHER.yaml]``.

The recipe's posts (every split pooled) are cut into K outer folds, stratified by the first task and grouped by
``data.group_by`` (no image, text, event ... in two folds); inside each fold's training part a stratified,
grouped 10% is the inner dev split, which alone chooses the epoch and fits the calibration. Each fold × seed is
one ordinary run (``runs/seed<S>/fold<K>/``); a finished run is read back, so an interrupted cross-validation
resumes where it stopped. The folder gets:

* ``oof.jsonl``: every post's out-of-fold prediction (the shared prediction schema, calibrated ``probs`` and
  ``probs_raw``) with ``fold``, ``seed``, ``text``, ``images`` and ``row``; ``mmpost label-issues`` reads it;
* ``folds.csv`` (id, fold, group), ``labels.json``, ``cv.json`` (what was run);
* ``metrics.json`` and ``report.md``: every test metric's mean ± std over folds (seeds averaged within a fold),
  the majority baseline recomputed per fold, calibration before/after, and with ``--compare`` a paired test of
  the two recipes over the same folds.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmpost.apps.prepare import PreparedData, prepare
from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.config import RunConfig, load_config
from mmpost.data.groups import describe_groups, group_names
from mmpost.data.post import Post
from mmpost.data.splits import kfold_splits
from mmpost.data.tasks import TaskSpec
from mmpost.engine.resume import LAST
from mmpost.evaluation.cv_summary import RunScores, summarise, write_cv_report
from mmpost.evaluation.predictions import LABELS_FILE, Task, prediction_line, tasks_to_json
from mmpost.evaluation.saved_predictions import read_records
from mmpost.progress import bar as progress_bar

log = logging.getLogger(__name__)
OOF_FILE = "oof.jsonl"
DEV_FRACTION = 0.1


@dataclass
class FoldPlan:
    """The pooled posts, their tasks and the K folds (indices into ``posts``)."""

    posts: list[Post]
    tasks: list[TaskSpec]
    folds: list[dict[str, list[int]]]
    notes: list[str]


@dataclass
class CVResult:
    out_dir: Path
    summary: dict[str, Any]           # metrics.json
    n_runs: int


def plan_folds(cfg: RunConfig, k: int, *, progress: bool = True) -> FoldPlan:
    """The recipe's posts, pooled over its splits, in ``k`` grouped and stratified folds, each with its inner dev."""
    data = prepare(replace(cfg.data, max_train=None), cfg.tasks, progress=progress, require_splits=False)
    posts = [p for split in data.splits.values() for p in split]
    folds = kfold_splits(posts, data.task, k, seed=cfg.data.split_seed, group_by=tuple(cfg.data.group_by),
                         dev_fraction=DEV_FRACTION)
    # the source's own split and its counts do not apply to the folds
    notes = [n for n in data.notes if not n.startswith(("no split column", "split", "grouped by", "counts:"))]
    notes.append(describe_groups(posts, list(cfg.data.group_by)))
    return FoldPlan(posts, data.tasks, folds, notes)


def fold_data(plan: FoldPlan, k: int) -> PreparedData:
    fold = plan.folds[k]
    splits = {name: [plan.posts[i] for i in fold[name]] for name in ("train", "dev", "test")}
    notes = plan.notes + [f"cross-validation fold {k + 1} of {len(plan.folds)}: test is this outer fold, dev a "
                          f"stratified, grouped {DEV_FRACTION:.0%} of the rest"]
    return PreparedData(tasks=plan.tasks, splits=splits, notes=notes, counts={s: len(v) for s, v in splits.items()})


def run_folds(cfg: RunConfig, plan: FoldPlan, out: Path, seeds: Sequence[int],
              progress: bool) -> list[tuple[int, int, Path]]:
    """Train every fold × seed not finished yet (the towers built once for all); ``[(seed, fold, run_dir)]``."""
    from mmpost.apps.build import build_tower
    from mmpost.apps.train import train

    jobs = [(s, k, out / "runs" / f"seed{s}" / f"fold{k}") for s in seeds for k in range(len(plan.folds))]
    todo = [j for j in jobs if not (j[2] / "metrics.json").exists()]
    towers = (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)) if todo else None
    for seed, k, run_dir in progress_bar(todo, enabled=progress, desc="cv runs", unit="run"):
        run_cfg = replace(cfg, name=run_dir.name, out_dir=str(run_dir.parent), progress=False,
                          train=replace(cfg.train, seed=int(seed)))
        # an interrupted fold goes on from its last checkpoint
        train(run_cfg, data=fold_data(plan, k), towers=towers, resume=(run_dir / LAST).exists())
    return jobs


def oof_records(plan: FoldPlan, jobs: list[tuple[int, int, Path]]) -> list[dict[str, Any]]:
    """Every run's test predictions with the fold, seed, text, images and row of each post, in fold order."""
    by_id = {p.id: p for p in plan.posts}
    out = []
    for seed, k, run_dir in jobs:
        for rec in read_records(run_dir, "test"):
            post = by_id[str(rec["id"])]
            rec.update(fold=k, seed=seed, text=post.text, images=list(post.images))
            if "row" in post.meta:
                rec["row"] = post.meta["row"]
            out.append(rec)
    return out


def write_folds(path: Path, plan: FoldPlan, group_by: list[str]) -> None:
    """folds.csv: every post's outer fold and the group it was kept with."""
    names = group_names(plan.posts, group_by)
    fold_of = {i: k for k, f in enumerate(plan.folds) for i in f["test"]}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("id", "fold", "group"))
    w.writerows((p.id, fold_of[i], names[i]) for i, p in enumerate(plan.posts))
    atomic_write_text(path, buf.getvalue())


def cross_validate(recipe: str | Path, overrides: list[str] | None = None, *, folds: int = 5,
                   seeds: Sequence[int] = (0,), compare: str | Path | None = None, out: str | Path | None = None,
                   progress: bool = True) -> CVResult:
    """Run (or resume) the cross-validation of ``recipe`` and, with ``compare``, of another recipe over the same
    posts and folds; write the folder described in the module and return its summary."""
    cfg = load_config(recipe, overrides)
    out_dir = Path(out) if out else Path(cfg.out_dir) / f"cv-{Path(recipe).stem}-{cfg.task}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_folds(cfg, folds, progress=progress)
    check_same_plan(out_dir, recipe, overrides, folds, plan)
    atomic_write_json(out_dir / LABELS_FILE, tasks_to_json([Task(t.name, tuple(t.labels), t.multi_label)
                                                            for t in plan.tasks]))
    write_folds(out_dir / "folds.csv", plan, list(cfg.data.group_by))
    jobs = run_folds(cfg, plan, out_dir, seeds, progress)
    records = oof_records(plan, jobs)
    atomic_write_text(out_dir / OOF_FILE, "".join(prediction_line(r) for r in records))
    other = None
    if compare is not None:
        other_cfg = load_config(compare, overrides)
        other_jobs = run_folds(other_cfg, plan, out_dir / "compare", seeds, progress)
        atomic_write_text(out_dir / "compare" / OOF_FILE,
                          "".join(prediction_line(r) for r in oof_records(plan, other_jobs)))
        other = (str(compare), other_jobs)
    baselines = fold_baselines(plan)
    summary = summarise(run_scores(jobs), baselines, run_scores(other[1]) if other else None,
                        names=(str(recipe), str(compare) if compare else ""), tasks=[t.name for t in plan.tasks])
    atomic_write_json(out_dir / "metrics.json", summary)
    write_cv_report(out_dir, summary, notes=plan.notes + [fold_sizes(plan, list(cfg.data.group_by))])
    return CVResult(out_dir, summary, len(jobs) + (len(other[1]) if other else 0))


def run_scores(jobs: list[tuple[int, int, Path]]) -> list[RunScores]:
    return [RunScores(seed, k, json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["test"])
            for seed, k, run_dir in jobs]


def fold_baselines(plan: FoldPlan) -> list[dict[str, dict[str, float]]]:
    """Per fold, every single-label task's majority-class baseline on the test fold (the training part's majority)."""
    from mmpost.data.dataset import label_ids
    from mmpost.evaluation.metrics import majority_baseline
    out = []
    for fold in plan.folds:
        per_task = {}
        for t in plan.tasks:
            if t.multi_label:
                continue
            y = label_ids(plan.posts, t.name, t.labels)
            test = y[fold["test"]]
            per_task[t.name] = majority_baseline(y[fold["train"]], test[test >= 0], len(t.labels))
        out.append(per_task)
    return out


def fold_sizes(plan: FoldPlan, group_by: list[str]) -> str:
    sizes = ", ".join(f"{len(f['train'])}/{len(f['dev'])}/{len(f['test'])}" for f in plan.folds)
    return (f"{len(plan.posts):,} posts in {len(plan.folds)} folds, stratified by {plan.tasks[0].name} and grouped "
            f"by {', '.join(group_by) or 'nothing'}; train/dev/test per fold: {sizes}")


def check_same_plan(out_dir: Path, recipe: str | Path, overrides: list[str] | None, k: int, plan: FoldPlan) -> None:
    """A folder resumed must hold the same cross-validation (recipe, overrides, posts and folds); ``cv.json``
    records it."""
    fold_ids = [sorted(plan.posts[i].id for i in f["test"]) for f in plan.folds]
    digest = _digest(fold_ids)
    info = {"recipe": str(recipe), "overrides": list(overrides or []), "folds": k, "posts": len(plan.posts),
            "folds_digest": digest, "dev_fraction": DEV_FRACTION}
    path = out_dir / "cv.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("folds_digest") != digest or old.get("recipe") != info["recipe"] \
                or old.get("overrides") != info["overrides"]:
            raise ValueError(f"{out_dir} holds another cross-validation ({old.get('recipe')} "
                             f"{' '.join(old.get('overrides', []))}, {old.get('posts')} posts, {old.get('folds')} "
                             "folds): choose another --out or delete it")
    atomic_write_json(path, info)


def _digest(fold_ids: list[list[str]]) -> str:
    import hashlib
    h = hashlib.sha1()
    for k, ids in enumerate(fold_ids):
        h.update(f"{k}:{chr(31).join(ids)}\n".encode("utf-8"))
    return h.hexdigest()
