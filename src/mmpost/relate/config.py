"""ITRp settings: the ``relate:`` section of a run recipe (:class:`RelateConfig`).

    relate: {task: image_adds, k: 2, sampler: over, finetune: image, subset_size: 1000, epochs: 3}

``mmpost relate`` reads this section; its flags (``--task``, ``--k``, ...) are ``relate.<key>=<value>`` overrides
of it (:func:`flag_overrides`). This module imports neither torch nor :mod:`mmpost.config` (which imports it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["RelateConfig", "TASK_DEFAULTS", "FALLBACK_DEFAULTS", "FINETUNE", "HEADS", "FEATURES", "ALIGN",
           "WEIGHTINGS", "flag_overrides"]

FINETUNE = ("text", "image", "both", "none")
HEADS = ("linear", "mlp")
FEATURES = ("concat", "interaction", "both", "interaction+itm", "cos", "cos+itm")   # see mmpost.relate.interaction
ALIGN = ("itc", "checkpoint")
WEIGHTINGS = ("blocks", "none")

# the paper's best settings (Table 2); "relation" (k=4) is not tuned in the paper: both towers, combination sampling
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "text_represented": {"k": 2, "sampler": "under", "finetune": "text"},
    "image_adds": {"k": 2, "sampler": "over", "finetune": "image"},
    "relation": {"k": 4, "sampler": "combine", "finetune": "both"},
}
FALLBACK_DEFAULTS: dict[str, Any] = {"k": 2, "sampler": "under", "finetune": "text"}   # any other task
TASK_DEPENDENT = ("k", "sampler", "finetune")


@dataclass
class RelateConfig:
    """ITRp settings. ``k``, ``sampler`` and ``finetune`` left ``null`` take the task's default
    (:data:`TASK_DEFAULTS`; any other task name gets k=2, under-sampling and a fine-tuned text tower):
    :meth:`resolved` fills them. They stay ``null`` here so that a recipe setting only ``relate.task`` gets that
    task's defaults after OmegaConf merged it over the schema.

    task: the label to relate (``text_represented`` | ``image_adds`` | ``relation`` or a dataset's own task).
    k: clusters. clusterer / clusterer_options: see :mod:`mmpost.relate.clustering`. sampler: see
    :mod:`mmpost.relate.sampling`. subset_size: m posts per round (the seed code uses 5,000; 1,000 keeps a CPU round
    short). epochs: passes over the training set. batch_size: training batch (sampled rows). embed_batch_size:
    batch for the inference passes. finetune: which tower(s) train (text | image | both | none); the others stay
    frozen and are read from the cache. head: ``linear`` (the paper's) or ``mlp`` (Linear → ReLU → Linear,
    ``head_hidden`` wide). Learning rates: the ITRp seed code's. ``image_momentum`` is not stated there: 0.9 as in
    DeepCluster. device: where the towers and the head run: ``auto`` (CUDA when available, else CPU), ``cpu``,
    ``cuda``, ``cuda:1``, ... Clustering stays on the CPU (faiss / scikit-learn).

    Invalid values raise ``ValueError`` naming the recipe key (``relate.k must be at least 2, got 1``).
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
    # what is clustered (mmpost.relate.interaction): concat (text ⊕ image, the paper's) | interaction
    # ([cos, t ⊙ v, |t − v|] in an aligned space) | both | interaction+itm | cos | cos+itm
    features: str = "concat"
    align: str = "itc"                 # the aligned space (unused by concat): itc (learned, no labels) | checkpoint
    feature_weighting: str = "blocks"  # blocks (each block the same share of variance) | none
    align_dim: int = 1024              # E, the aligned space's width (chosen by held-out ITC: docs/itrp.md)
    align_hidden: int = 0              # 0: linear projections; else one hidden layer this wide
    align_epochs: int = 100            # at most; early-stopped on the held-out ITC loss
    align_patience: int = 10           # epochs without a better held-out ITC loss before stopping
    align_holdout: float = 0.2         # share of the unlabelled training posts held out for stopping
    align_lr: float = 1e-4             # AdamW, for the projections (also while the ITRp loop trains them)
    align_weight_decay: float = 0.01
    align_batch_size: int = 128
    align_itm: bool = False            # also train an ITM head (always on for the +itm features)
    align_finetune: bool = True        # the ITRp loop trains the projections with the head

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_sizes(self)
        _check_device(self.device)
        _check_relation(self)

    def task_defaults(self) -> dict[str, Any]:
        """``k``, ``sampler`` and ``finetune`` as the task would have them."""
        return dict(TASK_DEFAULTS.get(self.task, FALLBACK_DEFAULTS))

    def resolved(self) -> RelateConfig:
        """A copy with every task-dependent setting left ``None`` filled from :meth:`task_defaults`; settings given
        explicitly are kept. Resolving twice changes nothing."""
        defaults = self.task_defaults()
        return dataclasses.replace(self, **{key: defaults[key] for key in TASK_DEPENDENT if getattr(self, key) is None})

    def torch_device(self) -> torch.device:
        """The device ``device`` names (``auto``: CUDA when available)."""
        import torch
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choices(cfg: RelateConfig) -> None:
    if cfg.finetune is not None and cfg.finetune not in FINETUNE:
        raise ValueError(f"relate.finetune must be one of {', '.join(FINETUNE)}, got {cfg.finetune!r}")
    if cfg.head not in HEADS:
        raise ValueError(f"relate.head must be one of {', '.join(HEADS)}, got {cfg.head!r}")
    from mmpost import registry
    from mmpost.relate import clustering, sampling  # noqa: F401  (registers the clusterers and samplers)
    for key, kind in (("clusterer", "clusterer"), ("sampler", "sampler")):
        value = getattr(cfg, key)
        if value is not None and value not in registry.names(kind):
            raise ValueError(f"relate.{key} must be one of {', '.join(registry.names(kind))}, got {value!r}")


def _check_sizes(cfg: RelateConfig) -> None:
    k = cfg.k if cfg.k is not None else int(cfg.task_defaults()["k"])
    if k < 2:
        raise ValueError(f"relate.k must be at least 2, got {k}")
    if cfg.subset_size < k:
        raise ValueError(f"relate.subset_size must be at least relate.k ({k}), got {cfg.subset_size}")
    if cfg.epochs < 0:
        raise ValueError(f"relate.epochs must be at least 0, got {cfg.epochs}")
    for key in ("batch_size", "embed_batch_size", "head_hidden"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"relate.{key} must be at least 1, got {getattr(cfg, key)}")


def _check_relation(cfg: RelateConfig) -> None:
    for key, allowed in (("features", FEATURES), ("align", ALIGN), ("feature_weighting", WEIGHTINGS)):
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"relate.{key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if not 0.0 < cfg.align_holdout < 1.0:
        raise ValueError(f"relate.align_holdout must be between 0 and 1, got {cfg.align_holdout}")
    for key in ("align_dim", "align_epochs", "align_batch_size"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"relate.{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.align_batch_size < 2:
        raise ValueError(f"relate.align_batch_size must be at least 2 (ITC contrasts a batch), got "
                         f"{cfg.align_batch_size}")
    for key in ("align_hidden", "align_patience"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"relate.{key} must be at least 0, got {getattr(cfg, key)}")
    if not cfg.align_lr > 0:
        raise ValueError(f"relate.align_lr must be > 0, got {cfg.align_lr}")


def _check_device(device: str) -> None:
    """``auto`` or a name ``torch.device`` accepts (``cpu``, ``cuda``, ``cuda:1``, ...); torch is imported only
    to check a name other than ``auto``."""
    if device == "auto":
        return
    import torch
    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"relate.device must be auto or a torch device such as cpu, cuda or cuda:1, "
                         f"got {device!r}") from None


def flag_overrides(**flags: Any) -> list[str]:
    """``relate.<key>=<value>`` dot-list overrides for the flags that were given (``None``: not given), in order.

        flag_overrides(k=3, sampler=None) == ["relate.k=3"]
    """
    return [f"relate.{key}={value}" for key, value in flags.items() if value is not None]
