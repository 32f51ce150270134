"""Crash safety: a training process killed with SIGKILL mid-epoch, or stopped with SIGINT, resumes with
``mmpost train --resume`` to exactly the metrics and training log of an uninterrupted run; a checkpoint write that
fails half-way (disk full) leaves the previous checkpoint intact and loadable.

The interrupted runs are real ``mmpost train`` processes (tiny towers, each batch slowed a little so there is an
epoch to interrupt); the reference and the resumed runs use the same cached features and one thread, so equal means
bit-for-bit equal.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import save
from typer.testing import CliRunner

import mmpost.engine.checkpoint as checkpoint_module
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.engine.checkpoint import CheckpointError, CheckpointWriteError, load_weights
from mmpost.engine.resume import LAST, read_fit_state
from tests.conftest import tiny_overrides, write_toy_csv

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 3
# a real `mmpost train`, with the test's tiny towers registered and every batch slowed by 30 ms
DRIVER = """
import sys, time
sys.path.insert(0, {repo!r})
import tests.conftest  # noqa: F401  (registers the tiny towers)
from mmpost.data.dataset import PostDataset
real = PostDataset.__getitems__
def slow(self, indices):
    time.sleep(0.03)
    return real(self, indices)
PostDataset.__getitems__ = slow
from mmpost.cli import app
app(prog_name="mmpost")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Toy data, overrides and an uninterrupted reference run (which also fills the feature cache)."""
    tmp = tmp_path_factory.mktemp("crash")
    csv_path = write_toy_csv(tmp, n=90)
    over = tiny_overrides(tmp, csv_path) + ["objectives.itc.enabled=true", "objectives.itm.enabled=true",
                                            f"train.epochs={EPOCHS}",
                                            "train.patience=10", "model.dropout=0.3", "train.batch_size=4",
                                            "train.threads=1"]
    reference = train(load_config(None, over + ["name=reference"])).run_dir
    recipe = tmp / "recipe.yaml"
    recipe.write_text("task: mood\n")
    driver = tmp / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO)))
    return {"tmp": tmp, "over": over, "reference": reference, "recipe": recipe, "driver": driver}


def _start(setup, name: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    run_dir = setup["tmp"] / "runs" / name
    cmd = [sys.executable, str(setup["driver"]), "train", str(setup["recipe"]), *setup["over"], f"name={name}", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, run_dir


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended (rc {proc.returncode}) before it could be interrupted:\n{out}\n{err}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("training never reached the point to interrupt")
        time.sleep(0.01)


def _checkpoint_within_epoch(run_dir: Path):
    def ready() -> bool:
        try:
            return read_fit_state(run_dir / LAST).within_epoch
        except (FileNotFoundError, CheckpointError):
            return False
    return ready


def _resume_and_compare(setup, run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "progress=false"])
    assert res.exit_code == 0, res.output
    reference = setup["reference"]
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (run_dir / "log.csv").read_text() == (reference / "log.csv").read_text()   # every loss, every epoch
    assert load_weights(run_dir / "model.safetensors").keys() == load_weights(reference / "model.safetensors").keys()


def test_kill_9_mid_epoch_then_resume_reaches_the_same_metrics(setup):
    proc, run_dir = _start(setup, "killed", "--checkpoint-every", "3")
    _wait_for(proc, _checkpoint_within_epoch(run_dir))
    time.sleep(random.uniform(0.0, 0.15))          # anywhere in the next batches, even during a checkpoint write
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    state = read_fit_state(run_dir / LAST)          # the checkpoint on disk is whole
    assert state.epoch < EPOCHS
    (run_dir / "checkpoints" / ".last.safetensors.0123abcd.tmp").write_bytes(b"half a checkpoint")  # as a kill leaves
    _resume_and_compare(setup, run_dir)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_sigint_writes_a_clean_checkpoint_says_how_to_resume_and_resumes(setup):
    proc, run_dir = _start(setup, "interrupted")                  # no periodic checkpoints within an epoch
    _wait_for(proc, lambda: (run_dir / "log.csv").exists())      # epoch 1 is done
    time.sleep(0.1)                                              # into epoch 2
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGINT: stopping after the batch in progress" in err
    assert f"mmpost train --resume {run_dir}" in err and "holds epoch 1" in err
    state = read_fit_state(run_dir / LAST)
    assert state.epoch == 1 and state.within_epoch      # the checkpoint SIGINT wrote, some batches into epoch 2
    assert f"{state.batches_done} batches of epoch 2" in err
    assert load_weights(run_dir / LAST) and not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert not (run_dir / "metrics.json").exists()
    _resume_and_compare(setup, run_dir)


def test_a_failing_checkpoint_write_leaves_the_previous_checkpoint_intact(setup, monkeypatch):
    real_save_file = checkpoint_module.save_file
    writes = {"n": 0}
    before: dict[str, bytes] = {}

    def disk_fills_up(tensors, filename, metadata=None):
        """The 6th checkpoint write runs out of space half-way through the file."""
        writes["n"] += 1
        if writes["n"] < 6:
            return real_save_file(tensors, filename, metadata=metadata)
        last = setup["tmp"] / "runs" / "diskfull" / LAST
        before["last"] = last.read_bytes()
        data = save(tensors, metadata=metadata)
        with open(filename, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module, "save_file", disk_fills_up)
    with pytest.raises(CheckpointWriteError) as err:
        train(load_config(None, setup["over"] + ["name=diskfull"]), checkpoint_every=2)
    monkeypatch.setattr(checkpoint_module, "save_file", real_save_file)
    run_dir = setup["tmp"] / "runs" / "diskfull"
    msg = str(err.value)
    assert err.value.errno == errno.ENOSPC and "No space left on device" in msg
    assert str(run_dir / "checkpoints") in msg and "is intact" in msg and f"mmpost train --resume {run_dir}" in msg
    assert (run_dir / LAST).read_bytes() == before["last"]          # untouched, byte for byte
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))       # the half-written temp file is gone
    read_fit_state(run_dir / LAST)
    load_weights(run_dir / LAST)
    _resume_and_compare(setup, run_dir)


def test_a_damaged_checkpoint_is_refused_with_a_clear_error(setup, tmp_path):
    run_dir = setup["tmp"] / "runs" / "damaged"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text((setup["reference"] / "config.yaml").read_text())
    (run_dir / LAST).write_bytes((setup["reference"] / LAST).read_bytes()[:1000])     # cut short
    res = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "progress=false"])
    assert res.exit_code == 2 and "not a readable safetensors file" in res.output and "last.safetensors" in res.output
