"""Suspected label errors as a Label Studio project: import tasks with the model's suggestion as a pre-annotation,
and the labeling config that shows them.

Each task::

    {"data": {"text": ..., "image": "/data/local-files/?d=photos/17.jpg", "id": "17", "given": "neutral",
              "suggested": "positive", "doubt": 0.93, "flagged": true, "rank": 1, "row": 57},
     "predictions": [{"model_version": "mmpost-cv", "score": 0.93,
                      "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                  "value": {"choices": ["positive"]}}]}]}

The image field is a Label Studio *local files* URL: the image's path relative to a document root, which
Label Studio must serve (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the same folder). The default root is the file-system root, so
``d`` is the absolute path without its leading slash; pass a narrower root to expose less. A post without an image
gets ``""`` (the key stays, as the config names it).

Plain data: the app writes the two files.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from mmpost.evaluation.label_issues import IssuePost

__all__ = ["MODEL_VERSION", "local_files_url", "label_studio_task", "label_studio_tasks", "label_studio_config"]

MODEL_VERSION = "mmpost-cv"
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def local_files_url(image: str | Path, document_root: str | Path | None = None) -> str:
    """The Label Studio local-files URL of ``image``: its absolute path relative to ``document_root`` (default
    the file-system root), percent-encoded. Raises ValueError for an image outside the root."""
    path = Path(os.path.abspath(image))
    root = Path(os.path.abspath(document_root)) if document_root is not None else Path(path.anchor)
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(f"image {path} is outside the Label Studio document root {root}") from None
    return LOCAL_FILES_PREFIX + quote(relative.as_posix(), safe="/")


def label_studio_task(post: IssuePost, document_root: str | Path | None = None) -> dict[str, Any]:
    """One import task: the post's data and the suggested label as a prediction scored by the doubt."""
    data: dict[str, Any] = {
        "text": post.text,
        "image": local_files_url(post.image, document_root) if post.image else "",
        "id": post.post_id,
        "given": post.given,
        "suggested": post.suggested,
        "doubt": round(post.score, 6),
        "flagged": post.is_issue,
        "rank": post.rank,
    }
    if post.row is not None:
        data["row"] = post.row
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [post.suggested]}}]
    return {"data": data,
            "predictions": [{"model_version": MODEL_VERSION, "score": round(post.score, 6), "result": result}]}


def label_studio_tasks(posts: Sequence[IssuePost], document_root: str | Path | None = None) -> list[dict[str, Any]]:
    """One task per post, in the order given (the ranking: suspected label errors first, then by doubt)."""
    return [label_studio_task(p, document_root) for p in posts]


def label_studio_config(labels: Sequence[str]) -> str:
    """The labeling config: the post's id and given label, its image and text, and one Choice per label
    (the ``label`` control the predictions fill in)."""
    if not labels:
        raise ValueError("a Label Studio config needs at least one label")
    choices = "\n".join(f"    <Choice value={quoteattr(str(label))}/>" for label in labels)
    return ('<View>\n'
            '  <Header value="Post $id — given label: $given (suggested: $suggested, doubt $doubt)"/>\n'
            '  <Image name="image" value="$image" maxWidth="480px"/>\n'
            '  <Text name="text" value="$text"/>\n'
            '  <Choices name="label" toName="text" choice="single" showInline="true">\n'
            f'{choices}\n'
            '  </Choices>\n'
            '</View>\n')
