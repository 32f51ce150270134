"""ViLT-style single stream, offline: a tiny random BERT as the joint transformer (over tiny-image tokens), and a
tiny random HF ViltModel saved to a temporary folder (``model.path``)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import mmpost
import mmpost.models.vilt  # noqa: F401  (registers "vilt")
from mmpost import registry
from mmpost.apps.build import build_model, build_tower
from mmpost.apps.train import train
from mmpost.config import EncoderConfig, load_config
from mmpost.config_sections import model_config
from mmpost.data.batch import Batch
from mmpost.models.output import ItmPairs
from mmpost.models.vilt import ViltStyle, cap_text
from tests.conftest import tiny_overrides, write_toy_csv

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "post", "about", "thing", "cat", "dog", "sat", "on",
         "the", "mat", "hello", "0", "1", "2", "3", "4", "5", "6"]
LONG = " ".join(["the cat sat on the mat"] * 12)            # 72 words: well past the 40-token cap


def save_tokenizer(folder, words=WORDS):
    # transformers 5: the vocabulary goes in as a dict (``vocab_file=`` would leave only the special tokens)
    from transformers import BertTokenizer
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    assert tok("cat")["input_ids"][1] != tok.unk_token_id
    tok.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel
    folder = tmp_path_factory.mktemp("bert")
    save_tokenizer(folder)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_vilt(tmp_path_factory):
    from transformers import ViltConfig, ViltModel
    folder = tmp_path_factory.mktemp("vilt")
    save_tokenizer(folder)
    cfg = ViltConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, image_size=32, patch_size=16, max_position_embeddings=40)
    torch.manual_seed(0)
    ViltModel(cfg).save_pretrained(folder)
    return str(folder)


def towers(text_path: str):
    text = build_tower(EncoderConfig(name="hf-text", path=text_path, max_length=128))
    image = build_tower(EncoderConfig(name="tiny-image", image_size=32))
    return text, image


def make_model(text_path: str, n_classes: int = 3, **model_kw) -> ViltStyle:
    text, image = towers(text_path)
    torch.manual_seed(0)
    return build_model(model_config(dict(name="vilt", proj_dim=8, **model_kw)), text, image, n_classes).eval()


def make_batch(model: ViltStyle, texts: list[str], has_image: list[bool], *, pixels: bool = False,
               seed: int = 0, max_length: int | None = None) -> Batch:
    n = len(texts)
    g = torch.Generator().manual_seed(seed)
    tok = model.text_tower.tokenizer
    inputs = tok(texts, padding=True, truncation=True, max_length=max_length or 128, return_tensors="pt")
    batch = Batch(index=torch.arange(n), labels=torch.zeros(n, dtype=torch.long),
                  has_image=torch.tensor(has_image), text_ids=torch.arange(n), image_ids=torch.arange(n),
                  text_inputs={k: inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    if pixels:
        batch.pixels = torch.randn(n, 3, 32, 32, generator=g)
    else:
        batch.image_features = torch.randn(n, 64, 8, generator=g)     # tiny-image at 32 px: 8×8 tokens of 8-d
    return batch


TEXTS = ["the cat sat on the mat", "a dog", "hello thing", "a post about thing 3"]


# ---------------------------------------------------------------------- offline path
@pytest.mark.parametrize("contrast", ["unimodal", "fused"])
def test_offline_shapes_and_inputs(tiny_bert, contrast):
    model = make_model(tiny_bert, contrast=contrast)
    assert registry.get("model", "vilt") is ViltStyle
    assert ViltStyle.inputs(model_config(dict(name="vilt"))) == ("tokens", "tokens")
    assert model.stream.cap == 40 and model.stream.n_image == 64
    out = model(make_batch(model, TEXTS, [True, True, False, True]))
    assert out.logits.shape == (4, 3) and out.fused.shape == (4, 16)
    assert out.text_embeds.shape == out.image_embeds.shape == (4, 8)
    assert out.has_image.tolist() == [True, True, False, True]
    assert torch.isfinite(out.logits).all() and out.itm_logits is None


def test_text_is_capped_at_max_text_tokens(tiny_bert):
    model = make_model(tiny_bert)
    full = make_batch(model, [LONG, "a dog"], [True, True])
    assert full.text_inputs["input_ids"].shape[1] > 40
    first40 = make_batch(model, [LONG, "a dog"], [True, True], max_length=40)
    assert first40.text_inputs["input_ids"].shape[1] == 40
    ids, _ = cap_text(full.text_inputs["input_ids"], full.text_inputs["attention_mask"], 40, 3)
    assert torch.equal(ids, first40.text_inputs["input_ids"])                   # ends in [SEP] like the tokenizer's
    a, b = model(full), model(first40)
    for field in ("logits", "text_embeds", "image_embeds"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-5), field
    # a cap of 12 changes what the model reads
    short = make_model(tiny_bert, max_text_tokens=12)
    short.load_state_dict(model.state_dict())
    assert not torch.allclose(short(full).logits[0], a.logits[0], atol=1e-4)
    assert torch.allclose(short(full).logits[1], a.logits[1], atol=1e-5)        # "a dog" fits either cap


@pytest.mark.parametrize("path", [False, True], ids=["offline", "hf"])
def test_a_posts_output_does_not_depend_on_its_batch(tiny_bert, tiny_vilt, path):
    """Image positions do not move with the batch's padding."""
    model = make_model(tiny_bert, contrast="fused", **({"path": tiny_vilt} if path else {}))
    batch = make_batch(model, ["a dog", LONG, "hello thing"], [True, True, False], pixels=path)
    alone = make_batch(model, ["a dog"], [True], pixels=path)
    if path:
        alone.pixels = batch.pixels[:1]
    else:
        alone.image_features = batch.image_features[:1]
    together, single = model(batch), model(alone)
    for f in ("logits", "fused", "text_embeds", "image_embeds"):
        assert torch.allclose(getattr(together, f)[0], getattr(single, f)[0], atol=1e-6), f


@pytest.mark.parametrize("contrast", ["unimodal", "fused"])
def test_image_reaches_prediction_and_imageless_posts_ignore_features(tiny_bert, contrast):
    model = make_model(tiny_bert, contrast=contrast)
    batch = make_batch(model, TEXTS, [True, True, False, True])
    base = model(batch)
    changed = dataclasses.replace(batch, image_features=batch.image_features.clone())
    changed.image_features[[0, 2]] += 3.0 * torch.randn(2, 64, 8)
    out = model(changed)
    # post 0's image matters (a random 1-layer BERT mixes it in weakly, so compare the fused vector)
    assert (out.fused[0] - base.fused[0]).abs().max() > 1e-4
    assert (out.logits[0] - base.logits[0]).abs().max() > 1e-5
    assert (out.image_embeds[0] - base.image_embeds[0]).abs().max() > 1e-3
    for f in ("logits", "text_embeds", "image_embeds", "fused"):                 # post 2 has no image
        assert torch.allclose(getattr(out, f)[1:], getattr(base, f)[1:], atol=1e-6), f
    # the text-side ITC vector of a unimodal pass never sees the image
    if contrast == "unimodal":
        assert torch.allclose(out.text_embeds, base.text_embeds, atol=1e-6)


def test_itm_pairs_score_the_joint_pass_of_text_a_with_image_b(tiny_bert):
    model = make_model(tiny_bert)
    batch = make_batch(model, TEXTS, [True, True, True, True])
    pairs = ItmPairs(text_index=torch.tensor([0, 1, 1, 3]), image_index=torch.tensor([0, 0, 1, 2]),
                     labels=torch.tensor([1, 0, 1, 0]))
    out = model(batch, itm=pairs)
    assert out.itm_logits.shape == (4, 2) and torch.equal(out.itm_labels, pairs.labels)
    # (text 1, image 0) scores like post 1 carrying post 0's image; (1, 1) like post 1 itself
    swapped = dataclasses.replace(batch, image_features=batch.image_features[[0, 0, 2, 2]])
    ref = model(swapped)
    assert torch.allclose(out.itm_logits[1], model.itm_head(ref.fused[1]), atol=1e-5)
    assert torch.allclose(out.itm_logits[3], model.itm_head(ref.fused[3]), atol=1e-5)
    assert torch.allclose(out.itm_logits[2], model.itm_head(model(batch).fused[1]), atol=1e-5)

    seen = {}

    def sampler(t, v):
        seen["shapes"] = (t.shape, v.shape)
        return ItmPairs(torch.tensor([0, 2]), torch.tensor([1, 2]), torch.tensor([0, 1]))
    out = model(batch, itm=sampler)
    assert seen["shapes"] == ((4, 8), (4, 8)) and out.itm_logits.shape == (2, 2)


def test_frozen_transformer_passes_gradients_to_the_image_side(tiny_bert):
    model = make_model(tiny_bert).train()
    for p in model.text_tower.parameters():
        p.requires_grad_(False)
    batch = make_batch(model, TEXTS, [True, True, False, True])
    out = model(batch)
    (out.logits.sum() + out.text_embeds.sum() + out.image_embeds.sum()).backward()
    stream = model.stream
    for p in (stream.image_in[1].weight, stream.image_position, stream.modality.weight, model.no_image):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.text_tower.parameters())
    assert not any(k.startswith("stream.text_tower") for k in model.state_dict())  # the tower is saved as a tower


def test_non_hf_text_tower_and_too_many_positions_are_clear_errors(tiny_bert):
    text, image = towers(tiny_bert)
    tiny_text = registry.get("encoder", "tiny-text")()
    with pytest.raises(TypeError, match="BERT-like"):
        build_model(model_config(dict(name="vilt")), tiny_text, image, 3)
    with pytest.raises(ValueError, match="exceed"):
        build_model(model_config(dict(name="vilt", max_text_tokens=100)), text, image, 3)
    with pytest.raises(ValueError, match="contrast"):
        build_model(model_config(dict(name="vilt", contrast="both")), text, image, 3)


# ---------------------------------------------------------------------- HF ViltModel path
def test_hf_path_reads_pixels_and_matches_vilts_own_embedding(tiny_bert, tiny_vilt):
    assert ViltStyle.inputs(model_config(dict(name="vilt", path=tiny_vilt))) == ("tokens", "pixels")
    for contrast in ("unimodal", "fused"):
        model = make_model(tiny_bert, path=tiny_vilt, contrast=contrast)
        assert model.stream.cap == 40 and model.stream.dim == 32
        batch = make_batch(model, [LONG] + TEXTS[1:], [True, True, False, True], pixels=True)
        out = model(batch)
        assert out.logits.shape == (4, 3) and out.text_embeds.shape == out.image_embeds.shape == (4, 8)
        assert torch.isfinite(out.text_embeds).all() and torch.isfinite(out.image_embeds).all()
    # our patch embedding = ViLT's own pixel path (tiny-image normalises with 0.5/0.5 like ViLT)
    b = make_batch(model, TEXTS[:2], [True, True], pixels=True)
    ours = model.stream.encode(model.text_part(b), model.image_part(b)[0])[0]
    theirs = model.stream.vilt(input_ids=b.text_inputs["input_ids"], attention_mask=b.text_inputs["attention_mask"],
                               pixel_values=b.pixels).last_hidden_state
    assert torch.allclose(ours[:, 0], theirs[:, 0], atol=1e-5)
    # a post without an image ignores its pixels; one with an image does not
    changed = dataclasses.replace(batch, pixels=batch.pixels + torch.randn_like(batch.pixels))
    base, out = model(batch), model(changed)
    assert torch.allclose(out.fused[2], base.fused[2], atol=1e-6)
    assert (out.fused[0] - base.fused[0]).abs().max() > 1e-4
    pairs = ItmPairs(torch.tensor([0, 1]), torch.tensor([0, 3]), torch.tensor([1, 0]))
    assert model(batch, itm=pairs).itm_logits.shape == (2, 2)


def test_hf_path_renormalises_pixels_and_checks_the_vocabulary(tiny_bert, tiny_vilt, tmp_path):
    text, image = towers(tiny_bert)
    image.mean, image.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = build_model(model_config(dict(name="vilt", path=tiny_vilt)), text, image, 2)
    raw = torch.rand(1, 3, 1, 1)
    tower_norm = (raw - torch.tensor(image.mean).view(1, 3, 1, 1)) / torch.tensor(image.std).view(1, 3, 1, 1)
    renorm = tower_norm * model.stream.pixel_scale + model.stream.pixel_shift
    assert torch.allclose(renorm, (raw - 0.5) / 0.5, atol=1e-5)
    # a text tower with another vocabulary
    other = tmp_path / "other"
    save_tokenizer(other, WORDS[:5] + ["zebra", "cat"])
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(other)
    text2, _ = towers(str(other))
    with pytest.raises(ValueError, match="vocabulary"):
        build_model(model_config(dict(name="vilt", path=tiny_vilt)), text2, image, 2)


def test_hf_path_trains_end_to_end_and_predicts(tmp_path, tiny_bert, tiny_vilt):
    csv_path = write_toy_csv(tmp_path, n=30)
    over = tiny_overrides(tmp_path, csv_path) + [
        "name=hf", "model.name=vilt", f"model.path={tiny_vilt}", "text_encoder.name=hf-text",
        f"text_encoder.path={tiny_bert}", "text_encoder.trainable=false", "image_encoder.image_size=32",
        "train.epochs=1", "objectives.itc.enabled=true", "objectives.itm.enabled=true", "train.lr=1e-3"]
    result = train(load_config(None, over))
    assert result.history and all(h["train_itm"] > 0 for h in result.history)
    probs = mmpost.load(result.run_dir).predict([
        mmpost.Post(id="x", text="a post about thing 1"),
        mmpost.Post(id="y", text="hello", images=[str(tmp_path / "imgs" / "p0.png")])])
    assert len(probs) == 2 and set(probs[0]["probs"]) == {"red", "blue", "green"}
    assert sum(probs[1]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    alone = mmpost.load(result.run_dir).predict([mmpost.Post(id="x", text="a post about thing 1")])  # no image at all
    assert alone[0]["probs"] == pytest.approx(probs[0]["probs"], abs=1e-5)


# ---------------------------------------------------------------------- end to end, offline
@pytest.mark.parametrize("aux", [[], ["objectives.itc.enabled=true"], ["objectives.itm.enabled=true"],
                                 ["objectives.itc.enabled=true", "objectives.itm.enabled=true",
                                  "model.contrast=fused"]],
                         ids=["base", "itc", "itm", "itc+itm-fused"])
def test_offline_trains_with_every_aux_setting_and_predicts(tmp_path, tiny_bert, aux):
    csv_path = write_toy_csv(tmp_path, n=30)
    over = tiny_overrides(tmp_path, csv_path) + [
        "name=r", "model.name=vilt", "text_encoder.name=hf-text", f"text_encoder.path={tiny_bert}",
        "text_encoder.trainable=false", "train.epochs=2"] + aux
    result = train(load_config(None, over))
    assert len(result.history) == 2
    for h in result.history:
        assert h["train_ce"] > 0
        assert ("train_itc" in h) == ("objectives.itc.enabled=true" in aux)
        assert ("train_itm" in h) == ("objectives.itm.enabled=true" in aux)
    probs = mmpost.load(result.run_dir).predict([
        mmpost.Post(id="x", text="a post about thing 1"),
        mmpost.Post(id="y", text=LONG, images=[str(tmp_path / "imgs" / "p0.png")])])
    assert len(probs) == 2 and set(probs[0]["probs"]) == {"red", "blue", "green"}
    assert sum(probs[1]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    alone = mmpost.load(result.run_dir).predict([mmpost.Post(id="x", text="a post about thing 1")])  # no image at all
    assert alone[0]["probs"] == pytest.approx(probs[0]["probs"], abs=1e-5)


def test_several_tasks_get_a_head_each(tiny_bert):
    model = make_model(tiny_bert, {"sentiment": 3, "sarcasm": 2})
    out = model(make_batch(model, ["a cat", "the dog sat"], [True, False]))
    assert list(out.task_logits) == ["sentiment", "sarcasm"] and out.logits is out.task_logits["sentiment"]
    assert out.task_logits["sentiment"].shape == (2, 3) and out.task_logits["sarcasm"].shape == (2, 2)
    assert {"classifier.sentiment.weight", "classifier.sarcasm.bias"} <= set(model.state_dict())
    one = make_model(tiny_bert, 3)
    assert list(one(make_batch(one, ["a cat"], [True])).task_logits) == ["default"]
