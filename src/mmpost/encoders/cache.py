"""On-disk cache of frozen-tower features, memory-mapped.

One folder per *namespace* — a hash of the tower identity, its preprocessing and the kind of feature — so a
change in any of them starts a fresh folder. Inside, shards of rows (``shard-*.npy``) with their keys
(``shard-*.keys``, one content hash per line). A shard's keys file is written after its array and both are
renamed into place, so an interrupted run leaves only complete shards; finished work is reused.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmpost.atomic import atomic_write


def content_key(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def file_key(path: str) -> str:
    """Key of an image by its bytes (renaming or moving the file keeps its features)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_npy(path: str, values: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(values))


class FeatureCache:
    def __init__(self, root: str | Path, *, identity: str, description: dict | None = None) -> None:
        self.namespace = content_key(identity)[:20]
        self.dir = Path(root) / self.namespace
        self.dir.mkdir(parents=True, exist_ok=True)
        info = self.dir / "info.json"
        if not info.exists():
            atomic_write(info, lambda p: Path(p).write_text(json.dumps({"identity": identity, **(description or {})},
                                                                         indent=1)))
        self._index: dict[str, tuple[Path, int]] = {}
        self._arrays: dict[Path, np.ndarray] = {}
        self._scan()

    def _scan(self) -> None:
        for keys_file in sorted(self.dir.glob("shard-*.keys")):
            arr_file = keys_file.with_suffix(".npy")
            if not arr_file.exists():
                continue
            for row, key in enumerate(keys_file.read_text().split()):
                self._index[key] = (arr_file, row)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def _array(self, path: Path) -> np.ndarray:
        if path not in self._arrays:
            self._arrays[path] = np.load(path, mmap_mode="r")
        return self._arrays[path]

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Rows for ``keys`` (all must be present), stacked in order."""
        rows = [self._array(p)[r] for p, r in (self._index[k] for k in keys)]
        return np.stack(rows) if rows else np.zeros((0,), dtype=np.float32)

    def put(self, keys: Sequence[str], values: np.ndarray) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} rows")
        if not keys:
            return
        stem = f"shard-{uuid.uuid4().hex[:16]}"
        arr_file, keys_file = self.dir / f"{stem}.npy", self.dir / f"{stem}.keys"
        atomic_write(arr_file, lambda p: _save_npy(p, values))
        atomic_write(keys_file, lambda p: Path(p).write_text("\n".join(keys) + "\n"))
        for row, key in enumerate(keys):
            self._index[key] = (arr_file, row)

    def get_or_compute(self, keys: Sequence[str], compute: Callable[[list[int]], np.ndarray], *,
                       chunk: int = 512) -> np.ndarray:
        """Rows for ``keys``; ``compute(positions)`` fills the missing ones (positions index into ``keys``),
        ``chunk`` at a time, each chunk stored as soon as it is done."""
        self._fill_missing(keys, compute, chunk)
        return self.get(keys)

    def _fill_missing(self, keys: Sequence[str], compute: Callable[[list[int]], Any], chunk: int) -> None:
        """Compute and store the rows of the keys not stored yet (each distinct key once), ``chunk`` at a time."""
        missing: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in self._index and k not in seen:
                missing.append(i)
                seen.add(k)
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            self.put([keys[i] for i in part], compute(part))


class RaggedFeatureCache(FeatureCache):
    """A :class:`FeatureCache` whose rows differ in length: one ``[L_i, D]`` array per key (a text's token states,
    L_i its token count). A shard holds its rows end to end (``shard-*.npy``, ``[sum L_i, D]``) with their start
    offsets (``shard-*.offsets.npy``, written before the keys file, so a shard with keys is whole)."""

    def _scan(self) -> None:
        for keys_file in sorted(self.dir.glob("shard-*.keys")):
            arr_file = keys_file.with_suffix(".npy")
            if not (arr_file.exists() and _offsets_file(arr_file).exists()):
                continue
            for row, key in enumerate(keys_file.read_text().split()):
                self._index[key] = (arr_file, row)

    def _offsets(self, arr_file: Path) -> np.ndarray:
        path = _offsets_file(arr_file)
        if path not in self._arrays:
            self._arrays[path] = np.load(path)
        return self._arrays[path]

    def get_rows(self, keys: Sequence[str]) -> list[np.ndarray]:
        """The row of each key (all must be present): read-only, memory-mapped arrays ``[L_i, D]``."""
        out = []
        for key in keys:
            arr_file, row = self._index[key]
            offsets = self._offsets(arr_file)
            out.append(self._array(arr_file)[offsets[row]:offsets[row + 1]])
        return out

    def get(self, keys: Sequence[str]) -> np.ndarray:  # type: ignore[override]
        raise TypeError("rows of a RaggedFeatureCache differ in length: read them with get_rows")

    def put(self, keys: Sequence[str], values: Sequence[np.ndarray]) -> None:  # type: ignore[override]
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} rows")
        if not keys:
            return
        stem = f"shard-{uuid.uuid4().hex[:16]}"
        arr_file, keys_file = self.dir / f"{stem}.npy", self.dir / f"{stem}.keys"
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
        atomic_write(arr_file, lambda p: _save_npy(p, np.concatenate(list(values))))
        atomic_write(_offsets_file(arr_file), lambda p: _save_npy(p, offsets))
        atomic_write(keys_file, lambda p: Path(p).write_text("\n".join(keys) + "\n"))
        for row, key in enumerate(keys):
            self._index[key] = (arr_file, row)

    def get_or_compute_rows(self, keys: Sequence[str], compute: Callable[[list[int]], Sequence[np.ndarray]], *,
                            chunk: int = 512) -> list[np.ndarray]:
        """Rows for ``keys``; ``compute(positions)`` gives the missing ones, ``chunk`` at a time, each chunk stored as
        soon as it is done (see :meth:`FeatureCache.get_or_compute`)."""
        self._fill_missing(keys, compute, chunk)
        return self.get_rows(keys)


def _offsets_file(arr_file: Path) -> Path:
    return arr_file.with_name(arr_file.stem + ".offsets.npy")
