"""Image names without an extension: ``image_pattern: "{}.*"`` finds the file whatever its extension, and when many
images are missing the validation report says what was tried and shows the nearest existing names."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmpost.apps.prepare import prepare
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.manifest import ColumnMapping, load_manifest
from mmpost.data.validate import DataValidationError


def _posts_csv(tmp_path, n: int = 24):
    """A tab-separated .txt of posts whose image column holds ids; half the images are .jpg, half .PNG."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rows = ["id\ttext\timage_id\tmood"]
    for i in range(n):
        colour = "red" if i % 2 else "blue"
        arr = np.full((16, 16, 3), (200, 30, 30) if colour == "red" else (30, 30, 200), dtype=np.uint8)
        Image.fromarray(arr).save(imgs / (f"im{i}.jpg" if i % 4 < 2 else f"im{i}.PNG"))
        rows.append(f"{i}\tpost {i} about things\tim{i}\t{colour}")
    path = tmp_path / "posts.txt"
    path.write_text("\n".join(rows) + "\n")
    return path, imgs


def _over(path, imgs, pattern: str) -> list[str]:
    return ["task=mood", "data.source=manifest", f"data.path={path}", "data.columns.format=csv",
            "data.columns.csv_options.delimiter='\t'", "data.columns.text=text", "data.columns.image=image_id",
            f"data.columns.image_root={imgs}", f"data.columns.image_pattern='{pattern}'",
            "data.columns.labels.mood=mood", "progress=false"]


def test_any_extension_pattern_finds_jpg_and_png_files(tmp_path):
    path, imgs = _posts_csv(tmp_path)
    data = prepare(load_config(None, _over(path, imgs, "{}.*")).data, "mood", progress=False)
    posts = [p for v in data.splits.values() for p in v]
    assert len(posts) == 24 and all(p.images for p in posts)
    assert {p.images[0].rsplit(".", 1)[1] for p in posts} == {"jpg", "PNG"}


def test_extension_order_decides_between_two_files_and_unknown_stems_are_reported(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("id,text,img\n1,t,a\n2,t,zzz\n")
    first = load_manifest(tmp_path / "m.csv", ColumnMapping(image="img", image_pattern="{}.*"))
    assert first[0].images[0].endswith("a.jpg") and first[1].images[0].endswith("zzz.jpg")
    png_first = load_manifest(tmp_path / "m.csv", ColumnMapping(image="img", image_pattern="{}.*",
                                                                 image_extensions=["png", ".jpg"]))
    assert png_first[0].images[0].endswith("a.png")
    with pytest.raises(ValueError, match="data.columns.image_extensions"):
        ColumnMapping(image="img", image_extensions=[])


def test_a_wrong_pattern_gets_a_hint_with_the_pattern_and_the_nearest_names(tmp_path):
    path, imgs = _posts_csv(tmp_path)
    with pytest.raises(DataValidationError) as e:
        prepare(load_config(None, _over(path, imgs, "{}.jpg")).data, "mood", progress=False)
    report = str(e.value)
    assert "hint: 12 image files not found" in report and "'{}.jpg'" in report and str(imgs) in report
    assert "im2.PNG" in report                                   # the nearest existing name of im2.jpg


def test_a_tsv_with_extensionless_images_trains(tmp_path):
    path, imgs = _posts_csv(tmp_path)
    over = _over(path, imgs, "{}.*") + [
        "text_encoder.name=tiny-text", "image_encoder.name=tiny-image", "model.hidden=16", "model.proj_dim=8",
        "train.epochs=1", "train.batch_size=8", f"out_dir={tmp_path}/runs", f"cache_dir={tmp_path}/cache",
        "data.split_fractions=[0.5,0.25,0.25]", "name=tsv"]
    result = train(load_config(None, over))
    assert result.metrics["test"]["mood"]["n"] > 0
