"""The registered fusions (concat, cross-attention, gated-attention), the shared pooling, and the families built on
them: same weights at init and same outputs as the layers the families built inline before, and runs saved under
the old state_dict keys still load."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import mmpost.models  # noqa: F401  (registers every fusion)
from mmpost import registry
from mmpost.data.batch import Batch
from mmpost.models.att import BerViTAtt
from mmpost.models.conc import BerViTConc
from mmpost.models.fusions import ConcatFusion, CrossAttentionFusion, GatedAttentionFusion
from mmpost.models.pooling import masked_mean
from tests.conftest import TinyImageTower, TinyTextTower


def test_every_fusion_is_registered_by_name():
    assert {"concat", "cross-attention", "gated-attention"} <= set(registry.names("fusion"))
    assert registry.get("fusion", "concat") is ConcatFusion
    assert registry.get("fusion", "cross-attention") is CrossAttentionFusion
    assert registry.get("fusion", "gated-attention") is GatedAttentionFusion


def test_concat_fusion_is_linear_relu_dropout_over_the_concatenation():
    fusion = ConcatFusion(6, 5, dropout=0.0)
    assert list(fusion.state_dict()) == ["0.weight", "0.bias"]
    t, v = torch.randn(4, 6), torch.randn(4, 6)
    expected = torch.relu(fusion[0](torch.cat([t, v], dim=-1)))
    assert fusion(t, v).shape == (4, 5) and torch.equal(fusion(t, v), expected)


def test_cross_attention_fusion_reads_the_image_tokens_of_its_own_post():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(16, heads=6, dropout=0.0).eval()
    assert fusion.attention.num_heads == 4                                   # the one head-count rule
    query, tokens = torch.randn(3, 16), torch.randn(3, 7, 16)
    out = fusion(query, tokens)
    attended, _ = fusion.attention(query[:, None], tokens, tokens)
    assert out.shape == (3, 16) and torch.allclose(out, fusion.mlp(torch.cat([query, attended[:, 0]], -1)))
    tokens[0] += 1.0
    again = fusion(query, tokens)
    assert not torch.allclose(again[0], out[0]) and torch.equal(again[1:], out[1:])


def test_gated_attention_fusion_weights_modalities_per_post():
    torch.manual_seed(0)
    fusion = GatedAttentionFusion(6, 5)
    t, v, has_image = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([True, False, True, True])
    fused, w = fusion(t, v, has_image)
    assert fused.shape == (4, 5) and w.shape == (4, 2)
    assert torch.equal(w[1], torch.tensor([1.0, 0.0])) and torch.allclose(w[[0, 2, 3]], torch.full((3, 2), 0.5))
    concat = fusion.text_in(t) + fusion.image_in(v) + fusion.bias           # equal weights: a linear layer
    assert torch.allclose(fused[[0, 2, 3]], concat[[0, 2, 3]], atol=1e-6)
    with torch.no_grad():
        fusion.score[-1].weight.normal_()
    _, w = fusion(t, v, has_image)
    assert len({round(float(x), 4) for x in w.detach()[[0, 2, 3], 1]}) > 1 and torch.allclose(w.sum(1), torch.ones(4))
    fixed = GatedAttentionFusion(6, 5, learned=False)
    assert fixed.score is None and torch.allclose(fixed(t, v, has_image)[0],
                                                  fixed.text_in(t) + fixed.image_in(v) + fixed.bias)


def test_masked_mean_reads_real_tokens_only():
    tokens = torch.arange(12.0).view(2, 3, 2)
    mean = masked_mean(tokens, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    assert torch.equal(mean, torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert torch.equal(masked_mean(tokens, torch.tensor([[True, True, False], [True, True, True]]))[1],
                       torch.tensor([8.0, 9.0]))


# ---- the families on the fusions: same weights and outputs as the layers they built inline before -------------
def _batch(b: int = 4, tokens: int | None = None) -> Batch:
    g = torch.Generator().manual_seed(3)
    batch = Batch(index=torch.arange(b), labels=torch.zeros(b, dtype=torch.long),
                  has_image=torch.tensor([True, False, True, True][:b]), text_ids=torch.arange(b),
                  image_ids=torch.arange(b), text_features=torch.randn(b, 16, generator=g))
    batch.image_features = torch.randn(b, tokens, 8, generator=g) if tokens else torch.randn(b, 8, generator=g)
    return batch


def _old_conc(text: TinyTextTower, image: TinyImageTower, hidden: int, proj: int, classes: int) -> nn.ModuleDict:
    """Ber-ViT-Conc's layers as it built them before the fusion module, in the same order."""
    parts = nn.ModuleDict()
    parts["no_image"] = nn.ParameterList([nn.Parameter(0.02 * torch.randn(image.dim))])
    parts["text_norm"], parts["image_norm"] = nn.LayerNorm(text.dim), nn.LayerNorm(image.dim)
    parts["text_proj"], parts["image_proj"] = nn.Linear(text.dim, proj), nn.Linear(image.dim, proj)
    parts["fusion"] = nn.Sequential(nn.Linear(2 * proj, hidden), nn.ReLU(), nn.Dropout(0.05))
    parts["classifier"], parts["itm_head"] = nn.Linear(hidden, classes), nn.Linear(hidden, 2)
    return parts


def test_conc_builds_the_same_weights_and_outputs_as_before():
    text, image = TinyTextTower(), TinyImageTower()
    torch.manual_seed(11)
    model = BerViTConc(text, image, 3, BerViTConc.Config(hidden=12, proj_dim=6)).eval()
    torch.manual_seed(11)
    old = _old_conc(text, image, 12, 6, 3).eval()
    ours = {k: v for k, v in model.state_dict().items() if "tower" not in k}
    theirs = {k.replace("no_image.0", "no_image"): v for k, v in old.state_dict().items()}
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    batch = _batch()
    t = old["text_proj"](old["text_norm"](batch.text_features))
    v = old["image_proj"](old["image_norm"](torch.where(batch.has_image[:, None], batch.image_features,
                                                        old["no_image"][0].expand(4, -1))))
    expected = old["classifier"](old["fusion"](torch.cat([t, v], dim=-1)))
    assert torch.equal(model(batch).logits, expected)


def _old_att(text: TinyTextTower, image: TinyImageTower, heads: int, proj: int, classes: int) -> nn.ModuleDict:
    """Ber-ViT-Att's layers as it built them before the fusion module, in the same order."""
    d, dv = text.dim, image.dim
    parts = nn.ModuleDict()
    parts["no_image"] = nn.ParameterList([nn.Parameter(0.02 * torch.randn(dv))])
    parts["image_in"] = nn.Sequential(nn.LayerNorm(dv), nn.Linear(dv, d))
    parts["attention"] = nn.MultiheadAttention(d, heads, dropout=0.05, batch_first=True)
    parts["fusion"] = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Dropout(0.05))
    parts["classifier"], parts["text_proj"] = nn.Linear(d, classes), nn.Linear(d, proj)
    parts["image_proj"], parts["itm_head"] = nn.Linear(dv, proj), nn.Linear(d, 2)
    return parts


def _old_att_state(old: nn.ModuleDict) -> dict[str, torch.Tensor]:
    return {k.replace("no_image.0", "no_image"): v for k, v in old.state_dict().items()}


def test_att_builds_the_same_weights_and_outputs_as_before_and_loads_old_runs():
    text, image = TinyTextTower(), TinyImageTower()
    torch.manual_seed(11)
    model = BerViTAtt(text, image, 3, BerViTAtt.Config(heads=4, proj_dim=6)).eval()
    torch.manual_seed(11)
    old = _old_att(text, image, 4, 6, 3).eval()
    old_state = _old_att_state(old)
    renamed = {"attention.": "fusion.attention.", "fusion.0.": "fusion.mlp.0."}
    ours = {k: v for k, v in model.state_dict().items() if "tower" not in k}
    for key, value in old_state.items():
        new_key = next((new + key[len(o):] for o, new in renamed.items() if key.startswith(o)), key)
        assert torch.equal(ours.pop(new_key), value), key
    assert not ours
    batch = _batch(tokens=5)
    image_tokens = torch.where(batch.has_image[:, None, None], batch.image_features,
                               old["no_image"][0].expand(4, 5, -1))
    image_d = old["image_in"](image_tokens)
    attended, _ = old["attention"](batch.text_features[:, None], image_d, image_d, need_weights=False)
    expected = old["classifier"](old["fusion"](torch.cat([batch.text_features, attended[:, 0]], dim=-1)))
    assert torch.equal(model(batch).logits, expected)
    # a run saved under the old keys loads, strictly, into the new layout
    fresh = BerViTAtt(text, image, 3, BerViTAtt.Config(heads=4, proj_dim=6)).eval()
    old_run = {**{k: v for k, v in model.state_dict().items() if "tower" in k}, **old_state}
    fresh.load_state_dict(old_run)
    assert torch.equal(fresh(batch).logits, expected)
    fresh.load_state_dict(model.state_dict())                                  # and the new keys, of course


@pytest.mark.parametrize("fusion", ["attention", "concat"])
def test_the_emoticon_family_fuses_with_the_gated_attention_fusion(fusion):
    from mmpost.models.emoticon import DualBranchEmoticon
    from mmpost.models.fusions.gated_attention import gated_fusion
    model = DualBranchEmoticon(TinyTextTower(), TinyImageTower(), 3, DualBranchEmoticon.Config(
        hidden=16, proj_dim=8, heads=4, layers=1, fusion=fusion)).eval()
    batch = _batch(tokens=5)
    out = model(batch)
    assert (model.score is not None) == (fusion == "attention")
    expected = gated_fusion(out.text_embeds, out.image_embeds, batch.has_image, model.text_in, model.image_in,
                            model.fusion_bias, model.score)
    assert torch.equal(out.fused, expected[0]) and torch.equal(out.modality_weights, expected[1])


def test_conc_takes_the_gated_attention_fusion_by_name():
    from mmpost.config import ConfigError, load_config
    from tests.conftest import TinyImageTower, TinyTextTower
    cfg = load_config(None, ["model.fusion=gated-attention", "model.hidden=12", "model.proj_dim=6"]).model
    model = BerViTConc(TinyTextTower(dim=16), TinyImageTower(dim=8), 3, cfg)
    batch = Batch(index=torch.arange(4), labels=torch.tensor([0, 1, 2, 0]),
                  has_image=torch.tensor([True, False, True, True]), text_ids=torch.arange(4),
                  image_ids=torch.arange(4), text_features=torch.randn(4, 16), image_features=torch.randn(4, 8))
    out = model(batch)
    assert out.logits.shape == (4, 3) and out.fused.shape == (4, 12)
    out.logits.sum().backward()
    assert model.fusion.gate.score[-1].weight.grad is not None
    with pytest.raises(ConfigError, match=r"model\.fusion must be one of concat, gated-attention"):
        load_config(None, ["model.fusion=bilinear"])
