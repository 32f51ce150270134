"""Streaming ``mmpost predict``: the manifest read one post at a time, results appended chunk by chunk, the output
renamed into place only when complete, and a re-run after a crash (an injected failure, a killed process) that
skips the finished posts by id and ends with the file a clean run writes.

Run as a module (``python -m tests.test_predict_stream ARGS``) this file is the ``mmpost`` command with the tests'
tiny towers registered and each chunk slowed down, so that a test can kill it mid-run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmpost import registry
from mmpost.apps.predict import iter_manifest, predict_file
from mmpost.apps.predictor import Predictor
from mmpost.data.manifest import ColumnMapping, ManifestError, load_manifest
from tests.conftest import TinyImageTower, tiny_overrides, write_toy_csv
from tests.test_prediction_schema import two_task_predictor

ROOT = Path(__file__).resolve().parents[1]
N_POSTS = 45


def seeded_image_tower(**kwargs) -> TinyImageTower:
    """A frozen tower is not saved with a run (it comes back from its package): a random tiny one must come back
    the same in every process for two predictions to be comparable."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        tower = TinyImageTower(**kwargs)
    tower.identity = f"seeded-{tower.identity}"
    return tower


if "seeded-tiny-image" not in registry.names("encoder"):
    registry.register("encoder", "seeded-tiny-image")(seeded_image_tower)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny trained run, and a manifest of 45 new posts in its column layout (some without a usable image)."""
    from mmpost.apps.train import train
    from mmpost.config import load_config
    folder = tmp_path_factory.mktemp("stream")
    csv_path = write_toy_csv(folder, n=N_POSTS)          # images for every new post; the run trains on 30 of them
    over = tiny_overrides(folder, csv_path) + ["name=run", "train.epochs=1", "image_encoder.name=seeded-tiny-image",
                                               "data.limit=30"]
    run = train(load_config(None, over)).run_dir
    rows = ["post_id,body,picture,mood"]
    for i in range(N_POSTS):
        picture = "" if i % 9 == 4 else ("missing.png" if i % 11 == 5 else f"p{i}.png")
        rows.append(f"n{i},\"a new post, number {i}\",{picture},")
    data = folder / "new.csv"
    data.write_text("\n".join(rows) + "\n")
    return run, data


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _spy_chunks(monkeypatch, fail_on: int | None = None) -> list[list[str]]:
    """Record the post ids of every chunk handed to the model; raise on chunk ``fail_on`` (1-based)."""
    seen: list[list[str]] = []
    real = Predictor.scores

    def spy(self, posts, **kwargs):
        seen.append([p.id for p in posts])
        if fail_on is not None and len(seen) == fail_on:
            raise RuntimeError("injected failure")
        return real(self, posts, **kwargs)

    monkeypatch.setattr(Predictor, "scores", spy)
    return seen


def test_streamed_posts_equal_the_loaded_ones(tmp_path):
    csv_text = ("\ufeffid,text,image\n1,\"a text\nover two lines\",a.png\n\n"
                "2,plain,\n3,\"quoted, comma\",b.png;c.png\n")
    (tmp_path / "m.csv").write_text(csv_text, encoding="utf-8")
    jsonl = [{"id": 1, "text": "one", "image": ["a.png", "b.png"]}, {"id": "2", "text": "two"},
             {"id": 3, "text": "three", "extra": True}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in jsonl) + "\n\n")
    mapping = ColumnMapping(image="image", image_sep=";")
    files = [tmp_path / "m.csv", tmp_path / "m.jsonl"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"id": [1, 2], "text": ["x", None], "image": [["a.png"], []]}), tmp_path / "m.parquet")
        files.append(tmp_path / "m.parquet")
    except ImportError:
        pass
    for path in files:
        streamed = [p.to_dict() for p in iter_manifest(str(path), mapping)]
        assert streamed == [p.to_dict() for p in load_manifest(path, mapping)], path.name
        assert len(streamed) >= 2


@pytest.mark.parametrize("content,name", [
    ("id,body\n1,x\n", "m.csv"),                                   # the mapped text column is missing
    ("id,text\n1,x,y\n", "m.csv"),                                 # a row with more fields than the header
    ('{"id": 1, "text": "x"}\n[1, 2]\n', "m.jsonl"),               # not an object
    ('{"id": 1, "text": "x"}\n{"id": 2, "text": \n', "m.jsonl"),   # not JSON
])
def test_streamed_errors_are_the_loaders_errors(tmp_path, content, name):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ManifestError) as loaded:
        load_manifest(path, ColumnMapping())
    with pytest.raises(ManifestError) as streamed:
        list(iter_manifest(str(path), ColumnMapping()))
    assert str(streamed.value) == str(loaded.value)


def test_undecodable_bytes_are_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,text\n1,caf\xe9\n")
    with pytest.raises(ManifestError, match=r"m.csv: not valid utf-8 text: byte e9 .*line 2"):
        list(iter_manifest(str(path), ColumnMapping()))


def test_chunks_are_predicted_and_written_as_they_go(trained, tmp_path, monkeypatch):
    run, data = trained
    whole = tmp_path / "whole.jsonl"
    counts = predict_file(run, str(data), whole, chunk=1000, progress=False)
    assert counts == {"posts": N_POSTS, "without_image": 9, "resumed": 0}
    rows = _lines(whole)
    assert [r["id"] for r in rows] == [f"n{i}" for i in range(N_POSTS)]
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-4 and r["label"] in r["probs"] for r in rows)
    seen = _spy_chunks(monkeypatch)
    chunked = tmp_path / "chunked.jsonl"
    predict_file(run, str(data), chunked, chunk=7, progress=False)
    assert [len(c) for c in seen] == [7] * 6 + [3]             # the model never sees more than a chunk
    assert chunked.read_text() == whole.read_text()
    assert not list(tmp_path.glob("*.part*"))
    # features of predict-only posts go to a throwaway folder: the run's cache does not grow
    cache = run.parent.parent / "cache"
    before = sorted(cache.rglob("shard-*"))
    predict_file(run, str(data), tmp_path / "again.jsonl", chunk=7, progress=False)
    assert sorted(cache.rglob("shard-*")) == before
    predict_file(run, str(data), tmp_path / "cached.jsonl", chunk=7, cache=True, progress=False)
    assert len(sorted(cache.rglob("shard-*"))) > len(before)


def test_a_run_with_several_tasks_writes_every_task_per_line(trained, tmp_path, monkeypatch):
    import mmpost.apps.predict as predict_app
    run, data = trained
    monkeypatch.setattr(predict_app, "Predictor", two_task_predictor)
    out = tmp_path / "tasks.jsonl"
    counts = predict_file(run, str(data), out, chunk=20, progress=False)
    rows = _lines(out)
    assert counts["posts"] == N_POSTS and [r["id"] for r in rows] == [f"n{i}" for i in range(N_POSTS)]
    assert all(list(r) == ["id", "image_used", "tasks"] and list(r["tasks"]) == ["mood", "topics"] for r in rows)
    topics = [r["tasks"]["topics"] for r in rows]
    assert all(t["label"] == [k for k, p in t["probs"].items() if p >= 0.5] for t in topics)
    assert not list(tmp_path.glob("*.part*"))


def test_a_rerun_after_a_failure_skips_the_finished_posts(trained, tmp_path, monkeypatch):
    run, data = trained
    clean = tmp_path / "clean.jsonl"
    predict_file(run, str(data), clean, chunk=10, progress=False)
    out = tmp_path / "preds.jsonl"
    _spy_chunks(monkeypatch, fail_on=3)
    with pytest.raises(RuntimeError, match="injected"):
        predict_file(run, str(data), out, chunk=10, progress=False)
    part = tmp_path / "preds.jsonl.part"
    assert not out.exists() and len(_lines(part)) == 20            # two whole chunks reached the disk
    with open(part, "a") as f:                                     # and a line cut off mid-write
        f.write('{"id": "n20", "label": "re')
    seen = _spy_chunks(monkeypatch)
    counts = predict_file(run, str(data), out, chunk=10, progress=False)
    assert seen[0][0] == "n20" and sum(len(c) for c in seen) == N_POSTS - 20
    assert counts["resumed"] == 20 and counts["posts"] == N_POSTS
    assert counts["without_image"] == 9
    assert out.read_text() == clean.read_text()
    assert not part.exists() and not (tmp_path / "preds.jsonl.part.json").exists()


def test_a_part_file_of_other_data_or_another_run_is_refused(trained, tmp_path, monkeypatch):
    run, data = trained
    out = tmp_path / "preds.jsonl"
    _spy_chunks(monkeypatch, fail_on=2)
    with pytest.raises(RuntimeError):
        predict_file(run, str(data), out, chunk=10, progress=False)
    monkeypatch.undo()
    other = tmp_path / "other.csv"
    other.write_text(data.read_text().replace("n3,", "x3,"))
    with pytest.raises(ValueError, match="was started by another prediction"):
        predict_file(run, str(other), out, chunk=10, progress=False)
    owner = tmp_path / "preds.jsonl.part.json"          # even when told it is the same data, the ids disagree
    owner.write_text(owner.read_text().replace(str(data), str(other)))
    with pytest.raises(ValueError, match=r"line 4 is post 'n3' but .*other.csv:4 is post 'x3'"):
        predict_file(run, str(other), out, chunk=10, progress=False)


def test_a_killed_process_resumes_where_it_stopped(trained, tmp_path):
    run, data = trained
    clean = tmp_path / "clean.jsonl"
    predict_file(run, str(data), clean, chunk=5, progress=False)
    out = tmp_path / "killed.jsonl"
    part = tmp_path / "killed.jsonl.part"
    cmd = [sys.executable, "-m", "tests.test_predict_stream", "predict", str(run), "--data", str(data),
           "--out", str(out), "--chunk", "5"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if part.exists() and len(part.read_text().splitlines()) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:] if proc.stdout else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = part.read_text().count("\n")          # whole lines only: a half-written one is cut off
    assert not out.exists() and 10 <= done_before < N_POSTS
    counts = predict_file(run, str(data), out, chunk=5, progress=False)
    assert counts["resumed"] == done_before
    assert out.read_text() == clean.read_text()


if __name__ == "__main__":
    import tests.conftest  # noqa: F401  (registers the tiny towers)
    from mmpost.cli import main
    real = Predictor.scores

    def slowly(self, posts, **kwargs):
        time.sleep(0.3)         # a test kills this process mid-run
        return real(self, posts, **kwargs)

    Predictor.predict_tasks = slowly  # type: ignore[method-assign]
    main()
