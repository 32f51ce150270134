"""LXMERT-style family: the offline path (text tower + grid tokens + cross layers from scratch), the HF
LxmertModel path on precomputed region features, and the region-feature provider."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmpost
import mmpost.models.lxmert  # noqa: F401  (registers "lxmert")
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.config_sections import model_config
from mmpost.data.batch import Batch
from mmpost.encoders.regions import RegionFileError, load_regions, read_region_file
from mmpost.models.lxmert import LxmertStyle, grid_boxes
from mmpost.models.output import ItmPairs
from tests.conftest import TinyImageTower, TinyTextTower, tiny_overrides, write_toy_csv


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is as fast and does not stall when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TEXTS = ["a red thing", "blue sky today", "nothing here", "green green grass", "one more post"]


def offline_model(**kw) -> LxmertStyle:
    torch.manual_seed(0)
    cfg = LxmertStyle.Config(proj_dim=8, **{"heads": 2, **kw})
    return LxmertStyle(TinyTextTower(dim=16), TinyImageTower(dim=8), 3, cfg).eval()


def grid_batch(model: LxmertStyle, has_image=(1, 1, 0, 1, 1), tokens: int = 64, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    b = len(has_image)
    return Batch(index=torch.arange(b), labels=torch.zeros(b, dtype=torch.long),
                 has_image=torch.tensor(has_image, dtype=torch.bool), text_ids=torch.arange(b),
                 image_ids=torch.arange(b), text_inputs=model.text_tower.tokenize(TEXTS[:b]),
                 image_features=torch.randn(b, tokens, model.image_tower.dim, generator=g))


def with_image(batch: Batch, features: torch.Tensor) -> Batch:
    return Batch(**{**batch.__dict__, "image_features": features})


# ---- offline path ---------------------------------------------------------------------------------------------

def test_inputs_depend_on_the_init_path():
    assert LxmertStyle.inputs(model_config(dict(name="lxmert"))) == ("tokens", "tokens")
    assert LxmertStyle.inputs(model_config(dict(name="lxmert", path="some/lxmert"))) == ("tokens", "regions")


def test_offline_shapes_layers_and_heads():
    model = offline_model(layers=3)
    out = model(grid_batch(model))
    assert out.logits.shape == (5, 3) and out.fused.shape == (5, 16)
    assert out.text_embeds.shape == out.image_embeds.shape == (5, 8)
    assert out.itm_logits is None
    assert len(model.cross_layers) == 3 and model.lxmert is None
    assert model.cross_layers[0].visual_attention.att.num_attention_heads == 2
    assert len(offline_model(layers=1).cross_layers) == 1
    assert offline_model(heads=6).cross_layers[0].lang_self_att.self.num_attention_heads == 4   # 6 ∤ 16
    with pytest.raises(ValueError, match="layers"):
        offline_model(layers=0)
    with pytest.raises(ValueError, match="contrast"):
        offline_model(contrast="sideways")


def test_grid_boxes_cover_the_image_row_major():
    boxes = grid_boxes(49)
    assert boxes.shape == (49, 4)
    assert torch.allclose(boxes[0], torch.tensor([0.0, 0.0, 1 / 7, 1 / 7]))
    assert torch.allclose(boxes[1], torch.tensor([1 / 7, 0.0, 2 / 7, 1 / 7]))     # next column, same row
    assert torch.allclose(boxes[-1], torch.tensor([6 / 7, 6 / 7, 1.0, 1.0]))
    assert grid_boxes(5).shape == (5, 4) and float(grid_boxes(5)[:, 3].min()) == 1.0   # not square: one row


def test_the_image_reaches_the_prediction_and_image_less_posts_ignore_theirs():
    model = offline_model()
    batch = grid_batch(model)
    base = model(batch).logits
    changed = batch.image_features.clone()
    changed[0] += 3.0 * torch.randn_like(changed[0])       # a post with an image
    changed[2] += 3.0 * torch.randn_like(changed[2])       # the post without one
    out = model(with_image(batch, changed)).logits
    assert not torch.allclose(out[0], base[0], atol=1e-5)
    assert torch.allclose(out[2], base[2], atol=1e-6)
    assert torch.allclose(out[1], base[1], atol=1e-6)       # posts do not leak into each other


@pytest.mark.parametrize("contrast", ["unimodal", "fused"])
def test_contrast_modes_pick_the_itc_vectors(contrast):
    model = offline_model(contrast=contrast)
    batch = grid_batch(model)
    a = model(batch)
    changed = batch.image_features.clone()
    changed[0] += 3.0 * torch.randn_like(changed[0])
    b = model(with_image(batch, changed))
    text_moved = not torch.allclose(a.text_embeds[0], b.text_embeds[0], atol=1e-5)
    assert text_moved == (contrast == "fused")              # unimodal: the text vector never sees the image
    assert not torch.allclose(a.image_embeds[0], b.image_embeds[0], atol=1e-5)
    if contrast == "unimodal":
        tower_pooled = model.text_tower(batch.text_inputs).pooled
        assert torch.allclose(a.text_embeds, model.text_proj(tower_pooled), atol=1e-6)


def test_itm_scores_pairs_through_the_cross_layers():
    model = offline_model()
    batch = grid_batch(model)
    pairs = ItmPairs(text_index=torch.tensor([0, 1, 3, 0]), image_index=torch.tensor([0, 1, 3, 1]),
                     labels=torch.tensor([1, 1, 1, 0]))
    out = model(batch, itm=pairs)
    assert out.itm_logits.shape == (4, 2) and torch.equal(out.itm_labels, pairs.labels)
    assert not torch.allclose(out.itm_logits[0], out.itm_logits[3], atol=1e-5)     # same text, other image
    # a positive pair is scored on exactly the pooled vector the classifier reads
    assert torch.allclose(out.itm_logits[:2], model.itm_head(out.fused[:2]), atol=1e-5)
    seen = {}

    def sampler(t, v):
        seen["shapes"] = (tuple(t.shape), tuple(v.shape))
        return pairs

    assert model(batch, itm=sampler).itm_logits.shape == (4, 2)
    assert seen["shapes"] == ((5, 8), (5, 8))
    empty = torch.zeros(0, dtype=torch.long)
    assert model(batch, itm=ItmPairs(empty, empty, empty)).itm_logits.shape == (0, 2)


def test_gradients_reach_the_cross_layers_and_the_visual_embedding():
    model = offline_model().train()
    batch = grid_batch(model)
    pairs = ItmPairs(torch.tensor([0, 1]), torch.tensor([1, 1]), torch.tensor([0, 1]))
    out = model(batch, itm=pairs)
    (out.logits.sum() + out.itm_logits.sum() + out.text_embeds.sum() + out.image_embeds.sum()).backward()
    for name in ("cross_layers.0.visual_attention.att.query.weight", "cross_layers.1.lang_output.dense.weight",
                 "visual_embed.feature.1.weight", "visual_embed.box.0.weight", "no_image", "itm_head.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


# ---- region files -------------------------------------------------------------------------------------------

def _sprung():          # would run only if a pickle were loaded
    _sprung.fired = True
    return "boom"


class Trap:
    def __reduce__(self):
        return (_sprung, ())


def test_load_regions_reads_every_format_pads_and_masks(tmp_path):
    from safetensors.numpy import save_file
    folder = tmp_path / "regions"
    folder.mkdir()
    rng = np.random.default_rng(0)
    f_a, b_a = rng.normal(size=(3, 6)).astype(np.float32), np.array([[0, 0, .5, .5], [.5, .5, 1, 1], [0, 0, 1, 1]],
                                                                    dtype=np.float32)
    save_file({"features": f_a, "boxes": b_a}, str(folder / "a.safetensors"))
    f_b = rng.normal(size=(5, 6))                                     # float64, read as float32
    np.savez(folder / "b.npz", features=f_b, boxes=np.tile([0.1, 0.2, 0.3, 0.4], (5, 1)))
    f_c = rng.normal(size=(2, 6)).astype(np.float16)
    np.save(folder / "c.npy", f_c)
    np.save(folder / "empty.npy", np.zeros((0, 6), dtype=np.float32))
    paths = ["/photos/a.jpg", None, "x/b.png", "c.jpeg", "/else/missing.jpg", "empty.jpg", "/other/a.png"]
    r = load_regions(folder, paths)
    assert r.features.shape == (7, 5, 6) and r.features.dtype == np.float32
    assert r.boxes.shape == (7, 5, 4) and r.mask.shape == (7, 5) and r.mask.dtype == bool
    assert r.found.tolist() == [True, False, True, True, False, False, True]
    assert r.mask.sum(1).tolist() == [3, 0, 5, 2, 0, 0, 3]
    np.testing.assert_allclose(r.features[0, :3], f_a)
    np.testing.assert_allclose(r.boxes[0, :3], b_a)
    np.testing.assert_allclose(r.features[2], f_b.astype(np.float32))
    np.testing.assert_allclose(r.boxes[3, :2], [[0, 0, 1, 1]] * 2)     # no boxes: the whole image
    assert not r.features[0, 3:].any() and not r.features[1].any() and not r.boxes[4].any()
    short = load_regions(folder, paths, max_regions=2)
    assert short.features.shape == (7, 2, 6) and short.mask.sum(1).tolist() == [2, 0, 2, 2, 0, 0, 2]
    np.testing.assert_allclose(short.features[2], f_b[:2].astype(np.float32))
    none = load_regions(folder, [None, "nothing.jpg"])
    assert none.features.shape[:2] == (2, 1) and not none.found.any() and not none.mask.any()


def test_safetensors_wins_over_npz_and_npy(tmp_path):
    from safetensors.numpy import save_file
    save_file({"features": np.ones((1, 2), dtype=np.float32)}, str(tmp_path / "x.safetensors"))
    np.save(tmp_path / "x.npy", np.zeros((1, 2), dtype=np.float32))
    assert load_regions(tmp_path, ["x.jpg"]).features[0, 0].tolist() == [1.0, 1.0]


def test_bad_region_files_are_clear_errors_naming_the_file(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(6, dtype=np.float32))
    with pytest.raises(RegionFileError, match=r"flat\.npy.*\[regions, dim\]"):
        load_regions(tmp_path, ["flat.jpg"])
    np.savez(tmp_path / "boxes.npz", features=np.zeros((3, 4)), boxes=np.zeros((2, 4)))
    with pytest.raises(RegionFileError, match=r"boxes\.npz.*'boxes' must be \[3, 4\]"):
        load_regions(tmp_path, ["boxes.jpg"])
    np.savez(tmp_path / "pixels.npz", features=np.zeros((1, 4)), boxes=np.array([[10, 20, 200, 300]]))
    with pytest.raises(RegionFileError, match=r"pixels\.npz.*normalised"):
        load_regions(tmp_path, ["pixels.jpg"])
    np.savez(tmp_path / "nofeat.npz", feats=np.zeros((1, 4)))
    with pytest.raises(RegionFileError, match=r"nofeat\.npz.*no 'features'"):
        load_regions(tmp_path, ["nofeat.jpg"])
    np.save(tmp_path / "w4.npy", np.zeros((2, 4), dtype=np.float32))
    np.save(tmp_path / "w5.npy", np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(RegionFileError, match=r"w5\.npy.*5-d.*w4\.npy.*4-d"):
        load_regions(tmp_path, ["w4.jpg", None, "w5.jpg"])
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RegionFileError, match=r"junk\.safetensors"):
        load_regions(tmp_path, ["junk.jpg"])
    with pytest.raises(FileNotFoundError, match="region feature folder"):
        load_regions(tmp_path / "nope", ["a.jpg"])


def test_pickled_region_files_are_refused_unopened(tmp_path):
    _sprung.fired = False
    np.save(tmp_path / "evil.npy", np.array([Trap()], dtype=object), allow_pickle=True)
    with pytest.raises(RegionFileError, match=r"evil\.npy.*never unpickles"):
        load_regions(tmp_path, ["evil.jpg"])
    np.savez(tmp_path / "evil2.npz", features=np.array([Trap()], dtype=object))
    with pytest.raises(RegionFileError, match=r"evil2\.npz.*never unpickles"):
        read_region_file(tmp_path / "evil2.npz")
    assert _sprung.fired is False


# ---- HF LxmertModel path ------------------------------------------------------------------------------------

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "post", "about", "thing", "fresh", "no", "picture",
         "here", "0", "1", "2", "3", "4", "5", "6"]


@pytest.fixture
def tiny_lxmert(tmp_path):
    """(LXMERT folder, BERT folder sharing its vocabulary) with tiny random weights."""
    from transformers import BertConfig, BertModel, BertTokenizer, LxmertConfig, LxmertModel
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    torch.manual_seed(0)
    lcfg = LxmertConfig(vocab_size=len(WORDS), hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        l_layers=1, x_layers=1, r_layers=1, visual_feat_dim=8, visual_pos_dim=4,
                        max_position_embeddings=32)
    LxmertModel(lcfg).save_pretrained(tmp_path / "lxmert")
    tok.save_pretrained(tmp_path / "lxmert")
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32)).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    return str(tmp_path / "lxmert"), str(tmp_path / "bert")


def hf_model(tiny_lxmert, text_tower=None) -> LxmertStyle:
    from mmpost.apps.build import build_tower
    from mmpost.config import EncoderConfig
    lx, bert = tiny_lxmert
    tower = text_tower or build_tower(EncoderConfig(name="hf-text", path=bert))
    torch.manual_seed(0)
    return LxmertStyle(tower, TinyImageTower(), 3, LxmertStyle.Config(proj_dim=8, path=lx)).eval()


def region_batch(model: LxmertStyle, has_image=(1, 0, 1)) -> Batch:
    g = torch.Generator().manual_seed(0)
    b, r = len(has_image), 4
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]][:b], dtype=torch.bool)
    x0y0 = torch.rand(b, r, 2, generator=g) * 0.5
    return Batch(index=torch.arange(b), labels=torch.zeros(b, dtype=torch.long),
                 has_image=torch.tensor(has_image, dtype=torch.bool), text_ids=torch.arange(b),
                 image_ids=torch.arange(b),
                 text_inputs=model.text_tower.tokenize(["a post about thing 3", "no picture here", "a fresh post"][:b]),
                 regions=torch.randn(b, r, 8, generator=g), region_boxes=torch.cat([x0y0, x0y0 + 0.5], -1),
                 region_mask=mask)


def test_hf_path_matches_lxmert_models_own_forward(tiny_lxmert):
    model = hf_model(tiny_lxmert)
    batch = region_batch(model, has_image=(1, 1, 1))
    batch.region_mask[1, :2] = True
    out = model(batch)
    ti = batch.text_inputs
    ref = model.lxmert(input_ids=ti["input_ids"], attention_mask=ti["attention_mask"],
                       token_type_ids=ti["token_type_ids"], visual_feats=batch.regions, visual_pos=batch.region_boxes,
                       visual_attention_mask=batch.region_mask.float())
    assert torch.allclose(out.fused, ref.pooled_output, atol=1e-5)
    assert out.logits.shape == (3, 3) and out.text_embeds.shape == out.image_embeds.shape == (3, 8)
    assert model.pretrained_parameters() and not offline_model().pretrained_parameters()


def test_hf_path_posts_without_regions_read_the_learned_stand_in(tiny_lxmert):
    model = hf_model(tiny_lxmert)
    batch = region_batch(model)
    base = model(batch)
    other = Batch(**{**batch.__dict__, "regions": batch.regions + 5.0})
    out = model(other)
    assert torch.allclose(out.logits[1], base.logits[1], atol=1e-6)         # no image: its zeros are not read
    assert not torch.allclose(out.logits[0], base.logits[0], atol=1e-5)
    model.no_region.data += 1.0
    assert not torch.allclose(model(batch).logits[1], base.logits[1], atol=1e-5)
    pairs = ItmPairs(torch.tensor([0, 2, 0]), torch.tensor([0, 2, 2]), torch.tensor([1, 1, 0]))
    assert model(batch, itm=pairs).itm_logits.shape == (3, 2)
    # a batch where no post has regions may carry zero-width features
    empty = Batch(**{**batch.__dict__, "has_image": torch.zeros(3, dtype=torch.bool),
                     "regions": torch.zeros(3, 1, 0), "region_boxes": torch.zeros(3, 1, 4),
                     "region_mask": torch.zeros(3, 1, dtype=torch.bool)})
    assert torch.isfinite(model(empty).logits).all()
    wrong = Batch(**{**batch.__dict__, "regions": torch.zeros(3, 4, 5)})
    with pytest.raises(ValueError, match="visual_feat_dim=8"):
        model(wrong)


def test_hf_path_refuses_a_tokenizer_outside_lxmerts_vocabulary(tiny_lxmert):
    with pytest.raises(ValueError, match="vocabulary"):
        hf_model(tiny_lxmert, text_tower=TinyTextTower(vocab=512))


def write_region_files(folder, n: int, skip=(4, 10)) -> None:
    """Region files for the toy images p0..p{n-1}: the colour (i % 3) shows in the features; every format."""
    from safetensors.numpy import save_file
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        if i in skip:
            continue
        r = 1 + i % 4
        feats = rng.normal(0, 0.1, (r, 8)).astype(np.float32)
        feats[:, i % 3] += 1.0
        boxes = np.tile(np.array([0.1, 0.1, 0.9, 0.9], dtype=np.float32), (r, 1))
        if i % 3 == 0:
            save_file({"features": feats, "boxes": boxes}, str(folder / f"p{i}.safetensors"))
        elif i % 3 == 1:
            np.savez(folder / f"p{i}.npz", features=feats, boxes=boxes)
        else:
            np.save(folder / f"p{i}.npy", feats)


def test_hf_path_trains_end_to_end_and_predicts(tmp_path, tiny_lxmert):
    lx, bert = tiny_lxmert
    csv_path = write_toy_csv(tmp_path, n=30)
    write_region_files(tmp_path / "regions", 30)
    over = tiny_overrides(tmp_path, csv_path) + [
        "name=hf", "model.name=lxmert", f"model.path={lx}", f"model.region_features={tmp_path}/regions",
        "text_encoder.name=hf-text", f"text_encoder.path={bert}", "text_encoder.trainable=false",
        "train.epochs=1", "objectives.itc.enabled=true", "objectives.itm.enabled=true", "train.threads=1"]
    result = train(load_config(None, over))
    assert result.history and all(np.isfinite(h["train_loss"]) for h in result.history)
    predictor = mmpost.load(result.run_dir)
    from transformers import LxmertModel
    fresh = LxmertModel.from_pretrained(lx).state_dict()
    tuned = predictor.model.lxmert.state_dict()
    assert any(not torch.equal(fresh[k], tuned[k]) for k in fresh)      # the fine-tuned weights came back
    imgs = tmp_path / "imgs"
    posts = [mmpost.Post(id="a", text="a post about thing 1", images=[str(imgs / "p0.png")]),
             mmpost.Post(id="b", text="no picture here"),
             mmpost.Post(id="c", text="a post", images=[str(imgs / "p4.png")])]       # no region file
    probs, used = predictor.predict_with_mask(posts)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert used.tolist() == [True, False, False]


# ---- offline end to end -------------------------------------------------------------------------------------

@pytest.mark.parametrize("aux,extra", [("base", []), ("itc", []), ("itm", []), ("itc+itm", []),
                                       ("itc+itm", ["model.contrast=fused", "objectives.itm.negatives=hard"])])
def test_offline_trains_with_every_aux_setting_and_predicts(tmp_path, aux, extra):
    from mmpost.config import AUX_SETTINGS
    over = tiny_overrides(tmp_path, write_toy_csv(tmp_path, n=30)) + AUX_SETTINGS[aux] + extra + [
        "name=off", "model.name=lxmert", "model.heads=2", "model.layers=1", "train.epochs=2",
        "train.threads=1"]
    result = train(load_config(None, over))
    assert len(result.history) == 2
    if "itm" in aux:
        assert all(h["train_itm"] > 0 for h in result.history)
    if "itc" in aux:
        assert all(h["train_itc"] > 0 for h in result.history)
    probs = mmpost.load(result.run_dir).predict([
        mmpost.Post(id="x", text="a post about thing 1"),
        mmpost.Post(id="y", text="hello", images=[str(tmp_path / "imgs" / "p0.png")])])
    assert len(probs) == 2 and set(probs[0]["probs"]) == {"red", "blue", "green"}
    assert sum(probs[1]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
