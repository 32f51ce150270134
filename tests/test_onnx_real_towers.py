"""``runtime: onnx`` with the packaged towers: the default recipe (MiniLM fine-tuned, EfficientNet-Lite0 frozen,
Ber-ViT-Conc) trained briefly on the embedded synthetic set, exported, gives torch's class on every test post."""
from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'mmpost[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'mmpost[onnx]')")

from pathlib import Path  # noqa: E402

from mmpost.apps.predictor import Predictor  # noqa: E402
from mmpost.apps.prepare import prepare  # noqa: E402
from mmpost.apps.train import train  # noqa: E402
from mmpost.config import load_config  # noqa: E402
from mmpost.export.onnx_check import row_cosines  # noqa: E402
from mmpost.export.onnx_export import export_onnx  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_the_default_recipe_keeps_every_test_class_under_onnx(tmp_path):
    cfg = load_config(ROOT / "configs" / "default.yaml",
                      ["data.synthetic.n=90", "train.epochs=1", f"out_dir={tmp_path}/runs",
                       f"cache_dir={tmp_path}/cache", "progress=false", "name=default"])
    run = train(cfg).run_dir
    manifest = export_onnx(run, int8=True)
    posts = prepare(cfg.data, cfg.task, progress=False).splits["test"]
    assert len(posts) >= 9
    torch_side = Predictor(run).embed(posts)
    onnx_side = Predictor(run, "onnx").embed(posts)
    assert (onnx_side["probs"].argmax(1) == torch_side["probs"].argmax(1)).all()
    for key in ("text_embeds", "image_embeds"):
        assert row_cosines(onnx_side[key], torch_side[key]).min() >= 0.9999, key
    int8_side = Predictor(run, "onnx-int8").embed(posts)
    assert row_cosines(int8_side["image_embeds"], torch_side["image_embeds"]).min() >= 0.9999   # image stays fp32
    assert 0.9 < manifest["check"]["text:int8"]["cosine_min"] < 1.0
