"""The one prediction record every writer uses, the tasks a run's ``labels.json`` describes (both shapes), and
the loaded run's path from a model's output to records, with one head or several."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mmpost.apps.predictor import Predictor, model_classes, probabilities, task_logits
from mmpost.evaluation.predictions import (
    Task,
    predicted_label,
    prediction_record,
    prediction_records,
    record_tasks,
    run_tasks,
    tasks_from_json,
    tasks_to_json,
    write_predictions,
)
from mmpost.models.output import ModelOutput

MOOD = Task("mood", ("red", "blue", "green"))
TOPICS = Task("topics", ("sport", "food"), multi_label=True)


# --- labels.json -----------------------------------------------------------------------------------------------

def test_both_shapes_of_labels_json_are_read(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"task": "mood", "labels": ["red", "blue", "green"]}))
    assert run_tasks(tmp_path) == [MOOD]
    (tmp_path / "labels.json").write_text(json.dumps(tasks_to_json([MOOD, TOPICS])))
    assert run_tasks(tmp_path) == [MOOD, TOPICS]                 # in the file's order, multi_label kept
    assert json.loads((tmp_path / "labels.json").read_text())["tasks"]["topics"] == \
        {"labels": ["sport", "food"], "multi_label": True}
    assert tasks_from_json({"tasks": {"mood": {"labels": ["a", "b"]}}}) == [Task("mood", ("a", "b"))]


@pytest.mark.parametrize("info, needle", [
    ([], "expected a JSON object"),
    ({"labels": ["a"]}, "neither `tasks` nor `task`"),
    ({"tasks": {}}, "`tasks` must map"),
    ({"tasks": {"mood": {"labels": []}}}, "tasks.mood: `labels` must be a non-empty list"),
    ({"tasks": {"mood": {"labels": ["a", "a"]}}}, "names a label twice"),
    ({"tasks": {"mood": {"labels": ["a"], "multi_label": "yes"}}}, "`multi_label` must be true or false"),
    ({"task": "", "labels": ["a"]}, "non-empty string"),
])
def test_a_bad_labels_json_is_named(info, needle):
    with pytest.raises(ValueError, match="runs/x/labels.json") as e:
        tasks_from_json(info, "runs/x/labels.json")
    assert needle in str(e.value)


def test_a_missing_or_broken_labels_json_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.json is missing"):
        run_tasks(tmp_path)
    (tmp_path / "labels.json").write_text("{")
    with pytest.raises(ValueError, match="labels.json: not valid JSON"):
        run_tasks(tmp_path)
    with pytest.raises(ValueError, match="distinct task names"):
        tasks_to_json([MOOD, MOOD])


# --- records -----------------------------------------------------------------------------------------------------

def test_a_one_task_record_is_flat_with_gold_where_known():
    rec = prediction_record("7", [MOOD], {"mood": np.array([0.2, 0.5, 0.3], np.float32)}, np.bool_(True))
    assert list(rec) == ["id", "label", "probs", "image_used"] and rec["label"] == "blue"
    assert list(rec["probs"]) == ["red", "blue", "green"] and rec["image_used"] is True
    assert all(type(p) is float for p in rec["probs"].values())
    golden = prediction_record("7", [MOOD], {"mood": [0.2, 0.5, 0.3]}, False, {"mood": "red", "other": "x"})
    assert golden["gold"] == "red" and list(golden) == ["id", "label", "probs", "image_used", "gold"]
    json.dumps(golden)                                          # plain JSON, nothing numpy left in it


def test_several_tasks_nest_under_tasks_and_multi_label_thresholds_at_one_half():
    rec = prediction_record("p", [MOOD, TOPICS], {"mood": [0.1, 0.1, 0.8], "topics": [0.5, 0.4999]}, True,
                            {"topics": ["sport"]})
    assert rec == {"id": "p", "image_used": True, "tasks": {
        "mood": {"label": "green", "probs": {"red": 0.1, "blue": 0.1, "green": 0.8}},
        "topics": {"label": ["sport"], "probs": {"sport": 0.5, "food": 0.4999}, "gold": ["sport"]}}}
    assert predicted_label(TOPICS, [0.1, 0.2]) == []
    assert predicted_label(MOOD, [0.4, 0.4, 0.2]) == "red"      # the first of equals, as argmax
    assert record_tasks(rec, [MOOD, TOPICS]) == rec["tasks"]
    flat = prediction_record("q", [MOOD], {"mood": [0.1, 0.1, 0.8]}, True, {"mood": "red"})
    assert record_tasks(flat, [MOOD]) == {"mood": {"label": "green", "probs": flat["probs"], "gold": "red"}}


def test_records_of_a_batch_round_on_request_and_check_their_sizes():
    probs = {"mood": np.array([[0.1234567, 0.2, 0.6765433], [0.5, 0.25, 0.25]])}
    recs = prediction_records(["a", None], [MOOD], probs, np.array([1, 0]), decimals=6)
    assert [r["id"] for r in recs] == ["a", None] and recs[0]["probs"]["red"] == 0.123457
    assert [r["image_used"] for r in recs] == [True, False]
    with pytest.raises(ValueError, match="2 post ids, but rows per task {'mood': 1}"):
        prediction_records(["a", "b"], [MOOD], {"mood": probs["mood"][:1]}, [True, True])
    with pytest.raises(ValueError, match="no probabilities for task.s. topics"):
        prediction_record("a", [MOOD, TOPICS], {"mood": [0.2, 0.3, 0.5]}, True)
    with pytest.raises(ValueError, match="2 probabilities for 3 labels"):
        prediction_record("a", [MOOD], {"mood": [0.5, 0.5]}, True)


def test_predictions_are_written_as_json_lines_in_one_step(tmp_path):
    recs = prediction_records(["é", "b"], [MOOD], {"mood": [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]}, [True, False],
                              [{"mood": "red"}, {}])
    path = write_predictions(tmp_path / "test_predictions.jsonl", recs)
    text = path.read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == recs and '"é"' in text
    assert [p.name for p in tmp_path.iterdir()] == ["test_predictions.jsonl"]       # no temporary file left


def test_the_schema_loads_without_the_apps_the_engine_or_the_cli():
    import subprocess
    import sys
    code = ("import sys, mmpost.evaluation.predictions; "
            "print(sorted(m for m in sys.modules if m.startswith(('mmpost.apps', 'mmpost.engine', 'mmpost.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- from a model's output ---------------------------------------------------------------------------------------

def _output(logits: torch.Tensor, **extra) -> ModelOutput:
    out = ModelOutput(logits=logits, text_embeds=logits, image_embeds=logits, fused=logits,
                      has_image=torch.ones(len(logits), dtype=torch.bool))
    for k, v in extra.items():
        setattr(out, k, v)
    return out


def test_one_accessor_reads_a_one_head_and_a_several_head_output():
    one = torch.tensor([[1.0, 2.0, 3.0]])
    assert list(task_logits(_output(one, task_logits={"mood": one}), [MOOD])) == ["mood"]
    two = {"topics": torch.tensor([[0.0, 2.0]]), "mood": one}
    got = task_logits(_output(one, task_logits=two), [MOOD, TOPICS])
    assert list(got) == ["mood", "topics"] and got["topics"] is two["topics"]
    with pytest.raises(ValueError, match="no logits for task.s. topics"):
        task_logits(_output(one, task_logits={"mood": one}), [MOOD, TOPICS])
    assert model_classes([MOOD]) == {"mood": 3} and model_classes([MOOD, TOPICS]) == {"mood": 3, "topics": 2}


def test_probabilities_are_a_softmax_or_independent_sigmoids():
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    assert probabilities(logits, Task("t", ("a", "b"))).sum(1) == pytest.approx([1, 1])
    sig = probabilities(logits, TOPICS)
    assert sig[0].tolist() == [0.5, 0.5] and sig[1, 0] == pytest.approx(1 / (1 + math.exp(-2)))


class SecondHead(torch.nn.Module):
    """A one-task run's model with a made-up multi-label head added: its output carries ``task_logits``, as a
    model built with several tasks will."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        out = self.inner(batch)
        topics = torch.stack([out.logits[:, 0] - out.logits[:, 1], out.logits[:, 2]], dim=-1)
        out.task_logits = {"mood": out.logits, "topics": topics}
        return out


def with_second_head(predictor: Predictor) -> Predictor:
    predictor.model = SecondHead(predictor.model).eval()
    return predictor


def two_task_predictor(run_dir) -> Predictor:
    """A loaded run that predicts two tasks: its own (``mood``) and a fake multi-label ``topics``."""
    predictor = Predictor(run_dir)
    predictor.tasks = [predictor.tasks[0], TOPICS]
    return with_second_head(predictor)


def two_task_run(run_dir, copy, monkeypatch):
    """A copy of a one-task run whose ``labels.json`` names two tasks (the new shape), loaded as a model with
    two heads would be: the one-head model of today's tree is built and given :class:`SecondHead`."""
    import shutil

    import mmpost.apps.predictor as predictor_module
    shutil.copytree(run_dir, copy)
    mood = run_tasks(run_dir)[0]
    (copy / "labels.json").write_text(json.dumps(tasks_to_json([mood, TOPICS])))
    monkeypatch.setattr(predictor_module, "model_classes", lambda tasks: {tasks[0].name: len(tasks[0].labels)})
    return copy, lambda folder: with_second_head(Predictor(folder))
