"""``mmpost label-issues``: confident learning finds planted label errors in honest out-of-fold probabilities, and
the CSV, the review page and the Label Studio files say so; bad inputs are named."""
from __future__ import annotations

import base64
import csv
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from mmpost.apps.label_issues import find_label_issues_in
from mmpost.evaluation.label_issues import rank_label_issues
from mmpost.evaluation.label_studio import label_studio_config, local_files_url

LABELS = ["negative", "neutral", "positive"]


def write_cv(folder: Path, records: list[dict[str, Any]], tasks: dict[str, Any] | None = None) -> Path:
    """A CV folder as ``mmpost cv`` writes it: labels.json and oof.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = tasks or {"sentiment": {"labels": LABELS, "multi_label": False}}
    (folder / "labels.json").write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    (folder / "oof.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def record(post_id: str, probs: list[float], gold: str | None, seed: int = 0, text: str = "", images=(),
           row: int | None = None, fold: int = 0) -> dict[str, Any]:
    """One single-task out-of-fold record, in the contract's shape."""
    r: dict[str, Any] = {"id": post_id, "label": LABELS[int(np.argmax(probs))],
                         "probs": dict(zip(LABELS, probs)), "image_used": bool(images), "fold": fold,
                         "seed": seed, "text": text, "images": list(images)}
    if gold is not None:
        r["gold"] = gold
    if row is not None:
        r["row"] = row
    return r


def tiny_png(path: Path, size: tuple[int, int] = (400, 200)) -> Path:
    Image.new("RGB", size, (200, 40, 40)).save(path, format="PNG")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# ------------------------------------------------------------------------------------------ planted errors


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, set[str]]:
    """2000 separable posts in 3 classes, 10% of labels flipped (seeded), out-of-fold probabilities from a
    logistic regression trained on the flipped labels, twice (two seeds, two shufflings of the folds)."""
    X, y = make_classification(n_samples=2000, n_features=10, n_informative=6, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.5, random_state=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, size=len(flipped))) % 3
    assert (noisy[flipped] != y[flipped]).all()
    records = []
    for seed in (0, 1):
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        probs = cross_val_predict(LogisticRegression(max_iter=1000), X, noisy, cv=folds, method="predict_proba")
        records += [record(str(i), [round(float(p), 6) for p in probs[i]], LABELS[noisy[i]], seed=seed,
                           text=f"post {i}", row=i) for i in range(len(y))]
    cv = write_cv(tmp_path_factory.mktemp("planted") / "cv", records)
    return cv, {str(i) for i in flipped}


def test_planted_label_errors_rank_first(planted):
    cv, flipped = planted
    res = find_label_issues_in(cv)
    assert res.method == "cleanlab" and res.task == "sentiment"
    assert res.n_posts == 2000 and res.n_seeds == 2 and res.n_without_gold == 0
    top = set(res.ids[: int(0.15 * res.n_posts)])
    found = len(flipped & top) / len(flipped)
    assert found >= 0.8, f"only {found:.0%} of the flipped labels are in the top 15%"
    assert 0.5 * len(flipped) <= res.n_flagged <= 2 * len(flipped)
    assert len(set(res.flagged) & flipped) >= 0.7 * len(flipped)
    assert res.ids[: res.n_flagged] == res.flagged            # flagged posts come first

    rows = read_csv(res.csv)
    assert len(rows) == 2000 and [r["id"] for r in rows] == res.ids
    assert [int(r["rank"]) for r in rows] == list(range(1, 2001))
    assert list(rows[0]) == ["rank", "id", "row", "given", "suggested", "score", "is_issue", "p_given",
                             "p_suggested", "text", "image"]
    assert all(r["row"] == r["id"] for r in rows)               # `row` is carried through
    for r in rows[:50]:
        assert float(r["score"]) == pytest.approx(1 - float(r["p_given"]), abs=1e-5)
    flags = [r["is_issue"] == "true" for r in rows]
    assert flags == sorted(flags, reverse=True)
    rest = [float(r["score"]) for r in rows[res.n_flagged:]]
    assert rest == sorted(rest, reverse=True)


def test_the_fallback_method_finds_them_too_without_cleanlab(planted, monkeypatch, tmp_path):
    cv, flipped = planted
    for name in ("cleanlab", "cleanlab.filter", "cleanlab.rank"):
        monkeypatch.setitem(sys.modules, name, None)            # `import cleanlab...` now raises ImportError
    res = find_label_issues_in(cv, out_dir=tmp_path / "out")
    assert res.method == "self-confidence"
    assert any("cleanlab could not be imported" in n for n in res.notes)
    assert "self-confidence" in res.html.read_text(encoding="utf-8")
    top = set(res.ids[: int(0.15 * res.n_posts)])
    assert len(flipped & top) >= 0.8 * len(flipped)


# ------------------------------------------------------------------------------------------------- ranking


def test_ranking_flags_first_then_score_ties_by_index():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    given = np.array([0, 0, 1, 1, 2])
    r = rank_label_issues(probs, given, method="self-confidence")
    np.testing.assert_allclose(r.score, [0.2, 0.9, 0.75, 0.75, 0.2])
    assert r.suggested.tolist() == [0, 1, 0, 0, 2]
    assert r.is_issue.tolist() == [False, True, True, True, False]
    assert r.order.tolist() == [1, 2, 3, 0, 4]
    assert r.method == "self-confidence"


def test_ranking_renormalizes_rows_and_checks_inputs():
    r = rank_label_issues(np.array([[2.0, 2.0], [1.0, 3.0]]), np.array([0, 0]), method="self-confidence")
    np.testing.assert_allclose(r.score, [0.5, 0.75])
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        rank_label_issues(np.ones(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="0..1"):
        rank_label_issues(np.full((2, 2), 0.5), np.array([0, 2]))
    with pytest.raises(ValueError, match="integer"):
        rank_label_issues(np.full((2, 2), 0.5), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        rank_label_issues(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="unknown label-issue method"):
        rank_label_issues(np.full((2, 2), 0.5), np.array([0, 1]), method="magic")


# ---------------------------------------------------------------------------------------------- the inputs


def test_seeds_are_averaged_and_posts_without_gold_are_left_out(tmp_path):
    tasks = {"sentiment": {"labels": LABELS, "multi_label": False},
             "topic": {"labels": ["sport", "food"], "multi_label": False}}

    def multi(post_id, probs, gold, seed):
        part = {"label": LABELS[int(np.argmax(probs))], "probs": dict(zip(LABELS, probs))}
        if gold:
            part["gold"] = gold
        return {"id": post_id, "image_used": False, "fold": 0, "seed": seed, "text": f"t{post_id}", "images": [],
                "tasks": {"sentiment": part, "topic": {"label": "sport", "probs": {"sport": 0.6, "food": 0.4}}}}

    records = [multi("a", [0.9, 0.05, 0.05], "neutral", 0), multi("a", [0.0, 0.1, 0.9], "neutral", 1),
               multi("b", [0.2, 0.6, 0.2], "neutral", 0), multi("b", [0.2, 0.6, 0.2], "neutral", 1),
               multi("c", [0.3, 0.3, 0.4], None, 0), multi("c", [0.3, 0.3, 0.4], None, 1)]
    cv = write_cv(tmp_path / "cv", records, tasks)
    res = find_label_issues_in(cv, task="sentiment", method="self-confidence")
    assert res.n_posts == 2 and res.n_without_gold == 1 and res.n_seeds == 2
    rows = {r["id"]: r for r in read_csv(res.csv)}
    assert set(rows) == {"a", "b"}
    assert float(rows["a"]["p_given"]) == pytest.approx(0.075)          # (0.05 + 0.1) / 2
    assert rows["a"]["suggested"] == "positive"                          # (0.05 + 0.9) / 2 > (0.9 + 0.0) / 2
    assert res.ids == ["a", "b"] and res.flagged == ["a"]
    assert "1 posts without a label" in res.html.read_text(encoding="utf-8")


def test_a_missing_oof_file_says_run_cv_first(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"tasks": {"s": {"labels": LABELS}}}), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"oof\.jsonl is missing: run `mmpost cv` first"):
        find_label_issues_in(tmp_path)


def test_a_malformed_line_is_named(tmp_path):
    cv = write_cv(tmp_path / "cv", [record("1", [0.2, 0.3, 0.5], "neutral")] * 1)
    with (cv / "oof.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n{\"id\": \"2\", \"probs\": \n")
    with pytest.raises(ValueError, match=r"oof\.jsonl, line 3: not valid JSON"):
        find_label_issues_in(cv)


@pytest.mark.parametrize("bad, message", [
    ({"probs": {"negative": 0.5, "neutral": 0.5}}, r"line 2: `probs` must have the labels .*missing \['positive'\]"),
    ({"gold": "angry"}, r"line 2: `gold` 'angry' is not a label"),
    ({"id": None}, r"line 2: `id` must be"),
    ({"seed": 0}, r"line 2: post '1' appears again for seed 0 \(first on line 1\)"),
])
def test_bad_records_name_the_line_and_key(tmp_path, bad, message):
    second = {**record("1", [0.2, 0.3, 0.5], "neutral", seed=1), **bad}
    cv = write_cv(tmp_path / "cv", [record("1", [0.2, 0.3, 0.5], "neutral", seed=0), second])
    with pytest.raises(ValueError, match=message):
        find_label_issues_in(cv)


def test_unknown_and_multi_label_tasks_are_refused(tmp_path):
    tasks = {"sentiment": {"labels": LABELS, "multi_label": False},
             "topics": {"labels": ["sport", "food"], "multi_label": True}}
    cv = write_cv(tmp_path / "cv", [], tasks)
    with pytest.raises(ValueError, match=r"labels\.json: no task 'mood'; the tasks are sentiment, topics"):
        find_label_issues_in(cv, task="mood")
    with pytest.raises(ValueError, match="multi-label"):
        find_label_issues_in(cv, task="topics")
    with pytest.raises(ValueError, match="no post has a `gold` label"):
        find_label_issues_in(cv)


# ------------------------------------------------------------------------------------------------ outputs


@pytest.fixture
def small_cv(tmp_path) -> Path:
    """Six posts: two confidently mislabelled (one with a PNG, one with a <script> text), the rest clean."""
    img = tiny_png(tmp_path / "pic one.png")
    records = [
        record("bad-img", [0.02, 0.03, 0.95], "negative", text="sunny day", images=[str(img)], row=0),
        record("bad-xss", [0.9, 0.05, 0.05], "positive", text="<script>alert('x')</script> & more", row=1),
        record("ok-1", [0.9, 0.05, 0.05], "negative", text="meh", images=[str(tmp_path / "gone.jpg")], row=2),
        record("ok-2", [0.1, 0.8, 0.1], "neutral", text="fine", row=3),
        record("ok-3", [0.1, 0.1, 0.8], "positive", text="great", row=4),
        record("ok-4", [0.3, 0.4, 0.3], "neutral", text="hmm", row=5),
    ]
    return write_cv(tmp_path / "cv", records)


def test_the_page_escapes_texts_and_embeds_thumbnails(small_cv):
    res = find_label_issues_in(small_cv, top=6, method="self-confidence")
    assert res.html == small_cv / "label_issues" / "label_issues.html" and res.n_shown == 6
    page = res.html.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "Content-Security-Policy" in page
    uris = [part.split('"', 1)[0] for part in page.split('src="')[1:]]
    assert len(uris) == 1 and uris[0].startswith("data:image/jpeg;base64,")
    thumb = Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
    assert thumb.format == "JPEG" and max(thumb.size) == 160 and thumb.size == (160, 80)
    assert page.count(">no image<") == 5                      # 4 posts without a path, 1 with a missing file
    assert "6 posts ranked, 2 flagged" in page


def test_the_page_shows_the_flagged_posts_by_default(small_cv):
    res = find_label_issues_in(small_cv, method="self-confidence")
    page = res.html.read_text(encoding="utf-8")
    assert res.n_shown == 2 and page.count('class="card flagged"') == 2
    assert 'class="card"' not in page
    assert "bad-img" in page and "bad-xss" in page and "ok-3" not in page
    assert find_label_issues_in(small_cv, top=0).n_shown == 0
    with pytest.raises(ValueError, match="top"):
        find_label_issues_in(small_cv, top=-1)


def test_label_studio_export_flagged_first_and_config_lists_labels(small_cv, tmp_path):
    res = find_label_issues_in(small_cv, out_dir=tmp_path / "ls", method="self-confidence")
    tasks = json.loads(res.label_studio.read_text(encoding="utf-8"))
    assert [t["data"]["id"] for t in tasks] == res.ids and len(tasks) == 6
    assert [t["data"]["flagged"] for t in tasks] == [True, True, False, False, False, False]
    for t in tasks:
        assert set(t) == {"data", "predictions"}
        assert {"text", "image", "id", "given"} <= set(t["data"])
        (pred,) = t["predictions"]
        assert pred["model_version"] == "mmpost-cv" and 0 <= pred["score"] <= 1
        (result,) = pred["result"]
        assert result["from_name"] == "label" and result["to_name"] == "text" and result["type"] == "choices"
        assert result["value"]["choices"] == [t["data"]["suggested"]]
        assert result["value"]["choices"][0] in LABELS
    by_id = {t["data"]["id"]: t for t in tasks}
    assert by_id["bad-img"]["data"]["image"] == local_files_url(small_cv.parent / "pic one.png")
    assert by_id["bad-img"]["data"]["image"].startswith("/data/local-files/?d=")
    assert by_id["bad-img"]["data"]["image"].endswith("/pic%20one.png")
    assert by_id["bad-xss"]["data"]["image"] == ""
    assert by_id["bad-img"]["predictions"][0]["score"] == pytest.approx(0.98)

    root = ET.fromstring(res.label_studio_config.read_text(encoding="utf-8"))
    assert root.tag == "View"
    choices = root.find("Choices")
    assert choices.get("name") == "label" and choices.get("toName") == "text"
    assert [c.get("value") for c in choices.findall("Choice")] == LABELS
    assert root.find("Text").get("value") == "$text" and root.find("Image").get("value") == "$image"


def test_label_studio_urls_and_config_escape(tmp_path):
    assert local_files_url("/data/imgs/a b.jpg") == "/data/local-files/?d=data/imgs/a%20b.jpg"
    assert local_files_url("/data/imgs/a.jpg", "/data") == "/data/local-files/?d=imgs/a.jpg"
    with pytest.raises(ValueError, match="outside the Label Studio document root"):
        local_files_url("/elsewhere/a.jpg", "/data")
    root = ET.fromstring(label_studio_config(['say "hi"', "<b>", "a&b"]))
    assert [c.get("value") for c in root.iter("Choice")] == ['say "hi"', "<b>", "a&b"]
