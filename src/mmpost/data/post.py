"""The one record every part of mmpost speaks: a social-media post."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Post:
    """A post with a text, zero or more images and labels by task name.

    ``images`` holds file paths (absolute, or already joined with the image root).
    ``labels`` maps a task name (``"sentiment"``) to a label *name* (``"positive"``), never a number; for a
    multi-label task, to a tuple of label names (``("joy", "surprise")``, possibly empty).
    ``meta`` keeps everything else a source provides (source file, row number, extra columns).
    """

    id: str
    text: str
    images: list[str] = field(default_factory=list)
    labels: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "images": list(self.images),
                "labels": dict(self.labels), "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Post":
        return cls(id=str(d["id"]), text=str(d.get("text", "")), images=list(d.get("images", [])),
                   labels={str(t): tuple(v) if isinstance(v, list) else v
                           for t, v in dict(d.get("labels", {})).items()},
                   meta=dict(d.get("meta", {})))
