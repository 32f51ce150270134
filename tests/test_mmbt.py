"""MMBT: image tokens as extra input tokens of a (tiny, random, offline) BERT."""
from __future__ import annotations

import pytest
import torch

import mmpost
import mmpost.models.mmbt  # noqa: F401  (registers "mmbt")
from mmpost.apps.build import build_model, build_tower
from mmpost.apps.train import train
from mmpost.config import EncoderConfig, load_config
from mmpost.config_sections import model_config
from mmpost.data.batch import Batch
from mmpost.encoders.base import set_trainable
from mmpost.models.mmbt import MMBT
from mmpost.models.output import ItmPairs
from mmpost.objectives.itm import hard_pairs, random_pairs
from tests.conftest import TinyTextTower, save_tiny_roberta, tiny_overrides

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "post", "about", "thing", "the", "cat", "dog", "sat",
         *"0123456789"]
MAX_POS = 80            # the tiny image tower gives 8×8 = 64 tokens: 80 - 64 - [SEP] leaves 15 for the text
T = 64


@pytest.fixture
def tiny_bert(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(tmp_path / "bert")
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=MAX_POS)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    return str(tmp_path / "bert")


def make_model(path: str, contrast: str = "unimodal", trainable: bool = False, num_classes: int = 3) -> MMBT:
    text = build_tower(EncoderConfig(name="hf-text", path=path, trainable=trainable, max_length=64))
    image = build_tower(EncoderConfig(name="tiny-image"))
    torch.manual_seed(1)
    model = build_model(model_config(dict(name="mmbt", proj_dim=8, contrast=contrast)), text, image, num_classes)
    assert isinstance(model, MMBT)
    return model.eval()


def make_batch(model: MMBT, texts: list[str], image: torch.Tensor, has_image: list[bool]) -> Batch:
    b = len(texts)
    return Batch(index=torch.arange(b), labels=torch.zeros(b, dtype=torch.long),
                 has_image=torch.tensor(has_image), text_ids=torch.arange(b), image_ids=torch.arange(b),
                 text_inputs=model.text_tower.tokenize(texts), image_features=image)


TEXTS = ["a post about thing 1", "the cat sat", "a dog", "thing 7 about a cat"]


def images(b: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, T, 8, generator=torch.Generator().manual_seed(seed)).relu()


@pytest.mark.parametrize("contrast", ["unimodal", "fused"])
def test_shapes(tiny_bert, contrast):
    model = make_model(tiny_bert, contrast)
    out = model(make_batch(model, TEXTS, images(), [True, True, False, True]))
    assert out.logits.shape == (4, 3) and out.fused.shape == (4, 16)
    assert out.text_embeds.shape == (4, 8) and out.image_embeds.shape == (4, 8)
    assert out.itm_logits is None and out.has_image.tolist() == [True, True, False, True]
    assert torch.isfinite(out.logits).all()


def test_image_reaches_the_cls_and_an_imageless_post_ignores_its_features(tiny_bert):
    model = make_model(tiny_bert)
    with torch.no_grad():
        a = model(make_batch(model, TEXTS, images(seed=0), [True, True, False, True]))
        b = model(make_batch(model, TEXTS, images(seed=1), [True, True, False, True]))
    changed = (a.logits - b.logits).abs().amax(1)
    assert (changed[[0, 1, 3]] > 1e-4).all()           # another image, another prediction
    assert changed[2] < 1e-6                           # no image: the "no image" vector stands in
    assert torch.allclose(a.fused[2], b.fused[2], atol=1e-6)


def test_layout_and_text_cap(tiny_bert):
    model = make_model(tiny_bert)
    long = "the cat sat " * 30
    batch = make_batch(model, [long, "a dog"], images(2), [True, True])
    ids, mask, types = model.text_fields(batch, T)
    room = MAX_POS - T - 1
    assert ids.shape[1] == room and ids[0, -1] == model.sep_id and ids[0, 0] == model.text_tower.tokenizer.cls_token_id
    hidden = model.encode(ids, mask, types, model.image_in(images(2)))
    assert hidden.shape == (2, MAX_POS, 16)           # [CLS] + 64 image tokens + [SEP] + 14 text tokens
    assert model(batch).logits.shape == (2, 3)
    too_many = torch.zeros(1, MAX_POS, 8)
    with pytest.raises(ValueError, match="no room for text"):
        model(make_batch(model, ["a"], too_many, [True]))


def test_contrast_vectors(tiny_bert):
    uni = make_model(tiny_bert, "unimodal")
    fused = make_model(tiny_bert, "fused")
    with torch.no_grad():
        batch0 = make_batch(uni, TEXTS, images(seed=0), [True] * 4)
        batch1 = make_batch(uni, TEXTS, images(seed=1), [True] * 4)
        u0, u1 = uni(batch0), uni(batch1)
        # unimodal: the text tower's own pooled text, and the mean raw image token
        pooled = uni.text_tower(batch0.text_inputs).pooled
        assert torch.allclose(u0.text_embeds, uni.text_proj(pooled), atol=1e-6)
        assert torch.allclose(u0.text_embeds, u1.text_embeds, atol=1e-6)
        assert torch.allclose(u0.image_embeds, uni.image_proj(images(seed=0).mean(1)), atol=1e-6)
        # fused: both read the joint sequence, so the text vector depends on the image too
        f0, f1 = fused(batch0), fused(batch1)
        assert (f0.text_embeds - f1.text_embeds).abs().max() > 1e-4
        assert fused.image_proj.in_features == 16 and uni.image_proj.in_features == 8


@pytest.mark.parametrize("contrast", ["unimodal", "fused"])
def test_itm_pairs_are_scored_through_the_fused_model(tiny_bert, contrast):
    model = make_model(tiny_bert, contrast)
    batch = make_batch(model, TEXTS, images(), [True, True, False, True])
    seen = {}

    def sampler(t, v):
        seen["shapes"] = (t.shape, v.shape)
        return hard_pairs(batch.has_image, t, v, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        out = model(batch, itm=sampler)
        assert seen["shapes"] == ((4, 8), (4, 8))
        assert out.itm_logits.shape == (out.itm_labels.numel(), 2) and out.itm_labels.numel() == 9
        # given pairs: positives reuse the main pass, a negative is its own joint sequence
        pairs = ItmPairs(text_index=torch.tensor([0, 1, 3]), image_index=torch.tensor([0, 3, 1]),
                         labels=torch.tensor([1, 0, 0]))
        out = model(batch, itm=pairs)
        assert torch.allclose(out.itm_logits[0], model.itm_head(out.fused[0]), atol=1e-6)
        ids, mask, types = model.text_fields(batch, T)
        image_d = model.image_in(model.image_tokens(batch))
        direct = model.encode(ids[[1]], mask[[1]], types[[1]], image_d[[3]])[:, 0]
        assert torch.allclose(out.itm_logits[1], model.itm_head(direct)[0], atol=1e-5)
        assert not torch.allclose(out.itm_logits[1], model.itm_head(out.fused[1]), atol=1e-4)
        out = model(batch, itm=random_pairs(batch.has_image, p_negative=0.0))
        assert torch.allclose(out.itm_logits, model.itm_head(out.fused[[0, 1, 3]]), atol=1e-6)


@pytest.mark.parametrize("trainable", [False, True])
def test_gradients_reach_the_image_projection_through_a_frozen_or_tuned_bert(tiny_bert, trainable):
    model = make_model(tiny_bert, trainable=trainable).train()
    set_trainable(model.text_tower, trainable)
    out = model(make_batch(model, TEXTS, images(), [True, True, False, True]))
    (out.logits.sum() + out.text_embeds.sum() + out.image_embeds.sum()).backward()
    assert model.image_in[1].weight.grad is not None and model.image_in[1].weight.grad.abs().sum() > 0
    assert model.image_position.grad is not None and model.image_segment.grad is not None
    tower_grads = [p.grad for p in model.text_tower.parameters() if p.grad is not None]
    assert bool(tower_grads) == trainable


def test_a_text_tower_without_an_hf_model_is_a_clear_error():
    image = build_tower(EncoderConfig(name="tiny-image"))
    with pytest.raises(TypeError, match="BERT-like Hugging Face text encoder"):
        MMBT(TinyTextTower(), image, 3)
    with pytest.raises(ValueError, match="contrast"):
        MMBT(TinyTextTower(), image, 3, MMBT.Config(contrast="both"))


def test_roberta_like_model_without_token_types(tmp_path):
    save_tiny_roberta(tmp_path / "rob", max_positions=82)
    model = make_model(str(tmp_path / "rob"))
    assert model.budget == 80 and model.type_vocab == 1
    out = model(make_batch(model, ["cat " * 40, "cat"], images(2), [True, False]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.logits).all()


KEYS = {"accuracy", "weighted_f1", "macro_f1"}


@pytest.mark.parametrize("aux,extra", [
    ([], []),
    (["objectives.itc.enabled=true"], ["model.contrast=fused"]),
    (["objectives.itm.enabled=true"], ["text_encoder.trainable=true"]),
    (["objectives.itc.enabled=true", "objectives.itm.enabled=true", "objectives.itm.negatives=hard"], []),
])
def test_mmbt_trains_with_every_aux_setting_and_predicts(tmp_path, toy_csv, tiny_bert, aux, extra):
    over = tiny_overrides(tmp_path, toy_csv) + [
        "model.name=mmbt", "text_encoder.name=hf-text", f"text_encoder.path={tiny_bert}",
        "text_encoder.trainable=false", "train.epochs=2", "name=mmbt", *aux, *extra]
    result = train(load_config(None, over))
    assert set(result.metrics["test"]["mood"]) >= KEYS
    for part in ("itc", "itm"):
        assert (f"train_{part}" in result.history[0]) == any(part in a for a in aux)
    probs = mmpost.load(result.run_dir).predict([
        mmpost.Post(id="x", text="thing 2", images=[str(tmp_path / "imgs" / "p1.png")]),
        mmpost.Post(id="y", text="a post about thing 5", images=[])])
    assert all(sum(p["probs"].values()) == pytest.approx(1.0, abs=1e-5) for p in probs)


def test_several_tasks_get_a_head_each(tiny_bert):
    model = make_model(tiny_bert, num_classes={"sentiment": 3, "sarcasm": 2})
    out = model(make_batch(model, TEXTS[:2], images(2), [True, False]))
    assert list(out.task_logits) == ["sentiment", "sarcasm"] and out.logits is out.task_logits["sentiment"]
    assert out.task_logits["sentiment"].shape == (2, 3) and out.task_logits["sarcasm"].shape == (2, 2)
    assert {"classifier.sentiment.weight", "classifier.sarcasm.bias"} <= set(model.state_dict())
    one = make_model(tiny_bert)
    assert list(one(make_batch(one, TEXTS[:1], images(1), [True])).task_logits) == ["default"]
