"""Everything one training run is made of, built from its config and prepared data: datasets, model (one head per
task), objective, train step, optimizer, loaders and RNGs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from mmpost.apps.build import build_model, build_objective
from mmpost.apps.datasets import build_datasets
from mmpost.apps.prepare import PreparedData
from mmpost.config import RunConfig
from mmpost.data.dataset import PostDataset, task_label_arrays, unwrap
from mmpost.engine.resume import ResumableBatchSampler
from mmpost.engine.setup import seed_everything
from mmpost.engine.step import TrainStep
from mmpost.objectives.base import TaskInfo


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


def loader(ds: PostDataset, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    """Batches of a dataset; a shuffled loader can start a pass some batches in (resuming within an epoch)."""
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(ds)
    return DataLoader(ds, batch_sampler=ResumableBatchSampler(sampler, batch_size, drop_last=False),
                      collate_fn=unwrap, num_workers=workers)


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


def setup_training(cfg: RunConfig, data: PreparedData, towers: tuple) -> TrainingSetup:
    text_tower, image_tower = towers
    datasets = make_datasets(data, cfg, text_tower, image_tower)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, text_tower, image_tower, {t.name: len(t.labels) for t in data.tasks})
    step = TrainStep(model, build_objective(cfg.objectives, task_infos(data, datasets), towers))
    optimizer = build_optimizer(step, towers, cfg)
    t = cfg.train
    loaders = {name: loader(ds, t.batch_size if name == "train" else t.eval_batch_size, shuffle=name == "train",
                            seed=t.seed, workers=t.num_workers) for name, ds in datasets.items()}
    generators = {"sampler": loaders["train"].batch_sampler.sampler.generator,
                  "itm": torch.Generator().manual_seed(t.seed)}
    return TrainingSetup(datasets, model, step, optimizer, loaders, generators)
