"""Predict class probabilities for a manifest of posts, streaming: the cost per post stays flat.

- The manifest is read one post at a time (:func:`mmpost.data.manifest.iter_manifest`) and predicted a chunk at
  a time; no list of all posts is ever held.
- Each chunk's lines are appended to ``OUT.part`` and flushed and fsynced at the chunk's end; when every post is
  done the part file is renamed onto ``OUT`` in one step, so ``OUT`` is always either absent or complete.
- A re-run after a crash (or Ctrl-C) finds the part file, truncates a half-written last line, checks by post id
  that its lines are the manifest's first posts, and predicts only the rest. ``OUT.part.json`` records the run
  and the data the part file belongs to, so a part file is never continued with another model.
- Frozen towers' features of a chunk go to a throwaway folder that is removed after the chunk (``cache=True``:
  the run's feature cache, which then grows by every new post), so neither memory nor disk grows with the data.
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mmpost.apps.predict_shards import Shard, ShardFiles, merge_shards, own_chunks, whole_chunks
from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import adapter_file, column_mapping, in_own_layout
from mmpost.atomic import atomic_write_json
from mmpost.config import ColumnsConfig, FabricConfig, RunConfig, load_config, resolve
from mmpost.data.file_columns import complete_mapping
from mmpost.data.manifest import ColumnMapping, iter_manifest
from mmpost.data.post import Post
from mmpost.engine.setup import is_multiprocess, make_fabric
from mmpost.evaluation.predictions import prediction_line
from mmpost.progress import bar as progress_bar

DECIMALS = 6        # probabilities in the file: enough to rank and threshold, short enough to read

# ------------------------------------------------------------------------------------------------------ chunks


def chunks(posts: Iterator[Post], size: int) -> Iterator[list[Post]]:
    part: list[Post] = []
    for post in posts:
        part.append(post)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


# ---------------------------------------------------------------------------------------- the part file, resumed


def _finished_lines(part: Path) -> Iterator[dict[str, Any]]:
    """The complete lines of a part file left by an interrupted run, after cutting off a half-written last line."""
    with open(part, "rb+") as f:
        data_end = keep = f.seek(0, os.SEEK_END)
        while keep > 0:          # back to just after the last newline, a block at a time
            start = max(0, keep - 65536)
            f.seek(start)
            cut = f.read(keep - start).rfind(b"\n")
            keep = start + cut + 1 if cut >= 0 else start
            if cut >= 0:
                break
        if keep != data_end:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    with open(part, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                yield json.loads(line)
            except ValueError:
                raise ValueError(f"{part}: line {lineno} is not a prediction; delete the file to start again") from None


def _check_owner(meta_path: Path, part: Path, owner: dict[str, Any]) -> None:
    if not meta_path.exists():
        raise ValueError(f"{part} exists but {meta_path.name} (which run and data it belongs to) does not; "
                         "delete it to start again")
    had = json.loads(meta_path.read_text(encoding="utf-8"))
    if had != owner:
        diff = ", ".join(f"{k}: {had.get(k)!r} (now {v!r})" for k, v in owner.items() if had.get(k) != v)
        raise ValueError(f"{part} was started by another prediction ({diff}); delete it, or finish that one first")


def _skip_finished(posts: Iterator[Post], part: Path, counts: dict[str, int]) -> None:
    """Advance ``posts`` past the posts whose lines ``part`` holds, checking their ids in order."""
    for k, line in enumerate(_finished_lines(part), start=1):
        post = next(posts, None)
        if post is None:
            raise ValueError(f"{part} holds more predictions than the data has posts (line {k}); "
                             "delete it to start again")
        if str(line.get("id")) != post.id:
            where = f"{post.meta.get('source', 'the data')}:{post.meta.get('row', k)}"
            raise ValueError(f"{part}: line {k} is post {line.get('id')!r} but {where} is post {post.id!r}: the "
                             "data changed since the interrupted run; delete the part file to start again")
        counts["posts"] += 1
        counts["resumed"] += 1
        counts["without_image"] += int(not line.get("image_used", True))


# ------------------------------------------------------------------------------------------------------ predict


def predict_file(run_dir: str | Path, data: str, out: str | Path, *, overrides: list[str] | None = None,
                 chunk: int = 1024, batch_size: int = 128, cache: bool = False,
                 progress: bool = True, runtime: str = "torch") -> dict[str, int]:
    """Read ``data`` with the run's column mapping (label columns are not needed), predict every post and write
    one prediction record (:mod:`mmpost.evaluation.predictions`) per line, in the data's order: ``{"id",
    "label", "probs": {label: p}, "image_used"}`` for a one-task run, ``{"id", "image_used", "tasks": {...}}``
    for several. Probabilities are rounded to 6 decimals.

    Returns counts: ``posts`` (all), ``without_image``, ``resumed`` (lines kept from an interrupted run); sharded
    over processes, every process gets the totals and ``rank``, its own."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 post, got {chunk}")
    run_dir, out = Path(run_dir), Path(out)
    processes = fabric_overrides(overrides)
    if is_multiprocess(processes):
        return _predict_sharded(run_dir, data, out, processes, overrides=overrides, chunk=chunk,
                                batch_size=batch_size, cache=cache, progress=progress, runtime=runtime)
    device = "cuda" if processes.accelerator in ("gpu", "cuda") else None      # fabric.accelerator=gpu, 1 process
    predictor = Predictor(run_dir) if (runtime, device) == ("torch", None) else Predictor(run_dir, runtime, device)
    manifest, stream = _posts(run_dir, data, overrides)
    part, owner_file = out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")
    owner = _owner(run_dir, predictor, manifest, overrides)
    first = next(stream, None)            # a file that cannot be read fails here, before anything is written
    posts = itertools.chain([first] if first is not None else [], stream)
    counts = {"posts": 0, "without_image": 0, "resumed": 0}
    if part.exists() and part.stat().st_size == 0:
        part.unlink()                     # nothing was finished: start afresh, whoever started it
    if part.exists():
        _check_owner(owner_file, part, owner)
        _skip_finished(posts, part, counts)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(owner_file, owner)       # before the part file: a part file always has its owner
    bar = progress_bar(enabled=progress, desc="predict", unit="post", initial=counts["posts"])
    with open(part, "a", encoding="utf-8") as f:
        for posts_of_chunk in chunks(posts, chunk):
            _write_chunk(f, predictor, posts_of_chunk, counts, batch_size=batch_size, cache=cache)
            bar.update(len(posts_of_chunk))
    bar.close()
    os.replace(part, out)
    owner_file.unlink(missing_ok=True)
    return counts


def fabric_overrides(overrides: list[str] | None) -> FabricConfig:
    """The processes to predict with: the ``fabric.*`` overrides given to this command on the defaults (one
    process), never the run's own training setup."""
    return load_config(None, [o for o in overrides or [] if o.startswith("fabric.")]).fabric


def _predict_sharded(run_dir: Path, data: str, out: Path, processes: FabricConfig, *, overrides: list[str] | None,
                     chunk: int, batch_size: int, cache: bool, progress: bool, runtime: str) -> dict[str, int]:
    """Every process predicts its shard (:mod:`mmpost.apps.predict_shards`); rank 0 merges them into ``out``."""
    fabric = make_fabric(processes)
    shard = Shard(fabric.global_rank, fabric.world_size)
    predictor = Predictor(run_dir, device=fabric.device, runtime=runtime)
    manifest, stream = _posts(run_dir, data, overrides)
    files = ShardFiles.of(out, shard)
    owner = {**_owner(run_dir, predictor, manifest, overrides), "chunk": chunk, "shard": [shard.rank, shard.world]}
    counts = {"posts": 0, "without_image": 0, "resumed": 0}
    if files.done.exists():             # complete before an interruption: left as it is
        _check_owner(files.owner, files.done, owner)
        _count_finished(files.done, counts)
    else:
        _predict_shard(predictor, stream, files, owner, shard, counts, chunk=chunk, batch_size=batch_size,
                       cache=cache, progress=progress and shard.rank == 0)
    fabric.barrier()
    if shard.rank == 0:
        merge_shards(out, shard.world, chunk)
    fabric.barrier()
    total = fabric.all_reduce(torch.tensor([counts["posts"], counts["without_image"], counts["resumed"]],
                                           dtype=torch.float64), reduce_op="sum")
    fabric.barrier()
    if torch.distributed.is_initialized():      # a clean end: no process leaves the group while another still talks
        torch.distributed.destroy_process_group()
    return {**dict(zip(("posts", "without_image", "resumed"), (int(v) for v in total.tolist()))), "rank": shard.rank}


def _predict_shard(predictor: Predictor, stream: Iterator[Post], files: ShardFiles, owner: dict[str, Any],
                   shard: Shard, counts: dict[str, int], *, chunk: int, batch_size: int, cache: bool,
                   progress: bool) -> None:
    skip = 0
    if files.part.exists():
        _check_owner(files.owner, files.part, owner)
        skip = whole_chunks(files.part, chunk)
        _count_finished(files.part, counts)
    else:
        files.part.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(files.owner, owner)
    bar = progress_bar(enabled=progress, desc=f"predict (shard {shard.rank} of {shard.world})", unit="post")
    with open(files.part, "a", encoding="utf-8") as f:
        for n, posts_of_chunk in enumerate(own_chunks(chunks(stream, chunk), shard)):
            if n < skip:
                continue
            _write_chunk(f, predictor, posts_of_chunk, counts, batch_size=batch_size, cache=cache)
            bar.update(len(posts_of_chunk))
    bar.close()
    os.replace(files.part, files.done)


def _count_finished(path: Path, counts: dict[str, int]) -> None:
    for line in _finished_lines(path):
        counts["posts"] += 1
        counts["resumed"] += 1
        counts["without_image"] += int(not line.get("image_used", True))


def _owner(run_dir: Path, predictor: Predictor, manifest: str, overrides: list[str] | None) -> dict[str, Any]:
    labels = predictor.labels if len(predictor.tasks) == 1 else {t.name: list(t.labels) for t in predictor.tasks}
    return {"run": str(run_dir.resolve()), "data": str(Path(manifest).resolve()), "labels": labels,
            "overrides": [o for o in overrides or [] if not o.startswith("fabric.")]}


def _write_chunk(f: Any, predictor: Predictor, posts: list[Post], counts: dict[str, int], *, batch_size: int,
                 cache: bool) -> None:
    """Predict one chunk and append its lines, flushed and fsynced: a crash loses at most the chunk in progress."""
    scores = _predict_chunk(predictor, posts, batch_size=batch_size, cache=cache)
    records = predictor.records([p.id for p in posts], scores.probs, scores.image_used, decimals=DECIMALS,
                                probs_raw=scores.probs_raw)
    counts["without_image"] += int((~scores.image_used.astype(bool)).sum())
    f.writelines(prediction_line(r) for r in records)
    f.flush()
    os.fsync(f.fileno())
    counts["posts"] += len(posts)


def _posts(run_dir: Path, data: str, overrides: list[str] | None) -> tuple[str, Iterator[Post]]:
    """The data file and its posts: read by the run's dataset adapter when the file is in that dataset's own layout
    (a small file, read whole), else streamed as a manifest with the run's column mapping."""
    cfg = load_config(run_dir / "config.yaml", overrides)
    if in_own_layout(cfg.data, data):
        return str(Path(data).expanduser().resolve()), iter(adapter_file(cfg.data, data)[0])
    path, mapping = _manifest(cfg, data)
    return path, iter_manifest(path, mapping)


def _manifest(cfg: RunConfig, data: str) -> tuple[str, ColumnMapping]:
    """The data file, and the run's column mapping for it (without labels or splits: not needed to predict)."""
    p = Path(data).expanduser()
    columns: ColumnsConfig = replace(cfg.data.columns, labels={}, label_values={}, split=None)
    dcfg = replace(cfg.data, source="manifest", path=str(p.resolve()) if p.exists() else data, columns=columns)
    path = str(resolve(dcfg, dcfg.path))
    return path, complete_mapping(path, column_mapping(dcfg))


def _predict_chunk(predictor: Predictor, posts: list[Post], *, batch_size: int, cache: bool):
    """Calibrated and raw probabilities and the image mask of one chunk."""
    if cache:
        return predictor.scores(posts, batch_size=batch_size)
    with tempfile.TemporaryDirectory(prefix="mmpost-predict-") as scratch:
        return predictor.scores(posts, batch_size=batch_size, cache_dir=scratch)
