"""Build towers, model and objective from a run config, through the registry."""
from __future__ import annotations

import dataclasses

from torch import nn

from mmpost import registry
from mmpost.config import EncoderConfig, ModelConfig, ObjectivesConfig
from mmpost.encoders.base import ImageTower, TextTower, set_trainable
from mmpost.objectives.ce import balanced_class_weights
from mmpost.objectives.combined import Objective


def build_tower(cfg: EncoderConfig) -> nn.Module:
    kwargs = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("name", "trainable") and v is not None}
    tower = registry.get("encoder", cfg.name)(**kwargs)
    set_trainable(tower, cfg.trainable)
    return tower


def build_model(cfg: ModelConfig, text_tower: TextTower, image_tower: ImageTower, num_classes: int) -> nn.Module:
    cls = registry.get("model", cfg.name)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    model_cfg = cls.Config(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in known})
    return cls(text_tower, image_tower, num_classes, model_cfg)


def build_objective(cfg: ObjectivesConfig, train_label_ids, num_classes: int) -> Objective:
    weights = balanced_class_weights(train_label_ids, num_classes) if cfg.class_weights == "balanced" else None
    return Objective(itc=cfg.itc, itm=cfg.itm, weighting=cfg.weighting,
                     weights={"lambda_ce": cfg.lambda_ce, "lambda_itc": cfg.lambda_itc, "lambda_itm": cfg.lambda_itm,
                              "beta_itc": cfg.beta_itc, "beta_itm": cfg.beta_itm},
                     class_weights=weights, temperature=cfg.temperature, mask_duplicates=cfg.mask_duplicates,
                     itm_negatives=cfg.itm_negatives)


def aux_name(cfg: ObjectivesConfig) -> str:
    parts = [n for n, on in (("itc", cfg.itc), ("itm", cfg.itm)) if on]
    return "+".join(parts) if parts else "base"
