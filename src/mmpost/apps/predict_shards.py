"""The files of a sharded ``mmpost predict``: several processes predict one manifest together and the result is
byte for byte the file one process writes.

- The posts are cut into chunks of ``--chunk`` posts, in manifest order, exactly as one process cuts them; a
  shard is every N-th chunk (process r of N takes chunks r, r+N, r+2N, ...), so the batches inside a chunk are
  the ones a single process forms.
- Each process appends its chunks to its own part file, ``OUT.shard-R-of-N.part``, fsynced chunk by chunk, and
  renames it to ``OUT.shard-R-of-N`` when its last chunk is written: a complete shard is never rewritten.
- After a crash, a part file is cut back to its last whole chunk and continues from there (a half-predicted chunk
  is predicted again whole, so its batches stay the same).
- When every shard is complete, rank 0 interleaves them chunk by chunk into ``OUT`` (written to a temporary file
  and renamed: ``OUT`` is absent or complete) and removes the shard files.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Shard", "ShardFiles", "own_chunks", "whole_chunks", "merge_shards"]


@dataclass(frozen=True)
class Shard:
    rank: int
    world: int

    def owns(self, chunk_index: int) -> bool:
        return chunk_index % self.world == self.rank


@dataclass(frozen=True)
class ShardFiles:
    part: Path          # being written
    done: Path          # complete
    owner: Path         # which run, data, chunk size and shard the files belong to

    @classmethod
    def of(cls, out: Path, shard: Shard) -> ShardFiles:
        stem = f"{out.name}.shard-{shard.rank}-of-{shard.world}"
        return cls(out.with_name(stem + ".part"), out.with_name(stem), out.with_name(stem + ".json"))


def own_chunks(chunks: Iterator[list[T]], shard: Shard) -> Iterator[list[T]]:
    """The chunks of ``shard``, in order."""
    return (c for k, c in enumerate(chunks) if shard.owns(k))


def whole_chunks(part: Path, size: int) -> int:
    """Cut ``part`` back to the end of its last whole chunk of ``size`` lines (a half-written line and the lines
    of a chunk in progress go) and return how many whole chunks it holds."""
    offsets = [0]
    with open(part, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                offsets.append(offsets[-1] + len(line))
    n_chunks = (len(offsets) - 1) // size
    keep = offsets[n_chunks * size]
    if keep != os.path.getsize(part):
        with open(part, "rb+") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return n_chunks


def merge_shards(out: Path, world: int, size: int) -> int:
    """Interleave the complete shards of ``world`` processes, chunk by chunk, into ``out`` (atomically); remove
    the shard files; return the number of lines."""
    files = [ShardFiles.of(out, Shard(r, world)) for r in range(world)]
    missing = [str(f.done) for f in files if not f.done.exists()]
    if missing:
        raise FileNotFoundError(f"cannot merge: shard file(s) {', '.join(missing)} are not complete")
    tmp = out.with_name(f".{out.name}.merging")
    readers = [open(f.done, encoding="utf-8") for f in files]
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as w:
            for k in itertools.count():
                lines = list(itertools.islice(readers[k % world], size))
                w.writelines(lines)
                n += len(lines)
                if len(lines) < size:
                    break
            left = [str(f.done) for f, r in zip(files, readers) if r.readline()]
            if left:
                raise ValueError(f"cannot merge: {', '.join(left)} hold(s) more chunks than the data has")
            w.flush()
            os.fsync(w.fileno())
    finally:
        for r in readers:
            r.close()
    os.replace(tmp, out)
    for f in files:
        f.done.unlink()
        f.owner.unlink(missing_ok=True)
    return n
