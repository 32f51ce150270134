"""ONNX export and ``runtime: onnx``: a run trained on the embedded synthetic set, exported, predicts every test
post with the class torch gives, its features within cosine 0.9999 of torch's (fp32); the int8 export runs and its
cosine is reported; what cannot be exported or run fails naming the setting."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'mmpost[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'mmpost[onnx]')")

from mmpost.apps.predictor import Predictor  # noqa: E402
from mmpost.apps.prepare import prepare  # noqa: E402
from mmpost.apps.train import train  # noqa: E402
from mmpost.config import load_config  # noqa: E402
from mmpost.export.onnx_check import row_cosines  # noqa: E402
from mmpost.export.onnx_export import export_onnx  # noqa: E402
from tests.test_predict_stream import seeded_image_tower  # noqa: E402,F401  (registers seeded-tiny-image)

COSINE = 0.9999


def synthetic_run(folder, *extra: str, model: tuple[str, ...] = ("model.hidden=16", "model.proj_dim=8")):
    """A small run on the embedded synthetic set with the tests' tiny towers (the image tower frozen and seeded,
    the text tower fine-tuned, so it is saved with the run), and its test posts."""
    over = ["data.source=synthetic", "data.synthetic.n=90", "data.synthetic.size=32", "task=sentiment",
            "text_encoder.name=tiny-text", "text_encoder.trainable=true",
            "image_encoder.name=seeded-tiny-image", "image_encoder.trainable=false",
            *model, "train.epochs=2", "train.batch_size=16",
            f"out_dir={folder}/runs", f"cache_dir={folder}/cache", "progress=false", "name=run", *extra]
    cfg = load_config(None, over)
    run = train(cfg).run_dir
    test_posts = prepare(cfg.data, cfg.task, progress=False).splits["test"]
    return run, test_posts


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    run, posts = synthetic_run(folder)
    manifest = export_onnx(run, int8=True)
    return run, posts, manifest


def test_every_test_post_keeps_its_class_and_features_stay_within_cosine(exported):
    run, posts, _ = exported
    assert len(posts) >= 9
    torch_side, onnx_side = Predictor(run).embed(posts), Predictor(run, "onnx").embed(posts)
    assert (onnx_side["probs"].argmax(1) == torch_side["probs"].argmax(1)).all()
    for key in ("text_embeds", "image_embeds", "probs"):
        assert row_cosines(onnx_side[key], torch_side[key]).min() >= COSINE, key
    np.testing.assert_allclose(onnx_side["probs"], torch_side["probs"], atol=1e-4)
    assert (onnx_side["has_image"] == torch_side["has_image"]).all()


@pytest.mark.parametrize("family, inputs", [
    (("model.name=att", "model.proj_dim=8", "model.heads=2"), ("first-token", "tokens")),
    (("model.name=emoticon", "model.hidden=16", "model.proj_dim=8", "model.heads=2", "model.layers=1"),
     ("pooled", "tokens"))])
def test_a_family_reading_image_tokens_keeps_every_class(tmp_path, family, inputs):
    run, posts = synthetic_run(tmp_path, model=family)
    manifest = export_onnx(run)
    assert (manifest["text_input"], manifest["image_input"]) == inputs
    torch_side, onnx_side = Predictor(run).embed(posts), Predictor(run, "onnx").embed(posts)
    assert (onnx_side["probs"].argmax(1) == torch_side["probs"].argmax(1)).all()
    assert row_cosines(onnx_side["image_embeds"], torch_side["image_embeds"]).min() >= COSINE


def test_the_manifest_lists_every_part_with_its_cosine_to_torch(exported):
    run, _, manifest = exported
    on_disk = json.loads((run / "onnx" / "export.json").read_text())
    assert on_disk == manifest
    for part in ("text", "image", "head"):
        assert (run / "onnx" / manifest["parts"][part]["fp32"]["file"]).is_file()
        assert manifest["check"][f"{part}:fp32"]["cosine_min"] >= COSINE
    assert manifest["check"]["head:fp32"]["same_class"]
    assert set(manifest["parts"]["text"]) == {"fp32", "int8"} and "int8" not in manifest["parts"]["head"]


def test_the_int8_runtime_predicts_and_its_agreement_is_measurable(exported):
    run, posts, manifest = exported
    probs_torch = Predictor(run).predict_proba(posts)
    probs_int8 = Predictor(run, "onnx-int8").predict_proba(posts)
    assert probs_int8.shape == probs_torch.shape
    np.testing.assert_allclose(probs_int8.sum(1), 1.0, atol=1e-5)
    assert 0.9 < manifest["check"]["text:int8"]["cosine_min"] <= 1.0 + 1e-9



def _posts_csv(posts, path) -> str:
    """The posts as a CSV with the usual column names (id, text, image: absolute paths)."""
    import csv
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "image"])
        for p in posts:
            writer.writerow([p.id, p.text, p.images[0] if p.images else ""])
    return str(path)


def test_the_cli_exports_and_predicts_with_the_onnx_runtime(exported, tmp_path):
    from typer.testing import CliRunner

    from mmpost.cli import app
    run, posts, _ = exported
    data = _posts_csv(posts, tmp_path / "posts.csv")
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--int8"])
    assert result.exit_code == 0, result.output
    assert "head.onnx" in result.output
    labels = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.jsonl"
        result = CliRunner().invoke(app, ["predict", str(run), "--data", data, "--out", str(out), "--runtime", runtime])
        assert result.exit_code == 0, result.output
        labels[runtime] = [json.loads(line)["label"] for line in out.read_text().splitlines()]
    assert len(labels["onnx"]) == len(posts) and labels["onnx"] == labels["torch"]
    bad = CliRunner().invoke(app, ["export", str(run), "--format", "tflite"])
    assert bad.exit_code == 2 and "--format" in bad.output


def test_serve_with_the_onnx_runtime_answers_with_torch_classes(exported):
    from fastapi.testclient import TestClient

    from mmpost.serve.app import create_app
    run, posts, _ = exported
    some = [p for p in posts if p.images][:3]
    expected = Predictor(run).predict(some)
    with TestClient(create_app(Predictor(run, "onnx"))) as client:
        for post, want in zip(some, expected):
            with open(post.images[0], "rb") as f:
                r = client.post("/predict", data={"text": post.text},
                                files={"image": ("p.png", f.read(), "image/png")})
            assert r.status_code == 200, r.text
            assert r.json()["label"] == want["label"]
