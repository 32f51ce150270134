"""ITRp's iterative training (the paper's Algorithm 1), prediction by clustering, and the plain k-means baseline.

Per epoch the training posts are shuffled (seeded) and cut into ``ceil(N / m)`` subsets of about ``m`` posts
(``numpy.array_split``: no tiny tail subset). One *round* per subset:

1. **embed** the subset with the current towers (:func:`~mmpost.relate.features.embed_posts`): the fine-tuned
   tower(s) run now in inference mode; the frozen side's features were computed once for the whole training set,
   through the on-disk cache, before the first round;
2. **cluster** into ``k`` pseudo-labels (``get_clusterer(cfg.clusterer)``, seeded per round; empty clusters are
   re-seeded by the clusterer);
3. **align identities**: the previous round's clusterer assigns *this* subset's embeddings to its own centroids,
   and :func:`~mmpost.relate.clustering.align_to_previous` renames the new clusters to agree with that on these same
   posts (so the overlap is the whole subset, even though consecutive subsets share no post). The head is reset
   every round, so identities do not change training at all; aligning keeps the per-round log (cluster sizes)
   readable across rounds. Its time counts as clustering time;
4. **sample** a balanced set of rows (``get_sampler(cfg.sampler)``);
5. **reset the head** - a freshly initialised ``Linear(Dt + Dv, k)`` (or a small MLP) - and a fresh head optimiser
   (Adam 1e-4). The encoder optimisers (text: Adam 2e-5; image: SGD 3e-3) are made once and persist across rounds,
   as in DeepCluster, whose schedule ITRp follows;
6. **train** head + fine-tuned tower(s) for one pass over the sampled rows on the pseudo-labels (cross-entropy,
   batches of ``cfg.batch_size``). The frozen side is read from the precomputed (cached) rows.

Each round is logged (:class:`RoundLog`): sizes, re-seeds, seconds embedding / clustering / training, and the
clustering share of the round's wall time.

Prediction (:func:`predict_clusters`) embeds train, dev and test with the final towers, fits the clusterer on the
train embeddings and assigns dev and test with ``clusterer.predict``. :func:`predict_head` is the paper's own
inference (§3.5): the last round's head on the final embeddings. :func:`kmeans_baseline` does the same with
the towers as loaded (no training): the baseline the paper compares with. Cluster ids are turned into labels later
by a mapping fitted on dev (:mod:`mmpost.relate.mapping`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmpost.data.post import Post
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.relate.clustering import Clusterer, align_to_previous, get_clusterer
from mmpost.relate.config import FINETUNE, TASK_DEFAULTS, RelateConfig
from mmpost.relate.features import embed_posts, image_part, live_image_pooled, live_text_pooled, text_part
from mmpost.relate.interaction import BlockScaler
from mmpost.relate.sampling import Sampler, get_sampler
from mmpost.relate.space import RelationSpace

log = logging.getLogger(__name__)

__all__ = ["RelateConfig", "RoundLog", "ItrpResult", "make_head", "reset_head", "run_itrp", "predict_clusters",
           "kmeans_baseline", "live_sides", "split_features", "predict_head", "clusterer_options",
           "TASK_DEFAULTS", "FINETUNE"]   # RelateConfig, TASK_DEFAULTS, FINETUNE: from mmpost.relate.config


def live_sides(finetune: str) -> tuple[str, ...]:
    """The towers a ``finetune`` setting trains: ``"both"`` → ("text", "image"), ``"none"`` → ()."""
    return {"text": ("text",), "image": ("image",), "both": ("text", "image"), "none": ()}[finetune]


@dataclass
class RoundLog:
    """One ITRp round. ``sizes``: posts per (aligned) cluster; ``sampled_sizes``: rows per pseudo-label after
    balancing. ``cluster_seconds`` covers clustering and identity alignment; ``share`` = cluster / round seconds."""

    epoch: int
    round: int
    n: int
    sizes: list[int]
    sampled: int
    sampled_sizes: list[int]
    reseeded: int
    loss: float
    embed_seconds: float
    cluster_seconds: float
    train_seconds: float
    round_seconds: float
    share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ItrpResult:
    """The trained towers (the same objects passed in, trained in place), the last round's head, the per-round log
    and the total wall time."""

    text_tower: TextTower
    image_tower: ImageTower
    head: nn.Module | None
    rounds: list[RoundLog]
    seconds: float
    space: RelationSpace | None = None
    head_scaler: BlockScaler | None = None

    @property
    def cluster_share(self) -> float:
        """Clustering seconds over all rounds' seconds (0 with no round)."""
        total = sum(r.round_seconds for r in self.rounds)
        return sum(r.cluster_seconds for r in self.rounds) / total if total > 0 else 0.0


def clusterer_options(cfg: RelateConfig) -> dict[str, Any]:
    """``relate.clusterer_options``; relation features (anything but ``concat``) with block weighting are clustered
    as weighted (``normalize: none``) unless the options say otherwise."""
    options = dict(cfg.clusterer_options)
    if cfg.features != "concat" and cfg.feature_weighting == "blocks":
        options.setdefault("normalize", "none")
    return options


# --------------------------------------------------------------------------------------------------- head


def make_head(in_dim: int, k: int, kind: str = "linear", hidden: int = 256) -> nn.Module:
    """A classifier over the clustered features (``text ⊕ image`` for the paper's): ``Linear(in_dim, k)`` or
    ``Linear → ReLU → Linear``."""
    if kind == "linear":
        return nn.Linear(in_dim, k)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, k))


def reset_head(head: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear of ``head`` as PyTorch does (Kaiming-uniform weights, uniform bias), drawing from
    ``generator`` so a round's head depends on the seed only. Returns ``head``."""
    with torch.no_grad():
        for mod in head.modules():
            if isinstance(mod, nn.Linear):
                nn.init.kaiming_uniform_(mod.weight, a=math.sqrt(5), generator=generator)
                if mod.bias is not None:
                    bound = 1.0 / math.sqrt(mod.weight.shape[1]) if mod.weight.shape[1] > 0 else 0.0
                    nn.init.uniform_(mod.bias, -bound, bound, generator=generator)
    return head


# --------------------------------------------------------------------------------------------------- training


def _round_seed(seed: int, epoch: int, rnd: int) -> int:
    return int(seed) * 1_000_003 + epoch * 10_007 + rnd


def _encoder_optimizers(text_tower: nn.Module, image_tower: nn.Module, live: Sequence[str],
                        cfg: RelateConfig) -> list[torch.optim.Optimizer]:
    opts: list[torch.optim.Optimizer] = []
    if "text" in live:
        params = [p for p in text_tower.parameters() if p.requires_grad]
        if params:
            opts.append(torch.optim.Adam(params, lr=cfg.text_lr))
    if "image" in live:
        params = [p for p in image_tower.parameters() if p.requires_grad]
        if params:
            opts.append(torch.optim.SGD(params, lr=cfg.image_lr, momentum=cfg.image_momentum))
    return opts


def _prepare_tower(module: nn.Module, live: bool, name: str) -> None:
    """A frozen tower gets ``requires_grad=False`` everywhere. A live tower keeps the caller's selection when some of
    its parameters already train (partial fine-tuning); with none trainable, all are switched on."""
    params = list(module.parameters())
    if not live:
        for p in params:
            p.requires_grad_(False)
    elif params and not any(p.requires_grad for p in params):
        log.info("ITRp: the %s tower had no trainable parameter; fine-tuning all of them", name)
        for p in params:
            p.requires_grad_(True)


def run_itrp(posts_train: Sequence[Post], text_tower: TextTower, image_tower: ImageTower, cfg: RelateConfig, *,
             cache_dir: str | Path | None = None, on_round: Callable[[RoundLog], None] | None = None,
             on_head_reset: Callable[[nn.Module, torch.optim.Optimizer], None] | None = None,
             progress: bool = False, space: RelationSpace | None = None) -> ItrpResult:
    """Algorithm 1 on ``posts_train`` (labels are never read). The towers named by ``cfg.finetune`` are trained in
    place (all their parameters, unless the caller already marked a subset trainable); the other tower is frozen
    (``requires_grad`` off) and read from the cache. See the module docstring for a round's steps.

    ``on_round(log)`` is called after each round; ``on_head_reset(head, optimizer)`` right after the head and its
    optimiser are re-made (before any update of that round). The towers are left in eval mode.

    ``space`` (:func:`~mmpost.relate.space.build_space`): what is clustered and fed to the head; ``None`` is the
    paper's ``text ⊕ image``. With an aligned space the head reads the relation features, gradients reach the live
    tower(s) through the projections, and the projections train too when ``relate.align_finetune`` is on."""
    start = time.perf_counter()
    cfg = cfg.resolved()
    posts = list(posts_train)
    if len(posts) < int(cfg.k):  # type: ignore[arg-type]
        raise ValueError(f"ITRp needs at least k={cfg.k} training posts, got {len(posts)}")
    space = space or RelationSpace("concat", int(text_tower.dim), int(image_tower.dim))
    session = _start_session(posts, text_tower, image_tower, cfg, space, cache_dir=cache_dir, progress=progress,
                             on_head_reset=on_head_reset)
    rounds = _run_epochs(session, on_round)
    text_tower.eval()
    image_tower.eval()
    for module in space.modules():
        module.eval()
    return ItrpResult(text_tower=text_tower, image_tower=image_tower, head=session.head if rounds else None,
                      rounds=rounds, seconds=time.perf_counter() - start, space=space, head_scaler=space.scaler)


@dataclass
class _Session:
    """What every round of one :func:`run_itrp` call shares: the posts, the towers and the tower(s) that train, the
    frozen side's precomputed rows, the head (re-initialised every round), the encoder optimisers (kept across
    rounds) and the sampler."""

    posts: list[Post]
    text_tower: TextTower
    image_tower: ImageTower
    cfg: RelateConfig
    live: tuple[str, ...]
    frozen_text: np.ndarray | None
    frozen_image: np.ndarray | None
    head: nn.Module
    encoder_opts: list[torch.optim.Optimizer]
    sampler: Sampler
    loss_fn: nn.Module
    space: RelationSpace
    on_head_reset: Callable[[nn.Module, torch.optim.Optimizer], None] | None


def _start_session(posts: list[Post], text_tower: TextTower, image_tower: ImageTower, cfg: RelateConfig,
                   space: RelationSpace, *,
                   cache_dir: str | Path | None, progress: bool,
                   on_head_reset: Callable[[nn.Module, torch.optim.Optimizer], None] | None) -> _Session:
    """Freeze or unfreeze the towers, embed the frozen side once (through the cache, before the towers move to
    ``cfg.device``), and make the head, the encoder optimisers and the sampler."""
    live = live_sides(str(cfg.finetune))
    _prepare_tower(text_tower, "text" in live, "text")
    _prepare_tower(image_tower, "image" in live, "image")
    torch.manual_seed(cfg.seed)  # dropout inside fine-tuned towers
    frozen_text = (None if "text" in live else
                   text_part(posts, text_tower, cache_dir=cache_dir, batch_size=cfg.embed_batch_size,
                             progress=progress))
    frozen_image = (None if "image" in live else
                    image_part(posts, image_tower, cache_dir=cache_dir, batch_size=cfg.embed_batch_size,
                               progress=progress))
    device = cfg.torch_device()
    text_tower.to(device)
    image_tower.to(device)
    head = make_head(space.width(), int(cfg.k), cfg.head, cfg.head_hidden).to(device)  # type: ignore[arg-type]
    return _Session(posts=posts, text_tower=text_tower, image_tower=image_tower, cfg=cfg, live=live,
                    frozen_text=frozen_text, frozen_image=frozen_image, head=head,
                    encoder_opts=_encoder_optimizers(text_tower, image_tower, live, cfg) + _space_optimizers(space, cfg,
                                                                                                            device),
                    sampler=get_sampler(str(cfg.sampler)), loss_fn=nn.CrossEntropyLoss(),
                    on_head_reset=on_head_reset, space=space)


def _space_optimizers(space: RelationSpace, cfg: RelateConfig, device: torch.device) -> list[torch.optim.Optimizer]:
    """Moves the alignment to ``device``; an AdamW over its parameters when ``relate.align_finetune`` is on, else
    the projections are frozen (gradients still pass through them to a live tower)."""
    opts: list[torch.optim.Optimizer] = []
    for module in space.modules():
        module.to(device)
        for p in module.parameters():
            p.requires_grad_(cfg.align_finetune)
        if cfg.align_finetune and any(True for _ in module.parameters()):
            opts.append(torch.optim.AdamW(module.parameters(), lr=cfg.align_lr, weight_decay=cfg.align_weight_decay))
    return opts


def _run_epochs(session: _Session, on_round: Callable[[RoundLog], None] | None) -> list[RoundLog]:
    """Every epoch: shuffle the posts (seeded), cut them into ``ceil(N / m)`` subsets and run one round each."""
    cfg, n = session.cfg, len(session.posts)
    rng = np.random.default_rng(cfg.seed)
    n_subsets = max(1, math.ceil(n / cfg.subset_size))
    rounds: list[RoundLog] = []
    previous: Clusterer | None = None
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        for rnd, subset in enumerate(np.array_split(order, n_subsets)):
            entry, previous = _run_round(session, epoch, rnd, subset, previous)
            rounds.append(entry)
            log.info("ITRp epoch %d round %d: n=%d sizes=%s loss=%.4f cluster %.2fs of %.2fs (%.0f%%)", epoch, rnd,
                     entry.n, entry.sizes, entry.loss, entry.cluster_seconds, entry.round_seconds, 100 * entry.share)
            if on_round is not None:
                on_round(entry)
    return rounds


def _run_round(session: _Session, epoch: int, rnd: int, subset: np.ndarray,
               previous: Clusterer | None) -> tuple[RoundLog, Clusterer]:
    """One round on the posts at ``subset``: embed, cluster (aligned with ``previous``), sample, reset the head and
    train. Returns its log and its clusterer (the next round's ``previous``)."""
    s, k = session, int(session.cfg.k)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    seed = _round_seed(s.cfg.seed, epoch, rnd)
    sub_posts = [s.posts[i] for i in subset]
    ft = s.frozen_text[subset] if s.frozen_text is not None else None
    fv = s.frozen_image[subset] if s.frozen_image is not None else None
    emb = s.space.features_of(embed_posts(sub_posts, s.text_tower, s.image_tower, live=s.live, frozen_text=ft,
                                          frozen_image=fv, batch_size=s.cfg.embed_batch_size))
    t1 = time.perf_counter()
    clusterer = get_clusterer(s.cfg.clusterer, **clusterer_options(s.cfg))
    result = clusterer.fit_predict(emb, k, seed=seed)
    pseudo = result.labels
    if previous is not None:
        pseudo, _ = align_to_previous(previous.predict(emb), pseudo, k)
    t2 = time.perf_counter()
    rows = s.sampler.sample(len(subset), pseudo, seed=seed)
    info = s.sampler.last_info
    loss = _train_round(s, rows, sub_posts, pseudo, ft, fv, seed)
    t3 = time.perf_counter()
    entry = RoundLog(
        epoch=epoch, round=rnd, n=len(subset), sizes=np.bincount(pseudo, minlength=k).tolist(),
        sampled=int(rows.shape[0]),
        sampled_sizes=[int(info.counts_after.get(c, 0)) if info else 0 for c in range(k)],
        reseeded=int(result.reseeded), loss=loss, embed_seconds=t1 - t0, cluster_seconds=t2 - t1,
        train_seconds=t3 - t2, round_seconds=t3 - t0, share=(t2 - t1) / (t3 - t0) if t3 > t0 else 0.0)
    return entry, clusterer


def _train_round(session: _Session, rows: np.ndarray, sub_posts: list[Post], pseudo: np.ndarray,
                 frozen_text: np.ndarray | None, frozen_image: np.ndarray | None, seed: int) -> float:
    """Reset the head (drawn from the round's ``seed``) and make a fresh head optimiser, then one training pass of
    head + live tower(s) over the sampled ``rows``. Returns the mean batch loss."""
    s = session
    reset_head(s.head, torch.Generator().manual_seed(seed))
    head_opt = torch.optim.Adam(s.head.parameters(), lr=s.cfg.head_lr)
    if s.on_head_reset is not None:
        s.on_head_reset(s.head, head_opt)
    return _train_pass(rows, sub_posts, pseudo, frozen_text, frozen_image, s.text_tower, s.image_tower, s.live,
                       s.head, [head_opt, *s.encoder_opts], s.loss_fn, s.cfg.batch_size, s.space)


def _train_pass(rows: np.ndarray, posts: list[Post], pseudo: np.ndarray, frozen_text: np.ndarray | None,
                frozen_image: np.ndarray | None, text_tower: TextTower, image_tower: ImageTower,
                live: Sequence[str], head: nn.Module, optimizers: list[torch.optim.Optimizer], loss_fn: nn.Module,
                batch_size: int, space: RelationSpace) -> float:
    """One pass over the sampled rows (already shuffled by the sampler); returns the mean batch loss."""
    head.train()
    if "text" in live:
        text_tower.train()
    if "image" in live:
        image_tower.train()
    device = next(head.parameters()).device
    targets = torch.as_tensor(pseudo, dtype=torch.long, device=device)
    losses: list[float] = []
    for start in range(0, rows.shape[0], batch_size):
        b = rows[start:start + batch_size]
        batch_posts = [posts[i] for i in b]
        if "text" in live:
            t = live_text_pooled(text_tower, [p.text for p in batch_posts])
        else:
            assert frozen_text is not None
            t = torch.from_numpy(np.ascontiguousarray(frozen_text[b])).to(device)
        if "image" in live:
            v = live_image_pooled(image_tower, batch_posts)
        else:
            assert frozen_image is not None
            v = torch.from_numpy(np.ascontiguousarray(frozen_image[b])).to(device)
        logits = head(space.torch_features(t.float(), v.float()))
        loss = loss_fn(logits, targets[torch.as_tensor(b, dtype=torch.long, device=device)])
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")


# --------------------------------------------------------------------------------------------------- prediction


def split_features(splits: dict[str, Sequence[Post]], text_tower: TextTower, image_tower: ImageTower,
                   cfg: RelateConfig, *, cache_dir: str | Path | None = None,
                   live: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """{split: [N, Dt + Dv]} ``text ⊕ image`` of every non-empty split: the towers ``live`` names (default: those
    ``cfg.finetune`` trained) run now, the others come through the cache."""
    cfg = cfg.resolved()
    live = live_sides(str(cfg.finetune)) if live is None else tuple(live)
    return {name: embed_posts(list(posts), text_tower, image_tower, live=live, cache_dir=cache_dir,
                              batch_size=cfg.embed_batch_size)
            for name, posts in splits.items() if len(posts)}


def predict_clusters(splits: dict[str, Sequence[Post]], text_tower: TextTower, image_tower: ImageTower,
                     cfg: RelateConfig, *, cache_dir: str | Path | None = None, fit_on: str = "train",
                     live: Sequence[str] | None = None, features: dict[str, np.ndarray] | None = None,
                     space: RelationSpace | None = None) -> dict[str, np.ndarray]:
    """Cluster ids per split with the (trained) towers: embed every split (:func:`split_features`, or take
    ``features``), fit the clusterer on ``fit_on`` (train) with ``cfg.seed`` and assign the other splits (dev, test)
    to its centroids with ``clusterer.predict``. Labels are not read. Returns {split: [N] int64}; an empty split gets
    an empty array. ``space``: the relation space to cluster in (``None``: the paper's ``text ⊕ image``); its block
    weights are fitted on ``fit_on`` and applied to the other splits."""
    cfg = cfg.resolved()
    feats = features if features is not None else split_features(splits, text_tower, image_tower, cfg,
                                                                  cache_dir=cache_dir, live=live)
    if fit_on not in feats:
        raise ValueError(f"no {fit_on!r} posts to fit the clusterer on")
    if space is not None and not space.is_concat:
        fitted = space.features_of(feats[fit_on])
        feats = {name: fitted if name == fit_on else space.features_of(x, scaler=space.scaler)
                 for name, x in feats.items()}
    clusterer = get_clusterer(cfg.clusterer, **clusterer_options(cfg))
    out = {fit_on: clusterer.fit_predict(feats[fit_on], int(cfg.k), seed=cfg.seed).labels}  # type: ignore[arg-type]
    for name in splits:
        if name != fit_on:
            out[name] = clusterer.predict(feats[name]) if name in feats else np.zeros(0, dtype=np.int64)
    return out


@torch.inference_mode()
def predict_head(head: nn.Module, features: dict[str, np.ndarray],
                 splits: dict[str, Sequence[Post]] | None = None, *, space: RelationSpace | None = None,
                 scaler: BlockScaler | None = None) -> dict[str, np.ndarray]:
    """The paper's own inference (§3.5): the last round's classifier ``h`` on the final embeddings, argmax → ids in
    0..k-1 (the last round's pseudo-label identities; a mapping fitted on dev names them). ``features`` from
    :func:`split_features`; splits listed in ``splits`` but without features get an empty array. ``space`` /
    ``scaler``: the relation space and the block weights the head was last trained with (``ItrpResult.space``,
    ``ItrpResult.head_scaler``)."""
    if space is not None and not space.is_concat:
        features = {name: space.features_of(x, scaler=scaler) for name, x in features.items()}
    head.eval()
    device = next(head.parameters()).device
    out = {name: head(torch.from_numpy(np.ascontiguousarray(x)).to(device)).argmax(1).cpu().numpy().astype(np.int64)
           for name, x in features.items()}
    for name in splits or {}:
        out.setdefault(name, np.zeros(0, dtype=np.int64))
    return out


def kmeans_baseline(splits: dict[str, Sequence[Post]], text_tower: TextTower, image_tower: ImageTower,
                    cfg: RelateConfig, *, cache_dir: str | Path | None = None,
                    fit_on: str = "train") -> dict[str, np.ndarray]:
    """The paper's baseline: the clusterer on the frozen, untrained ``text ⊕ image`` features (cached), fitted on
    ``fit_on`` and applied to the other splits. Call it *before* :func:`run_itrp` trains the towers in place. It
    always clusters the concatenation, whatever ``relate.features`` says."""
    return predict_clusters(splits, text_tower, image_tower, dataclasses.replace(cfg.resolved(), features="concat"),
                            cache_dir=cache_dir, fit_on=fit_on, live=())
