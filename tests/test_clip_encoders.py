"""hf-clip towers, offline: tiny random CLIPModel / SiglipModel checkpoints (with a tiny tokenizer and the image
processor) saved to a temporary folder and read back through the real loading code.

The builders here (``save_tiny_clip``, ``save_tiny_siglip``) are used by the other ``test_clip_*`` files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmpost.apps.build import build_tower
from mmpost.config import EncoderConfig
from mmpost.encoders import clip_checkpoint
from mmpost.encoders.clip_checkpoint import UnsupportedCheckpoint

WORDS = ("a an the of is are what when this that post picture photo image text cat fish car house tree flower "
         "happy sad angry neutral lovely day great not so it my your with positive negative sarcastic red blue "
         "green thing about").split()


def _tokenizer(eos_only: bool):
    """A word-level tokenizer: lowercase words, <bos> text <eos> (CLIP) or text <eos> (SigLIP)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "$A <eos>" if eos_only else "<bos> $A <eos>"
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>"), len(vocab)


def save_tiny_clip(folder, seed: int = 0) -> str:
    """A random CLIPModel (text 16-d, vision 24-d, projection 12-d; 32 px images in 8 px patches) with its
    tokenizer and CLIPImageProcessor, saved to ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
    tokenizer, vocab = _tokenizer(eos_only=False)
    text = dict(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=2, eos_token_id=3, pad_token_id=0)
    vision = dict(image_size=32, patch_size=8, hidden_size=24, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2)
    torch.manual_seed(seed)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=12)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def save_tiny_siglip(folder, seed: int = 0) -> str:
    """A random SiglipModel (both towers 16-d; 32 px images in 8 px patches, attention-pooling head) with its
    tokenizer (text then <eos>, padded to 16) and SiglipImageProcessor, saved to ``folder``."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel
    tokenizer, vocab = _tokenizer(eos_only=True)
    text = dict(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, pad_token_id=0, eos_token_id=3, bos_token_id=2)
    vision = dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2)
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    with torch.no_grad():
        model.logit_scale.fill_(np.log(10.0))
        model.logit_bias.fill_(-3.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def features(output):
    """``get_*_features`` as a tensor (transformers 5 returns an output whose pooler_output it is)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def hf_model(path: str):
    from transformers import AutoModel
    return AutoModel.from_pretrained(path).eval()


def towers(path: str, **kw):
    return (build_tower(EncoderConfig(name="hf-clip", path=path, side="text", precision="fp32", **kw)),
            build_tower(EncoderConfig(name="hf-clip", path=path, side="image", **kw)))


@pytest.fixture(params=["clip", "siglip"])
def checkpoint(request, tmp_path):
    save = save_tiny_clip if request.param == "clip" else save_tiny_siglip
    return request.param, save(tmp_path / request.param)


def picture(tmp_path, name: str = "x.png", colour=(200, 10, 10), size=(50, 40)) -> str:
    path = tmp_path / name
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_pooled_vectors_are_the_checkpoints_features(checkpoint, tmp_path):
    family, path = checkpoint
    text_tower, image_tower = towers(path)
    model = hf_model(path)
    assert text_tower.family == image_tower.family == family
    texts = ["a happy cat", "what a lovely day with my red car", ""]
    inputs = text_tower.tokenize(texts)
    hf_inputs = {"input_ids": inputs["input_ids"]}
    if family == "clip":
        hf_inputs["attention_mask"] = inputs["attention_mask"]
    with torch.no_grad():
        out = text_tower(inputs)
        expected = features(model.get_text_features(**hf_inputs))
    assert out.pooled.shape == (3, text_tower.dim)
    assert torch.allclose(out.pooled, expected, atol=1e-5)
    assert torch.equal(out.tokens[:, 0], out.pooled)                     # the pooled vector in front
    assert out.tokens.shape[1] == inputs["input_ids"].shape[1] + 1 and out.mask[:, 0].all()

    pixels = torch.from_numpy(np.stack([image_tower.load(picture(tmp_path)),
                                        image_tower.load(picture(tmp_path, "y.png", (10, 10, 200), (30, 60)))]))
    from transformers import AutoImageProcessor
    reference = AutoImageProcessor.from_pretrained(path)(images=[Image.open(tmp_path / "x.png").convert("RGB"),
                                                                 Image.open(tmp_path / "y.png").convert("RGB")],
                                                         return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels, reference, atol=1e-5)                   # the checkpoint's own preprocessing
    with torch.no_grad():
        img = image_tower(pixels)
        expected = features(model.get_image_features(pixel_values=pixels))
    assert torch.allclose(img.pooled, expected, atol=1e-5)
    assert img.tokens.shape == (2, 1 + 16, image_tower.dim) and torch.equal(img.tokens[:, 0], img.pooled)


def test_one_path_for_both_towers_is_loaded_once(tmp_path, monkeypatch):
    path = save_tiny_clip(tmp_path / "clip")
    loads = []
    real = clip_checkpoint.load
    monkeypatch.setattr(clip_checkpoint, "load", lambda *a, **k: loads.append(a) or real(*a, **k))
    text_tower, image_tower = towers(path)
    assert len(loads) == 1
    assert text_tower.space is image_tower.space
    assert text_tower.encoder is not image_tower.encoder
    towers(path)                                                           # a second pair loads it again
    assert len(loads) == 2


def test_trainable_is_per_tower(tmp_path):
    path = save_tiny_clip(tmp_path / "clip")
    text_tower = build_tower(EncoderConfig(name="hf-clip", path=path, side="text", trainable=True))
    image_tower = build_tower(EncoderConfig(name="hf-clip", path=path, side="image", trainable=False))
    assert all(p.requires_grad for p in text_tower.parameters())
    assert not any(p.requires_grad for p in image_tower.parameters())


def test_identity_keys_on_the_weights(tmp_path):
    a = towers(save_tiny_clip(tmp_path / "a", seed=0))
    b = towers(save_tiny_clip(tmp_path / "b", seed=1))
    a_again = towers(str(tmp_path / "a"))
    assert a[0].identity != b[0].identity and a[1].identity != b[1].identity
    assert a[0].identity == a_again[0].identity and a[1].identity == a_again[1].identity


def test_a_bert_checkpoint_is_named_by_its_type(tmp_path):
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(UnsupportedCheckpoint, match="'bert'.*CLIP or SigLIP"):
        build_tower(EncoderConfig(name="hf-clip", path=str(tmp_path / "bert"), side="image"))


def test_a_clip_checkpoint_in_hf_image_says_to_use_hf_clip(tmp_path):
    path = save_tiny_clip(tmp_path / "clip")
    with pytest.raises(UnsupportedCheckpoint, match="'clip'.*image_encoder.name=hf-clip"):
        build_tower(EncoderConfig(name="hf-image", path=path, side="image"))
    with pytest.raises(UnsupportedCheckpoint, match="'clip'.*text_encoder.name=hf-clip"):
        build_tower(EncoderConfig(name="hf-text", path=path, side="text"))


def test_side_and_path_are_required(tmp_path):
    with pytest.raises(ValueError, match="side must be text or image"):
        build_tower(EncoderConfig(name="hf-clip", path=str(tmp_path)))
    with pytest.raises(ValueError, match="image_encoder.path"):
        build_tower(EncoderConfig(name="hf-clip", side="image"))


def test_the_clip_recipes_load():
    from pathlib import Path

    from mmpost.config import load_config
    recipes = sorted(Path("configs/paper").glob("*clip*.yaml"))
    assert len(recipes) >= 6
    for recipe in recipes:
        cfg = load_config(recipe)
        assert cfg.text_encoder.name == cfg.image_encoder.name == "hf-clip", recipe
        assert cfg.text_encoder.path == cfg.image_encoder.path, recipe
