import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mmpost.data.images import (
    ImageError,
    check_image,
    load_image_array,
    open_image,
    preprocess,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bilevel_png(path, width, height, full_data=True):
    """A mode "1" PNG of any size, written without holding the image in memory."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = bytearray()
    for _ in range(height if full_data else 1):
        idat += comp.compress(row)
    idat += comp.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat))
                + _png_chunk(b"IEND", b""))
    return path


def noise_jpeg(path, size=(320, 240)):
    Image.effect_noise(size, 64).convert("RGB").save(path, format="JPEG", quality=90)
    return path


# ------------------------------------------------------------------------------------------- open_image


def test_plain_jpeg_opens_as_loaded_rgb(tmp_path):
    p = noise_jpeg(tmp_path / "a.jpg")
    img = open_image(p)
    assert img.mode == "RGB" and img.size == (320, 240)
    img.getpixel((0, 0))  # loaded, not tied to a closed file


def test_opens_by_content_not_extension(tmp_path):
    Image.new("RGB", (12, 8), (10, 20, 30)).save(tmp_path / "png_named.jpg", format="PNG")
    noise_jpeg(tmp_path / "jpeg_named.png")
    a = open_image(tmp_path / "png_named.jpg")
    assert a.size == (12, 8) and a.getpixel((0, 0)) == (10, 20, 30)
    assert open_image(tmp_path / "jpeg_named.png").size == (320, 240)


def test_missing_zero_byte_and_garbage_files(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "nope.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as e:
        open_image(tmp_path / "zero.jpg")
    assert "zero.jpg" in str(e.value)
    (tmp_path / "text.jpg").write_text("hello, not an image")
    with pytest.raises(ImageError, match="not a recognised image"):
        open_image(tmp_path / "text.jpg")
    # formats outside the allowed raster list (EPS would run Ghostscript) are refused
    (tmp_path / "x.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(ImageError):
        open_image(tmp_path / "x.eps")


def test_truncated_jpeg(tmp_path):
    data = noise_jpeg(tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as e:
        open_image(tmp_path / "cut.jpg")
    assert "cut.jpg" in str(e.value)
    with pytest.raises(ImageError, match="truncated"):  # a drafted (reduced-scale) decode still notices
        open_image(tmp_path / "cut.jpg", draft_size=16)
    assert "truncated" in check_image(tmp_path / "cut.jpg")
    assert check_image(tmp_path / "full.jpg") is None


def test_oversized_file_is_refused_before_reading(tmp_path):
    p = noise_jpeg(tmp_path / "a.jpg")
    with pytest.raises(ImageError, match="too large"):
        open_image(p, max_bytes=1000)
    assert open_image(p, max_bytes=None).size == (320, 240)


def test_decompression_bomb(tmp_path):
    p = write_bilevel_png(tmp_path / "bomb.png", 12000, 12000)  # 144 Mpx, a few kB on disk
    assert p.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not escape
        with pytest.raises(ImageError, match="pixels"):
            open_image(p)  # default max_pixels
        with pytest.raises(ImageError, match="pixels"):
            open_image(p, max_pixels=1_000_000)
        assert "pixels" in check_image(p, max_pixels=1_000_000)
    # beyond PIL's own hard limit (DecompressionBombError) → ImageError as well
    huge = write_bilevel_png(tmp_path / "huge.png", 20000, 20000, full_data=False)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(huge, max_pixels=None)
    # small images pass a lowered limit
    small = write_bilevel_png(tmp_path / "small.png", 100, 100)
    img = open_image(small, max_pixels=10_000)
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (0, 0, 0)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    img = open_image(tmp_path / "c.jpg")
    assert img.mode == "RGB"
    r, g, b = img.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_16bit_png(tmp_path):
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = open_image(tmp_path / "g16.png")
    assert img.mode == "RGB"
    assert all(abs(v - 128) <= 1 for v in img.getpixel((3, 3)))


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), (255, 0, 0)), Image.new("RGB", (10, 10), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    img = open_image(tmp_path / "a.gif")
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (255, 0, 0)


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGBA", (10, 10), (0, 0, 0, 128)).save(tmp_path / "half.png")
    Image.new("LA", (10, 10), (0, 0)).save(tmp_path / "la.png")
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.save(tmp_path / "p.png", transparency=0)
    assert open_image(tmp_path / "clear.png").getpixel((1, 1)) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in open_image(tmp_path / "half.png").getpixel((1, 1)))
    assert open_image(tmp_path / "la.png").getpixel((1, 1)) == (255, 255, 255)
    assert open_image(tmp_path / "p.png").getpixel((1, 1)) == (255, 255, 255)


def test_grey_and_bilevel_modes(tmp_path):
    Image.new("L", (6, 4), 200).save(tmp_path / "l.png")
    Image.new("1", (6, 4), 1).save(tmp_path / "one.png")
    assert open_image(tmp_path / "l.png").getpixel((0, 0)) == (200, 200, 200)
    assert open_image(tmp_path / "one.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (20, 10), (0, 255, 0)).save(tmp_path / "o.jpg", exif=exif)
    assert open_image(tmp_path / "o.jpg").size == (10, 20)


def test_jpeg_draft_decodes_smaller_but_not_below_request(tmp_path):
    p = noise_jpeg(tmp_path / "big.jpg", size=(1600, 1200))
    img = open_image(p, draft_size=224)
    assert img.size == (400, 300)
    assert min(img.size) >= 224
    assert open_image(p).size == (1600, 1200)


# -------------------------------------------------------------------------------------------- preprocess


def _half_black_white(w, h):
    img = Image.new("RGB", (w, h), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, w // 2, h))
    return img


@pytest.mark.parametrize("fit", ["crop", "pad", "squash"])
def test_preprocess_shape_dtype_range(fit):
    arr = preprocess(Image.effect_noise((97, 61), 50).convert("RGB"), size=32, fit=fit)
    assert arr.shape == (3, 32, 32) and arr.dtype == np.float32
    assert arr.flags["C_CONTIGUOUS"]
    assert arr.min() >= -1.0 - 1e-6 and arr.max() <= 1.0 + 1e-6


def test_preprocess_values_and_normalisation():
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    assert np.allclose(preprocess(white, size=8), 1.0)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    arr = preprocess(Image.new("RGB", (10, 10), (255, 0, 128)), size=4, mean=mean, std=std)
    expect = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for c in range(3):
        assert np.allclose(arr[c], expect[c], atol=1e-5)


def test_crop_keeps_the_centre():
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    img.paste((0, 0, 255), (100, 0, 200, 100))  # blue centre square, red sides
    arr = preprocess(img, size=16, fit="crop")
    inner = arr[:, :, 1:-1]  # the outermost columns may blend a little with the neighbouring pixels
    assert np.allclose(inner[2], 1.0, atol=1e-3) and np.allclose(inner[0], -1.0, atol=1e-3)


def test_pad_letterboxes_with_neutral_fill():
    img = Image.new("RGB", (200, 100), (255, 0, 0))
    arr = preprocess(img, size=64, fit="pad")
    assert np.all(arr[:, :16, :] == 0.0) and np.all(arr[:, -16:, :] == 0.0)  # padding = mean colour → 0
    mid = arr[:, 32, :]
    assert np.allclose(mid[0], 1.0, atol=1e-3) and np.allclose(mid[1:], -1.0, atol=1e-3)


def test_squash_keeps_everything():
    arr = preprocess(_half_black_white(200, 50), size=20, fit="squash")
    assert np.allclose(arr[:, :, :8], -1.0, atol=1e-3) and np.allclose(arr[:, :, 12:], 1.0, atol=1e-3)
    crop = preprocess(_half_black_white(200, 50), size=20, fit="crop")
    assert crop[:, :, :8].mean() < -0.5 and crop[:, :, 12:].mean() > 0.5  # centre square straddles the edge


def test_preprocess_rejects_bad_arguments():
    img = Image.new("RGB", (10, 10))
    with pytest.raises(ValueError, match="fit"):
        preprocess(img, fit="stretch")
    with pytest.raises(ValueError, match="std"):
        preprocess(img, std=(0.5, 0, 0.5))
    with pytest.raises(ValueError):
        preprocess(img, mean=(0.5, 0.5))


def test_preprocess_converts_non_rgb_input():
    arr = preprocess(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), size=4)
    assert np.allclose(arr, 1.0)


def test_load_image_array(tmp_path):
    p = noise_jpeg(tmp_path / "big.jpg", size=(900, 500))
    arr = load_image_array(p, size=64, fit="pad")
    assert arr.shape == (3, 64, 64) and arr.dtype == np.float32
    with pytest.raises(ImageError):
        load_image_array(p, size=64, max_bytes=10)


def test_check_image_reasons(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    assert check_image(tmp_path / "ok.png") is None
    assert "empty" in check_image(tmp_path / "zero.png")
    assert isinstance(check_image(tmp_path / "junk.png"), str)
    assert "not found" in check_image(tmp_path / "missing.png")
