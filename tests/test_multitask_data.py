"""Several tasks per dataset: prepare() with a list of tasks, labels missing for some tasks (kept, -1), the split
stratified by the first task, multi-label tasks from 0/1 columns, a separator or a JSON list cell, and the
per-task label tensors of a batch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmpost.apps.prepare import PreparedData, prepare
from mmpost.config import ConfigError, load_config
from mmpost.data.dataset import PostDataset, label_ids, task_label_arrays
from mmpost.data.manifest import ColumnMapping, ManifestError, load_manifest
from mmpost.data.tasks import TaskSpec

MOODS, TOPICS, SIZES = ["happy", "sad"], ["cats", "dogs", "food"], ["big", "small"]


def _csv(tmp_path, n: int = 90, *, missing_size: set[int] = frozenset()) -> str:
    rows = ["id,text,mood,topic,size,Joy,Fear,tags"]
    for i in range(n):
        size = "" if i in missing_size else SIZES[i % 2]
        joy, fear = i % 2, int(i % 3 == 0)
        tags = "|".join(t for t, on in (("funny", i % 2), ("cute", i % 5 == 0)) if on)
        rows.append(f"p{i:03d},post {i},{MOODS[int(i % 9 == 4)]},{TOPICS[i % 3]},{size},{joy},{fear},{tags}")
    path = tmp_path / "posts.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def _cfg(path: str, *overrides: str):
    return load_config(None, ["data.source=manifest", f"data.path={path}", "data.columns.labels.mood=mood",
                              "data.columns.labels.topic=topic", "data.columns.labels.size=size",
                              "progress=false", *overrides])


def test_three_tasks_from_one_csv(tmp_path):
    data = prepare(_cfg(_csv(tmp_path)).data, ["mood", "topic", "size"], progress=False)
    assert [t.name for t in data.tasks] == ["mood", "topic", "size"]
    assert [t.labels for t in data.tasks] == [MOODS, TOPICS, SIZES] and not any(t.multi_label for t in data.tasks)
    assert data.task == "mood" and data.labels == MOODS                  # single-task callers read the first
    assert sum(len(v) for v in data.splits.values()) == 90


def test_a_post_missing_one_tasks_label_is_kept_with_minus_one(tmp_path):
    data = prepare(_cfg(_csv(tmp_path, missing_size={4, 7, 40})).data, ["mood", "topic", "size"], progress=False)
    posts = [p for v in data.splits.values() for p in v]
    assert {"p004", "p007", "p040"} <= {p.id for p in posts} and len(posts) == 90
    ds = PostDataset(posts, task_label_arrays(posts, data.tasks), text_features=np.zeros((90, 4), np.float32))
    batch = ds.__getitems__(list(range(90)))
    missing = [i for i, p in enumerate(posts) if p.id in {"p004", "p007", "p040"}]
    assert (batch.task_labels["size"][missing] == -1).all() and (batch.task_labels["size"] >= 0).sum() == 87
    assert torch.equal(batch.labels, batch.task_labels["mood"])         # labels: the first task's class ids
    assert torch.equal(batch.task_labels["topic"], torch.as_tensor(label_ids(posts, "topic", TOPICS)))


def test_a_post_without_any_tasks_label_is_left_out(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("id,text,mood,topic\na,x,happy,\nb,y,,cats\nc,z,,\n" + "".join(
        f"r{i},t,{MOODS[i % 2]},{TOPICS[i % 3]}\n" for i in range(30)), encoding="utf-8")
    cfg = load_config(None, ["data.source=manifest", f"data.path={path}", "data.columns.labels.mood=mood",
                             "data.columns.labels.topic=topic", "progress=false"])
    data = prepare(cfg.data, ["mood", "topic"], progress=False)
    ids = {p.id for v in data.splits.values() for p in v}
    assert {"a", "b"} <= ids and "c" not in ids
    assert any("without a label for any of mood, topic" in n for n in data.notes)


def test_the_split_is_stratified_by_the_first_task_and_single_task_splits_do_not_move(tmp_path):
    path = _csv(tmp_path)
    multi = prepare(_cfg(path).data, ["mood", "topic", "size"], progress=False)
    single = prepare(_cfg(path).data, "mood", progress=False)
    assert {k: [p.id for p in v] for k, v in multi.splits.items()} == {k: [p.id for p in v]
                                                                     for k, v in single.splits.items()}
    sad = {s: [p.labels["mood"] for p in multi.splits[s]].count("sad") for s in ("train", "dev", "test")}
    assert sad == {"train": 8, "dev": 1, "test": 1}            # 10 sad of 90: one in each of 10 folds
    by_topic = prepare(_cfg(path).data, ["topic", "mood"], progress=False)
    for split in ("train", "dev", "test"):
        topics = [p.labels["topic"] for p in by_topic.splits[split]]
        assert len(set(topics.count(t) for t in TOPICS)) == 1          # 30 / 30 / 30: equal in every split


def test_multi_label_from_0_1_columns_and_a_separator(tmp_path):
    cfg = _cfg(_csv(tmp_path), "data.columns.labels.emotion=[Joy,Fear]", "data.columns.labels.tags=tags",
               "data.columns.label_sep.tags='|'")
    data = prepare(cfg.data, ["mood", "emotion", "tags"], progress=False)
    emotion, tags = data.tasks[1], data.tasks[2]
    assert emotion == TaskSpec("emotion", ["Joy", "Fear"], multi_label=True)
    assert tags == TaskSpec("tags", ["cute", "funny"], multi_label=True)
    posts = {p.id: p for v in data.splits.values() for p in v}
    assert posts["p003"].labels["emotion"] == ("Joy", "Fear") and posts["p002"].labels["emotion"] == ()
    assert posts["p005"].labels["tags"] == ("funny", "cute") and posts["p000"].labels["tags"] == ("cute",)
    assert "tags" not in posts["p002"].labels                                  # an empty cell: no label
    order = [p for v in data.splits.values() for p in v]
    y = task_label_arrays(order, data.tasks)
    assert y["emotion"].shape == (90, 2) and y["emotion"].dtype == np.float32
    i2, i3 = order.index(posts["p002"]), order.index(posts["p003"])
    assert y["emotion"][i3].tolist() == [1.0, 1.0] and y["emotion"][i2].tolist() == [0.0, 0.0]
    assert y["tags"][i2].tolist() == [-1.0, -1.0]                               # the whole row -1 when missing
    batch = PostDataset(order, y, text_features=np.zeros((90, 4), np.float32)).__getitems__([i2, i3])
    assert batch.task_labels["tags"].dtype == torch.float32 and batch.task_labels["tags"][0].tolist() == [-1, -1]


def test_multi_label_from_a_jsonl_list_cell(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "text": "t", "tags": ["a", "b"][: i % 3]}) + "\n"
                            for i in range(6)), encoding="utf-8")
    posts = load_manifest(path, ColumnMapping(labels={"tags": "tags"}))
    assert [p.labels["tags"] for p in posts[:3]] == [(), ("a",), ("a", "b")]


def test_a_bad_0_1_cell_names_file_row_and_key(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,text,Joy,Fear\na,x,1,0\nb,y,0,maybe\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad.csv: row 2, column 'Fear' \(data.columns.labels.emotion\)"):
        load_manifest(path, ColumnMapping(labels={"emotion": ["Joy", "Fear"]}))


def test_an_unknown_label_of_a_multi_label_task_is_reported(tmp_path):
    cfg = _cfg(_csv(tmp_path), "data.columns.labels.tags=tags", "data.columns.label_sep.tags='|'")
    cfg.data.labels = {"tags": ["funny"]}
    with pytest.raises(ValueError, match="label 'cute' is not one of"):
        prepare(cfg.data, ["mood", "tags"], progress=False)


def test_data_labels_per_task_and_its_errors(tmp_path):
    path = _csv(tmp_path)
    data = prepare(_cfg(path, "data.labels={mood: [sad, happy], topic: [food, dogs, cats]}").data,
                   ["mood", "topic"], progress=False)
    assert [t.labels for t in data.tasks] == [["sad", "happy"], ["food", "dogs", "cats"]]
    with pytest.raises(ConfigError, match="data.labels.topic"):
        _cfg(path, "data.labels={topic: food}")


def test_prepared_data_keeps_its_single_task_form():
    data = PreparedData("mood", MOODS, {"train": []})
    assert data.tasks == [TaskSpec("mood", MOODS)] and data.task == "mood" and data.labels == MOODS
