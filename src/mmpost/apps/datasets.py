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


def with_ocr(splits: dict[str, Sequence[Post]], cfg: RunConfig, text_tower) -> dict[str, Sequence[Post]]:
    """The splits with each post's image text joined to its text where ``data.ocr.enabled`` (cached per image)."""
    ocr = cfg.data.ocr
    if not ocr.enabled:
        return splits
    from mmpost.data.ocr import image_texts, separator, with_image_text
    paths = [path for split in splits.values() for p in split for path in p.images]
    texts = image_texts(paths, cache_dir(cfg), min_score=ocr.min_score, progress=cfg.progress)
    sep = separator(text_tower)
    return {name: with_image_text(split, into=ocr.into, sep=sep, texts=texts) for name, split in splits.items()}


def build_datasets(splits: dict[str, Sequence[Post]], labels: dict[str, np.ndarray], cfg: RunConfig,
                   text_tower, image_tower) -> tuple[dict[str, PostDataset], dict[str, str]]:
    """One PostDataset per split, and {post id: reason} for images that could not be read (masked)."""
    splits = with_ocr(splits, cfg, text_tower)
    family = registry.get("model", cfg.model.name)
    text_input, image_input = family.inputs(cfg.model)
    raw_text = cfg.text_encoder.trainable or text_input == "tokens"
    raw_image = cfg.image_encoder.trainable or image_input == "pixels"
    posts = [p for split in splits.values() for p in split]
    feats = post_features(posts, None if raw_text else text_tower,
                          None if raw_image or image_input == "regions" else image_tower,
                          cache_dir=cache_dir(cfg), progress=cfg.progress,
                          image_tokens=image_input == "tokens",
                          text_first_token=text_input == "first-token")
    regions = None
    if image_input == "regions":
        from mmpost.encoders.regions import load_regions
        if not cfg.model.region_features:
            raise ValueError(f"model {cfg.model.name!r} with model.path={cfg.model.path!r} reads region features: "
                             "set model.region_features to a folder of <image stem>.npy or .safetensors files")
        regions = load_regions(cfg.model.region_features, [p.images[0] if p.images else None for p in posts])
        feats.has_image = regions.found
    datasets, start = {}, 0
    for name, split in splits.items():
        rows = slice(start, start + len(split))
        start += len(split)
        datasets[name] = PostDataset(
            split, labels[name],
            text_features=None if raw_text else feats.text[rows],
            image_features=None if raw_image or regions is not None else feats.image[rows],
            has_image=feats.has_image[rows],
            tokenize=text_tower.tokenize if raw_text else None,
            load_image=image_tower.load if raw_image else None,
            image_size=image_tower.image_size,
            regions=None if regions is None else (regions.features[rows], regions.boxes[rows], regions.mask[rows]))
    return datasets, feats.image_errors
