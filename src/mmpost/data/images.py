"""Safe image decoding and preprocessing (PIL + numpy).

Images in user data are untrusted: a file may be empty, truncated, huge, named ``.png`` while holding a
JPEG, animated, CMYK, 16-bit or transparent. :func:`open_image` turns all of those into either a loaded RGB
``PIL.Image.Image`` or an :class:`ImageError` that names the file and what is wrong.
:func:`preprocess` turns an RGB image into a normalised ``float32 [3, size, size]`` array.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageError",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ALLOWED_FORMATS",
    "FITS",
    "open_image",
    "preprocess",
    "load_image_array",
    "check_image",
]

DEFAULT_MAX_BYTES = 20 * 1024**2
DEFAULT_MAX_PIXELS = 64_000_000

# Raster formats a post image may come in. Everything else PIL could open (EPS runs Ghostscript, WMF, MPEG,
# scientific formats ...) is refused: a social-media image has no reason to be one of them.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "PPM", "AVIF", "JPEG2000")

FITS = ("crop", "pad", "squash")

# Image.open's bomb check reads PIL's global limit and reports through the warnings module; we silence that
# warning category around the (cheap, header-only) open call and apply our own per-call limit instead.
# The lock keeps our threads from interleaving warnings.catch_warnings() save/restore.
_OPEN_LOCK = threading.Lock()


def _reset_lock_after_fork() -> None:  # a child forked while another thread held the lock must not deadlock
    global _OPEN_LOCK
    _OPEN_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


class ImageError(ValueError):
    """An image file cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


def _allowed_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def _read_bytes(path: str, max_bytes: int | None) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as e:
        raise ImageError(path, f"cannot stat file ({e.strerror or e})") from None
    if not os.path.isfile(path):
        raise ImageError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ImageError(path, f"file too large ({st.st_size:,} bytes > limit {max_bytes:,})")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1 if max_bytes is not None else -1)
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror or e})") from None
    if max_bytes is not None and len(data) > max_bytes:  # grew since stat
        raise ImageError(path, f"file too large (> limit {max_bytes:,} bytes)")
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode → RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("PA",):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        if mode in ("RGBa", "La"):  # premultiplied alpha
            img = img.convert("RGBA" if mode == "RGBa" else "LA")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img)
        if mode.startswith("I;16"):
            arr8 = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        else:
            arr = arr.astype(np.float64)
            finite = arr[np.isfinite(arr)]
            top = float(finite.max()) if finite.size else 0.0
            if mode == "F" and top <= 1.0:
                arr = arr * 255.0
            elif top > 255.0:  # 16-bit data stored in a 32-bit mode
                arr = arr / 257.0
            arr8 = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    # "1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX" ...
    return img.convert("RGB")


def open_image(
    path: str | os.PathLike,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Open an image by its content (not its extension) and return it loaded, in RGB.

    Guards: the file size is checked before reading (``max_bytes``) and ``width * height`` before decoding
    (``max_pixels``); ``None`` disables a guard. With ``draft_size`` a JPEG is decoded at a reduced scale
    that still leaves both sides >= ``draft_size`` (much faster for large photos). Animated images give
    their first frame; the EXIF orientation is applied; alpha is composited on white.
    Raises :class:`ImageError` for anything that cannot be used.
    """
    path = os.fspath(path)
    img = _open_header(path, _read_bytes(path, max_bytes))
    try:
        _check_size(path, img, max_pixels)
        if getattr(img, "tell", lambda: 0)() != 0:  # animated: the first frame (open() starts there anyway)
            img.seek(0)
        if draft_size and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (int(draft_size), int(draft_size)))
        _decode(path, img)
        rgb = _oriented_rgb(path, img)
        if rgb is img:
            rgb = img.copy()  # detach from the file object before it is closed
        return rgb
    finally:
        img.close()


def _open_header(path: str, data: bytes) -> Image.Image:
    """The image object for ``data``, its header read (nothing decoded yet), or :class:`ImageError`."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_allowed_formats())
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"image too large, possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not a recognised image format "
                               f"(accepted: {', '.join(_allowed_formats())})") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        raise ImageError(path, f"cannot read image header ({type(e).__name__}: {e})") from None


def _check_size(path: str, img: Image.Image, max_pixels: int | None) -> None:
    """A size the header declares: positive, and within ``max_pixels`` before anything is decoded."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(path, f"invalid image size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(path, f"image too large: {width}x{height} = {width * height:,} pixels "
                               f"> limit {max_pixels:,} (possible decompression bomb)")


def _decode(path: str, img: Image.Image) -> None:
    """Decode the pixels, naming a truncated file as such."""
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"image too large, possible decompression bomb ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            raise ImageError(path, f"truncated image data ({msg})") from None
        if msg == "cannot load this image":  # header parsed, but the file ends before any image data
            raise ImageError(path, "truncated or incomplete image (no image data after the header)") from None
        raise ImageError(path, f"cannot decode image ({msg})") from None


def _oriented_rgb(path: str, img: Image.Image) -> Image.Image:
    """The decoded image turned by its EXIF orientation and converted to RGB (``img`` itself where neither
    changes anything)."""
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        oriented = img
    if oriented is None:  # pragma: no cover - only with in_place=True
        oriented = img
    try:
        return _to_rgb(oriented)
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot convert mode {oriented.mode} to RGB ({e})") from None


def _check_norm(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mean, dtype=np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float32).reshape(-1)
    if m.size != 3 or s.size != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {tuple(mean)} and {tuple(std)}")
    if np.any(s == 0):
        raise ValueError(f"std must not contain 0, got {tuple(std)}")
    return m, s


def preprocess(
    img: Image.Image,
    size: int = 224,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    fit: str = "crop",
) -> np.ndarray:
    """RGB image → ``float32 [3, size, size]`` with values ``(pixel / 255 - mean) / std``.

    ``fit``: ``"crop"`` resizes the shorter side to ``size`` and keeps the centre square; ``"pad"`` fits the
    whole image inside the square and fills the rest with the mean colour (exactly 0 after normalisation);
    ``"squash"`` resizes to ``size x size`` ignoring the aspect ratio.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    m, s = _check_norm(mean, std)
    if img.mode != "RGB":
        img = _to_rgb(img)
    w, h = img.size
    resample = Image.Resampling.BICUBIC
    gap = 3.0
    if fit == "squash":
        out = img.resize((size, size), resample, reducing_gap=gap)
    elif fit == "crop":
        side = min(w, h)
        left = (w - side) / 2.0
        top = (h - side) / 2.0
        out = img.resize((size, size), resample, box=(left, top, left + side, top + side), reducing_gap=gap)
    else:  # pad: the image fits inside the square; the border is exactly 0 after normalisation
        scale = size / max(w, h)
        nw = min(size, max(1, round(w * scale)))
        nh = min(size, max(1, round(h * scale)))
        inner = _normalise(img.resize((nw, nh), resample, reducing_gap=gap), m, s)
        arr = np.zeros((3, size, size), dtype=np.float32)
        top, left = (size - nh) // 2, (size - nw) // 2
        arr[:, top:top + nh, left:left + nw] = inner
        return arr
    return _normalise(out, m, s)


def _normalise(img: Image.Image, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """RGB image → float32 [3, H, W], (pixel / 255 - mean) / std."""
    arr = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    arr = (arr - m) / s
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


def load_image_array(
    path: str | os.PathLike,
    size: int = 224,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    fit: str = "crop",
    **guards,
) -> np.ndarray:
    """:func:`open_image` (JPEG drafted to ``size``) + :func:`preprocess` → ``float32 [3, size, size]``.

    ``guards`` are ``max_bytes`` / ``max_pixels`` for :func:`open_image`. Raises :class:`ImageError`.
    """
    guards.setdefault("draft_size", size)
    img = open_image(path, **guards)
    return preprocess(img, size=size, mean=mean, std=std, fit=fit)


# Draft decode for checks: JPEG at 1/8 scale still reads every entropy-coded byte, so truncation is caught.
_CHECK_DRAFT = 1


def check_image(path: str | os.PathLike, **guards) -> str | None:
    """``None`` if the file opens and fully decodes, else a short reason (for validation reports).

    JPEGs are decoded at reduced scale, which still reads all of their data (so truncation is found)
    at a fraction of the cost. ``guards``: ``max_bytes``, ``max_pixels``.
    """
    guards.setdefault("draft_size", _CHECK_DRAFT)
    try:
        open_image(path, **guards)
    except ImageError as e:
        return e.reason
    except MemoryError:
        return "out of memory while decoding"
    except Exception as e:  # never let one odd file stop a validation run
        return f"cannot decode image ({type(e).__name__}: {e})"
    return None
