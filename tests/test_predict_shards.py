"""Sharded ``mmpost predict`` (``fabric.devices=2``): two CPU processes give the file one process writes, byte for
byte, and a re-run after a process is killed leaves a complete shard alone and finishes the rest.

Run as a module (``python -m tests.test_predict_shards ARGS``) this file is the ``mmpost`` command with the tests'
tiny towers registered, which is what Fabric re-launches for the second process; rank 1 is slowed down (when
``SLOW_RANK_1`` is set) so that a test can kill it mid-run after rank 0 has finished its shard.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmpost.apps.predict import predict_file
from mmpost.apps.predict_shards import Shard, ShardFiles, merge_shards, own_chunks, whole_chunks
from tests.test_predict_stream import N_POSTS, trained  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 5


def _command(run: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tests.test_predict_shards", "predict", str(run), "--data", str(data),
            "--out", str(out), "--chunk", str(CHUNK), "fabric.devices=2", "fabric.accelerator=cpu"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


def test_chunks_are_dealt_and_merged_in_manifest_order(tmp_path):
    chunks = [[f"p{i}"] for i in range(7)]
    assert list(own_chunks(iter(chunks), Shard(1, 3))) == [["p1"], ["p4"]]
    out = tmp_path / "o.jsonl"
    lines = [f"{i}\n" for i in range(11)]                      # chunks of 2: 0-1 | 2-3 | 4-5 | 6-7 | 8-9 | 10
    for rank in (0, 1):
        mine = [lines[k * 2:k * 2 + 2] for k in range(6) if k % 2 == rank]
        ShardFiles.of(out, Shard(rank, 2)).done.write_text("".join(x for c in mine for x in c))
    assert merge_shards(out, 2, 2) == 11 and out.read_text() == "".join(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


def test_a_part_file_is_cut_back_to_its_last_whole_chunk(tmp_path):
    part = tmp_path / "x.part"
    part.write_text("a\nb\nc\nd\ne\n{\"half")
    assert whole_chunks(part, 2) == 2 and part.read_text() == "a\nb\nc\nd\n"
    assert whole_chunks(part, 4) == 1 and whole_chunks(part, 5) == 0 and part.read_text() == ""


def test_two_processes_write_the_file_one_process_writes(trained, tmp_path):  # noqa: F811
    run, data = trained
    single = tmp_path / "single.jsonl"
    predict_file(run, str(data), single, chunk=CHUNK, progress=False)
    sharded = tmp_path / "sharded.jsonl"
    done = subprocess.run(_command(run, data, sharded), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sharded.read_bytes() == single.read_bytes()
    assert f"{N_POSTS} posts" in done.stdout and done.stdout.count("posts →") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharded.jsonl", "single.jsonl"]


def test_a_killed_run_keeps_the_complete_shard_and_finishes_the_rest(trained, tmp_path):  # noqa: F811
    run, data = trained
    single = tmp_path / "single.jsonl"
    predict_file(run, str(data), single, chunk=CHUNK, progress=False)
    out = tmp_path / "killed.jsonl"
    first, second = ShardFiles.of(out, Shard(0, 2)), ShardFiles.of(out, Shard(1, 2))
    proc = subprocess.Popen(_command(run, data, out), cwd=ROOT, env=_env(SLOW_RANK_1="1"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if first.done.exists() and second.part.exists() and second.part.read_text().count("\n") >= CHUNK:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sharded run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.done.exists() and not out.exists()
    again = subprocess.run(_command(run, data, out), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert out.read_bytes() == single.read_bytes()
    resumed = int(re.search(r"; (\d+) were done before the interruption", again.stdout).group(1))
    assert resumed >= 25 + CHUNK          # shard 0 (chunks 0, 2, 4, 6, 8: 25 posts) whole, and shard 1's first chunk
    assert not first.done.exists()        # merged, then removed


@pytest.mark.parametrize("bad", ["fabric.devices=0"])
def test_bad_process_settings_are_named(trained, tmp_path, bad):  # noqa: F811
    run, data = trained
    with pytest.raises(Exception, match="devices"):
        predict_file(run, str(data), tmp_path / "o.jsonl", overrides=[bad], progress=False)


if __name__ == "__main__":
    import tests.conftest  # noqa: F401  (registers the tiny towers)
    from mmpost.apps.predictor import Predictor
    from mmpost.cli import main
    real = Predictor.scores

    def slowly(self, posts, **kwargs):
        import torch.distributed as dist
        if os.environ.get("SLOW_RANK_1") and dist.is_initialized() and dist.get_rank() == 1:
            time.sleep(1.0)     # a test kills the run while rank 1 is mid-shard
        return real(self, posts, **kwargs)

    Predictor.scores = slowly  # type: ignore[method-assign]
    main()
