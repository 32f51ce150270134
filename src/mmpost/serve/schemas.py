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


class PredictionOut(BaseModel):
    id: str | None = Field(description="The post's id as given (a batch post without one: its position).")
    label: str = Field(description="The most probable label.")
    probs: dict[str, float] = Field(description="Probability of every label, in the run's label order.")
    image_used: bool = Field(description="False when the post had no image (the learned \"no image\" vector "
                                         "stood in).")


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    run: str
    task: str


class ModelOut(BaseModel):
    run: str = Field(description="The run folder's name.")
    task: str
    labels: list[str] = Field(description="Label names, in the order of `probs`.")
    config: dict[str, Any] = Field(description="What was trained: model family, encoders, objectives, "
                                               "training settings.")
    metrics: dict[str, Any] | None = Field(description="The run's `metrics.json` (dev and test), if present.")
    limits: dict[str, int] = Field(description="This server's request limits.")


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, naming the field.")
