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

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mmpost.data.post import Post
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.relate.clustering import Clusterer, align_to_previous, get_clusterer
from mmpost.relate.features import embed_posts, image_part, live_image_pooled, live_text_pooled, text_part
from mmpost.relate.sampling import get_sampler

log = logging.getLogger(__name__)

__all__ = ["RelateConfig", "RoundLog", "ItrpResult", "make_head", "reset_head", "run_itrp", "predict_clusters",
           "kmeans_baseline", "live_sides", "split_features", "predict_head",
           "TASK_DEFAULTS"]

Finetune = Literal["text", "image", "both", "none"]
FINETUNE = ("text", "image", "both", "none")

# the paper's best settings (Table 2); "relation" (k=4) is not tuned in the paper: both towers, combination sampling
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "text_represented": {"k": 2, "sampler": "under", "finetune": "text"},
    "image_adds": {"k": 2, "sampler": "over", "finetune": "image"},
    "relation": {"k": 4, "sampler": "combine", "finetune": "both"},
}
_FALLBACK = {"k": 2, "sampler": "under", "finetune": "text"}


@dataclass
class RelateConfig:
    """ITRp settings. ``None`` fields take the task's default (:data:`TASK_DEFAULTS`; any other task name gets k=2,
    under-sampling and a fine-tuned text tower): filled in by ``__post_init__``.

    task: the label to relate (``text_represented`` | ``image_adds`` | ``relation`` or a dataset's own task).
    k: clusters. clusterer / clusterer_options: see :mod:`mmpost.relate.clustering`. sampler: see
    :mod:`mmpost.relate.sampling`. subset_size: m posts per round (the seed code uses 5,000; 1,000 keeps a CPU round
    short). epochs: passes over the training set. batch_size: training batch (sampled rows). embed_batch_size:
    batch for the inference passes. finetune: which tower(s) train; the others stay frozen and are read from the
    cache. head: ``linear`` (the paper's) or ``mlp`` (Linear → ReLU → Linear, ``head_hidden`` wide).
    Learning rates: the ITRp seed code's. ``image_momentum`` is not stated there: 0.9 as in DeepCluster.
    device: where the towers and the head run: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``,
    ``cuda:1``, ... Clustering stays on the CPU (faiss / scikit-learn).
    """

    task: str = "text_represented"
    k: int | None = None
    clusterer: str = "kmeans"
    clusterer_options: dict[str, Any] = field(default_factory=dict)
    sampler: str | None = None
    subset_size: int = 1000
    epochs: int = 3
    batch_size: int = 32
    embed_batch_size: int = 64
    finetune: str | None = None
    head: str = "linear"
    head_hidden: int = 256
    head_lr: float = 1e-4
    text_lr: float = 2e-5
    image_lr: float = 3e-3
    image_momentum: float = 0.9
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        defaults = TASK_DEFAULTS.get(self.task, _FALLBACK)
        if self.k is None:
            self.k = int(defaults["k"])
        if self.sampler is None:
            self.sampler = str(defaults["sampler"])
        if self.finetune is None:
            self.finetune = str(defaults["finetune"])
        if self.finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {FINETUNE}, got {self.finetune!r}")
        if self.head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp', got {self.head!r}")
        if self.k < 2:
            raise ValueError(f"k must be at least 2, got {self.k}")
        if self.subset_size < self.k:
            raise ValueError(f"subset_size ({self.subset_size}) must be at least k ({self.k})")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if self.device != "auto":
            torch.device(self.device)  # raises on a malformed name

    def torch_device(self) -> torch.device:
        """The device ``device`` names (``auto``: CUDA when available)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    @property
    def cluster_share(self) -> float:
        """Clustering seconds over all rounds' seconds (0 with no round)."""
        total = sum(r.round_seconds for r in self.rounds)
        return sum(r.cluster_seconds for r in self.rounds) / total if total > 0 else 0.0


# --------------------------------------------------------------------------------------------------- head


def make_head(in_dim: int, k: int, kind: str = "linear", hidden: int = 256) -> nn.Module:
    """A classifier over ``text ⊕ image``: ``Linear(in_dim, k)`` or ``Linear → ReLU → Linear``."""
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
             progress: bool = False) -> ItrpResult:
    """Algorithm 1 on ``posts_train`` (labels are never read). The towers named by ``cfg.finetune`` are trained in
    place (all their parameters, unless the caller already marked a subset trainable); the other tower is frozen
    (``requires_grad`` off) and read from the cache. See the module docstring for a round's steps.

    ``on_round(log)`` is called after each round; ``on_head_reset(head, optimizer)`` right after the head and its
    optimiser are re-made (before any update of that round). The towers are left in eval mode."""
    start_all = time.perf_counter()
    posts = list(posts_train)
    n, k = len(posts), int(cfg.k)  # type: ignore[arg-type]
    if n < k:
        raise ValueError(f"ITRp needs at least k={k} training posts, got {n}")
    live = live_sides(str(cfg.finetune))
    _prepare_tower(text_tower, "text" in live, "text")
    _prepare_tower(image_tower, "image" in live, "image")
    torch.manual_seed(cfg.seed)  # dropout inside fine-tuned towers
    # the frozen side once, for the whole training set, through the cache
    frozen_text = (None if "text" in live else
                   text_part(posts, text_tower, cache_dir=cache_dir, batch_size=cfg.embed_batch_size,
                             progress=progress))
    frozen_image = (None if "image" in live else
                    image_part(posts, image_tower, cache_dir=cache_dir, batch_size=cfg.embed_batch_size,
                               progress=progress))
    device = cfg.torch_device()
    text_tower.to(device)
    image_tower.to(device)
    in_dim = int(text_tower.dim) + int(image_tower.dim)
    head = make_head(in_dim, k, cfg.head, cfg.head_hidden).to(device)
    encoder_opts = _encoder_optimizers(text_tower, image_tower, live, cfg)
    sampler = get_sampler(str(cfg.sampler))
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(cfg.seed)
    n_subsets = max(1, math.ceil(n / cfg.subset_size))
    rounds: list[RoundLog] = []
    previous: Clusterer | None = None
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        for rnd, subset in enumerate(np.array_split(order, n_subsets)):
            t0 = time.perf_counter()
            seed = _round_seed(cfg.seed, epoch, rnd)
            sub_posts = [posts[i] for i in subset]
            ft = frozen_text[subset] if frozen_text is not None else None
            fv = frozen_image[subset] if frozen_image is not None else None
            emb = embed_posts(sub_posts, text_tower, image_tower, live=live, frozen_text=ft, frozen_image=fv,
                              batch_size=cfg.embed_batch_size)
            t1 = time.perf_counter()
            clusterer = get_clusterer(cfg.clusterer, **cfg.clusterer_options)
            result = clusterer.fit_predict(emb, k, seed=seed)
            pseudo = result.labels
            if previous is not None:
                pseudo, _ = align_to_previous(previous.predict(emb), pseudo, k)
            previous = clusterer
            t2 = time.perf_counter()
            rows = sampler.sample(len(subset), pseudo, seed=seed)
            info = sampler.last_info
            reset_head(head, torch.Generator().manual_seed(seed))
            head_opt = torch.optim.Adam(head.parameters(), lr=cfg.head_lr)
            if on_head_reset is not None:
                on_head_reset(head, head_opt)
            loss = _train_pass(rows, sub_posts, pseudo, ft, fv, text_tower, image_tower, live, head,
                               [head_opt, *encoder_opts], loss_fn, cfg.batch_size)
            t3 = time.perf_counter()
            round_s = t3 - t0
            entry = RoundLog(
                epoch=epoch, round=rnd, n=len(subset), sizes=np.bincount(pseudo, minlength=k).tolist(),
                sampled=int(rows.shape[0]),
                sampled_sizes=[int(info.counts_after.get(c, 0)) if info else 0 for c in range(k)],
                reseeded=int(result.reseeded), loss=loss, embed_seconds=t1 - t0, cluster_seconds=t2 - t1,
                train_seconds=t3 - t2, round_seconds=round_s, share=(t2 - t1) / round_s if round_s > 0 else 0.0)
            rounds.append(entry)
            log.info("ITRp epoch %d round %d: n=%d sizes=%s loss=%.4f cluster %.2fs of %.2fs (%.0f%%)", epoch, rnd,
                     entry.n, entry.sizes, loss, entry.cluster_seconds, round_s, 100 * entry.share)
            if on_round is not None:
                on_round(entry)
    text_tower.eval()
    image_tower.eval()
    return ItrpResult(text_tower=text_tower, image_tower=image_tower, head=head if rounds else None, rounds=rounds,
                      seconds=time.perf_counter() - start_all)


def _train_pass(rows: np.ndarray, posts: list[Post], pseudo: np.ndarray, frozen_text: np.ndarray | None,
                frozen_image: np.ndarray | None, text_tower: TextTower, image_tower: ImageTower,
                live: Sequence[str], head: nn.Module, optimizers: list[torch.optim.Optimizer], loss_fn: nn.Module,
                batch_size: int) -> float:
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
        logits = head(torch.cat([t.float(), v.float()], dim=1))
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
    live = live_sides(str(cfg.finetune)) if live is None else tuple(live)
    return {name: embed_posts(list(posts), text_tower, image_tower, live=live, cache_dir=cache_dir,
                              batch_size=cfg.embed_batch_size)
            for name, posts in splits.items() if len(posts)}


def predict_clusters(splits: dict[str, Sequence[Post]], text_tower: TextTower, image_tower: ImageTower,
                     cfg: RelateConfig, *, cache_dir: str | Path | None = None, fit_on: str = "train",
                     live: Sequence[str] | None = None,
                     features: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Cluster ids per split with the (trained) towers: embed every split (:func:`split_features`, or take
    ``features``), fit the clusterer on ``fit_on`` (train) with ``cfg.seed`` and assign the other splits (dev, test)
    to its centroids with ``clusterer.predict``. Labels are not read. Returns {split: [N] int64}; an empty split gets
    an empty array."""
    feats = features if features is not None else split_features(splits, text_tower, image_tower, cfg,
                                                                  cache_dir=cache_dir, live=live)
    if fit_on not in feats:
        raise ValueError(f"no {fit_on!r} posts to fit the clusterer on")
    clusterer = get_clusterer(cfg.clusterer, **cfg.clusterer_options)
    out = {fit_on: clusterer.fit_predict(feats[fit_on], int(cfg.k), seed=cfg.seed).labels}  # type: ignore[arg-type]
    for name in splits:
        if name != fit_on:
            out[name] = clusterer.predict(feats[name]) if name in feats else np.zeros(0, dtype=np.int64)
    return out


@torch.inference_mode()
def predict_head(head: nn.Module, features: dict[str, np.ndarray],
                 splits: dict[str, Sequence[Post]] | None = None) -> dict[str, np.ndarray]:
    """The paper's own inference (§3.5): the last round's classifier ``h`` on the final embeddings, argmax → ids in
    0..k-1 (the last round's pseudo-label identities; a mapping fitted on dev names them). ``features`` from
    :func:`split_features`; splits listed in ``splits`` but without features get an empty array."""
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
    ``fit_on`` and applied to the other splits. Call it *before* :func:`run_itrp` trains the towers in place."""
    return predict_clusters(splits, text_tower, image_tower, cfg, cache_dir=cache_dir, fit_on=fit_on, live=())
