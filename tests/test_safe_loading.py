"""Safe loading: weights are safetensors, ``torch.load`` runs only with ``weights_only=True``, and nothing a user
supplies is ever unpickled.

A booby-trapped pickle (its ``__reduce__`` creates a marker folder when unpickled) is planted everywhere mmpost
reads a file a user could hand it; each load must fail with a clear error — or ignore the file — and the marker
must never appear. A scan of the source keeps unsafe loaders from coming back.
"""
from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mmpost
from mmpost.apps.build import build_tower
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import EncoderConfig, load_config
from mmpost.encoders.cache import FeatureCache
from mmpost.encoders.regions import RegionFileError, load_regions
from mmpost.engine.checkpoint import CheckpointError
from mmpost.engine.resume import LAST
from tests.conftest import save_tiny_roberta, tiny_overrides, write_toy_csv

SRC = Path(__file__).resolve().parents[1] / "src" / "mmpost"
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib"}


class Trap:
    """Unpickling this runs ``os.mkdir(marker)``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PICKLE_WAS_EXECUTED"
    yield path
    assert not path.exists(), "a planted pickle was executed"


def test_the_trap_works(marker):
    """Guard against a test that cannot fail: unpickling the trap does create the marker."""
    pickle.loads(pickle.dumps(Trap(marker)))
    assert marker.exists()
    marker.rmdir()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safe")
    csv_path = write_toy_csv(tmp, n=30)
    cfg = load_config(None, tiny_overrides(tmp, csv_path) + ["name=run", "train.epochs=1"])
    return train(cfg).run_dir


def test_a_run_folder_holds_weights_only_as_safetensors(finished_run):
    files = [p for p in finished_run.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} & PICKLE_SUFFIXES == set()
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.name for p in weights} >= {"model.safetensors", "last.safetensors"}
    for p in weights:
        assert p.read_bytes()[8:9] == b"{"       # safetensors: an 8-byte header length, then a JSON header


def _copy_run(run: Path, to: Path) -> Path:
    for p in run.rglob("*"):
        if p.is_file():
            (to / p.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
            (to / p.relative_to(run)).write_bytes(p.read_bytes())
    return to


def test_pickled_model_weights_are_refused_unopened(finished_run, tmp_path, marker):
    run = _copy_run(finished_run, tmp_path / "run")
    torch.save({"head.weight": Trap(marker)}, run / "model.safetensors")          # a pickle under the expected name
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file.*never unpickles"):
        mmpost.load(run)


def test_pickled_resume_checkpoint_is_refused_unopened(finished_run, tmp_path, marker):
    run = _copy_run(finished_run, tmp_path / "run")
    (run / "metrics.json").unlink()                                                # an unfinished run
    with open(run / LAST, "wb") as f:
        pickle.dump({"weights": Trap(marker)}, f)
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "progress=false"])
    assert res.exit_code == 2 and "not a readable safetensors file" in res.output


def test_yaml_config_tags_never_run_code(finished_run, tmp_path, marker):
    run = _copy_run(finished_run, tmp_path / "run")
    (run / "metrics.json").unlink()
    evil = f"task: !!python/object/apply:os.mkdir ['{marker}']\n"
    (run / "config.yaml").write_text(evil)
    with pytest.raises(Exception, match="python/object/apply"):     # YAML is read with a safe loader
        load_config(run / "config.yaml")
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "progress=false"])
    assert res.exit_code != 0


def test_pickled_hf_weights_in_a_user_model_folder_are_not_executed(tmp_path, marker):
    folder = Path(save_tiny_roberta(tmp_path / "hf", max_positions=40))
    (folder / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": Trap(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
        build_tower(EncoderConfig(name="hf-text", path=str(folder)))


def test_pickled_region_features_are_refused_unopened(tmp_path, marker):
    np.save(tmp_path / "img.npy", np.array([Trap(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(RegionFileError, match="never unpickles"):
        load_regions(tmp_path, [str(tmp_path / "img.jpg")])


def test_a_pickled_feature_cache_shard_is_refused_unopened(tmp_path, marker):
    cache = FeatureCache(tmp_path, identity="test")
    cache.put(["k"], np.zeros((1, 4), dtype=np.float32))
    (shard,) = cache.dir.glob("shard-*.npy")
    np.save(shard, np.array([Trap(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, identity="test").get(["k"])


# ---------------------------------------------------------------------------------------------- source scan


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else k.value
    return None


def unsafe_loading(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every loader that could unpickle in a module."""
    found = []
    banned_modules = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in banned_modules]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in banned_modules:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("torch.load",) and _keyword(node, "weights_only") is not True:
                found.append((node.lineno, "torch.load without weights_only=True"))
            elif name.endswith("jit.load") or name.endswith("read_pickle") or name in ("yaml.unsafe_load",
                                                                                       "yaml.full_load"):
                found.append((node.lineno, name))
            elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") not in (None, False):
                found.append((node.lineno, f"{name} with allow_pickle"))
            elif name == "yaml.load" and "Safe" not in ast.unparse(node):
                found.append((node.lineno, "yaml.load without a safe loader"))
            if _keyword(node, "trust_remote_code") not in (None, False):
                found.append((node.lineno, "trust_remote_code"))
    return found


def test_the_scan_finds_unsafe_loaders():
    code = ("import pickle\nimport torch, numpy as np, yaml\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
            "np.load(p, allow_pickle=True)\nyaml.load(s)\nAutoModel.from_pretrained(p, trust_remote_code=True)\n"
            "torch.load(p, weights_only=True)\nnp.load(p)\nyaml.load(s, Loader=yaml.SafeLoader)\n")
    assert [line for line, _ in unsafe_loading(ast.parse(code))] == [1, 3, 4, 5, 6, 7]


def test_no_module_of_mmpost_can_unpickle():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        for line, what in unsafe_loading(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            problems.append(f"{path.relative_to(SRC.parent)}:{line}: {what}")
    assert problems == []
