"""Everything one training run is made of, built from its config and prepared data: datasets, model (one head per
task), objective, train step, optimizer, loaders and RNGs."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from mmpost.apps.build import build_model, build_objective
from mmpost.apps.datasets import build_datasets, cache_dir, with_ocr
from mmpost.apps.prepare import PreparedData
from mmpost.config import RunConfig
from mmpost.data.dataset import PostDataset, task_label_arrays, unwrap
from mmpost.encoders.frozen_text import FeatureTextTower
from mmpost.engine.resume import LengthBucketedBatchSampler, ResumableBatchSampler
from mmpost.engine.setup import seed_everything
from mmpost.engine.step import TrainStep
from mmpost.objectives.base import TaskInfo

log = logging.getLogger(__name__)


@dataclass
class TrainingSetup:
    datasets: dict[str, PostDataset]
    model: torch.nn.Module
    step: TrainStep
    optimizer: torch.optim.Optimizer
    loaders: dict[str, DataLoader]
    generators: dict[str, torch.Generator]      # "sampler" (the training order), "itm" (pairs drawn by losses)

    @property
    def batches(self) -> ResumableBatchSampler:
        return self.loaders["train"].batch_sampler  # type: ignore[return-value]


def make_datasets(data: PreparedData, cfg: RunConfig, text_tower, image_tower) -> dict[str, PostDataset]:
    labels = {name: task_label_arrays(split, data.tasks) for name, split in data.splits.items()}
    datasets, image_errors = build_datasets(data.splits, labels, cfg, text_tower, image_tower)
    if image_errors:
        data.notes.append(f"{len(image_errors)} images could not be read and were masked")
    return datasets


def task_infos(data: PreparedData, datasets: dict[str, PostDataset]) -> list[TaskInfo]:
    """The run's tasks with their training labels, as the losses are built from them."""
    return [TaskInfo(t.name, list(t.labels), datasets["train"].task_labels[t.name].numpy(), t.multi_label)
            for t in data.tasks]


def loader(ds: PostDataset, batch_size: int, *, shuffle: bool, seed: int, workers: int,
           lengths: list[int] | None = None) -> DataLoader:
    """Batches of a dataset; a shuffled loader can start a pass some batches in (resuming within an epoch). With
    ``lengths`` (token count per post) a shuffled loader's batches hold posts of similar length
    (``mmpost.data.length_buckets``)."""
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(ds)
    batches = (LengthBucketedBatchSampler(sampler, batch_size, lengths) if shuffle and lengths is not None
               else ResumableBatchSampler(sampler, batch_size, drop_last=False))
    return DataLoader(ds, batch_sampler=batches, collate_fn=unwrap, num_workers=workers)


def prepare_text_tower(cfg: RunConfig, data: PreparedData, text_tower) -> None:
    """Checks the text tower against the config, and for ``train_layers`` freezes the lower layers and attaches
    their outputs for every post (computed once, from the feature cache when there)."""
    enc = cfg.text_encoder
    if enc.trainable and isinstance(text_tower, FeatureTextTower):
        raise text_tower.frozen_only_error()
    if enc.train_layers is None:
        return
    if not enc.trainable:
        raise ValueError(f"text_encoder.train_layers={enc.train_layers} fine-tunes the top layers: set "
                         "text_encoder.trainable=true too (or drop train_layers for a frozen tower)")
    if not hasattr(text_tower, "attach_lower_states") or getattr(text_tower, "train_layers", None) is None:
        raise ValueError(f"text_encoder.train_layers: the text tower {enc.name!r} cannot fine-tune part of its layers "
                         "(minilm and hf-text can)")
    text_tower.freeze_lower()
    texts = [p.text for split in with_ocr(data.splits, cfg, text_tower).values() for p in split]
    text_tower.attach_lower_states(texts, cache_dir(cfg), progress=cfg.progress)


def bucket_lengths(cfg: RunConfig, ds: PostDataset, text_tower) -> list[int] | None:
    """Token count per training post when ``text_encoder.length_buckets`` is on and the text is tokenized per
    batch; None otherwise (cached text features have no padding to save)."""
    if not cfg.text_encoder.length_buckets:
        return None
    if ds.tokenize is None:
        log.info("text_encoder.length_buckets: the text comes from cached features, so batches are not bucketed")
        return None
    return text_tower.token_lengths([p.text for p in ds.posts])


def build_optimizer(step: torch.nn.Module, towers: tuple, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW: fine-tuned towers — and pretrained weights a family loads itself (``pretrained_parameters()``,
    e.g. an HF LXMERT) — at ``train.encoder_lr``; everything else (new layers, heads, temperature) at ``train.lr``."""
    model = step.model if hasattr(step, "model") else step
    pretrained = list(model.pretrained_parameters()) if hasattr(model, "pretrained_parameters") else []
    tower_params = [p for t in towers for p in t.parameters() if p.requires_grad]
    tower_params += [p for p in pretrained if p.requires_grad]
    tower_ids = {id(p) for p in tower_params}
    groups = [{"params": [p for p in step.parameters() if p.requires_grad and id(p) not in tower_ids],
               "lr": cfg.train.lr}]
    if tower_params:
        groups.append({"params": tower_params, "lr": cfg.train.encoder_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)


def own_trainable_towers(cfg: RunConfig, towers: tuple) -> tuple:
    """The towers, with each one that trains replaced by a copy: callers (``mmpost cv``, the benchmarks) build the
    towers once and hand them to run after run, and a tower trained in place would start the next run (the next fold)
    from the last run's fine-tuned weights, whose training posts may be this run's test posts."""
    return tuple(copy.deepcopy(t) if enc.trainable else t
                 for t, enc in zip(towers, (cfg.text_encoder, cfg.image_encoder)))


def setup_training(cfg: RunConfig, data: PreparedData, towers: tuple) -> TrainingSetup:
    """Everything for one run. A tower that trains is this run's own copy (:func:`own_trainable_towers`): read
    the trained weights from the returned model, never from the towers passed in."""
    towers = own_trainable_towers(cfg, towers)
    text_tower, image_tower = towers
    prepare_text_tower(cfg, data, text_tower)
    datasets = make_datasets(data, cfg, text_tower, image_tower)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, text_tower, image_tower, {t.name: len(t.labels) for t in data.tasks})
    step = TrainStep(model, build_objective(cfg.objectives, task_infos(data, datasets), towers))
    optimizer = build_optimizer(step, towers, cfg)
    t = cfg.train
    lengths = bucket_lengths(cfg, datasets["train"], text_tower)
    loaders = {name: loader(ds, t.batch_size if name == "train" else t.eval_batch_size, shuffle=name == "train",
                            seed=t.seed, workers=t.num_workers, lengths=lengths if name == "train" else None)
               for name, ds in datasets.items()}
    generators = {"sampler": loaders["train"].batch_sampler.sampler.generator,
                  "itm": torch.Generator().manual_seed(t.seed)}
    return TrainingSetup(datasets, model, step, optimizer, loaders, generators)
