"""What a dataset adapter is: a named reader of one published dataset's real files into posts with splits.

An adapter knows its files (relative to the data root), its tasks and their label names in order, and its
splits; it returns posts whose ``meta["split"]`` is already set, and notes for the log and the report (label
mappings that were inferred, images that are absent, rows left out). Register one with
``@register("dataset", "name")``; ``data.source: name`` in a config selects it, ``data.options`` passes its
options and ``data.image_root`` points it at images a user has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mmpost.data.post import Post


@dataclass
class SourceData:
    posts: list[Post]                                  # every post has meta["split"] in train / dev / test
    notes: list[str] = field(default_factory=list)     # said in the log and in each run's report


class DatasetSource:
    """Subclass, set the class attributes, implement :meth:`load`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tasks: ClassVar[dict[str, list[str]]] = {}         # task -> label names, in order
    options: ClassVar[dict[str, Any]] = {}             # option -> default
    default_image_root: ClassVar[str | None] = None    # relative to the data root, where the images ship with it
    # other versions of the test labels, scored next to "test" where a method reports them (e.g. relabelled rows):
    # split name -> option overrides that load them; train and dev must not depend on these options
    test_variants: ClassVar[dict[str, dict[str, Any]]] = {}
    # the header columns of the dataset's data file: declared once, they read its own file and any file in the same
    # layout (``mmpost evaluate/predict RUN --data FILE`` for a run trained on this dataset); empty: not offered
    layout: ClassVar[tuple[str, ...]] = ()

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(f"{k} (default {v!r})" for k, v in self.options.items()) or "none"
            raise ValueError(f"dataset {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"its options: {known}")
        return {**self.options, **options}

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        raise NotImplementedError

    def read_rows(self, path: Path, source: str) -> list[Post]:
        """The labelled posts of one file in :attr:`layout`, without images or splits (adapters with a layout)."""
        raise NotImplementedError

    def image_name(self, post: Post) -> str:
        """The file name of a post's image in the dataset's image folder."""
        return post.id
