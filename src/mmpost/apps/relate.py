"""ITRp as an app: posts → k-means baseline and ITRp training → clusters → mapping fitted on dev → test scores → report.

    cfg = load_config("recipe.yaml", ["relate.task=image_adds", "relate.epochs=1"])
    metrics = relate(cfg, out_dir)          # the settings come from the recipe's relate: section (cfg.relate)

Order matters and is fixed here:

1. posts come from ``prepare(cfg.data, cfg.relate.task)`` (train / dev / test);
2. towers are built from ``cfg.text_encoder`` / ``cfg.image_encoder`` with ``trainable`` set from
   ``cfg.relate.finetune`` (the config's own ``trainable`` flags are overridden);
3. the **k-means baseline** runs first, on the towers as loaded (cached features), because ITRp then trains the
   chosen tower(s) in place;
4. with ``relate.features`` other than ``concat``, the aligned space is learned from the frozen towers' features of
   the train posts (:func:`relation_space`; ITC early-stopped on held-out train posts, no label read);
5. ITRp (:func:`~mmpost.relate.loop.run_itrp`) trains on the train posts, without labels; its predictions come two
   ways: ``itrp`` (the clusterer refitted on the final train embeddings, dev/test assigned to its centroids) and
   ``itrp_head`` (the last round's head h on the final embeddings, the paper's §3.5 inference);
6. every method's ids are named after labels by a Hungarian mapping fitted on **dev**; test labels are read
   only after all mappings exist, to score them (weighted F1, accuracy, NMI, ARI) on ``test`` and on the dataset's
   other test labelings (TIR: ``test_RM``, ``test_RL``);
7. ``metrics.json`` (with the settings used, task defaults filled in, under ``relate_config``), ``report.md`` and
   the cluster-word plots (``cluster_words_itrp.png``, ``cluster_words_kmeans.png``) are written atomically into
   ``out_dir``.

Nothing is printed; progress goes to the logger.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmpost.apps.build import build_tower
from mmpost.apps.datasets import cache_dir as default_feature_cache
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.config import RunConfig
from mmpost.data.post import Post
from mmpost.evaluation.cluster_words_plot import cluster_words_png
from mmpost.relate.config import RelateConfig
from mmpost.relate.loop import (
    ItrpResult,
    RoundLog,
    kmeans_baseline,
    live_sides,
    predict_clusters,
    predict_head,
    run_itrp,
    split_features,
)
from mmpost.relate.mapping import ClusterMapping, cluster_words, evaluate, fit_mapping
from mmpost.relate.space import RelationSpace, build_space

log = logging.getLogger(__name__)

__all__ = ["relate", "test_variants", "unlabelled_posts", "METHODS"]

METHODS = ("itrp", "itrp_head", "kmeans")
TITLES = {"itrp": "ITRp", "itrp_head": "ITRp head h", "kmeans": "k-means (frozen features)"}


def _label_ids(posts: Sequence[Post], task: str, labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    return np.array([index[p.labels[task]] for p in posts], dtype=np.int64)


def _towers(cfg: RunConfig, relate_cfg: RelateConfig) -> tuple[Any, Any]:
    live = live_sides(str(relate_cfg.finetune))
    text = build_tower(dataclasses.replace(cfg.text_encoder, trainable="text" in live))
    image = build_tower(dataclasses.replace(cfg.image_encoder, trainable="image" in live))
    return text, image


def test_variants(cfg: RunConfig, task: str, labels: list[str], *, progress: bool = False) -> dict[str, list[Post]]:
    """The dataset adapter's other test labelings (TIR: ``test_RM`` without and ``test_RL`` with ITRp's relabelled
    controversial rows), each loaded with its option overrides; {} for sources without any."""
    if cfg.data.source in ("synthetic", "manifest"):
        return {}
    from mmpost.data.sources import get_source
    out = {}
    for name, overrides in get_source(cfg.data.source).test_variants.items():
        data_cfg = dataclasses.replace(cfg.data, options={**dict(cfg.data.options), **overrides})
        out[name] = list(prepare(data_cfg, task, labels=labels, progress=progress).splits.get("test", []))
    return out


def unlabelled_posts(cfg: RunConfig, source: str | Path) -> list[Post]:
    """The posts of every split of ``source``, labels ignored: a YAML recipe whose ``data`` section describes them,
    or a manifest (CSV / TSV / JSONL / Parquet) read with ``cfg``'s column mapping."""
    from mmpost.apps.prepare import load_source
    from mmpost.config import load_config
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        posts, _ = load_source(load_config(path).data)
    else:
        posts, _ = load_source(cfg.data, str(path))
    if not posts:
        raise ValueError(f"{source}: no posts to train on")
    return [dataclasses.replace(p, labels={}) for p in posts]


def relate(cfg: RunConfig, out_dir: str | Path, *, relate_cfg: RelateConfig | None = None,
           data: PreparedData | None = None, towers: tuple[Any, Any] | None = None, progress: bool | None = None,
           on_round: Callable[[RoundLog], None] | None = None,
           unlabelled: Sequence[Post] | None = None) -> dict[str, Any]:
    """Run the ITRp experiment end to end (see the module docstring) with the settings of the recipe's ``relate:``
    section (``cfg.relate``; ``relate_cfg`` replaces it when given) and return the metrics written to
    ``metrics.json``. ``data`` / ``towers``: already prepared posts / built towers (tests, notebooks); ``progress``
    defaults to ``cfg.progress``. ``unlabelled``: posts to train on instead of the recipe's train split (the paper
    trains on Twitter100k and evaluates on TIR; see :func:`unlabelled_posts`); dev and test still come from the
    recipe. Same config and seed → same metrics (timings aside)."""
    start = time.perf_counter()
    rc = (relate_cfg or cfg.relate).resolved()
    progress = cfg.progress if progress is None else progress
    data = data or prepare(cfg.data, rc.task, progress=progress)
    splits = _splits(cfg, data, rc.task, unlabelled, progress)
    cache = default_feature_cache(cfg)
    torch.manual_seed(rc.seed)
    text_tower, image_tower = towers or _towers(cfg, rc)
    clusters, result = _cluster_splits(splits, text_tower, image_tower, rc, cache, progress, on_round)
    mappings, scores = _map_on_dev_then_score(clusters, splits, data, rc)
    words = {m: cluster_words([p.text for p in splits["train"]], clusters[m]["train"]) for m in METHODS}
    metrics = _metrics(cfg, rc, data, splits, clusters, mappings, scores, unlabelled is not None)
    metrics["timing"] = {"itrp_seconds": result.seconds, "cluster_share": result.cluster_share,
                         "total_seconds": time.perf_counter() - start,
                         "rounds": [r.to_dict() for r in result.rounds]}
    metrics["alignment"] = result.space.report.to_dict() if result.space and result.space.report else None
    metrics["notes"] = list(data.notes)
    _write_outputs(Path(out_dir), metrics, words, mappings, data.labels, cfg, rc)
    return metrics


def _splits(cfg: RunConfig, data: PreparedData, task: str, unlabelled: Sequence[Post] | None,
            progress: bool) -> dict[str, list[Post]]:
    """train (or ``unlabelled``), dev, test and the dataset's other test labelings; dev must not be empty."""
    splits = {name: list(data.splits.get(name, [])) for name in ("train", "dev", "test")}
    if unlabelled is not None:
        splits["train"] = list(unlabelled)
    splits.update(test_variants(cfg, task, data.labels, progress=progress))
    if not splits["dev"]:
        raise ValueError("the dev split is empty: the cluster→label mapping is fitted on dev")
    return splits


def _cluster_splits(splits: dict[str, list[Post]], text_tower: Any, image_tower: Any, rc: RelateConfig,
                    cache: Path | None, progress: bool, on_round: Callable[[RoundLog], None] | None,
                    ) -> tuple[dict[str, dict[str, np.ndarray]], ItrpResult]:
    """Cluster ids per method and split: the k-means baseline on the towers as loaded (first: ITRp then trains
    them in place), then ITRp's two predictions. Labels are not read."""
    log.info("relate %s: k-means baseline on frozen features (%s)", rc.task,
             ", ".join(f"{name} {len(posts)}" for name, posts in splits.items()))
    clusters: dict[str, dict[str, np.ndarray]] = {
        "kmeans": kmeans_baseline(splits, text_tower, image_tower, rc, cache_dir=cache)}
    space = relation_space(splits["train"], text_tower, image_tower, rc, cache)
    log.info("relate %s: ITRp on %s features (%s fine-tuned, k=%d, %s sampling)", rc.task, rc.features, rc.finetune,
             rc.k, rc.sampler)
    result: ItrpResult = run_itrp(splits["train"], text_tower, image_tower, rc, cache_dir=cache,
                                  progress=progress, on_round=on_round, space=space)
    feats = split_features(splits, text_tower, image_tower, rc, cache_dir=cache)
    clusters["itrp"] = predict_clusters(splits, text_tower, image_tower, rc, features=feats, space=result.space)
    if result.head is not None:
        clusters["itrp_head"] = predict_head(result.head, feats, splits, space=result.space,
                                             scaler=result.head_scaler)
    else:  # zero epochs: no head was trained; report the clusters twice rather than invent a head
        clusters["itrp_head"] = clusters["itrp"]
    return clusters, result


def relation_space(train: Sequence[Post], text_tower: Any, image_tower: Any, rc: RelateConfig,
                   cache: Path | None) -> RelationSpace:
    """The space ITRp clusters in (``relate.features``): for anything but ``concat``, the aligned space is learned
    here from the frozen towers' pooled features of the unlabelled training posts (through the cache), before any
    tower trains. Labels are not read."""
    if rc.features == "concat":
        return RelationSpace("concat", int(text_tower.dim), int(image_tower.dim))
    pooled = split_features({"train": list(train)}, text_tower, image_tower, rc, cache_dir=cache, live=())["train"]
    dt = int(text_tower.dim)
    log.info("relate %s: learning the aligned space (relate.align=%s) on %d unlabelled posts", rc.task, rc.align,
             len(train))
    return build_space(rc, pooled[:, :dt], pooled[:, dt:], train, device=rc.torch_device(),
                       towers=(text_tower, image_tower))


def _map_on_dev_then_score(clusters: dict[str, dict[str, np.ndarray]], splits: dict[str, list[Post]],
                           data: PreparedData, rc: RelateConfig,
                           ) -> tuple[dict[str, ClusterMapping], dict[str, dict[str, dict[str, float]]]]:
    """Every method's cluster → label mapping, fitted on dev; only then are the test labels read, to score each
    non-empty test split. Returns (mappings, {method: {split: scores}})."""
    k, n_labels = int(rc.k), len(data.labels)  # type: ignore[arg-type]
    y_dev = _label_ids(splits["dev"], rc.task, data.labels)
    mappings = {m: fit_mapping(clusters[m]["dev"], y_dev, k, n_labels) for m in METHODS}
    # dev scores (the mapping was fitted there, so F1 is optimistic; NMI/ARI need no mapping): for choosing settings
    scores: dict[str, dict[str, dict[str, float]]] = {m: {"dev": evaluate(clusters[m]["dev"], y_dev, mappings[m])}
                                                      for m in METHODS}
    for name in _test_names(splits):
        if not splits[name]:
            log.warning("relate %s: the %s split is empty; no scores on it", rc.task, name)
            continue
        y_test = _label_ids(splits[name], rc.task, data.labels)
        for m in METHODS:
            scores[m][name] = evaluate(clusters[m][name], y_test, mappings[m])
    return mappings, scores


def _test_names(splits: dict[str, list[Post]]) -> list[str]:
    return [name for name in splits if name.startswith("test")]


def _metrics(cfg: RunConfig, rc: RelateConfig, data: PreparedData, splits: dict[str, list[Post]],
             clusters: dict[str, dict[str, np.ndarray]], mappings: dict[str, ClusterMapping],
             scores: dict[str, dict[str, dict[str, float]]], from_unlabelled: bool) -> dict[str, Any]:
    """What ``metrics.json`` holds, less ``timing`` and ``notes``."""
    k, tests = int(rc.k), _test_names(splits)  # type: ignore[arg-type]
    return {
        "task": rc.task,
        "labels": list(data.labels),
        "k": k,
        "split_sizes": {name: len(posts) for name, posts in splits.items()},
        "train_from": "unlabelled posts given separately" if from_unlabelled else "the recipe's train split",
        "mapping_fitted_on": "dev",
        "tests": tests,
        **{m: {**{name: scores[m].get(name) for name in ["dev", *tests]},
               "mapping": {str(c): data.labels[lab] for c, lab in mappings[m].items()},
               "train_cluster_sizes": np.bincount(clusters[m]["train"], minlength=k).tolist()}
           for m in METHODS},
        "relate_config": rc.to_dict(),
        "encoders": {"text": cfg.text_encoder.name, "image": cfg.image_encoder.name},
    }


def _write_outputs(out: Path, metrics: dict[str, Any], words: dict[str, dict[int, list[tuple[str, float]]]],
                   mappings: dict[str, ClusterMapping], labels: list[str], cfg: RunConfig, rc: RelateConfig) -> None:
    """``metrics.json``, the cluster-word plots and ``report.md``, each written atomically into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    for m in ("itrp", "kmeans"):
        cluster_words_png(out / f"cluster_words_{m}.png", words[m],
                          {c: labels[lab] for c, lab in mappings[m].items()},
                          f"{TITLES[m]} · {rc.task}: words most associated with each cluster (train texts)")
    atomic_write_text(out / "report.md", _report(metrics, words, mappings, labels, cfg, rc))
    log.info("relate %s: wrote %s", rc.task, out)


def _alignment_lines(metrics: dict[str, Any], rc: RelateConfig) -> list[str]:
    """What ITRp clustered, and how the aligned space was learned (when there is one)."""
    lines = ["", f"ITRp clustered `relate.features: {rc.features}`."]
    a = metrics.get("alignment")
    if a:
        lines[-1] += (f" Aligned space (`relate.align: {rc.align}`, E={rc.align_dim}) learned without labels on "
                      f"{a['n_train']} training posts; the epoch kept ({a['best_epoch']}, of {a['epochs_run']} run) "
                      f"has the lowest ITC loss on {a['n_holdout']} held-out unlabelled posts "
                      f"({a['best_holdout_itc']:.3f}).")
    return lines


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _report(metrics: dict[str, Any], words: dict[str, dict[int, list[tuple[str, float]]]],
            mappings: dict[str, ClusterMapping], labels: list[str], cfg: RunConfig, rc: RelateConfig) -> str:
    title = TITLES
    lines = [f"# ITRp · {metrics['task']}", "",
             f"k={metrics['k']}, clusterer `{rc.clusterer}`, sampler `{rc.sampler}`, fine-tuned: `{rc.finetune}`, "
             f"subsets of {rc.subset_size}, {rc.epochs} epoch(s), seed {rc.seed}; text encoder "
             f"`{cfg.text_encoder.name}`, image encoder `{cfg.image_encoder.name}`.",
             "Split sizes: " + ", ".join(f"{k} {v}" for k, v in metrics["split_sizes"].items()) + ".", "",
             "## Test scores", "",
             "Cluster ids are named after labels by a Hungarian mapping fitted on **dev**; test labels are used only "
             "to score. NMI and ARI need no mapping. *ITRp*: the clusterer refitted on the final train embeddings, "
             "dev/test assigned to its centroids; *ITRp head h*: the last round's classifier on the final embeddings "
             "(the paper's inference, §3.5); *k-means*: the same clusterer on the untrained towers' "
             "concatenated features.", *_alignment_lines(metrics, rc), "",
             "| split | method | weighted F1 | accuracy | NMI | ARI | n |", "|---|---|---|---|---|---|---|"]
    for name in metrics["tests"]:
        for m in METHODS:
            s = metrics[m][name]
            if s is None:
                lines.append(f"| {name} | {title[m]} | – | – | – | – | 0 |")
            else:
                lines.append(f"| {name} | {title[m]} | {s['f1_weighted']:.3f} | {s['accuracy']:.3f} | "
                             f"{s['nmi']:.3f} | {s['ari']:.3f} | {s['n']} |")
    lines += ["", "## Cluster → label (fitted on dev)", ""]
    for m in METHODS:
        pairs = ", ".join(f"{c} → {labels[lab]} ({mappings[m].how.get(c, '')})" for c, lab in mappings[m].items())
        lines.append(f"- {title[m]}: {pairs}")
    timing = metrics["timing"]
    lines += ["", "## ITRp rounds", "",
              f"Clustering took {100 * timing['cluster_share']:.1f}% of the rounds' time "
              f"(ITRp total {timing['itrp_seconds']:.1f}s).", "",
              "| epoch | round | n | cluster sizes | sampled | re-seeds | loss | cluster s | round s | share |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in timing["rounds"]:
        lines.append(f"| {r['epoch']} | {r['round']} | {r['n']} | {r['sizes']} | {r['sampled']} | {r['reseeded']} | "
                     f"{_fmt(r['loss'])} | {r['cluster_seconds']:.3f} | {r['round_seconds']:.3f} | "
                     f"{100 * r['share']:.1f}% |")
    lines += ["", "## Cluster words (train texts)", "",
              "Log-odds z-scores with an informative Dirichlet prior, each cluster against the rest; plots: "
              "`cluster_words_itrp.png`, `cluster_words_kmeans.png`.", ""]
    for m in METHODS:
        lines.append(f"**{title[m]}**")
        lines.append("")
        for c, ws in sorted(words[m].items()):
            named = labels[mappings[m][c]]
            lines.append(f"- cluster {c} ({named}): " + (", ".join(w for w, _ in ws) if ws else "(no distinctive "
                                                                                               "words)"))
        lines.append("")
    if metrics["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in metrics["notes"]] + [""]
    return "\n".join(lines)
