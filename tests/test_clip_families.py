"""conc, att and cma-clip over hf-clip towers (tiny random CLIP and SigLIP checkpoints): one epoch with ITC and
ITM, predict, serve one request; ITC in the checkpoint's space; the families that do not fit say so."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from mmpost.apps.build import build_model, build_objective
from mmpost.apps.predictor import Predictor
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.post import Post
from mmpost.objectives.base import TaskInfo
from mmpost.serve.app import create_app
from tests.conftest import tiny_overrides
from tests.test_clip_encoders import features, hf_model, save_tiny_clip, save_tiny_siglip, towers


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-ckpt")
    return {"clip": save_tiny_clip(folder / "clip"), "siglip": save_tiny_siglip(folder / "siglip")}


def clip_overrides(path: str, family: str) -> list[str]:
    widths = ["model.hidden=16", "model.proj_dim=8"] if family in ("conc", "cma-clip") else ["model.proj_dim=8"]
    return [f"model.name={family}", *widths, "text_encoder.name=hf-clip", f"text_encoder.path={path}",
            "text_encoder.trainable=false", "text_encoder.precision=fp32", "image_encoder.name=hf-clip",
            f"image_encoder.path={path}", "image_encoder.trainable=false", "objectives.itc.enabled=true",
            "objectives.itm.enabled=true", "train.epochs=1"]


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("family", ["conc", "att", "cma-clip"])
def test_family_trains_predicts_and_serves(family, kind, checkpoints, tmp_path, toy_csv):
    over = tiny_overrides(tmp_path, toy_csv) + clip_overrides(checkpoints[kind], family) + [f"name={family}"]
    result = train(load_config(None, over))
    assert np.isfinite(result.history[0]["train_itc"]) and np.isfinite(result.history[0]["train_itm"])
    assert result.metrics["test"]["mood"]["n"] > 0
    predictor = Predictor(result.run_dir)
    image = tmp_path / "imgs" / "p0.png"
    records = predictor.predict([Post(id="a", text="a post about thing 0", images=[str(image)])])
    assert records[0]["image_used"] is True and sum(records[0]["probs"].values()) == pytest.approx(1.0)
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", data={"text": "a post about thing 0"},
                        files={"image": ("p0.png", image.read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["probs"] == pytest.approx(records[0]["probs"], abs=1e-5)


@pytest.mark.parametrize("family", ["conc", "att", "cma-clip"])
def test_frozen_towers_give_the_checkpoints_pooled_vectors(family, checkpoints, tmp_path, toy_csv):
    """The model's pooled vectors (cached features, through the real dataset path) are get_*_features."""
    from mmpost.apps.prepare import prepare
    from mmpost.apps.training_setup import make_datasets
    path = checkpoints["clip"]
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + clip_overrides(path, family))
    data = prepare(cfg.data, cfg.tasks, progress=False)
    text_tower, image_tower = towers(path)
    datasets = make_datasets(data, cfg, text_tower, image_tower)
    model = build_model(cfg.model, text_tower, image_tower, {"mood": 3}).eval()
    posts = data.splits["train"][:5]
    batch = datasets["train"].__getitems__(list(range(5)))
    with torch.no_grad():
        out = model(batch)
    hf = hf_model(path)
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)(
        [p.text for p in posts], padding=True, return_tensors="pt")
    pixels = AutoImageProcessor.from_pretrained(path)(
        images=[Image.open(p.images[0]).convert("RGB") for p in posts], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        text = features(hf.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]))
        image = features(hf.get_image_features(pixel_values=pixels))
    assert torch.allclose(out.tower_text, text, atol=1e-4)
    assert torch.allclose(out.tower_image.float(), image, atol=2e-3)    # image tokens are cached in float16 (att, cma)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_itc_in_checkpoint_space_starts_from_its_scale(kind, checkpoints):
    path = checkpoints[kind]
    pair = towers(path)
    hf = hf_model(path)
    tasks = [TaskInfo("mood", ["a", "b"], np.array([0, 1]))]
    cfg = load_config(None, ["objectives.itc.space=checkpoint", "objectives.itc.loss=sigmoid"]).objectives
    itc = build_objective(cfg, tasks, pair).get("itc")
    assert itc.log_scale.item() == pytest.approx(hf.logit_scale.item(), abs=1e-6)
    if kind == "siglip":
        assert itc.bias.item() == pytest.approx(hf.logit_bias.item(), abs=1e-6)
    else:
        assert itc.bias.item() == -10.0
    softmax = load_config(None, ["objectives.itc.space=checkpoint"]).objectives
    assert build_objective(softmax, tasks, pair).get("itc").temperature == pytest.approx(
        1 / math.exp(hf.logit_scale.item()), rel=1e-5)
    with pytest.raises(ValueError, match="space=checkpoint.*hf-clip"):
        build_objective(cfg, tasks, None)


def test_itc_in_checkpoint_space_contrasts_the_pooled_vectors(checkpoints, tmp_path, toy_csv):
    over = tiny_overrides(tmp_path, toy_csv) + clip_overrides(checkpoints["siglip"], "conc") + [
        "objectives.itc.space=checkpoint", "objectives.itc.loss=sigmoid", "text_encoder.trainable=true",
        "name=ckspace"]
    result = train(load_config(None, over))
    assert np.isfinite(result.history[0]["train_itc"]) and "train_itc_bias" in result.history[0]


@pytest.mark.parametrize("family", ["mmbt", "vilt"])
def test_families_that_need_a_bert_text_tower_say_so(family, checkpoints):
    text_tower, image_tower = towers(checkpoints["clip"])
    cfg = load_config(None, [f"model.name={family}"]).model
    with pytest.raises((TypeError, ValueError), match="ClipTextTower"):
        build_model(cfg, text_tower, image_tower, 2)


def test_cma_clip_reports_modality_weights(checkpoints, tmp_path, toy_csv):
    from mmpost.apps.prepare import prepare
    from mmpost.apps.training_setup import make_datasets
    path = checkpoints["clip"]
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + clip_overrides(path, "cma-clip"))
    data = prepare(cfg.data, cfg.tasks, progress=False)
    text_tower, image_tower = towers(path)
    datasets = make_datasets(data, cfg, text_tower, image_tower)
    model = build_model(cfg.model, text_tower, image_tower, 3)
    batch = datasets["train"].__getitems__(list(range(4)))
    batch.has_image[1] = False
    w = model.modality_weights(batch)
    assert w.shape == (4, 2) and torch.allclose(w.sum(1), torch.ones(4))
    assert w[1].tolist() == [1.0, 0.0]                                   # no image: all on the text


@pytest.mark.parametrize("family", ["lxmert", "emoticon"])
def test_other_families_take_clip_towers(family, checkpoints, tmp_path, toy_csv):
    from mmpost.apps.prepare import prepare
    from mmpost.apps.training_setup import make_datasets
    path = checkpoints["siglip"]
    widths = ["model.hidden=16", "model.proj_dim=8", "model.heads=2"] if family == "emoticon" else [
        "model.layers=1", "model.proj_dim=8"]
    over = [o for o in tiny_overrides(tmp_path, toy_csv) if not o.startswith("model.")]
    cfg = load_config(None, over + [o for o in clip_overrides(path, family) if not o.startswith("model.")]
                      + [f"model.name={family}", *widths])
    data = prepare(cfg.data, cfg.tasks, progress=False)
    text_tower, image_tower = towers(path)
    model = build_model(cfg.model, text_tower, image_tower, 3)
    batch = make_datasets(data, cfg, text_tower, image_tower)["train"].__getitems__(list(range(4)))
    out = model(batch)
    assert out.logits.shape == (4, 3) and torch.isfinite(out.logits).all()
