"""What ONNX export and ``runtime: onnx`` refuse, each naming the setting or the command that fixes it."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'mmpost[onnx]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'mmpost[onnx]')")

from mmpost.apps.predictor import Predictor  # noqa: E402
from mmpost.config import load_config  # noqa: E402
from mmpost.export.onnx_export import export_onnx  # noqa: E402
from mmpost.export.support import check_exportable, exportable_families  # noqa: E402
from tests.test_onnx_runtime import synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run, posts = synthetic_run(tmp_path_factory.mktemp("onnx-errors"))
    return run, posts, export_onnx(run, int8=True)


@pytest.mark.parametrize("family", ["mmbt", "vilt"])
def test_a_family_that_reads_every_text_token_is_refused_by_name(family):
    cfg = load_config(None, [f"model.name={family}", "progress=false"])
    with pytest.raises(ValueError, match=f"model.name='{family}'.*conc"):
        check_exportable(cfg)


def test_the_feature_families_are_covered():
    assert {"conc", "att"} <= set(exportable_families())
    for family in exportable_families():
        assert check_exportable(load_config(None, [f"model.name={family}", "progress=false"]))


def test_a_run_without_an_export_says_how_to_make_one(exported, tmp_path):
    run, _, _ = exported
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(FileNotFoundError, match="mmpost export .* --format onnx"):
        Predictor(bare, "onnx")
    with pytest.raises(ValueError, match="runtime must be one of torch, onnx, onnx-int8"):
        Predictor(bare, "tensorrt")


def test_an_export_of_other_weights_is_refused(exported, tmp_path):
    run, _, _ = exported
    stale = tmp_path / "stale"
    shutil.copytree(run, stale)
    manifest = json.loads((stale / "onnx" / "export.json").read_text())
    manifest["weights"] = "0" * 16
    (stale / "onnx" / "export.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="other weights.*again"):
        Predictor(stale, "onnx")


def test_onnx_int8_without_int8_files_says_so(exported, tmp_path):
    run, _, _ = exported
    fp32_only = tmp_path / "fp32"
    shutil.copytree(run, fp32_only)
    manifest = json.loads((fp32_only / "onnx" / "export.json").read_text())
    for versions in manifest["parts"].values():
        versions.pop("int8", None)
    (fp32_only / "onnx" / "export.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="--int8"):
        Predictor(fp32_only, "onnx-int8")
