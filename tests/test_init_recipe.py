"""``mmpost init``: the id, text, image and label columns of three differently laid-out files are guessed from
their content, and the proposed recipe trains."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmpost.apps.init_recipe import propose_recipe
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.data.column_guess import guess_columns

SENTENCES = ["what a lovely morning at the beach with friends", "the train was late again this cold monday",
             "cannot believe this happened at the game last night", "new phone arrived and the screen is huge",
             "my cat knocked the plant over for the third time"]


def _image(path, value):
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_a_csv_with_usual_names(tmp_path):
    (tmp_path / "images").mkdir()
    rows = ["id,text,image,label"]
    for i in range(60):
        _image(tmp_path / "images" / f"p{i}.jpg", i)
        rows.append(f"p{i},{SENTENCES[i % 5]} {i},images/p{i}.jpg,{['pos', 'neg', 'neu'][i % 3]}")
    (tmp_path / "posts.csv").write_text("\n".join(rows) + "\n")
    g = guess_columns(tmp_path / "posts.csv")
    assert (g.id.column, g.text.column, g.image.column) == ("id", "text", "image")
    assert [x.column for x in g.labels] == ["label"] and g.image_pattern is None


def test_a_tab_separated_txt_with_extensionless_image_ids_and_two_labels(tmp_path):
    pics = tmp_path / "media" / "pics"
    pics.mkdir(parents=True)
    rows = ["tweet_id\tcreated\ttweet\tphoto\tsentiment\tsarcasm"]
    for i in range(80):
        _image(pics / f"{1000 + i}{'.png' if i % 2 else '.jpg'}", i)
        rows.append(f"{1000 + i}\t2024-01-{1 + i % 28:02d}\t{SENTENCES[i % 5]} #{i}\t{1000 + i}\t"
                    f"{['positive', 'negative'][i % 2]}\t{['yes', 'no'][i % 3 == 0]}")
    (tmp_path / "tweets.txt").write_text("\n".join(rows) + "\n")
    g = guess_columns(tmp_path / "tweets.txt")
    assert g.id.column == "tweet_id" and g.text.column == "tweet"
    assert g.image.column == "photo" and g.image_pattern == "{}.*" and g.image_root == pics
    assert [x.column for x in g.labels] == ["sentiment", "sarcasm"]        # 28 dates: too many values for a label
    assert g.csv_options == {"delimiter": "\t"} and g.format == "csv"


def test_jsonl_without_id_or_images_says_so(tmp_path):
    lines = [{"post": f"{SENTENCES[i % 5]} and more words {i}", "likes": str(i * 7), "class": "ab"[i % 2]}
             for i in range(50)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    g = guess_columns(tmp_path / "p.jsonl")
    assert g.text.column == "post" and g.image is None
    assert g.id is not None and g.id.column == "likes"      # distinct and short: proposed, and printed with why
    assert [x.column for x in g.labels] == ["class"]
    assert any("text-only" in n for n in g.notes)


def test_the_proposed_recipe_trains_and_is_not_overwritten(tmp_path):
    test_a_csv_with_usual_names(tmp_path)
    res = CliRunner().invoke(app, ["init", str(tmp_path / "posts.csv")])
    assert res.exit_code == 0, res.output
    assert "label: 'label' (task label): 3 distinct values" in res.output and "posts.yaml" in res.output
    recipe = tmp_path / "posts.yaml"
    assert recipe.read_text().startswith("# Proposed by `mmpost init posts.csv`")
    res = CliRunner().invoke(app, ["init", str(tmp_path / "posts.csv")])
    assert res.exit_code != 0 and "--force" in res.output
    cfg = load_config(recipe, ["text_encoder.name=tiny-text", "image_encoder.name=tiny-image", "model.hidden=16",
                               "model.proj_dim=8", "train.epochs=1", f"out_dir={tmp_path}/runs",
                               f"cache_dir={tmp_path}/cache", "progress=false"])
    assert cfg.task == "label" and cfg.data.columns.image == "image"
    result = train(cfg)
    assert (result.run_dir / "model.safetensors").exists()


def test_a_recipe_is_not_a_data_file(tmp_path):
    (tmp_path / "r.yaml").write_text("task: x\n")
    with pytest.raises(ValueError, match="already a recipe"):
        propose_recipe(tmp_path / "r.yaml")
