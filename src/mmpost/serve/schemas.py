"""The API's request and response bodies. FastAPI turns them into the OpenAPI schema behind ``/docs``."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PostIn(BaseModel):
    """One post as JSON. Unknown fields are refused, so a misspelt ``img`` is an error rather than a post
    silently predicted without its image."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="Echoed back in the answer; nothing else reads it.")
    text: str = Field("", description="The post's text. May be empty when an image is given.")
    image: str | None = Field(None, description="The image file's bytes, base64-encoded (standard alphabet; a "
                                                "`data:image/...;base64,` prefix is accepted). Omit it for a "
                                                "post without an image.")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    posts: list[PostIn] = Field(description="The posts, predicted in one forward pass. A bad post rejects the "
                                            "whole batch, and the message names it (`posts[3].image: ...`).")


LABEL_DESCRIPTION = ("The most probable label; for a binary task with an operating point (`mmpost calibrate`), the "
                     "positive label where its probability reaches the threshold; for a multi-label task, the list "
                     "of labels with probability 0.5 or more.")
PROBS_DESCRIPTION = ("Calibrated probability of every label, in the run's label order (temperature scaling "
                     "fitted on dev; a multi-label task's are independent and need not sum to 1).")
PROBS_RAW_DESCRIPTION = "The model's own probabilities before calibration, in the same order."
IMAGE_USED_DESCRIPTION = "False when the post had no image (the learned \"no image\" vector stood in)."


class PredictionOut(BaseModel):
    """A one-task run's answer for one post (the record of :mod:`mmpost.evaluation.predictions`)."""

    id: str | None = Field(description="The post's id as given (a batch post without one: its position).")
    label: str | list[str] = Field(description=LABEL_DESCRIPTION)
    probs: dict[str, float] = Field(description=PROBS_DESCRIPTION)
    probs_raw: dict[str, float] | None = Field(default=None, description=PROBS_RAW_DESCRIPTION)
    image_used: bool = Field(description=IMAGE_USED_DESCRIPTION)


class TaskPredictionOut(BaseModel):
    label: str | list[str] = Field(description=LABEL_DESCRIPTION)
    probs: dict[str, float] = Field(description=PROBS_DESCRIPTION)
    probs_raw: dict[str, float] | None = Field(default=None, description=PROBS_RAW_DESCRIPTION)


class TasksPredictionOut(BaseModel):
    """A several-task run's answer for one post: one entry per task, in the run's task order."""

    id: str | None = Field(description="The post's id as given (a batch post without one: its position).")
    image_used: bool = Field(description=IMAGE_USED_DESCRIPTION)
    tasks: dict[str, TaskPredictionOut] = Field(description="Each task's prediction, by task name.")


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class TasksBatchOut(BaseModel):
    predictions: list[TasksPredictionOut]


def prediction_models(n_tasks: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """The answers of ``/predict`` and ``/predict/batch`` for a run with this many tasks."""
    return (PredictionOut, BatchOut) if n_tasks == 1 else (TasksPredictionOut, TasksBatchOut)


class TaskOut(BaseModel):
    name: str
    labels: list[str] = Field(description="Label names, in the order of `probs`.")
    multi_label: bool = Field(description="Whether a post may carry several of the task's labels at once.")


class HealthOut(BaseModel):
    status: Literal["ok"]
    run: str
    task: str = Field(description="The run's (first) task.")
    tasks: list[str] = Field(description="Every task the run predicts, in order.")


class ModelOut(BaseModel):
    run: str = Field(description="The run folder's name.")
    task: str = Field(description="The run's (first) task.")
    labels: list[str] = Field(description="The (first) task's label names, in the order of `probs`.")
    tasks: list[TaskOut] = Field(description="Every task the run predicts, in order, with its labels.")
    config: dict[str, Any] = Field(description="What was trained: model family, encoders, objectives, "
                                               "training settings.")
    metrics: dict[str, Any] | None = Field(description="The run's `metrics.json` (dev and test), if present.")
    limits: dict[str, int] = Field(description="This server's request limits.")


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, naming the field.")
