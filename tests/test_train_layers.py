"""text_encoder.train_layers: only the top N layers of an HF text tower train; the frozen lower layers' outputs are
computed once, cached on disk like frozen features, and give the same tower outputs as running the whole model."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import mmpost
from mmpost.apps.build import build_tower
from mmpost.apps.train import train
from mmpost.config import ConfigError, EncoderConfig, load_config
from mmpost.encoders.cache import RaggedFeatureCache, content_key
from tests.conftest import tiny_overrides

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "post", "about", "thing", "cat", "dog", "sat", "on",
         "the", "mat", *[str(i) for i in range(10)]]


@pytest.fixture
def tiny_bert(tmp_path):
    """A random 4-layer BERT and its tokenizer, saved where hf-text loads it."""
    from transformers import BertConfig, BertModel, BertTokenizer
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(tmp_path / "bert")
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    return str(tmp_path / "bert")


TEXTS = ["the cat sat on the mat", "a dog", "a post about thing 3 on the mat the cat sat", "cat"]


def towers(path: str, n: int):
    whole = build_tower(EncoderConfig(name="hf-text", path=path, pooling="mean", trainable=True)).eval()
    part = build_tower(EncoderConfig(name="hf-text", path=path, pooling="mean", trainable=True,
                                     train_layers=n)).eval()
    return whole, part


@pytest.mark.parametrize("n", [1, 2, 4])
def test_top_layers_on_lower_states_equal_the_whole_model(tiny_bert, n):
    whole, part = towers(tiny_bert, n)
    assert part.frozen_layers == 4 - n
    with torch.no_grad():
        ref = whole(whole.tokenize(TEXTS))
        live = part(part.tokenize(TEXTS))                        # lower layers computed on the fly
        assert torch.allclose(live.tokens, ref.tokens, atol=1e-5)
        part.attach_lower_states(TEXTS)
        inputs = part.tokenize(TEXTS)
        assert inputs["lower_states"].dtype == torch.float16
        assert inputs["lower_states"].shape[:2] == inputs["input_ids"].shape
        cached = part(inputs)                                    # lower layers read back (float16)
    assert torch.allclose(cached.pooled, ref.pooled, atol=2e-3)
    assert torch.equal(cached.mask, ref.mask)


def test_only_the_top_layers_train_and_the_lower_part_stays_in_eval_mode(tiny_bert):
    _, part = towers(tiny_bert, 2)
    part.freeze_lower()
    part.train()
    layers = part.model.encoder.layer
    assert not part.model.embeddings.training and not layers[1].training and layers[2].training
    trainable = {n.split(".")[3] if n.startswith("model.encoder") else n.split(".")[1]
                 for n, p in part.named_parameters() if p.requires_grad}
    assert trainable == {"2", "3", "pooler"}
    part.attach_lower_states(TEXTS)
    part(part.tokenize(TEXTS)).pooled.sum().backward()
    assert all(p.grad is None for p in part.model.embeddings.parameters())
    assert all(p.grad is None for p in layers[1].parameters())
    assert all(p.grad is not None for p in layers[3].parameters())


def test_bad_layer_counts_are_clear_errors(tiny_bert):
    with pytest.raises(ValueError, match="between 1 and 4"):
        build_tower(EncoderConfig(name="hf-text", path=tiny_bert, trainable=True, train_layers=5))
    with pytest.raises(ConfigError, match="text_encoder.train_layers must be 1 or more"):
        load_config(None, ["text_encoder.train_layers=0"])


def test_unknown_texts_fall_back_to_computing_their_lower_states(tiny_bert):
    _, part = towers(tiny_bert, 2)
    part.attach_lower_states(TEXTS[:2])
    assert "lower_states" not in part.tokenize(["a post about thing 9"])
    assert "lower_states" in part.tokenize(TEXTS[:2])


def test_lower_states_are_cached_on_disk_and_read_back(tiny_bert, tmp_path, monkeypatch):
    _, part = towers(tiny_bert, 2)
    part.attach_lower_states(TEXTS + TEXTS[:1], tmp_path / "cache")
    first = part.tokenize(TEXTS)["lower_states"]
    cache = RaggedFeatureCache(tmp_path / "cache" / "text-states", identity=part.states_identity)
    assert len(cache) == len(TEXTS)
    assert [len(r) for r in cache.get_rows([content_key(t) for t in TEXTS])] == part.token_lengths(TEXTS)

    def fail(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(part, "compute_lower_states", fail)
    part.attach_lower_states(TEXTS, tmp_path / "cache")
    assert torch.equal(part.tokenize(TEXTS)["lower_states"], first)


def bert_run(tmp_path, toy_csv, tiny_bert, *extra):
    return tiny_overrides(tmp_path, toy_csv) + ["text_encoder.name=hf-text", f"text_encoder.path={tiny_bert}",
                                                "text_encoder.max_length=16", "train.epochs=2", *extra]


def test_a_run_trains_the_top_layers_from_the_cache_and_predicts(tmp_path, toy_csv, tiny_bert):
    cfg = load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=top2", "text_encoder.train_layers=2",
                                     "text_encoder.length_buckets=true"))
    before = {k: v.clone() for k, v in build_tower(cfg.text_encoder).model.state_dict().items()}
    result = train(cfg)
    assert any((tmp_path / "cache" / "text-states").rglob("shard-*.offsets.npy"))
    saved = load_file(result.run_dir / "model.safetensors")
    lower = "text_tower.model.encoder.layer.1.attention.self.query.weight"
    upper = "text_tower.model.encoder.layer.3.attention.self.query.weight"
    assert torch.equal(saved[lower], before[lower.removeprefix("text_tower.model.")])
    assert not torch.equal(saved[upper], before[upper.removeprefix("text_tower.model.")])
    out = mmpost.load(result.run_dir).predict([mmpost.Post(id="x", text="a post about thing 8 never seen")])
    assert sum(out[0]["probs"].values()) == pytest.approx(1.0, abs=1e-5)


def test_train_layers_needs_a_trainable_splittable_tower(tmp_path, toy_csv, tiny_bert):
    frozen = load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=f", "text_encoder.trainable=false",
                                        "text_encoder.train_layers=2"))
    with pytest.raises(ValueError, match="set text_encoder.trainable=true"):
        train(frozen)
    tiny = load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=t", "text_encoder.train_layers=1"])
    with pytest.raises(ValueError, match="cannot fine-tune part of its layers"):
        train(tiny)


def test_same_seed_same_run_with_train_layers(tmp_path, toy_csv, tiny_bert):
    extra = ["text_encoder.train_layers=1", "text_encoder.length_buckets=true"]
    a = train(load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=a", *extra)))
    b = train(load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=b", *extra)))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_towers_handed_to_run_after_run_are_not_trained_in_place(tmp_path, toy_csv, tiny_bert):
    """mmpost cv and the benchmarks build the towers once for every fold: each run trains its own copy."""
    cfg = load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "text_encoder.train_layers=2"))
    towers = (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))
    before = {k: v.clone() for k, v in towers[0].state_dict().items()}
    first = train(load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=one", "text_encoder.train_layers=2")),
                  towers=towers)
    assert all(torch.equal(v, towers[0].state_dict()[k]) for k, v in before.items())
    second = train(load_config(None, bert_run(tmp_path, toy_csv, tiny_bert, "name=two", "text_encoder.train_layers=2")),
                   towers=towers)
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
