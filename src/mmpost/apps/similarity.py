"""Spearman analysis of a run's ITC similarity against the 4-level image-text relation score.

    result = relation_similarity("runs/sentiment-itc", out="runs/sentiment-itc/relation_similarity.json")

The run supplies the similarity: its text and image projections (those ITC contrasts) give a cosine per post
(:mod:`mmpost.relate.similarity`). The posts come from the run's own data recipe, or from ``cfg`` when given; their
relation labels (``relation`` "XY", or ``text_represented`` + ``image_adds``) give the 1..4 score. Scored on the
test split and on the dataset's other test labelings (TIR: ``test_RM``, ``test_RL``). Posts without an image are
left out (their image vector is the learned stand-in) and counted. A run trained on the relation labels themselves
would make the analysis circular: the result says which task the run was trained on.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import prepare
from mmpost.apps.relate import test_variants
from mmpost.atomic import atomic_write_json
from mmpost.config import RunConfig
from mmpost.relate.similarity import cosine_similarity, relation_scores, spearman_by_level

log = logging.getLogger(__name__)

__all__ = ["relation_similarity"]


def relation_similarity(run_dir: str | Path, cfg: RunConfig | None = None, *, task: str = "relation",
                        out: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Spearman's rho per test split (see the module docstring); written as JSON to ``out`` when given."""
    predictor = Predictor(run_dir)
    cfg = cfg or predictor.config
    data = prepare(cfg.data, task, progress=progress)
    splits = {"test": list(data.splits.get("test", []))}
    splits.update(test_variants(cfg, task, data.labels, progress=progress))
    notes = []
    if not predictor.config.objectives.on("itc"):
        notes.append("this run was trained without ITC: its projections were never aligned by contrast")
    if predictor.task in ("relation", "text_represented", "image_adds"):
        notes.append(f"this run was trained on `{predictor.task}` labels, so the correlation is not independent "
                     "of the relation labels")
    result: dict[str, Any] = {"run": str(run_dir), "run_task": predictor.task,
                              "aligned_by_itc": bool(predictor.config.objectives.on("itc")),
                              "data": cfg.data.source, "splits": {}, "notes": notes}
    for name, posts in splits.items():
        if not posts:
            log.warning("similarity: the %s split is empty", name)
            continue
        emb = predictor.embed(posts, progress=progress)
        sim = cosine_similarity(emb["text_embeds"], emb["image_embeds"])
        try:
            result["splits"][name] = spearman_by_level(sim, relation_scores(posts), keep=emb["has_image"]).to_dict()
        except ValueError as e:
            raise ValueError(f"{name}: {e} (posts without an image are left out; this data has "
                             f"{int(emb['has_image'].sum())} of {len(posts)} with one)") from None
    if out is not None:
        atomic_write_json(Path(out), result)
    return result
