"""mmpost zeroshot and mmpost similarity --checkpoint with tiny random CLIP / SigLIP checkpoints, checked against
the checkpoint's own get_text_features / get_image_features; and mmpost train with hf-clip from the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import spearmanr
from typer.testing import CliRunner

from mmpost.apps.zeroshot import zero_shot_probs, zeroshot
from mmpost.cli import app
from mmpost.config import load_config
from tests.conftest import tiny_overrides, write_toy_csv
from tests.test_clip_encoders import features, hf_model, save_tiny_clip, save_tiny_siglip

TEMPLATES = ["a picture of {label}", "a {label} thing"]


def reference_text(path: str, family: str, texts: list[str]) -> torch.Tensor:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)
    if family == "siglip":
        enc = tok(texts, padding="max_length", max_length=16, return_tensors="pt")
        kwargs = {"input_ids": enc["input_ids"]}
    else:
        enc = tok(texts, padding=True, return_tensors="pt")
        kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    with torch.no_grad():
        return features(hf_model(path).get_text_features(**kwargs)).double()


def reference_image(path: str, image_files: list[str]) -> torch.Tensor:
    from transformers import AutoImageProcessor
    pixels = AutoImageProcessor.from_pretrained(path)(images=[Image.open(f).convert("RGB") for f in image_files],
                                                      return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return features(hf_model(path).get_image_features(pixel_values=pixels)).double()


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def recipe(tmp_path, csv: str, path: str) -> list[str]:
    return tiny_overrides(tmp_path, csv) + ["text_encoder.name=hf-clip", f"text_encoder.path={path}",
                                            "text_encoder.trainable=false", "text_encoder.precision=fp32",
                                            "image_encoder.name=hf-clip", f"image_encoder.path={path}"]


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_zero_shot_probabilities_are_softmax_of_scaled_cosines(family, tmp_path, toy_csv):
    path = (save_tiny_clip if family == "clip" else save_tiny_siglip)(tmp_path / family)
    cfg = load_config(None, recipe(tmp_path, toy_csv, path))
    result = zeroshot(cfg, TEMPLATES, out_dir=tmp_path / "zs")
    from mmpost.apps.prepare import prepare
    posts = prepare(cfg.data, cfg.tasks, progress=False).splits["test"]
    labels = load_labels(tmp_path / "zs")
    assert sorted(labels) == ["blue", "green", "red"]
    prompts = [t.replace("{label}", label) for label in labels for t in TEMPLATES]
    per_prompt = unit(reference_text(path, family, prompts)).reshape(3, len(TEMPLATES), -1)
    classes = unit(per_prompt.mean(dim=1))
    image = unit(reference_image(path, [p.images[0] for p in posts]))
    scale = float(hf_model(path).logit_scale.detach().exp())
    expected = torch.softmax(scale * image @ classes.T, dim=-1).numpy()
    got = result.probs["test"]["mood"]
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-5
    assert set(result.metrics) == {"dev", "test"} and result.baselines["mood"]["n"] == len(posts)
    report = (tmp_path / "zs" / "report.md").read_text()
    assert "majority-class baseline" in report and "zero-shot" in report
    assert json.loads((tmp_path / "zs" / "zeroshot.json").read_text())["templates"] == TEMPLATES


def load_labels(folder) -> list[str]:
    first = json.loads((folder / "predictions_test.jsonl").read_text().splitlines()[0])
    return list(first["probs"])


def test_multi_label_needs_a_sigmoid_checkpoint():
    image, labels = np.ones((2, 4)), np.eye(4)[:3]
    with pytest.raises(ValueError, match="SigLIP"):
        zero_shot_probs(image, labels, np.ones(2, bool), 4.6, None, multi_label=True)
    probs = zero_shot_probs(image, labels, np.array([True, False]), np.log(10.0), -3.0, multi_label=True)
    assert probs[0] == pytest.approx(1 / (1 + np.exp(-(10 * 0.5 - 3.0)))) and (probs[1] == 0.5).all()


def test_zeroshot_command(tmp_path, toy_csv):
    path = save_tiny_clip(tmp_path / "clip")
    config = tmp_path / "recipe.yaml"
    OmegaConf.save(OmegaConf.from_dotlist(tiny_overrides(tmp_path, toy_csv)), config)
    res = CliRunner().invoke(app, ["zeroshot", str(config), "--checkpoint", path, "--template", TEMPLATES[0],
                                   "--template", TEMPLATES[1], "--label-text", "red=red thing",
                                   "--out", str(tmp_path / "zs")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert metrics["test"]["mood"]["n"] > 0
    assert "majority" in res.output
    saved = json.loads((tmp_path / "zs" / "zeroshot.json").read_text())
    assert ["a picture of red thing", "a red thing thing"] in saved["prompts"]["mood"]
    bad = CliRunner().invoke(app, ["zeroshot", str(config), "--out", str(tmp_path / "no")])
    assert bad.exit_code == 2 and "hf-clip" in bad.output


def test_similarity_with_a_checkpoint_is_its_own_cosine(tmp_path):
    path = save_tiny_siglip(tmp_path / "siglip")
    codes = ["00", "01", "10", "11"]
    csv = write_toy_csv(tmp_path, n=48)
    lines = (tmp_path / "posts.csv").read_text().splitlines()
    lines = [lines[0] + ",relation"] + [f"{row},{codes[i % 4]}" for i, row in enumerate(lines[1:])]
    (tmp_path / "posts.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "recipe.yaml"
    OmegaConf.save(OmegaConf.from_dotlist(tiny_overrides(tmp_path, csv) + ["data.columns.labels.relation=relation"]),
                   config)
    res = CliRunner().invoke(app, ["similarity", str(config), "text_encoder.precision=fp32", "--checkpoint", path,
                                   "--out", str(tmp_path / "sim.json")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "sim.json").read_text())
    from mmpost.apps.prepare import prepare
    cfg = load_config(config)
    posts = prepare(cfg.data, "relation", progress=False).splits["test"]
    text = unit(reference_text(path, "siglip", [p.text for p in posts]))
    image = unit(reference_image(path, [p.images[0] for p in posts]))
    cosine = (text * image).sum(1).numpy()
    scores = [1 + 2 * int(p.labels["relation"][0]) + int(p.labels["relation"][1]) for p in posts]
    assert saved["splits"]["test"]["rho"] == pytest.approx(spearmanr(cosine, scores).statistic, abs=1e-6)
    assert saved["splits"]["test"]["n"] == len(posts) and saved["family"] == "siglip"


def test_train_from_the_command_line_with_one_clip_folder(tmp_path, monkeypatch):
    path = save_tiny_clip(tmp_path / "clip")
    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, [
        "train", "configs/default.yaml", "text_encoder.name=hf-clip", f"text_encoder.path={path}",
        "image_encoder.name=hf-clip", f"image_encoder.path={path}", "data.synthetic.n=90", "data.synthetic.size=32",
        "train.epochs=1", "model.hidden=16", "model.proj_dim=8", f"out_dir={tmp_path}/runs", "name=cli",
        "progress=false"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "runs" / "cli" / "metrics.json").read_text())
    assert metrics["test"]["sentiment"]["n"] > 0
    saved = load_config(tmp_path / "runs" / "cli" / "config.yaml")
    assert saved.text_encoder.name == saved.image_encoder.name == "hf-clip"
