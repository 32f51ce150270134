"""Ray Data prediction (``mmpost[ray]``): a local two-CPU Ray predicts a small manifest, equal to ``mmpost
predict``, through :class:`mmpost.ray.Predictor` and through ``mmpost predict --engine ray``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mmpost.apps.predict import predict_file
from tests.test_predict_stream import N_POSTS, trained  # noqa: F401  (the fixture)

ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "mmpost[ray]"')


def register_tiny_towers() -> None:
    """Run in every Ray worker: the tests' tiny towers are registered there too."""
    import tests.test_predict_stream  # noqa: F401


@pytest.fixture(scope="module")
def local_ray():
    root = str(Path(__file__).resolve().parents[1])
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])},
           "worker_process_setup_hook": "tests.test_predict_ray.register_tiny_towers"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False, runtime_env=env)
    yield
    ray.shutdown()


def test_ray_predicts_what_mmpost_predict_writes(trained, local_ray, tmp_path):  # noqa: F811
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from mmpost.cli import app
    run, data = trained
    reference = tmp_path / "ref.jsonl"
    predict_file(run, str(data), reference, chunk=7, progress=False)
    want = [json.loads(line) for line in reference.read_text().splitlines()]
    out = tmp_path / "ray-preds"
    res = CliRunner().invoke(app, ["predict", str(run), "--data", str(data), "--engine", "ray", "--workers", "2",
                                   "--chunk", "7", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{N_POSTS} posts" in res.output
    got = pq.read_table(out).to_pandas()
    assert list(got["id"]) == [r["id"] for r in want]                       # the file's order is kept
    assert list(got["label"]) == [r["label"] for r in want]
    assert list(got["image_used"]) == [r["image_used"] for r in want]
    for label in want[0]["probs"]:
        np.testing.assert_allclose(got[f"p_{label}"], [r["probs"][label] for r in want], atol=2e-6)


def test_the_callable_class_maps_batches_of_usual_columns(trained, local_ray, tmp_path):  # noqa: F811
    import pandas as pd

    import mmpost.ray
    run, data = trained
    frame = pd.read_csv(data, dtype=str, keep_default_na=False).rename(columns={"post_id": "id", "body": "text"})
    ds = ray.data.from_pandas(frame.head(10))
    out = ds.map_batches(mmpost.ray.Predictor, fn_constructor_kwargs={"run_dir": str(run)},
                         compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5, batch_size=4,
                         batch_format="pandas").to_pandas()
    assert sorted(out["id"]) == sorted(frame["id"].head(10))
    assert {"label", "image_used"} <= set(out.columns) and np.allclose(out.filter(like="p_").sum(axis=1), 1, atol=1e-5)
