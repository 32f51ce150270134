"""ITRp's loop and app on a tiny toy set (tiny towers, 60 posts whose label is the image colour)."""
from __future__ import annotations

import json
from dataclasses import replace

import faiss
import numpy as np
import pytest
import torch

from mmpost.apps import relate as relate_app
from mmpost.apps.build import build_tower
from mmpost.apps.prepare import prepare
from mmpost.config import load_config
from mmpost.data.post import Post
from mmpost.relate.features import embed_posts, relation_features
from mmpost.relate.loop import RelateConfig, kmeans_baseline, predict_clusters, run_itrp
from tests.conftest import tiny_overrides, write_toy_csv


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny data: one core for torch and faiss (settings restored afterwards)."""
    before_torch, before_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before_torch)
    faiss.omp_set_num_threads(before_faiss)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(run config, prepared data) for the toy CSV: task `mood`, 3 colours, splits 36/12/12."""
    tmp = tmp_path_factory.mktemp("relate")
    csv = write_toy_csv(tmp)
    cfg = load_config(None, tiny_overrides(tmp, csv))
    return cfg, prepare(cfg.data, "mood", progress=False)


def towers(cfg):
    torch.manual_seed(0)
    return build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def small_cfg(**kw) -> RelateConfig:
    base = dict(task="mood", k=3, subset_size=12, epochs=2, batch_size=8, embed_batch_size=16, head_lr=1e-2,
                text_lr=1e-2, image_lr=1e-2, seed=0)
    base.update(kw)
    return RelateConfig(**base)


# --------------------------------------------------------------------------------------------------- config


def test_task_defaults_follow_the_paper():
    text = RelateConfig(task="text_represented").resolved()
    image = RelateConfig(task="image_adds").resolved()
    rel = RelateConfig(task="relation").resolved()
    assert (text.k, text.sampler, text.finetune) == (2, "under", "text")
    assert (image.k, image.sampler, image.finetune) == (2, "over", "image")
    assert rel.k == 4
    assert (text.head_lr, text.text_lr, text.image_lr, text.batch_size) == (1e-4, 2e-5, 3e-3, 32)
    assert RelateConfig(task="text_represented", sampler="over").resolved().sampler == "over"
    assert RelateConfig(task="my_task").resolved().k == 2                  # any other task: k=2, under, text
    with pytest.raises(ValueError):
        RelateConfig(finetune="audio")


# --------------------------------------------------------------------------------------------------- features


def test_features_concat_and_zero_image_part(toy, tmp_path):
    cfg, data = toy
    text_tower, image_tower = towers(cfg)
    posts = data.splits["train"][:5] + [Post(id="noimg", text="a post about thing 3")]
    cached = relation_features(posts, text_tower, image_tower, cache_dir=tmp_path / "c")
    assert cached.shape == (6, text_tower.dim + image_tower.dim) and cached.dtype == np.float32
    assert np.all(cached[-1, text_tower.dim:] == 0) and np.any(cached[-1, :text_tower.dim] != 0)
    assert np.any(cached[0, text_tower.dim:] != 0)
    # live towers (no cache) give the same numbers while untrained
    live = embed_posts(posts, text_tower, image_tower, live=("text", "image"), cache_dir=tmp_path / "c")
    np.testing.assert_allclose(live, cached, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------- loop


@pytest.mark.parametrize("finetune", ["image", "text"])
def test_run_itrp_resets_head_and_trains_only_the_chosen_tower(toy, tmp_path, finetune):
    cfg, data = toy
    train = data.splits["train"]
    text_tower, image_tower = towers(cfg)
    text_before, image_before = params(text_tower), params(image_tower)
    resets: list[tuple[list[torch.Tensor], torch.optim.Optimizer, int]] = []   # (head at reset, optimiser, state)
    final_heads: list[list[torch.Tensor]] = []                                 # head after each round's training
    heads: list[torch.nn.Module] = []

    def on_head_reset(head, opt):
        heads.append(head)
        resets.append((params(head), opt, len(opt.state)))

    def on_round(entry):
        final_heads.append(params(heads[-1]))

    result = run_itrp(train, text_tower, image_tower, small_cfg(finetune=finetune), cache_dir=tmp_path / "cache",
                      on_round=on_round, on_head_reset=on_head_reset)
    n_rounds = 2 * int(np.ceil(len(train) / 12))
    assert len(result.rounds) == n_rounds and n_rounds >= 4       # several subsets per epoch, 2 epochs
    assert [(r.epoch, r.round) for r in result.rounds] == [(e, r) for e in range(2) for r in range(n_rounds // 2)]
    assert sum(r.n for r in result.rounds) == 2 * len(train)
    for r in result.rounds:
        assert sum(r.sizes) == r.n and min(r.sizes) >= 1 and len(r.sizes) == 3
        assert 0.0 <= r.share <= 1.0 and r.cluster_seconds > 0 and r.round_seconds >= r.cluster_seconds
        assert np.isclose(r.share, r.cluster_seconds / r.round_seconds)
        assert np.isfinite(r.loss)
    assert 0.0 < result.cluster_share < 1.0

    assert len(resets) == len(final_heads) == n_rounds
    assert len({id(opt) for _, opt, _ in resets}) == n_rounds        # a new head optimiser every round ...
    assert all(state == 0 for _, _, state in resets)                   # ... with no Adam moments carried over
    for i in range(1, n_rounds):
        assert not same(resets[i][0], final_heads[i - 1])              # the head is re-initialised at each start
    assert all(not same(resets[i][0], final_heads[i]) for i in range(n_rounds))   # and trained within the round

    trained, frozen = (image_tower, text_tower) if finetune == "image" else (text_tower, image_tower)
    trained_before, frozen_before = ((image_before, text_before) if finetune == "image"
                                     else (text_before, image_before))
    assert same(params(frozen), frozen_before)
    assert not same(params(trained), trained_before)
    assert all(not p.requires_grad for p in frozen.parameters())


def test_run_itrp_is_deterministic(toy, tmp_path):
    cfg, data = toy
    out = []
    for _ in range(2):
        text_tower, image_tower = towers(cfg)
        rc = small_cfg(finetune="image", epochs=1)
        res = run_itrp(data.splits["train"], text_tower, image_tower, rc, cache_dir=tmp_path / "cache")
        ids = predict_clusters(data.splits, text_tower, image_tower, rc, cache_dir=tmp_path / "cache")
        out.append(([r.sizes for r in res.rounds], [r.loss for r in res.rounds], ids))
    assert out[0][0] == out[1][0] and out[0][1] == out[1][1]
    for split in ("train", "dev", "test"):
        np.testing.assert_array_equal(out[0][2][split], out[1][2][split])
        assert out[0][2][split].shape == (len(data.splits[split]),)


def test_kmeans_baseline_clusters_every_split(toy, tmp_path):
    cfg, data = toy
    text_tower, image_tower = towers(cfg)
    ids = kmeans_baseline(data.splits, text_tower, image_tower, small_cfg(), cache_dir=tmp_path / "cache")
    assert set(ids) == {"train", "dev", "test"}
    assert set(np.unique(ids["train"])) == {0, 1, 2}
    assert all(ids[s].max() < 3 for s in ids)


# --------------------------------------------------------------------------------------------------- app


class Watched(dict):
    """A label dict that records every read into a shared event list."""

    def __init__(self, d, events):
        super().__init__(d)
        self.events = events

    def __getitem__(self, key):
        self.events.append("test-label")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.events.append("test-label")
        return super().get(key, default)

    def __contains__(self, key):
        self.events.append("test-label")
        return super().__contains__(key)


def test_relate_fits_mapping_on_dev_and_reads_test_labels_only_to_score(toy, tmp_path, monkeypatch):
    cfg, data = toy
    events: list[str] = []
    fitted: list[tuple[np.ndarray, np.ndarray]] = []
    real_fit = relate_app.fit_mapping

    def spy_fit(clusters, labels, k, n_labels):
        events.append("fit_mapping")
        fitted.append((np.asarray(clusters), np.asarray(labels)))
        return real_fit(clusters, labels, k, n_labels)

    monkeypatch.setattr(relate_app, "fit_mapping", spy_fit)
    test_posts = [Post(id=p.id, text=p.text, images=list(p.images), labels=Watched(p.labels, events), meta=p.meta)
                  for p in data.splits["test"]]
    watched = type(data)(task=data.task, labels=data.labels, splits={**data.splits, "test": test_posts},
                         notes=list(data.notes))
    relate_app.relate(cfg, tmp_path / "out", relate_cfg=small_cfg(finetune="image", epochs=1), data=watched,
                      towers=towers(cfg), progress=False)
    dev_y = np.array([data.labels.index(p.labels["mood"]) for p in data.splits["dev"]])
    assert len(fitted) == len(relate_app.METHODS) and all(np.array_equal(y, dev_y) for _, y in fitted)
    assert all(c.shape == (len(data.splits["dev"]),) for c, _ in fitted)
    assert "test-label" in events
    assert events.index("test-label") > max(i for i, e in enumerate(events) if e == "fit_mapping")


def test_relate_end_to_end_writes_report_and_is_reproducible(toy, tmp_path):
    cfg, data = toy
    rc = small_cfg(finetune="image")
    m1 = relate_app.relate(cfg, tmp_path / "a", relate_cfg=rc, data=data, towers=towers(cfg), progress=False)
    m2 = relate_app.relate(replace(cfg, relate=rc), tmp_path / "b", towers=towers(cfg),   # settings from cfg.relate,
                           progress=False)                                                   # posts via prepare()
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for method in relate_app.METHODS:
        scores = saved[method]["test"]
        assert set(scores) >= {"f1_weighted", "accuracy", "nmi", "ari", "n"}
        assert scores["n"] == len(data.splits["test"]) and 0.0 <= scores["f1_weighted"] <= 1.0
        assert m1[method] == m2[method]                           # same seed → same metrics
    assert saved["mapping_fitted_on"] == "dev"
    assert len(saved["timing"]["rounds"]) == 2 * int(np.ceil(len(data.splits["train"]) / 12))
    report = (tmp_path / "a" / "report.md").read_text()
    assert "| ITRp |" in report and "| ITRp head h |" in report and "| k-means (frozen features) |" in report
    assert "Cluster words" in report and "share" in report
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "a").iterdir())


def test_live_image_pooled_has_gradients_and_zero_rows_without_image(toy):
    from mmpost.relate.features import image_part, live_image_pooled

    cfg, data = toy
    _, image_tower = towers(cfg)
    image_tower.train()
    for p in image_tower.parameters():
        p.requires_grad_(True)
    posts = data.splits["train"][:3] + [Post(id="noimg", text="x"), Post(id="bad", text="y", images=["/nope.png"])]
    pooled = live_image_pooled(image_tower, posts)
    assert pooled.shape == (5, image_tower.dim) and pooled.requires_grad
    assert torch.all(pooled[3:] == 0)
    pooled.sum().backward()
    assert image_tower.conv.weight.grad is not None
    image_tower.eval()
    np.testing.assert_allclose(pooled[:3].detach().numpy(), image_part(posts[:3], image_tower), rtol=1e-5, atol=1e-6)


def test_zero_epochs_and_partial_finetuning(toy, tmp_path):
    cfg, data = toy
    text_tower, image_tower = towers(cfg)
    res = run_itrp(data.splits["train"], text_tower, image_tower, small_cfg(epochs=0), cache_dir=tmp_path / "c")
    assert res.rounds == [] and res.head is None and res.cluster_share == 0.0
    # only the text tower's mixing layer is marked trainable: its embedding table must stay as it was
    text_tower, image_tower = towers(cfg)
    for p in text_tower.parameters():
        p.requires_grad_(False)
    for p in text_tower.mix.parameters():
        p.requires_grad_(True)
    emb_before, mix_before = params(text_tower.emb), params(text_tower.mix)
    run_itrp(data.splits["train"], text_tower, image_tower, small_cfg(finetune="text", epochs=1),
             cache_dir=tmp_path / "c")
    assert same(params(text_tower.emb), emb_before) and not same(params(text_tower.mix), mix_before)


def test_relate_without_test_split_reports_no_scores(toy, tmp_path):
    cfg, data = toy
    no_test = type(data)(task=data.task, labels=data.labels, splits={**data.splits, "test": []})
    metrics = relate_app.relate(cfg, tmp_path / "o", relate_cfg=small_cfg(finetune="image", epochs=1), data=no_test,
                                towers=towers(cfg), progress=False)
    assert all(metrics[m]["test"] is None for m in relate_app.METHODS)
    assert "| test | ITRp | – |" in (tmp_path / "o" / "report.md").read_text()


def test_cli_relate_prints_rounds_and_scores(tmp_path):
    from typer.testing import CliRunner

    from mmpost.cli import app
    from tests.conftest import tiny_overrides, write_toy_csv
    csv_path = write_toy_csv(tmp_path, n=60)
    over = [o for o in tiny_overrides(tmp_path, csv_path) if not o.startswith("text_encoder.trainable")]
    res = CliRunner().invoke(app, ["relate", *over, "--task", "mood", "--k", "3", "--finetune", "none",
                                   "--subset-size", "20", "--epochs", "1", "--out", str(tmp_path / "rel")])
    assert res.exit_code == 0, res.output
    assert res.output.count("epoch 1 round") == 2 and "epoch 1 round 2: 18 posts" in res.output
    assert "k-means on frozen features" in res.output and "clustering took" in res.output
    assert (tmp_path / "rel" / "metrics.json").exists() and (tmp_path / "rel" / "report.md").exists()
    from PIL import Image
    for m in ("itrp", "kmeans"):
        with Image.open(tmp_path / "rel" / f"cluster_words_{m}.png") as im:
            assert im.width > 300 and np.unique(np.asarray(im.convert("L"))).size > 10   # drawn, not blank


def test_cli_relate_trains_on_separate_unlabelled_posts(tmp_path):
    """The paper's setting: train on unlabelled posts (Twitter100k there), map and score on a labelled recipe."""
    from typer.testing import CliRunner

    from mmpost.cli import app
    from tests.conftest import tiny_overrides, write_toy_csv
    csv_path = write_toy_csv(tmp_path, n=30)
    (tmp_path / "u").mkdir()
    unlabelled_csv = write_toy_csv(tmp_path / "u", n=44, seed=3)
    unlabelled = tmp_path / "u" / "unlabelled.yaml"      # a recipe whose data section describes the posts
    unlabelled.write_text(f"data:\n  source: manifest\n  path: {unlabelled_csv}\n  columns:\n    id: post_id\n"
                          f"    text: body\n    image: picture\n    image_root: {tmp_path / 'u' / 'imgs'}\n")
    over = [o for o in tiny_overrides(tmp_path, csv_path) if not o.startswith("text_encoder.trainable")]
    res = CliRunner().invoke(app, ["relate", *over, "--task", "mood", "--k", "3", "--finetune", "none",
                                   "--subset-size", "20", "--epochs", "1", "--unlabelled", str(unlabelled),
                                   "--out", str(tmp_path / "rel")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "rel" / "metrics.json").read_text())
    assert saved["split_sizes"]["train"] == 44 and saved["train_from"] == "unlabelled posts given separately"
    assert res.output.count("epoch 1 round") == 3     # 44 posts in subsets of about 20
