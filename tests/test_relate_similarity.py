"""The Spearman analysis of ITC similarity against the 4-level relation score."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmpost.data.post import Post
from mmpost.relate.similarity import cosine_similarity, relation_score, relation_scores, spearman_by_level
from tests.conftest import tiny_overrides, write_toy_csv


@pytest.mark.parametrize("labels, score", [
    ({"relation": "00"}, 1), ({"relation": "01"}, 2), ({"relation": "10"}, 3), ({"relation": "11"}, 4),
    ({"text_represented": "not_represented", "image_adds": "adds"}, 2),
    ({"text_represented": "represented", "image_adds": "not_adds"}, 3),
    ({"text_represented": "represented"}, None), ({"sentiment": "positive"}, None), ({"relation": "2"}, None),
])
def test_relation_score_orders_by_association_as_the_paper(labels, score):
    assert relation_score(labels) == score


def test_relation_scores_mark_unlabelled_posts_zero():
    posts = [Post(id="a", text="x", labels={"relation": "11"}), Post(id="b", text="y", labels={})]
    assert relation_scores(posts).tolist() == [4, 0]


def test_cosine_similarity_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert np.allclose(cosine_similarity(a, b), [1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        cosine_similarity(a, b[:2])


def test_spearman_by_level_rank_correlation_and_masks():
    scores = np.array([1, 1, 2, 2, 3, 3, 4, 4, 0])
    sim = np.array([0.1, 0.2, 0.3, 0.35, 0.5, 0.55, 0.8, 0.9, 5.0])   # the unlabelled row would break monotony
    r = spearman_by_level(sim, scores)
    # ranks of sim are 1..8, of the scores 1.5, 1.5, 3.5, ...: Pearson on those ranks
    expected = np.corrcoef(np.arange(1, 9), [1.5, 1.5, 3.5, 3.5, 5.5, 5.5, 7.5, 7.5])[0, 1]
    assert r.rho == pytest.approx(expected) and r.n == 8 and r.skipped == 1
    assert r.mean_by_level[4] == pytest.approx(0.85)
    reverse = spearman_by_level(-sim, scores, keep=np.arange(9) != 0)
    assert reverse.rho < -0.95 and reverse.n == 7 and reverse.skipped == 2
    with pytest.raises(ValueError, match="at least 3 posts over 2 or more relation levels"):
        spearman_by_level(sim[:2], scores[:2])


def test_similarity_command_on_a_tiny_itc_run(tmp_path):
    from typer.testing import CliRunner

    from mmpost.apps.train import train
    from mmpost.cli import app
    from mmpost.config import load_config

    codes = ["00", "01", "10", "11"]
    csv = write_toy_csv(tmp_path, n=48)
    lines = (tmp_path / "posts.csv").read_text().splitlines()
    lines = [lines[0] + ",relation"] + [f"{row},{codes[i % 4]}" for i, row in enumerate(lines[1:])]
    (tmp_path / "posts.csv").write_text("\n".join(lines) + "\n")
    over = tiny_overrides(tmp_path, csv) + ["data.columns.labels.relation=relation", "objectives.itc.enabled=true",
                                            "train.epochs=1", "name=itc"]
    result = train(load_config(None, over))
    res = CliRunner().invoke(app, ["similarity", str(result.run_dir), "--out", str(tmp_path / "sim.json")])
    assert res.exit_code == 0, res.output
    assert "Spearman rho" in res.output and "run trained on mood" in res.output
    saved = json.loads((tmp_path / "sim.json").read_text())
    test = saved["splits"]["test"]
    assert saved["aligned_by_itc"] and test["n"] + test["skipped"] > 0 and -1.0 <= test["rho"] <= 1.0
