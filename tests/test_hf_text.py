"""The HF loading path, offline: a tiny random BERT and its tokenizer saved to a temporary folder."""
from __future__ import annotations

import pytest
import torch

from mmpost.apps.build import build_tower
from mmpost.config import EncoderConfig
from tests.conftest import save_tiny_roberta


@pytest.fixture
def tiny_bert(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "sat", "on", "the", "mat", "##s"]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    assert tok.convert_tokens_to_ids(tok.tokenize("the cats")) == [10, 6, 12]   # real words, not [UNK]
    tok.save_pretrained(tmp_path / "bert")
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    return str(tmp_path / "bert")


def test_any_local_hf_text_model_loads_and_pools(tiny_bert):
    for pooling in ("cls", "mean"):
        tower = build_tower(EncoderConfig(name="hf-text", path=tiny_bert, pooling=pooling, max_length=8))
        assert tower.dim == 16 and tower.identity.startswith("hf-text:bert-")
        inputs = tower.tokenize(["the cat sat on the mat", "a dog"])
        out = tower(inputs)
        assert out.tokens.shape[0] == 2 and out.pooled.shape == (2, 16)
        assert out.mask[1].sum() < out.mask[0].sum()
        if pooling == "cls":
            assert torch.allclose(out.pooled, out.tokens[:, 0])
        else:
            m = out.mask[1]
            assert torch.allclose(out.pooled[1], out.tokens[1][m].mean(0), atol=1e-6)
    assert tower.token_lengths(["the cat", "the cat sat on the mat mat mat mat"]) == [4, 8]


def test_frozen_or_trainable_by_config(tiny_bert):
    frozen = build_tower(EncoderConfig(name="hf-text", path=tiny_bert, trainable=False))
    tuned = build_tower(EncoderConfig(name="hf-text", path=tiny_bert, trainable=True))
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in tuned.parameters())


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        build_tower(EncoderConfig(name="hf-text", path="no-such-org/no-such-model"))


def test_roberta_like_models_load_too(tmp_path):
    """Bernice and RoBERTa are RoBERTa-type: BPE tokenizer, no token_type_ids."""
    save_tiny_roberta(tmp_path / "rob", max_positions=40, type_vocab_size=2)
    tower = build_tower(EncoderConfig(name="hf-text", path=str(tmp_path / "rob")))
    inputs = tower.tokenize(["cat cat cat", "cat"])
    assert "token_type_ids" not in inputs or inputs["token_type_ids"].abs().sum() == 0
    out = tower(inputs)
    assert out.pooled.shape == (2, 16) and out.tokens.shape[:2] == out.mask.shape
