"""The HF image path, offline: a tiny random ViT saved to a temporary folder."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mmpost.apps.build import build_tower
from mmpost.config import EncoderConfig


@pytest.fixture
def tiny_vit(tmp_path):
    from transformers import ViTConfig, ViTModel
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32)
    torch.manual_seed(0)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "vit")
    (tmp_path / "vit" / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 32, "width": 32}, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.2]}))
    return str(tmp_path / "vit")


def test_local_vit_gives_patch_tokens_and_pooled(tiny_vit, tmp_path):
    tower = build_tower(EncoderConfig(name="hf-image", path=tiny_vit))
    assert tower.dim == 16 and tower.image_size == 32 and tower.mean == (0.5, 0.4, 0.3)
    Image.new("RGB", (50, 40), (200, 10, 10)).save(tmp_path / "x.png")
    pixels = torch.from_numpy(tower.load(str(tmp_path / "x.png")))[None]
    assert pixels.shape == (1, 3, 32, 32)
    out = tower(pixels)
    assert out.tokens.shape == (1, 16, 16) and out.pooled.shape == (1, 16)    # (32/8)^2 patches
    mean_tower = build_tower(EncoderConfig(name="hf-image", path=tiny_vit, pooling="mean"))
    assert torch.allclose(mean_tower(pixels).pooled, out.tokens.mean(1), atol=1e-6)


def test_vit_trains_in_a_run(tiny_vit, tmp_path, toy_csv):
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from tests.conftest import tiny_overrides
    over = tiny_overrides(tmp_path, toy_csv) + ["image_encoder.name=hf-image", f"image_encoder.path={tiny_vit}",
                                                "name=vit", "train.epochs=1", "objectives.itc.enabled=true"]
    result = train(load_config(None, over))
    assert result.metrics["test"]["mood"]["n"] > 0
