"""Spearman analysis of an image-text similarity against the 4-level image-text relation score.

    result = relation_similarity("runs/sentiment-itc", out="runs/sentiment-itc/relation_similarity.json")
    result = checkpoint_similarity("openai/clip-vit-base-patch32", cfg)     # the ITRp paper's own analysis

A checkpoint (CLIP or SigLIP, ``hf-clip``) supplies the similarity the paper used: the cosine of its own pooled text
and image vectors, untrained, on the recipe's posts.

The run supplies the similarity: its text and image projections (those ITC contrasts) give a cosine per post
(:mod:`mmpost.relate.similarity`). The posts come from the run's own data recipe, or from ``cfg`` when given; their
relation labels (``relation`` "XY", or ``text_represented`` + ``image_adds``) give the 1..4 score. Scored on the
test split and on the dataset's other test labelings (TIR: ``test_RM``, ``test_RL``). Posts without an image are
left out (their image vector is the learned stand-in) and counted. A run trained on the relation labels themselves
would make the analysis circular: the result says which task the run was trained on.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import prepare
from mmpost.apps.relate import test_variants
from mmpost.atomic import atomic_write_json
from mmpost.config import RunConfig
from mmpost.encoders.features import post_features
from mmpost.relate.similarity import cosine_similarity, relation_scores, spearman_by_level

log = logging.getLogger(__name__)

__all__ = ["relation_similarity", "checkpoint_similarity"]


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
        result["splits"][name] = split_result(name, posts, emb["text_embeds"], emb["image_embeds"], emb["has_image"])
    if out is not None:
        atomic_write_json(Path(out), result)
    return result


def split_result(name: str, posts, text: Any, image: Any, has_image: Any) -> dict:
    """Spearman's rho of the row-wise cosine of ``text`` and ``image`` against the posts' relation scores."""
    sim = cosine_similarity(text, image)
    try:
        return spearman_by_level(sim, relation_scores(posts), keep=has_image).to_dict()
    except ValueError as e:
        raise ValueError(f"{name}: {e} (posts without an image are left out; this data has "
                         f"{int(has_image.sum())} of {len(posts)} with one)") from None


def checkpoint_similarity(checkpoint: str, cfg: RunConfig, *, task: str = "relation", out: str | Path | None = None,
                          progress: bool = False) -> dict[str, Any]:
    """The same analysis with a CLIP or SigLIP checkpoint's own cosine (no run, no training): both towers are
    ``hf-clip`` at ``checkpoint``, frozen; ``cfg`` gives the posts (its encoder settings are replaced)."""
    from mmpost.apps.datasets import cache_dir
    from mmpost.apps.zeroshot import checkpoint_overrides, paired_towers
    from mmpost.config import load_config
    cfg = dataclasses.replace(cfg, **{side: getattr(load_config(None, checkpoint_overrides(checkpoint)), side)
                                      for side in ("text_encoder", "image_encoder")})
    text_tower, image_tower = paired_towers(cfg)
    data = prepare(cfg.data, task, progress=progress)
    splits = {"test": list(data.splits.get("test", []))}
    splits.update(test_variants(cfg, task, data.labels, progress=progress))
    result: dict[str, Any] = {"checkpoint": checkpoint, "family": text_tower.family, "data": cfg.data.source,
                              "splits": {}, "notes": [f"the cosine of {checkpoint}'s own pooled text and image "
                                                      "vectors, untrained (the ITRp paper's label-quality check)"]}
    for name, posts in splits.items():
        if not posts:
            log.warning("similarity: the %s split is empty", name)
            continue
        feats = post_features(posts, text_tower, image_tower, cache_dir=cache_dir(cfg), progress=progress)
        result["splits"][name] = split_result(name, posts, feats.text, feats.image, feats.has_image)
    if out is not None:
        atomic_write_json(Path(out), result)
    return result
