"""`mmpost report`: the self-contained HTML page and its markdown twin, built from tiny runs trained here —
one with images and ITC+ITM whose texts carry markup, one text-only without ITC — and rendered in headless
Chromium to check that the page and its inlined figures really show."""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmpost.apps.report import build_report, output_paths, write_run_report
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.data.post import Post
from mmpost.evaluation.embedding_map import choose_projection, project_2d
from mmpost.evaluation.error_examples import errors_by_class
from mmpost.evaluation.markdown_report import md_escape
from mmpost.evaluation.plots import curve_panels
from mmpost.evaluation.predictions import Task
from mmpost.evaluation.run_files import chosen_epoch, read_log
from mmpost.evaluation.task_scores import score_task
from tests.conftest import tiny_overrides, write_toy_csv
from tests.test_prediction_schema import two_task_run

EVIL = '<script>alert("x")</script> <b>bold</b> a | b & c *star*'
SECTIONS = {"metrics", "confusion", "curves", "embeddings", "errors"}


def evil_csv(folder: Path) -> str:
    """The toy posts, each text wrapped in markup a page must show as text, never run or render."""
    path = Path(write_toy_csv(folder, n=60, seed=1))
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        row[1] = f"{EVIL} {row[1]}"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """Images, ITC+ITM, a learning rate too small to learn much in two epochs: mistakes to show."""
    tmp = tmp_path_factory.mktemp("image_run")
    over = tiny_overrides(tmp, evil_csv(tmp)) + ["name=img", "objectives.itc.enabled=true",
                                                 "objectives.itm.enabled=true",
                                                 "train.epochs=2", "train.lr=1e-5", "train.patience=5"]
    return train(load_config(None, over)).run_dir


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("text_run")
    over = tiny_overrides(tmp, write_toy_csv(tmp)) + ["name=txt", "data.columns.image=null", "train.epochs=2"]
    return train(load_config(None, over)).run_dir


class PageParser(HTMLParser):
    """Collects what the checks need: tags, section ids, image sources, every href/src and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.links: list[str] = []
        self.metas: list[dict[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "meta":
            self.metas.append(a)
        self.links += [a[k] for k in ("href", "src") if k in a]

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> PageParser:
    p = PageParser()
    p.feed(page)
    return p


def decoded(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    img = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
    img.load()
    return img


def test_report_page_is_self_contained_and_complete(image_run, tmp_path):
    files = write_run_report(image_run, tmp_path / "page.html")
    page = files.html.read_text(encoding="utf-8")
    p = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert SECTIONS <= p.ids
    assert not {"script", "link", "iframe", "object", "embed"} & set(p.tags)
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in p.links), p.links
    assert any(m.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in m.get("content", "")
               for m in p.metas)
    # every figure is a real, non-uniform PNG: confusion dev + test, curves, map, and the mistakes' thumbnails
    report = build_report(image_run)
    assert len(p.images) == len(report.figures()) >= 4
    for src in p.images:
        arr = np.asarray(decoded(src).convert("L"), dtype=float)
        assert min(arr.shape) >= 16 and arr.std() > 5
    # the page's numbers are the run's
    metrics = json.loads((image_run / "metrics.json").read_text())["test"]["mood"]
    text = " ".join(p.text)
    assert f"{metrics['weighted_f1']:.3f}" in text and "majority-class baseline" in text
    assert "ITC temperature" in text or "Temperature" in text
    # the matrices come from predicting again and agree with what the run scored
    test = next(s for s in report.splits if s.split == "test")
    m = np.array(test.confusion)
    assert m.sum() == metrics["n"] and np.trace(m) / m.sum() == pytest.approx(metrics["accuracy"])
    assert not any("differ" in w for w in report.warnings)


def test_post_texts_are_escaped_in_html_and_markdown(image_run, tmp_path):
    files = write_run_report(image_run, tmp_path / "page.html")
    report = build_report(image_run)
    shown = [e for c in report.errors for e in c.examples]
    assert shown, "the weakly trained run should make mistakes to show"
    assert all(e.thumbnail is not None for e in shown)
    page = files.html.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert EVIL in " ".join(parse(page).text)         # shown to the reader as the literal text
    md = files.markdown.read_text(encoding="utf-8")
    assert "<script>" not in md and r"\<script\>" in md and r"a \| b \& c \*star\*" in md
    for link in md.split("](")[1:]:
        target = link.split(")")[0]
        assert (files.markdown.parent / target).is_file(), target


def test_text_only_run_without_itc_says_so(text_run, tmp_path):
    files = write_run_report(text_run, tmp_path / "t.html")
    p = parse(files.html.read_text(encoding="utf-8"))
    text = " ".join(p.text)
    assert "text-only" in text and "ITC is off" in text and "no temperature curve" in text
    assert "map shows text vectors only" in text and "no image" in text
    report = build_report(text_run)
    assert report.embedding_map is not None and report.curves is not None
    assert all(e.thumbnail is None for c in report.errors for e in c.examples)
    assert SECTIONS <= p.ids
    for src in p.images:
        decoded(src)


def test_unreadable_data_still_gives_metrics_and_curves(image_run, tmp_path):
    files = write_run_report(image_run, tmp_path / "d.html", overrides=[f"data.path={tmp_path}/gone.csv"])
    page = files.html.read_text(encoding="utf-8")
    text = " ".join(parse(page).text)
    assert "could not be read again" in text and "gone.csv" in text
    report = build_report(image_run, overrides=[f"data.path={tmp_path}/gone.csv"])
    assert report.curves is not None and report.metrics and not report.splits and report.embedding_map is None


def test_predictions_that_disagree_with_metrics_json_are_flagged(image_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(image_run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["test"]["mood"]["accuracy"] = 0.987654
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (copy / "evaluations" / "other").mkdir(parents=True)
    shutil.copy(image_run / "metrics.json", copy / "evaluations" / "other" / "metrics.json")
    report = build_report(copy)
    assert any("differ" in w and "0.988" in w for w in report.warnings)
    assert "evaluation other: test · mood" in [name for name, _ in report.metrics]


def test_the_report_reads_the_kept_predictions_and_embeds_only_the_map(image_run, tmp_path, monkeypatch):
    from mmpost.apps.predictor import Predictor
    copy = tmp_path / "kept"
    shutil.copytree(image_run, copy)
    path = copy / "predictions_test.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    labels = list(records[0]["probs"])
    for r in records:               # every saved test prediction is now wrong: the label after the gold one
        wrong = labels[(labels.index(r["gold"]) + 1) % len(labels)]
        r["probs"] = {label: float(label == wrong) for label in labels}
        r["label"] = wrong
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    embedded: list[int] = []
    real_embed = Predictor.embed
    monkeypatch.setattr(Predictor, "embed", lambda self, posts, **kw: (embedded.append(len(posts)),
                                                                       real_embed(self, posts, **kw))[1])
    report = build_report(copy, max_points=5)
    assert embedded == [5]                               # the map's sample only: nothing else predicted again
    test = next(s for s in report.splits if s.split == "test")
    assert sum(test.confusion[k][k] for k in range(len(test.labels))) == 0
    assert any("scores read from predictions_test.jsonl" in n for n in report.notes)
    assert any("differ" in w for w in report.warnings)   # the edited file no longer agrees with metrics.json


def test_cli_report_and_its_errors(image_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.html"
    res = runner.invoke(app, ["report", str(image_run), "--out", str(out), "--examples", "0", "--projection", "pca"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.with_suffix(".md").is_file() and (tmp_path / "cli_figures").is_dir()
    assert "none shown" in out.read_text() and not any((tmp_path / "cli_figures").glob("mistake_*"))
    res = runner.invoke(app, ["report", str(image_run), "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and ".html" in res.output
    res = runner.invoke(app, ["report", str(image_run), "--out", str(tmp_path / "y.html"), "--projection", "umap"])
    assert res.exit_code == 2 and "projection" in res.output
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a finished mmpost run" in res.output
    res = runner.invoke(app, ["report", str(image_run), "--out", str(tmp_path / "z.html"), "model.hidden=4"])
    assert res.exit_code == 2 and "only data.* overrides" in res.output
    with pytest.raises(ValueError, match="report the run wrote"):
        output_paths(image_run, image_run / "report.html")


def test_report_building_blocks():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.45, 0.55]])
    sections = errors_by_class(np.array([1, 1, 1, 0, 0]), probs, ["a", "b"], per_class=5)
    assert [(s.label, s.n_errors, s.rows) for s in sections] == [("a", 2, [3, 4]), ("b", 2, [0, 1])]
    rng = np.random.default_rng(0)
    has_image = np.arange(40) % 4 != 0
    m = project_2d(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), has_image, method="auto")
    assert m.method == "tsne" and m.text_xy.shape == (40, 2) and m.image_xy.shape == (30, 2)
    assert list(m.image_rows) == list(np.flatnonzero(has_image))
    assert project_2d(rng.normal(size=(5, 8)), np.zeros((5, 8)), np.zeros(5, bool)).method == "pca"
    with pytest.raises(ValueError, match="projection"):
        choose_projection("umap", 10)
    assert md_escape("a|b <i>\nc") == r"a\|b \<i\> c"
    assert chosen_epoch([{"epoch": 1, "dev_weighted_f1": 0.5}, {"epoch": 2, "dev_weighted_f1": 0.7},
                         {"epoch": 3, "dev_weighted_f1": 0.7}]) == 2
    log = [{"epoch": 1, "train_itm": 0.7, "train_loss": 2.0, "dev_loss": 2.1, "train_temperature": 0.07,
            "dev_weighted_f1": 0.5, "train_ce": 1.0, "train_unreadable_images": 0.0}]
    assert curve_panels(log) == ["loss", "ce", "itm", "temperature", "weighted_f1"]


def test_a_malformed_log_is_named(tmp_path):
    bad = tmp_path / "log.csv"
    bad.write_text("epoch,train_loss\n1,0.5\n2,oops\n")
    with pytest.raises(ValueError, match=r"log.csv:3: column 'train_loss': 'oops'"):
        read_log(bad)


def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def screenshot(browser: str, page: Path, png: Path, profile: Path, height: int) -> np.ndarray:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", f"--window-size=1200,{height}", f"--screenshot={png}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)


def coloured(shot: np.ndarray) -> int:
    """Pixels with a clear hue (figures, thumbnails), as opposed to the page's black, grey and white."""
    return int(((shot.max(-1) - shot.min(-1)) > 60).sum())


def test_report_renders_in_headless_chromium(image_run, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("MMPOST_REQUIRE_CHROMIUM"):
            pytest.fail("MMPOST_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium); CI installs it")
    files = write_run_report(image_run, tmp_path / "page.html")
    page = files.html.read_text(encoding="utf-8")
    # the same page with every figure emptied: what remains is text and tables
    stripped = tmp_path / "stripped.html"
    start = 0
    parts = []
    while (i := page.find('src="data:image/png;base64,', start)) >= 0:
        parts.append(page[start:i] + 'src="data:,"')
        start = page.index('"', i + 5) + 1
    stripped.write_text("".join(parts) + page[start:], encoding="utf-8")
    height = 7000
    shot = screenshot(browser, files.html, tmp_path / "page.png", tmp_path / "profile", height)
    bare = screenshot(browser, stripped, tmp_path / "bare.png", tmp_path / "profile2", height)
    assert shot.shape[:2] == (height, 1200)
    non_white = float((shot.min(-1) < 235).mean())
    assert shot.std() > 10 and non_white > 0.03, (shot.std(), non_white)
    # the figures were decoded and drawn: removing them takes away most of the colour on the page
    assert coloured(shot) > 20_000 and coloured(shot) > 5 * coloured(bare), (coloured(shot), coloured(bare))


def test_a_multi_label_task_is_scored_on_every_label_over_the_threshold():
    topics = Task("topics", ("sport", "food", "news"), multi_label=True)
    posts = [Post("a", "", labels={"topics": ["sport", "food"]}), Post("b", "", labels={"topics": ["news"]}),
             Post("c", "", labels={"topics": []}), Post("d", "")]               # d: no gold, not scored
    probs = np.array([[0.9, 0.6, 0.1], [0.2, 0.1, 0.4], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    s = score_task(topics, posts, probs)
    assert s.confusion is None and s.metrics["n"] == 3
    assert s.metrics["accuracy"] == pytest.approx(2 / 3)                # a and c exactly right, b misses news
    assert [r["support"] for r in s.per_class] == [1, 1, 1] and s.per_class[2]["recall"] == 0
    assert set(s.metrics) == {"weighted_f1", "macro_f1", "micro_f1", "accuracy", "mcc", "n"}
    with pytest.raises(ValueError, match="post x: field labels.topics: \\['golf'\\]"):
        score_task(topics, [Post("x", "", labels={"topics": ["golf"]})], probs[:1])
    single = score_task(Task("mood", ("red", "blue")), [Post("a", "", labels={"mood": "blue"}),
                                                         Post("b", "", labels={"mood": "red"})],
                        np.array([[0.3, 0.7], [0.6, 0.4]]), interval=True)
    assert single.metrics["accuracy"] == 1 and single.metrics["weighted_f1_ci95"] == [1.0, 1.0]
    assert single.confusion == [[1, 0], [0, 1]]


def test_evaluate_and_the_run_report_show_every_task(image_run, tmp_path, monkeypatch):
    import mmpost.apps.evaluate as evaluate_app
    import mmpost.apps.report as report_app
    run, load_two_heads = two_task_run(image_run, tmp_path / "two", monkeypatch)
    monkeypatch.setattr(evaluate_app, "Predictor", load_two_heads)
    monkeypatch.setattr(report_app, "Predictor", load_two_heads)
    metrics, out = evaluate_app.evaluate(run, progress=False)
    assert list(metrics["test"]) == ["mood", "topics"] and metrics["test"]["topics"]["n"] == 0   # no topic gold
    assert "weighted_f1_ci95" in metrics["test"]["mood"]
    text = (out / "report.md").read_text()
    assert text.index("## Task `mood`") < text.index("### Metrics") < text.index("## Task `topics`")
    assert (out / "confusion_test_mood.png").exists() and not list(out.glob("*topics*.png"))
    assert "several labels of this task" in text
    files = write_run_report(run, tmp_path / "two.html")
    page = " ".join(parse(files.html.read_text(encoding="utf-8")).text)
    assert "Task mood" in page and "Task topics" in page and "mood · true" in page
    md = files.markdown.read_text(encoding="utf-8")
    assert "### Task mood" in md and "#### test · topics" in md and "confusion_test_mood.png" in md

