"""Errors a CLI user can reach name the YAML key to set (data.columns.*), never a Python constructor; and the keys
they name work."""
from __future__ import annotations

import pytest

from mmpost.apps.prepare import prepare
from mmpost.config import load_config
from mmpost.data.manifest import ManifestError


def _base(path) -> list[str]:
    return ["task=mood", "data.source=manifest", f"data.path={path}", "data.columns.id=id", "data.columns.text=text",
            "data.columns.labels.mood=mood", "progress=false"]


def test_a_tab_separated_txt_file_asks_for_the_yaml_keys_and_loads_with_them(tmp_path):
    path = tmp_path / "posts.txt"
    path.write_text("id\ttext\tmood\n" + "".join(f"{i}\tpost number {i}\t{'ab'[i % 2]}\n" for i in range(20)))
    with pytest.raises(ManifestError) as e:
        prepare(load_config(None, _base(path)).data, "mood", progress=False)
    message = str(e.value)
    assert "data.columns.format" in message and "delimiter" in message and "ColumnMapping" not in message
    cfg = load_config(None, _base(path) + ["data.columns.format=csv", "data.columns.csv_options.delimiter='\t'"])
    data = prepare(cfg.data, "mood", progress=False)
    assert sum(len(v) for v in data.splits.values()) == 20
    assert {p.labels["mood"] for v in data.splits.values() for p in v} == {"a", "b"}


def test_a_cp1252_file_names_data_columns_encoding_which_then_reads_it(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_bytes(("id,text,mood\n" + "".join(f"{i},caf\u00e9 n\u00b0{i},{'ab'[i % 2]}\n" for i in range(20)))
                     .encode("cp1252"))
    with pytest.raises(ManifestError, match="data.columns.encoding: cp1252"):
        prepare(load_config(None, _base(path)).data, "mood", progress=False)
    data = prepare(load_config(None, _base(path) + ["data.columns.encoding=cp1252"]).data, "mood", progress=False)
    assert any("café" in p.text for v in data.splits.values() for p in v)


def test_a_bad_column_mapping_names_the_yaml_key(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,text,mood,img\n1,x,a,p.jpg\n")
    with pytest.raises(ValueError, match=r"data\.columns\.image_pattern"):
        prepare(load_config(None, _base(path) + ["data.columns.image=img", "data.columns.image_pattern=x.jpg"]).data,
                "mood", progress=False)
