"""Data-parallel training on CPU (gloo), two processes.

- One DDP step of CE + ITC + ITM equals one single-process step on the whole global batch: the loss parts (mean
  over ranks) and every parameter gradient after DDP's averaging, to 1e-5, for random and hard ITM negatives;
  duplicates (a shared text, a shared image) sit on different ranks, so masking must work across them.
- The ITM pairs the two ranks score are exactly the pairs one process draws from the whole batch, and some of
  them join a text of one rank with an image of the other.
- ``mmpost train … fabric.devices=2 fabric.strategy=ddp`` runs end to end and writes one run folder whose
  training log matches a single-process run of the same recipe.

Run as a module (``python -m tests.test_ddp ARGS``) this file is the ``mmpost`` command with the tests' tiny
towers registered, which is what Fabric re-launches for the second process.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
N_POSTS = 9          # ranks hold 5 and 4 posts: unequal slices


def _posts_and_dataset():
    """Nine posts with cached features: posts 1 and 6 share a text, posts 2 and 7 an image, post 4 has none."""
    from mmpost.data.dataset import PostDataset
    from mmpost.data.post import Post
    texts = [f"post number {i}" for i in range(N_POSTS)]
    texts[6] = texts[1]
    images = [[f"img{i}.png"] for i in range(N_POSTS)]
    images[7] = images[2]
    images[4] = []
    posts = [Post(id=str(i), text=texts[i], images=images[i]) for i in range(N_POSTS)]
    g = torch.Generator().manual_seed(7)
    text_features = torch.randn(N_POSTS, 16, generator=g).numpy()
    image_features = torch.randn(N_POSTS, 8, generator=g).numpy()
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 1])
    return PostDataset(posts, labels, text_features=text_features, image_features=image_features,
                       has_image=np.array([bool(im) for im in images]))


def _step(negatives: str):
    from mmpost.engine.step import TrainStep
    from mmpost.models.conc import BerViTConc
    from mmpost.objectives.combined import Objective, single_task
    from tests.conftest import TinyImageTower, TinyTextTower
    torch.manual_seed(0)
    model = BerViTConc(TinyTextTower(dim=16), TinyImageTower(dim=8), 3,
                       BerViTConc.Config(hidden=12, proj_dim=6, dropout=0.0))
    objective = Objective.from_configs({"ce": None, "itc": None, "itm": {"negatives": negatives}},
                                       single_task(3, [0, 1, 2, 0, 1, 2, 0, 1, 1]))
    return TrainStep(model, objective)


def _record_pairs(step, log: list) -> None:
    """Keep the (text row, image row, label) of every ITM pair the model scores, as dataset rows."""
    from mmpost.models.output import ItmPairs
    forward = step.model.forward

    def recording(batch, itm=None):
        if itm is None:
            return forward(batch)
        drawn: list[ItmPairs] = [itm] if isinstance(itm, ItmPairs) else []
        if not drawn:
            sampler = itm

            def itm(t, v):
                drawn.append(sampler(t, v))
                return drawn[-1]
        out = forward(batch, itm=itm)
        p = drawn[0]
        log.extend(zip(batch.index[p.text_index].tolist(), batch.index[p.image_index].tolist(), p.labels.tolist()))
        return out

    step.model.forward = recording


def _compare_one_step(rank: int, world: int, negatives: str) -> dict:
    """One training step on the whole batch in this process, and the same step split over the ranks under DDP."""
    from mmpost.engine.setup import ProcessGroupCollective, RankSlices
    dist = torch.distributed
    ds = _posts_and_dataset()
    reference = _step(negatives)
    ref_pairs: list = []
    _record_pairs(reference, ref_pairs)
    reference.train()
    _, ref_losses = reference(ds.__getitems__(list(range(N_POSTS))), torch.Generator().manual_seed(3))
    ref_losses.total.backward()
    step = _step(negatives)
    pairs: list = []
    _record_pairs(step, pairs)
    ddp = torch.nn.parallel.DistributedDataParallel(step, find_unused_parameters=True)
    ddp.train()
    start, stop = RankSlices(None, rank, world).bounds(N_POSTS)
    local = ds.__getitems__(list(range(start, stop)))
    _, losses = ddp(local, torch.Generator().manual_seed(3), collective=ProcessGroupCollective(),
                    rows=lambda index: ds.__getitems__(index.tolist()))
    losses.total.backward()
    parts = torch.tensor([float(v) for v in losses.as_floats().values()], dtype=torch.float64)
    dist.all_reduce(parts)
    parts /= world
    all_pairs: list = [None] * world
    dist.all_gather_object(all_pairs, pairs)
    return {
        "rows": [start, stop],
        "loss_diff": {k: abs(float(p) - r) for (k, r), p in zip(ref_losses.as_floats().items(), parts)},
        "grad_diff": max(float((a.grad - b.grad).abs().max()) for a, b in
                         zip(reference.parameters(), step.parameters()) if a.grad is not None),
        "grads_missing": [n for (n, a), b in zip(reference.named_parameters(), step.parameters())
                          if (a.grad is None) != (b.grad is None)],
        "n_grads": sum(a.grad is not None for a in reference.parameters()),
        "reference_pairs": sorted(ref_pairs),
        "ddp_pairs": sorted(p for part in all_pairs for p in part),
    }


def _exactness_worker(rank: int, world: int, rendezvous: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world,
                                         timeout=timedelta(seconds=180))   # a collective that never ends fails
    try:
        result = {negatives: _compare_one_step(rank, world, negatives) for negatives in ("hard", "random")}
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def one_step_on_two_ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' comparisons, for hard and random negatives (one pair of processes for both)."""
    folder = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(_exactness_worker, args=(2, str(folder / "rendezvous"), str(folder)), nprocs=2,
                                join=True)
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("negatives", ["hard", "random"])
def test_ddp_step_equals_the_full_batch_step(one_step_on_two_ranks, negatives):
    results = [r[negatives] for r in one_step_on_two_ranks]
    assert results[0]["rows"] == [0, 5] and results[1]["rows"] == [5, 9]
    for r in results:
        assert not r["grads_missing"], r["grads_missing"]
        assert r["n_grads"] >= 8
        assert max(r["loss_diff"].values()) < TOLERANCE, r["loss_diff"]
        assert set(r["loss_diff"]) == {"loss", "ce", "itc", "itm", "temperature"}
        assert r["grad_diff"] < TOLERANCE, r["grad_diff"]
    print(f"\n{negatives} ITM negatives: largest |Δ| loss part {max(max(r['loss_diff'].values()) for r in results):.1e}"
          f", largest |Δ| gradient {max(r['grad_diff'] for r in results):.1e} ({results[0]['n_grads']} tensors)")
    # the pairs scored across the two ranks are exactly the single-process draw over the whole batch ...
    ref, ddp = results[0]["reference_pairs"], results[0]["ddp_pairs"]
    assert ddp == ref and len(ref) >= 8
    # ... which joins posts that live on different ranks (rank 0 holds rows 0-4, rank 1 rows 5-8)
    assert any(label == 0 and (t < 5) != (i < 5) for t, i, label in ref)
    # duplicates across ranks are never made negatives: 1 and 6 share a text, 2 and 7 an image
    for t, i, label in ref:
        if label == 0:
            assert {t, i} not in ({1, 6}, {2, 7}) and t != i


def test_rank_slices_cover_every_global_batch_once():
    from torch.utils.data import BatchSampler, SequentialSampler

    from mmpost.engine.setup import RankSlices
    batches = BatchSampler(SequentialSampler(range(21)), 8, drop_last=False)    # 8, 8, 5
    slices = [list(RankSlices(batches, r, 2)) for r in (0, 1)]
    assert [len(s) for s in slices] == [3, 3] and len(RankSlices(batches, 0, 2)) == 3
    assert [a + b for a, b in zip(*slices)] == [list(b) for b in batches]
    small = BatchSampler(SequentialSampler(range(17)), 8, drop_last=False)      # 8, 8, 1: the 1 cannot be split
    assert len(RankSlices(small, 1, 2)) == 2 and len(list(RankSlices(small, 1, 2))) == 2


def _history(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_train_on_two_cpu_processes_writes_one_run(tmp_path, toy_csv):
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from tests.conftest import tiny_overrides
    common = tiny_overrides(tmp_path, toy_csv) + [
        "objectives.itc.enabled=true", "objectives.itm.enabled=true", "objectives.itm.negatives=hard",
        "model.dropout=0.0",
        "train.epochs=2", "train.batch_size=8"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ddp_out = tmp_path / "ddp-runs"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: mood\n")
    cmd = [sys.executable, "-m", "tests.test_ddp", "train", str(recipe), *common, f"out_dir={ddp_out}",
           "fabric.devices=2", "fabric.strategy=ddp", "train.threads=1"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [p for p in ddp_out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs                         # both processes agreed on one (time-stamped) folder
    run = runs[0]
    for f in ("model.safetensors", "config.yaml", "labels.json", "metrics.json", "report.md", "log.csv"):
        assert (run / f).exists(), f
    assert not list(run.rglob(".*.tmp"))
    assert done.stdout.count("weighted F1") == 1        # one process reports
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["mood"]["n"] == 12 and metrics["dev"]["mood"]["n"] == 12   # every row, once
    single = train(load_config(None, common + ["name=single", "train.threads=1"]))
    ddp_history, single_history = _history(run), single.history
    assert len(ddp_history) == len(single_history) == 2
    keys = ("train_loss", "train_ce", "train_itc", "train_itm", "dev_weighted_f1")
    worst = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for a, b in zip(ddp_history, single_history) for k in keys)
    print(f"\n2 processes vs 1, {len(keys)} logged values × 2 epochs: largest relative difference {worst:.1e}")
    for a, b in zip(ddp_history, single_history):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


if __name__ == "__main__":
    import tests.conftest  # noqa: F401  (registers the tiny towers)
    from mmpost.cli import main
    main()
