"""Which column of a manifest holds what (:class:`ColumnMapping`), and the error a manifest that cannot be read
raises (:class:`ManifestError`). The readers that apply a mapping are in :mod:`mmpost.data.readers`."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ColumnMapping", "FORMATS", "ManifestError", "REFUSED_IMAGES", "SPLIT_ALIASES"]

# Names a split column may use for the usual three splits.
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev", "development": "dev",
    "test": "test", "testing": "test",
}

# meta key listing image cells that pointed outside the image root: [{"name": cell value, "root": image root}]
REFUSED_IMAGES = "refused_images"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_RESERVED_META = ("source", "row", "split", "image_key", REFUSED_IMAGES)
FORMATS = ("csv", "jsonl", "parquet")


class ManifestError(ValueError):
    """A manifest cannot be read; the message names the file and, where it applies, the row and column."""


@dataclass
class ColumnMapping:
    """Which column of a manifest holds what.

    id            column with the post id; ``None`` → ids ``"row-<n>"``
    text          column, or several columns joined with ``" "`` (empty parts skipped)
    image         column with image file names or ids; ``None`` → text-only posts
    image_root    folder joined to relative image names (default: the manifest's own folder); when given, it is
                  also a boundary: a name that resolves outside it (``../x.jpg``, ``/etc/x.jpg``) is refused
                  (``meta["refused_images"]``, reported by validation as ``unsafe_image_path``)
    image_pattern format applied to each image cell value, e.g. ``"T{}.jpg"``; ``"{}.*"`` finds the file whatever
                  its extension, trying ``image_extensions`` in order
    image_extensions  the extensions ``.*`` tries, in order (default: the common image extensions)
    image_sep     separator for several images in one cell, e.g. ``";"`` (a JSON list cell, or a Parquet list
                  column, also works)
    labels        task name → column, or a list of 0/1 columns (a multi-label task: one column per label, the
                  label named after its column; a post's label is the tuple of columns holding 1)
    label_values  task name → {raw value → label name}; unmapped values are kept as they are
    label_sep     task name → separator of several labels in one cell, e.g. ``"|"`` (a multi-label task; a JSON
                  list cell is one too, without a separator)
    split         column holding train/dev/test (``val``/``valid``/``validation`` → ``dev``)
    keep          extra columns copied into ``Post.meta``
    format        ``"csv"``, ``"jsonl"`` or ``"parquet"``; ``None`` → from the extension (.csv/.tsv,
                  .jsonl/.ndjson, .parquet/.pq)
    encoding      text encoding of the file (CSV and JSONL; Parquet strings are always UTF-8)
    csv_options   passed to the CSV reader (``delimiter``/``sep``, ``quotechar``, ``escapechar``, ``doublequote``,
                  ``skipinitialspace``, ``quoting``, ``strict``)
    """

    id: str | None = "id"
    text: str | list[str] = "text"
    image: str | None = None
    image_root: str | None = None
    image_pattern: str | None = None
    image_sep: str | None = None
    image_extensions: list[str] = field(default_factory=lambda: list(IMAGE_EXTENSIONS))
    labels: dict[str, str | list[str]] = field(default_factory=dict)
    label_values: dict[str, dict[str, str]] = field(default_factory=dict)
    label_sep: dict[str, str] = field(default_factory=dict)
    split: str | None = None
    keep: list[str] = field(default_factory=list)
    format: str | None = None
    encoding: str = "utf-8"
    csv_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # accept any sequence / mapping (e.g. containers from a config library), store plain types
        if not isinstance(self.text, str):
            self.text = [str(c) for c in self.text]
            if not self.text:
                raise ValueError("data.columns.text needs at least one column")
        self.keep = [self.keep] if isinstance(self.keep, str) else [str(c) for c in (self.keep or [])]
        self.labels = {str(t): str(c) if isinstance(c, str) else [str(x) for x in c]
                       for t, c in dict(self.labels or {}).items()}
        self.label_sep = {str(t): str(sep) for t, sep in dict(self.label_sep or {}).items()}
        self.label_values = {str(t): {str(k): str(v) for k, v in dict(table or {}).items()}
                             for t, table in dict(self.label_values or {}).items()}
        self.csv_options = dict(self.csv_options or {})
        bad = [k for k in self.keep if k in _RESERVED_META]
        if bad:
            raise ValueError(f"data.columns.keep cannot hold {bad}: meta keys {_RESERVED_META} are set by the "
                             "importer (map a split column with data.columns.split)")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"data.columns.format must be one of {FORMATS} or None, got {self.format!r}")
        if self.image_pattern is not None:
            try:
                probe = self.image_pattern.format("x")
            except (IndexError, KeyError, ValueError) as e:
                raise ValueError(f"data.columns.image_pattern {self.image_pattern!r} must contain one '{{}}' "
                                 f"for the cell value ({e})") from None
            if probe == self.image_pattern:
                raise ValueError(f"data.columns.image_pattern {self.image_pattern!r} has no '{{}}' placeholder")
        exts = [str(e).strip() for e in self.image_extensions]
        if not exts or not all(e.strip(".") for e in exts):
            raise ValueError(f"data.columns.image_extensions must list extensions such as .jpg, got "
                             f"{list(self.image_extensions)!r}")
        self.image_extensions = [e if e.startswith(".") else f".{e}" for e in exts]
        self._check_label_tasks()

    def _check_label_tasks(self) -> None:
        for what, tasks in (("label_values", self.label_values), ("label_sep", self.label_sep)):
            unknown = set(tasks) - set(self.labels)
            if unknown:
                raise ValueError(f"data.columns.{what} has tasks {sorted(unknown)} that are not in labels "
                                 f"{sorted(self.labels)}")
        for task, cols in self.labels.items():
            if isinstance(cols, list) and (not cols or task in self.label_sep):
                raise ValueError(f"data.columns.labels.{task}: a list of 0/1 columns must name at least one column "
                                 "and takes no label_sep")
        empty = [t for t, sep in self.label_sep.items() if not sep]
        if empty:
            raise ValueError(f"data.columns.label_sep.{empty[0]} is empty: give the separator, e.g. '|'")

    def label_columns(self) -> list[tuple[str, str]]:
        """(column, task) for every label column; a multi-label task's 0/1 columns each."""
        return [(c, t) for t, cols in self.labels.items() for c in ([cols] if isinstance(cols, str) else cols)]

    def multi_label(self, task: str) -> bool:
        """Whether the mapping reads several labels per post for ``task`` (0/1 columns or a separator)."""
        return isinstance(self.labels.get(task), list) or task in self.label_sep

    def text_columns(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    def required_columns(self) -> list[tuple[str, str]]:
        """(column, what it is mapped as) for every column the mapping reads."""
        out: list[tuple[str, str]] = []
        if self.id is not None:
            out.append((self.id, "id"))
        out += [(c, "text") for c in self.text_columns()]
        if self.image is not None:
            out.append((self.image, "image"))
        out += [(c, f"labels[{t!r}]") for c, t in self.label_columns()]
        if self.split is not None:
            out.append((self.split, "split"))
        out += [(c, "keep") for c in self.keep]
        return out
