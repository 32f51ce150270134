"""Training without a YAML: ``mmpost train posts.csv --text ... --label ...`` and, from a notebook,
``mmpost.fit(df)`` / ``model.predict(df)`` / ``model.evaluate(df)`` — the same code path as the CLI."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

import mmpost
from mmpost.cli import app
from tests.conftest import write_toy_csv

TINY = {"text_encoder.name": "tiny-text", "image_encoder.name": "tiny-image", "model.hidden": 16,
        "model.proj_dim": 8, "train.epochs": 2, "train.batch_size": 8, "progress": "false"}


def test_train_from_a_data_file_without_yaml(tmp_path):
    csv_path = write_toy_csv(tmp_path, n=45)
    args = ["train", csv_path, "--text", "body", "--image", "picture", "--image-root", str(tmp_path / "imgs"),
            "--label", "colour=mood", "--id", "post_id"]
    args += [f"{k}={v}" for k, v in TINY.items()] + [f"out_dir={tmp_path}/runs", f"cache_dir={tmp_path}/cache",
                                                      "name=cli"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "cli"
    saved = OmegaConf.load(run / "config.yaml")                    # the resolved recipe, ready to repeat
    assert saved.task == "colour" and saved.data.columns.labels.colour == "mood"
    assert json.loads((run / "labels.json").read_text())["tasks"]["colour"]["labels"] == ["blue", "green", "red"]
    again = CliRunner().invoke(app, ["train", str(run / "config.yaml"), "name=again", "train.epochs=1"])
    assert again.exit_code == 0, again.output
    missing = CliRunner().invoke(app, ["train", csv_path, "--text", "body"])
    assert missing.exit_code == 2 and "--label" in missing.output


def test_fit_predict_evaluate_on_dataframes(tmp_path):
    write_toy_csv(tmp_path, n=60)
    df = pd.read_csv(tmp_path / "posts.csv")
    model = mmpost.fit(df.iloc[:45], text="body", image="picture", image_root=tmp_path / "imgs", label="mood",
                       id="post_id", out_dir=tmp_path / "runs", name="nb", cache_dir=str(tmp_path / "cache"),
                       **{k.replace(".", "__"): v for k, v in TINY.items()})
    new = df.iloc[45:].drop(columns=["mood"])
    out = model.predict(new)
    assert isinstance(out, pd.DataFrame) and len(out) == 15
    assert list(out["id"]) == list(new["post_id"]) and {"p_red", "p_green", "p_blue", "label"} <= set(out.columns)
    assert out[["p_blue", "p_green", "p_red"]].sum(axis=1).round(4).eq(1.0).all() and out["image_used"].all()
    records = model.predict([mmpost.Post(id=str(r.post_id), text=r.body,
                                         images=[str(tmp_path / "imgs" / r.picture)]) for r in new.itertuples()])
    assert [r["probs"]["red"] for r in records] == pytest.approx(list(out["p_red"]), abs=1e-6)
    metrics = model.evaluate(df.iloc[45:])
    assert metrics["all"]["mood"]["n"] == 15 and 0 <= metrics["all"]["mood"]["weighted_f1"] <= 1
    with pytest.raises(FileExistsError):
        mmpost.fit(df, text="body", label="mood", out_dir=tmp_path / "runs", name="nb")
