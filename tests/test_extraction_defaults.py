"""The extraction defaults follow the CPU's features: the batch a tower extracts in is the fastest measured for the
precision ``auto`` resolves to, so a CPU with native bf16 and one without each get their own."""
import pytest
import torch

from mmpost.encoders import precision as precision_mod
from mmpost.encoders.efficientnet import EfficientNetLite0Tower
from mmpost.encoders.precision import CPU_BATCH, extraction_batch, fastest_cpu_batch, resolve_precision


@pytest.mark.parametrize("native", [True, False])
def test_auto_resolves_from_the_cpu_and_the_image_batch_follows(monkeypatch, native):
    monkeypatch.setattr(precision_mod, "native_bf16", lambda device: native)
    want = "bf16" if native else "fp32"
    assert resolve_precision("auto") == want
    tower = EfficientNetLite0Tower(pretrained=False, precision="auto")
    assert tower.precision == want
    assert tower.extract_batch_size == CPU_BATCH["image"][want]
    assert extraction_batch(tower, 32) == CPU_BATCH["image"][want]


def test_every_kind_has_a_batch_for_both_precisions():
    for kind in ("text", "image"):
        assert {fastest_cpu_batch(kind, p) for p in ("fp32", "bf16")} <= set(range(1, 257))
    with pytest.raises(KeyError):
        fastest_cpu_batch("text", "auto")      # only resolved precisions


def test_an_explicit_batch_wins_and_a_gpu_tower_takes_the_callers():
    tower = EfficientNetLite0Tower(pretrained=False, batch_size=3)
    assert extraction_batch(tower, 32) == 3
    meta = torch.nn.Linear(2, 2, device="meta")
    meta.extract_batch_size = 3
    assert extraction_batch(meta, 64) == 64      # not on CPU: the caller's batch
    assert extraction_batch(torch.nn.Identity(), 64) == 64    # no parameters, no own batch
