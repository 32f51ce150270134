"""The whole supervised path with tiny random towers: import → validate → features/cache → train → report → load."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import mmpost
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.data.validate import DataValidationError
from tests.conftest import tiny_overrides, write_toy_csv

KEYS = {"weighted_f1", "macro_f1", "accuracy", "mcc", "n", "temperature", "ece_raw", "ece", "nll_raw", "nll"}


def test_train_writes_a_complete_run_folder(tmp_path, toy_csv):
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=r1", "objectives.itc.enabled=true",
                                                                   "objectives.itm.enabled=true"])
    result = train(cfg)
    run = result.run_dir
    for f in ("model.safetensors", "config.yaml", "labels.json", "metrics.json", "report.md", "log.csv"):
        assert (run / f).exists(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for name, split in metrics.items():
        assert set(split) == {"mood"}
        assert set(split["mood"]) == (KEYS | {"weighted_f1_ci95"} if name == "test" else KEYS)
        assert all(0.0 <= split["mood"][k] <= 1.0 for k in ("weighted_f1", "macro_f1", "accuracy"))
    log = (run / "log.csv").read_text().splitlines()
    for column in ("train_ce", "train_itc", "train_itm", "train_temperature", "dev_weighted_f1"):
        assert column in log[0]
    assert len(log) == 1 + len(result.history)
    lo, hi = metrics["test"]["mood"]["weighted_f1_ci95"]
    assert 0.0 <= lo <= metrics["test"]["mood"]["weighted_f1"] <= hi <= 1.0
    report = (run / "report.md").read_text()
    assert "precision" in report and "majority" in report and "95% CI" in report
    assert "chosen on dev" in report and "confusion_test.png" in report
    assert (run / "confusion_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    probs = mmpost.load(run).predict([mmpost.Post(id="x", text="a post about thing 1"),
                                      mmpost.Post(id="y", text="hello", images=[str(tmp_path / "imgs" / "p0.png")])])
    assert len(probs) == 2 and set(probs[0]["probs"]) == {"red", "blue", "green"}
    assert sum(probs[1]["probs"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("negatives", ["random", "hard"])
def test_itm_negative_strategies_train(tmp_path, toy_csv, negatives):
    over = tiny_overrides(tmp_path, toy_csv) + ["name=n", "objectives.itc.enabled=true", "objectives.itm.enabled=true",
                                                f"objectives.itm.negatives={negatives}", "train.epochs=2"]
    result = train(load_config(None, over))
    assert all(h["train_itm"] > 0 for h in result.history)


def test_same_seed_same_metrics(tmp_path, toy_csv):
    a = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=a", "objectives.itm.enabled=true"]))
    b = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=b", "objectives.itm.enabled=true"]))
    assert a.metrics == b.metrics
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_frozen_towers_learn_from_cached_features(tmp_path, toy_csv):
    over = tiny_overrides(tmp_path, toy_csv) + ["text_encoder.trainable=false", "train.epochs=30",
                                                "train.patience=30", "name=frozen"]
    result = train(load_config(None, over))
    assert any((tmp_path / "cache").rglob("shard-*.npy"))
    assert result.metrics["test"]["mood"]["weighted_f1"] > result.baseline["weighted_f1"]


def test_bad_rows_stop_with_one_report_or_are_skipped(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    extra = ["bad1,text with a corrupt image,broken.png,red", "bad2,text with a missing image,gone.png,blue",
             "bad3,,p1.png,green"]
    csv_path = write_toy_csv(tmp_path, extra_rows=extra)
    with pytest.raises(DataValidationError) as err:
        train(load_config(None, tiny_overrides(tmp_path, csv_path) + ["name=stop"]))
    report = str(err.value)
    for needle in ("posts.csv:61", "bad_image", "posts.csv:62", "missing_image", "posts.csv:63", "empty_text"):
        assert needle in report
    result = train(load_config(None, tiny_overrides(tmp_path, csv_path) + ["name=skip", "data.policy=skip"]))
    notes = (result.run_dir / "report.md").read_text()
    assert "skipped 3" in notes


def test_cli_train_and_evaluate(tmp_path, toy_csv):
    runner = CliRunner()
    over = tiny_overrides(tmp_path, toy_csv) + ["name=cli"]
    cfg_file = tmp_path / "recipe.yaml"
    cfg_file.write_text("train:\n  epochs: 2\n")
    res = runner.invoke(app, ["train", str(cfg_file), *over])
    assert res.exit_code == 0, res.output
    assert "weighted F1" in res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path / "runs" / "cli"), "--data", toy_csv])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "runs" / "cli" / "evaluations" / "posts" / "metrics.json").read_text())
    assert m["all"]["mood"]["n"] == 60


def test_cli_explains_bad_overrides(tmp_path, toy_csv):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: mood\n")
    res = CliRunner().invoke(app, ["train", str(recipe), "train.epochs=notanumber"])
    assert res.exit_code == 2
    assert "epochs" in res.output and "notanumber" in res.output
    res = CliRunner().invoke(app, ["train", toy_csv])        # a data file: the columns to read are asked for
    assert res.exit_code == 2 and "--text" in res.output


def test_unseen_layout_multi_image_posts_with_ids_mapped_through_a_pattern(tmp_path):
    """A layout mmpost has never seen: images given as ids ("3|17"), mapped to files by a pattern."""
    from PIL import Image

    from tests.conftest import COLOURS
    folder = tmp_path / "media"
    folder.mkdir()
    names = list(COLOURS)
    rows = ["uid\tcaption\tmedia_ids\tcolour"]
    for i in range(45):
        c = names[i % 3]
        for k in (2 * i, 2 * i + 1):
            Image.new("RGB", (24, 24), COLOURS[c]).save(folder / f"IMG_{k:04d}.jpg")
        rows.append(f"u{i}\tsome words {i % 5}\t{2 * i}|{2 * i + 1}\t{c}")
    tsv = tmp_path / "export.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    over = [
        "task=colour", "data.source=manifest", f"data.path={tsv}", "data.columns.id=uid",
        "data.columns.text=caption", "data.columns.image=media_ids", "data.columns.image_sep='|'",
        "data.columns.image_pattern=IMG_{:0>4}.jpg", f"data.columns.image_root={folder}",
        "data.columns.labels.colour=colour", "data.split_fractions=[0.6,0.2,0.2]",
        "text_encoder.name=tiny-text", "image_encoder.name=tiny-image", "text_encoder.trainable=false",
        "train.epochs=40", "train.patience=40", "train.lr=1e-2", "model.hidden=16", "model.proj_dim=8",
        f"out_dir={tmp_path}/runs", f"cache_dir={tmp_path}/cache", "progress=false", "name=unseen",
    ]
    result = train(load_config(None, over))
    posts_imgs = json.loads((result.run_dir / "labels.json").read_text())
    assert posts_imgs["tasks"]["colour"]["labels"] == ["blue", "green", "red"]
    assert result.metrics["test"]["colour"]["weighted_f1"] > result.baseline["weighted_f1"]


def test_cli_predict_writes_probabilities_and_validate_reports(tmp_path, toy_csv):
    runner = CliRunner()
    over = tiny_overrides(tmp_path, toy_csv) + ["name=p"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train:\n  epochs: 1\n")
    assert runner.invoke(app, ["train", str(recipe), *over]).exit_code == 0
    new = tmp_path / "new.csv"
    new.write_text("post_id,body,picture,mood\n"
                   "n1,a fresh post,p3.png,red\nn2,no picture here,,\nn3,gone,missing.png,\n")
    out = tmp_path / "preds.jsonl"
    res = runner.invoke(app, ["predict", str(tmp_path / "runs" / "p"), "--data", str(new), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["n1", "n2", "n3"]
    assert [r["image_used"] for r in rows] == [True, False, False]
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-4 and r["label"] in r["probs"] for r in rows)
    assert "2 predicted without an image" in res.output
    res = runner.invoke(app, ["validate", str(recipe), *over])
    assert res.exit_code == 0 and "no problems" in res.output
    res = runner.invoke(app, ["validate", str(recipe), *over, f"data.path={new}"])
    assert res.exit_code == 3 and "missing_image" in res.output and "new.csv:3" in res.output


def test_resume_after_an_interruption_reaches_the_same_metrics(tmp_path, toy_csv, monkeypatch):
    import mmpost.engine.loop as loop
    over = tiny_overrides(tmp_path, toy_csv) + ["objectives.itc.enabled=true", "objectives.itm.enabled=true",
                                                "train.epochs=4",
                                                "train.patience=10", "model.dropout=0.3"]
    whole = train(load_config(None, over + ["name=whole"]))
    real = loop.train_epoch
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, over + ["name=cut"]))
    monkeypatch.setattr(loop, "train_epoch", real)
    cut = tmp_path / "runs" / "cut"
    assert not (cut / "metrics.json").exists() and (cut / "checkpoints" / "last.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train(load_config(None, over + ["name=cut"]))
    res = CliRunner().invoke(app, ["train", "--resume", str(cut), "progress=false"])
    assert res.exit_code == 0, res.output
    resumed = json.loads((cut / "metrics.json").read_text())
    assert resumed == json.loads((whole.run_dir / "metrics.json").read_text())
    assert (cut / "log.csv").read_text() == (whole.run_dir / "log.csv").read_text()


@pytest.mark.parametrize("aux", [[], ["objectives.itc.enabled=true"], ["objectives.itm.enabled=true"],
                                 ["objectives.itm.enabled=true", "objectives.itm.negatives=hard"],
                                 ["objectives.itc.enabled=true", "objectives.itm.enabled=true",
                                  "objectives.itm.negatives=hard"]])
def test_att_trains_with_every_aux_setting_and_predicts(tmp_path, toy_csv, aux):
    over = tiny_overrides(tmp_path, toy_csv) + ["model.name=att", "model.heads=4", "train.epochs=2", "name=att",
                                                "text_encoder.trainable=false", *aux]
    result = train(load_config(None, over))
    assert set(result.metrics["test"]["mood"]) >= KEYS
    for part in ("itc", "itm"):
        assert (f"train_{part}" in result.history[0]) == any(part in a for a in aux)
    probs = mmpost.load(result.run_dir).predict([mmpost.Post(id="x", text="thing 2",
                                                             images=[str(tmp_path / "imgs" / "p1.png")])])
    assert sum(probs[0]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
