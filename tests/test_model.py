from __future__ import annotations

import pytest
import torch

from mmpost.data.batch import Batch
from mmpost.models.conc import BerViTConc
from mmpost.models.output import ItmPairs
from tests.conftest import TinyImageTower, TinyTextTower


def _batch(b=4, has_image=None, features=True):
    hi = torch.tensor(has_image if has_image is not None else [True] * b)
    batch = Batch(index=torch.arange(b), labels=torch.zeros(b, dtype=torch.long), has_image=hi,
                  text_ids=torch.arange(b), image_ids=torch.arange(b))
    if features:
        batch.text_features, batch.image_features = torch.randn(b, 16), torch.randn(b, 8)
    return batch


def test_conc_output_shapes_and_itm():
    cfg = BerViTConc.Config(hidden=12, proj_dim=6)
    model = BerViTConc(TinyTextTower(), TinyImageTower(), num_classes=3, config=cfg)
    pairs = ItmPairs(torch.tensor([1, 0, 2]), torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]))
    out = model(_batch(), itm=pairs)
    assert out.logits.shape == (4, 3) and out.fused.shape == (4, 12)
    assert out.text_embeds.shape == (4, 6) and out.image_embeds.shape == (4, 6)
    assert out.itm_logits.shape == (3, 2) and out.itm_labels.tolist() == [0, 0, 1]
    assert model(_batch()).itm_logits is None


def test_post_without_image_uses_the_learned_no_image_vector():
    model = BerViTConc(TinyTextTower(), TinyImageTower(), num_classes=2).eval()
    batch = _batch(has_image=[True, False, True, False])
    out1 = model(batch)
    batch.image_features[1] += 1000.0        # whatever the masked rows hold, they are not read
    out2 = model(batch)
    assert torch.allclose(out1.logits, out2.logits)
    with torch.no_grad():
        model.no_image.add_(torch.randn_like(model.no_image))
    out3 = model(batch)
    assert not torch.allclose(out1.logits[1], out3.logits[1]) and torch.allclose(out1.logits[0], out3.logits[0])


def test_raw_inputs_go_through_the_towers():
    text, image = TinyTextTower(), TinyImageTower()
    model = BerViTConc(text, image, num_classes=2)
    batch = _batch(features=False)
    batch.text_inputs = text.tokenize(["a b", "c", "d e f", "g"])
    batch.pixels = torch.randn(4, 3, 32, 32)
    out = model(batch)
    out.logits.sum().backward()
    assert text.emb.weight.grad is not None and image.conv.weight.grad is not None


def _token_batch(text, b=3, has_image=None):
    from mmpost.models.att import BerViTAtt  # noqa: F401
    batch = _batch(b, has_image=has_image, features=False)
    batch.text_inputs = text.tokenize(["a b c", "d", "e f"][:b])
    batch.image_features = torch.randn(b, 64, 8)        # cached image tokens [B, T, Dv]
    return batch


def test_att_output_shapes_itm_and_no_image():
    from mmpost.models.att import BerViTAtt
    text, image = TinyTextTower(), TinyImageTower()
    model = BerViTAtt(text, image, num_classes=4, config=BerViTAtt.Config(proj_dim=6, heads=4)).eval()
    batch = _token_batch(text, has_image=[True, False, True])
    pairs = ItmPairs(torch.tensor([0, 1, 2, 0]), torch.tensor([0, 0, 2, 2]), torch.tensor([1, 0, 1, 0]))
    out = model(batch, itm=pairs)
    assert out.logits.shape == (3, 4) and out.fused.shape == (3, 16)
    assert out.text_embeds.shape == (3, 6) and out.image_embeds.shape == (3, 6)
    assert out.itm_logits.shape == (4, 2)
    before = out.logits.detach().clone()
    batch.image_features[1] += 50.0                     # post 1 has no image: its tokens are never read
    assert torch.allclose(model(batch).logits, before, atol=1e-6)


def test_att_text_tokens_attend_over_image_tokens():
    from mmpost.models.att import BerViTAtt
    text, image = TinyTextTower(), TinyImageTower()
    model = BerViTAtt(text, image, num_classes=2, config=BerViTAtt.Config(heads=2)).eval()
    batch = _token_batch(text)
    a = model(batch).logits.detach().clone()
    batch.image_features[0, :10] += 3.0 * torch.randn(10, 8)   # changing image tokens changes the prediction
    b = model(batch).logits.detach()
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1:], b[1:], atol=1e-6)
    out = model(batch)
    out.logits.sum().backward()
    assert model.fusion.attention.in_proj_weight.grad is not None


def test_att_reads_the_same_from_a_cached_first_text_token():
    from mmpost.models.att import BerViTAtt
    text, image = TinyTextTower(), TinyImageTower()
    model = BerViTAtt(text, image, num_classes=3, config=BerViTAtt.Config(heads=2)).eval()
    batch = _token_batch(text)
    from_tower = model(batch).logits.detach()
    batch.text_features = text(batch.text_inputs).tokens[:, 0].detach()   # what the cache holds
    batch.text_inputs = None
    assert torch.allclose(model(batch).logits, from_tower, atol=1e-6)


def test_att_full_query_attention_equals_first_token_query():
    """Reading only the first token's output, the other text tokens as queries change nothing."""
    from mmpost.models.att import BerViTAtt
    text, image = TinyTextTower(), TinyImageTower()
    model = BerViTAtt(text, image, num_classes=3, config=BerViTAtt.Config(heads=2)).eval()
    tokens = torch.randn(3, 5, 16)
    img = torch.randn(3, 7, 16)
    full, _ = model.fusion.attention(tokens, img, img, need_weights=False)
    first, _ = model.fusion.attention(tokens[:, :1], img, img, need_weights=False)
    assert torch.allclose(full[:, 0], first[:, 0], atol=1e-6)


# ---- each family owns its config ------------------------------------------------------------------------------
FAMILIES = ("conc", "att", "mmbt", "vilt", "lxmert", "emoticon")
# what every run got before the families owned their configs (the flat run config passed these to each family)
RUN_DEFAULTS = {"hidden": 512, "proj_dim": 512, "dropout": 0.05, "heads": 8, "contrast": "unimodal", "path": None,
                "layers": 2, "max_text_tokens": None, "region_features": None, "fusion": "attention",
                "modalities": "both"}


def _config_cls(family: str):
    import mmpost  # noqa: F401  (registers every family)
    from mmpost import registry
    return registry.get("model", family).Config


def test_every_family_config_is_a_family_config_with_the_run_defaults():
    import dataclasses

    from mmpost.models.base import FamilyConfig
    for family in FAMILIES:
        cls = _config_cls(family)
        assert issubclass(cls, FamilyConfig), family
        cfg = cls(name=family)
        assert cfg.name == family
        for key, value in dataclasses.asdict(cfg).items():
            if key != "name" and (family, key) != ("conc", "fusion"):     # conc's fusion choice is new: concat
                assert value == RUN_DEFAULTS[key], (family, key, value)
    assert _config_cls("conc")().fusion == "concat"


BAD_VALUES = [
    ("mmbt", "contrast", "x", "model.contrast must be one of unimodal, fused, got 'x'"),
    ("vilt", "contrast", "x", "model.contrast must be one of unimodal, fused"),
    ("lxmert", "contrast", "x", "model.contrast must be one of unimodal, fused"),
    ("emoticon", "fusion", "sum", "model.fusion must be one of attention, concat, got 'sum'"),
    ("emoticon", "modalities", "audio", "model.modalities must be one of both, text, image"),
    ("vilt", "max_text_tokens", 1, "model.max_text_tokens must be an integer of at least 2"),
    ("lxmert", "layers", 0, "model.layers must be an integer of at least 1"),
    ("emoticon", "layers", 0, "model.layers must be an integer of at least 1"),
    ("att", "heads", 0, "model.heads must be an integer of at least 1"),
    ("conc", "hidden", 0, "model.hidden must be an integer of at least 1"),
    ("conc", "proj_dim", -3, "model.proj_dim must be an integer of at least 1"),
    ("att", "dropout", 1.5, r"model.dropout must be a number in \[0, 1\)"),
]


@pytest.mark.parametrize("family,key,value,message", BAD_VALUES)
def test_a_bad_config_value_is_a_clear_error_naming_the_key(family, key, value, message):
    with pytest.raises(ValueError, match=message):
        _config_cls(family)(**{key: value})


def test_lxmert_layers_are_not_checked_on_the_pretrained_path():
    assert _config_cls("lxmert")(path="some/lxmert", layers=0).layers == 0


# ---- one head-count rule --------------------------------------------------------------------------------------
def test_one_head_count_rule_for_every_family():
    from mmpost.models.att import BerViTAtt
    from mmpost.models.emoticon import DualBranchEmoticon
    from mmpost.models.head_count import attention_heads
    from mmpost.models.lxmert import LxmertStyle
    assert attention_heads(384, 8) == 8 and attention_heads(16, 6) == 4 and attention_heads(16, 3) == 2
    assert attention_heads(7, 8) == 7 and attention_heads(5, 2) == 1
    att = BerViTAtt(TinyTextTower(dim=16), TinyImageTower(), 2, BerViTAtt.Config(heads=6))
    assert att.fusion.attention.num_heads == 4
    lx = LxmertStyle(TinyTextTower(dim=16), TinyImageTower(), 2, LxmertStyle.Config(heads=6, layers=1))
    assert lx.cross_layers[0].lang_self_att.self.num_attention_heads == 4
    emo = DualBranchEmoticon(TinyTextTower(), TinyImageTower(), 2,
                             DualBranchEmoticon.Config(hidden=16, proj_dim=8, heads=6, layers=1))
    assert emo.image_branch.encoder.layers[0].self_attn.num_heads == 4


# ---- several tasks per model ----------------------------------------------------------------------------------
def test_heads_one_task_is_a_plain_linear_several_a_head_per_task():
    from torch import nn

    from mmpost.models.heads import TaskHeads, build_classifier, task_logits, task_sizes
    one = build_classifier(6, 3)
    assert type(one) is nn.Linear and list(one.state_dict()) == ["weight", "bias"]
    assert type(build_classifier(6, {"sentiment": 3})) is nn.Linear
    several = build_classifier(6, {"sentiment": 3, "sarcasm": 2, "topics": 5})
    assert isinstance(several, TaskHeads) and list(several) == ["sentiment", "sarcasm", "topics"]
    out = several(torch.randn(4, 6))
    assert [(k, tuple(v.shape)) for k, v in out.items()] == [("sentiment", (4, 3)), ("sarcasm", (4, 2)),
                                                             ("topics", (4, 5))]
    assert list(task_logits(one(torch.randn(4, 6)), ["default"])) == ["default"]
    assert task_sizes(4) == {"default": 4}


@pytest.mark.parametrize("bad,message", [({}, "maps no task"), ({"a": 0}, "positive integer"), (0, "positive"),
                                         ({"a.b": 2}, "cannot name a head"), ({"train": 2}, "cannot name a head"),
                                         (2.5, "positive integer")])
def test_bad_num_classes_is_a_clear_error(bad, message):
    from mmpost.models.heads import task_sizes
    with pytest.raises(ValueError, match=message):
        task_sizes(bad)


def _family(name: str, num_classes):
    import mmpost  # noqa: F401
    from mmpost import registry
    cls = registry.get("model", name)
    small = {"conc": dict(hidden=12, proj_dim=6), "att": dict(proj_dim=6, heads=2),
             "emoticon": dict(hidden=16, proj_dim=8, heads=4, layers=1), "lxmert": dict(proj_dim=8, heads=2)}
    torch.manual_seed(0)
    return cls(TinyTextTower(), TinyImageTower(), num_classes, cls.Config(**small[name])).eval()


def _family_batch(name: str):
    if name == "conc":
        return _batch(3, has_image=[True, False, True])
    batch = _token_batch(TinyTextTower(), 3, has_image=[True, False, True])
    if name == "emoticon":
        batch.text_features = torch.randn(3, 16)
    return batch


@pytest.mark.parametrize("name", ["conc", "att", "emoticon", "lxmert"])
def test_a_family_with_several_tasks_has_a_head_and_logits_per_task(name):
    tasks = {"sentiment": 3, "sarcasm": 2}
    model = _family(name, tasks)
    keys = list(model.state_dict())
    prefix = "head.2." if name == "emoticon" else "classifier."
    assert [k for k in keys if k.startswith(prefix)] == [prefix + k for k in
                                                         ("sentiment.weight", "sentiment.bias", "sarcasm.weight",
                                                          "sarcasm.bias")]
    out = model(_family_batch(name))
    assert list(out.task_logits) == ["sentiment", "sarcasm"]
    assert out.task_logits["sentiment"].shape == (3, 3) and out.task_logits["sarcasm"].shape == (3, 2)
    assert out.logits is out.task_logits["sentiment"]
    (out.task_logits["sarcasm"].sum()).backward()
    head = model.head[2] if name == "emoticon" else model.classifier
    assert head["sarcasm"].weight.grad is not None and head["sentiment"].weight.grad is None


@pytest.mark.parametrize("name", ["conc", "att", "emoticon", "lxmert"])
def test_a_family_with_one_task_keeps_its_classifier_and_fills_task_logits(name):
    model = _family(name, 3)
    prefix = "head.2." if name == "emoticon" else "classifier."
    assert [k for k in model.state_dict() if k.startswith(prefix)] == [prefix + "weight", prefix + "bias"]
    out = model(_family_batch(name))
    assert list(out.task_logits) == ["default"] and out.task_logits["default"] is out.logits
    named = _family(name, {"mood": 3})
    assert list(named(_family_batch(name)).task_logits) == ["mood"]
    assert list(named.state_dict()) == list(model.state_dict())                 # same keys: saved runs still load


def test_an_output_built_from_logits_alone_has_the_default_task():
    from mmpost.models.output import ModelOutput
    x = torch.randn(2, 3)
    out = ModelOutput(logits=x, text_embeds=x, image_embeds=x, fused=x, has_image=torch.ones(2, dtype=torch.bool))
    assert list(out.task_logits) == ["default"] and out.task_logits["default"] is x
