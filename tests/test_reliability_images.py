"""The reliability matrix, images: every kind of bad or unusual image file gets one policy — a clear error that names
the file (and, through validation, the manifest row and field), or a documented conversion — and training never
stops mid-epoch because an image went bad after it was validated.

| case                         | policy                                                        |
|------------------------------|---------------------------------------------------------------|
| truncated JPEG / PNG         | error ``bad_image`` "truncated image data"                    |
| corrupt PNG pixel stream     | error ``bad_image`` "cannot decode image"                     |
| garbage after a PNG magic    | error ``bad_image`` "not a recognised image format"           |
| zero-byte file               | error ``bad_image`` "empty file (0 bytes)"                    |
| 20,000 x 20,000 (bomb)       | error ``bad_image`` "decompression bomb", nothing decoded     |
| CMYK                         | converted to RGB                                              |
| 16-bit (grey, RGB)           | converted to 8-bit RGB (top byte)                             |
| animated GIF                 | first frame                                                   |
| PNG with alpha               | composited on white                                           |
| extension lies (PNG as .jpg) | opened by content                                             |
| not an image named .jpg      | error ``bad_image`` "not a recognised image format"           |
| EPS named .jpg               | error, never handed to Ghostscript                            |
"""
from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmpost.apps.prepare import prepare
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.images import ImageError, check_image, open_image
from mmpost.data.manifest import ColumnMapping, load_manifest
from mmpost.data.validate import DataValidationError, apply_policy, validate_posts
from tests.conftest import tiny_overrides, write_toy_csv

TASKS = {"colour": ["red", "blue"]}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes] | None = None,
              zero_rows: int = 0) -> Path:
    """A PNG written by hand: given rows (filter byte included), or ``zero_rows`` all-zero rows compressed as a
    stream — a 20,000 x 20,000 image is then ~50 kB on disk and never exists in memory."""
    comp = zlib.compressobj(9)
    idat = bytearray()
    if rows is not None:
        for r in rows:
            idat += comp.compress(r)
    else:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
        row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
        for _ in range(zero_rows):
            idat += comp.compress(row)
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(idat)) + _chunk(b"IEND", b""))
    return path


def _noise(size=(64, 48)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


# each builder writes one case into a folder and returns the file
def truncated_jpeg(d: Path) -> Path:
    _noise().save(d / "t.jpg", quality=90)
    data = (d / "t.jpg").read_bytes()
    (d / "t.jpg").write_bytes(data[: len(data) // 2])
    return d / "t.jpg"


def truncated_png(d: Path) -> Path:
    _noise().save(d / "t.png")
    data = (d / "t.png").read_bytes()
    (d / "t.png").write_bytes(data[: len(data) // 2])
    return d / "t.png"


def corrupt_png(d: Path) -> Path:
    _noise().save(d / "c.png")
    data = bytearray((d / "c.png").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 40):        # garble the compressed pixel stream
        data[i] ^= 0x5A
    (d / "c.png").write_bytes(bytes(data))
    return d / "c.png"


def garbage_after_magic(d: Path) -> Path:
    (d / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return d / "g.png"


def zero_byte(d: Path) -> Path:
    (d / "z.jpg").write_bytes(b"")
    return d / "z.jpg"


def bomb(d: Path) -> Path:
    return write_png(d / "bomb.png", 20_000, 20_000, bit_depth=1, colour_type=0, zero_rows=20_000)


def html_named_jpg(d: Path) -> Path:
    (d / "page.jpg").write_text("<!doctype html><html><body>not a picture</body></html>")
    return d / "page.jpg"


def eps_named_jpg(d: Path) -> Path:
    (d / "doc.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n")
    return d / "doc.jpg"


ERRORS = {
    "truncated_jpeg": (truncated_jpeg, "truncated"),
    "truncated_png": (truncated_png, "truncated"),
    "corrupt_png": (corrupt_png, "cannot decode image"),
    "garbage_after_png_magic": (garbage_after_magic, "not a recognised image format"),
    "zero_byte": (zero_byte, "empty file (0 bytes)"),
    "bomb_20000x20000": (bomb, "decompression bomb"),
    "html_named_jpg": (html_named_jpg, "not a recognised image format"),
    "eps_named_jpg": (eps_named_jpg, "not a recognised image format"),
}


def cmyk(d: Path) -> Path:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    return d / "cmyk.jpg"


def grey16(d: Path) -> Path:
    Image.fromarray(np.full((8, 8), 0x8000, np.uint16)).save(d / "g16.png")
    return d / "g16.png"


def rgb16(d: Path) -> Path:
    px = np.array([0xFF00, 0x8000, 0x0100], dtype=">u2")      # 16-bit R, G, B
    rows = [b"\x00" + np.tile(px, 8).tobytes() for _ in range(8)]
    return write_png(d / "rgb16.png", 8, 8, bit_depth=16, colour_type=2, rows=rows)


def animated_gif(d: Path) -> Path:
    frames = [Image.new("RGB", (10, 10), (255, 0, 0)), Image.new("RGB", (10, 10), (0, 0, 255))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return d / "anim.gif"


def png_alpha(d: Path) -> Path:
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(d / "clear.png")
    return d / "clear.png"


def png_named_jpg(d: Path) -> Path:
    Image.new("RGB", (12, 8), (10, 200, 30)).save(d / "really_png.jpg", format="PNG")
    return d / "really_png.jpg"


CONVERTED = {   # case → (builder, expected RGB of the centre pixel, tolerance)
    "cmyk": (cmyk, (255, 0, 0), 40),
    "grey16": (grey16, (128, 128, 128), 1),
    "rgb16": (rgb16, (255, 128, 1), 1),
    "animated_gif_first_frame": (animated_gif, (255, 0, 0), 0),
    "png_alpha_on_white": (png_alpha, (255, 255, 255), 0),
    "extension_lies_png_as_jpg": (png_named_jpg, (10, 200, 30), 0),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_image_gives_an_error_naming_the_file(tmp_path, case):
    build, reason = ERRORS[case]
    path = build(tmp_path)
    with pytest.raises(ImageError) as err:
        open_image(path)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert reason in check_image(path)


@pytest.mark.parametrize("case", sorted(CONVERTED))
def test_unusual_image_is_converted_to_rgb(tmp_path, case):
    build, rgb, tol = CONVERTED[case]
    path = build(tmp_path)
    img = open_image(path)
    assert img.mode == "RGB"
    centre = img.getpixel((img.width // 2, img.height // 2))
    assert all(abs(a - b) <= tol for a, b in zip(centre, rgb)), (centre, rgb)
    assert check_image(path) is None


def test_bomb_is_refused_without_decoding(tmp_path):
    path = bomb(tmp_path)
    assert path.stat().st_size < 200_000          # 400 Mpx (1.2 GB as RGB) in ~50 kB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for guards in ({}, {"max_pixels": None}, {"max_pixels": None, "max_bytes": None}):  # PIL's own limit still holds
        assert "decompression bomb" in check_image(path, **guards)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000, f"peak memory grew by {grown_kb} kB: the bomb was decoded"


def _manifest_with_every_case(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A CSV with one post per image case; returns it and the 1-based row of each case."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rows, where = ["id,text,image,colour"], {}
    for i, (case, spec) in enumerate(sorted({**ERRORS, **CONVERTED}.items())):
        sub = imgs / case
        sub.mkdir()
        name = spec[0](sub).relative_to(imgs)
        rows.append(f"p{i},post {i},{name},{'red' if i % 2 else 'blue'}")
        where[case] = i + 1
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path, where


def test_validation_names_file_row_and_field_for_every_bad_image_and_passes_the_converted(tmp_path):
    csv_path, where = _manifest_with_every_case(tmp_path)
    posts = load_manifest(csv_path, ColumnMapping(image="image", image_root=str(tmp_path / "imgs"),
                                                  labels={"colour": "colour"}))
    report = validate_posts(posts, TASKS)
    by_row = {i.row: i for i in report.issues}
    for case, (_, reason) in ERRORS.items():
        issue = by_row[where[case]]
        assert (issue.kind, issue.field, issue.source) == ("bad_image", "images", str(csv_path))
        assert reason in issue.message and case in issue.message     # the message holds the file's path
        assert f"posts.csv:{where[case]}" in report.format(max_lines=100)
    assert not any(where[case] in by_row for case in CONVERTED)
    assert report.counts() == {"bad_image": len(ERRORS)}

    with pytest.raises(DataValidationError):
        apply_policy(posts, report, "stop")
    kept, counts = apply_policy(posts, report, "skip")
    assert counts == {"kept": len(CONVERTED), "image_masked": 0, "skipped": len(ERRORS)}
    masked, counts = apply_policy(posts, report, "text-only")
    assert counts == {"kept": len(CONVERTED), "image_masked": len(ERRORS), "skipped": 0}
    assert all(p.images == [] for p in masked if p.meta.get("image_masked"))


def _break_images(folder: Path, names: list[str]) -> None:
    """After validation: one file truncated, one emptied, one deleted, one replaced by a bomb."""
    a, b, c, d = (folder / n for n in names)
    a.write_bytes(a.read_bytes()[:40])
    b.write_bytes(b"")
    c.unlink()
    bomb(folder).replace(d)


@pytest.mark.parametrize("image_trainable", [True, False], ids=["pixels-every-batch", "cached-features"])
def test_training_survives_images_that_go_bad_after_validation(tmp_path, image_trainable):
    csv_path = write_toy_csv(tmp_path, n=30)
    over = tiny_overrides(tmp_path, csv_path) + ["name=r", "train.epochs=2",
                                                 f"image_encoder.trainable={str(image_trainable).lower()}"]
    cfg = load_config(None, over)
    data = prepare(cfg.data, cfg.task, progress=False)              # every image validated and fine
    train_names = [Path(p.images[0]).name for p in data.splits["train"][:4]]
    _break_images(tmp_path / "imgs", train_names)
    result = train(cfg, data=data)                                    # no crash mid-epoch
    assert set(result.metrics) == {"dev", "test"}
    report = (result.run_dir / "report.md").read_text()
    if image_trainable:    # decoded every batch: each failure is masked and counted per epoch
        assert all(row["train_unreadable_images"] == 4 for row in result.history)
        assert "8 image reads failed during training" in report
    else:                  # decoded once, when the frozen tower's features are computed
        assert "4 images could not be read and were masked" in report
