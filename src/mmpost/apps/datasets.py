"""Posts → datasets in the form a model family reads: cached features for frozen towers where the family
reads pooled vectors (or the first text token, or image tokens), raw inputs where a tower runs during training."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmpost import registry
from mmpost.config import RunConfig, default_cache_dir
from mmpost.data.dataset import PostDataset
from mmpost.data.post import Post
from mmpost.encoders.features import post_features


def cache_dir(cfg: RunConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir() / "features"


def build_datasets(splits: dict[str, Sequence[Post]], labels: dict[str, np.ndarray], cfg: RunConfig,
                   text_tower, image_tower) -> tuple[dict[str, PostDataset], dict[str, str]]:
    """One PostDataset per split, and {post id: reason} for images that could not be read (masked)."""
    family = registry.get("model", cfg.model.name)
    raw_text = cfg.text_encoder.trainable or family.text_input == "tokens"
    raw_image = cfg.image_encoder.trainable
    posts = [p for split in splits.values() for p in split]
    feats = post_features(posts, None if raw_text else text_tower, None if raw_image else image_tower,
                          cache_dir=cache_dir(cfg), progress=cfg.progress,
                          image_tokens=family.image_input == "tokens",
                          text_first_token=family.text_input == "first-token")
    datasets, start = {}, 0
    for name, split in splits.items():
        rows = slice(start, start + len(split))
        start += len(split)
        datasets[name] = PostDataset(
            split, labels[name],
            text_features=None if raw_text else feats.text[rows],
            image_features=None if raw_image else feats.image[rows],
            has_image=feats.has_image[rows],
            tokenize=text_tower.tokenize if raw_text else None,
            load_image=image_tower.load if raw_image else None,
            image_size=image_tower.image_size)
    return datasets, feats.image_errors
