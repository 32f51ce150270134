"""Precomputed region features: one file per image, for families that read object regions (LXMERT-style).

mmpost does not run an object detector. You extract region features with a detector of your own (e.g. a
Faster R-CNN with a Visual Genome head, 36 boxes of 2,048-d per image, as LXMERT was pre-trained on) and
write one file per image into a folder; ``model.region_features`` names that folder.

File format
-----------
For an image ``.../images/abc123.jpg`` the provider looks for, in this order,

    <folder>/abc123.safetensors   tensors "features" [R, Dr] and optionally "boxes" [R, 4]
    <folder>/abc123.npz           the same two arrays, by the same names (``np.savez``)
    <folder>/abc123.npy           the features [R, Dr] alone

- ``features``: one row per region (R ≥ 0), float (stored as float16/32/64; read as float32). Every file in
  the folder must have the same width Dr, and Dr must be what the model expects (``visual_feat_dim`` of an
  HF LXMERT checkpoint: 2,048 for ``unc-nlp/lxmert-base-uncased``).
- ``boxes``: (x0, y0, x1, y1) of each region, divided by the image width and height so they lie in [0, 1].
  Without boxes every region gets the whole image, [0, 0, 1, 1].
- Regions come in the order the file gives them; with ``max_regions`` the first ones are kept (write them
  most confident first).

Only the file name's stem is used, so two images with the same stem in different folders share one file.
An image without a file (or whose file holds no regions) counts as "no image" for its post. Files are read
with ``safetensors`` or with ``numpy.load(allow_pickle=False)``: nothing is ever unpickled, and an object
array is refused.

Writing a file (per image, with your own detector)::

    from safetensors.numpy import save_file
    save_file({"features": feats.astype("float32"),               # [R, 2048]
               "boxes": (xyxy / [w, h, w, h]).astype("float32")},   # [R, 4]
              f"regions/{Path(image_path).stem}.safetensors")
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SUFFIXES = (".safetensors", ".npz", ".npy")
BOX_TOLERANCE = 1e-3     # boxes a little outside [0, 1] (rounding) are clipped; further out is an error


@dataclass
class Regions:
    """N posts, padded to R regions of width Dr.

    features [N, R, Dr] float32  zeros where padded or not found
    boxes    [N, R, 4]  float32  (x0, y0, x1, y1) in [0, 1]
    mask     [N, R]     bool     True for real regions
    found    [N]        bool     False where the post has no image or its image has no (non-empty) file
    """

    features: np.ndarray
    boxes: np.ndarray
    mask: np.ndarray
    found: np.ndarray


class RegionFileError(ValueError):
    """A region file that cannot be used; the message names the file."""


def region_file(folder: Path, image_path: str) -> Path | None:
    """The file holding ``image_path``'s regions, or None."""
    stem = Path(image_path).stem
    for suffix in SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_region_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One file → (features [R, Dr] float32, boxes [R, 4] float32), checked."""
    path = Path(path)
    arrays = _read_arrays(path)
    if "features" not in arrays:
        raise RegionFileError(f"{path}: no 'features' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    feats = _as_float(arrays["features"], path, "features")
    if feats.ndim != 2:
        raise RegionFileError(f"{path}: 'features' must be [regions, dim], got shape {tuple(feats.shape)}")
    n = feats.shape[0]
    if "boxes" in arrays:
        boxes = _as_float(arrays["boxes"], path, "boxes")
        if boxes.shape != (n, 4):
            raise RegionFileError(f"{path}: 'boxes' must be [{n}, 4] (x0, y0, x1, y1) to match {n} regions, "
                                  f"got shape {tuple(boxes.shape)}")
        if n and (boxes.min() < -BOX_TOLERANCE or boxes.max() > 1 + BOX_TOLERANCE):
            raise RegionFileError(f"{path}: boxes must be normalised to [0, 1] (divide x by the image width and y "
                                  f"by its height), got values in [{boxes.min():.3g}, {boxes.max():.3g}]")
        boxes = np.clip(boxes, 0.0, 1.0)
    else:
        boxes = np.tile(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), (n, 1))
    if not (np.isfinite(feats).all() and np.isfinite(boxes).all()):
        raise RegionFileError(f"{path}: features or boxes contain NaN or infinity")
    return feats, boxes


def load_regions(folder: str | Path, image_paths: list[str | None], *,
                 max_regions: int | None = None) -> Regions:
    """Region features for each post's (first) image; None = a post without an image. See the module docstring
    for the file format. Pads to the most regions any file has (or ``max_regions``, keeping the first ones)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"region feature folder {root} does not exist (model.region_features)")
    if max_regions is not None and max_regions < 1:
        raise ValueError(f"max_regions must be at least 1, got {max_regions}")
    per_post: list[tuple[np.ndarray, np.ndarray] | None] = []
    width: tuple[int, Path] | None = None
    read: dict[Path, tuple[np.ndarray, np.ndarray]] = {}     # the same image in several posts is read once
    missing = empty = 0
    for image in image_paths:
        path = region_file(root, image) if image else None
        if path is None:
            missing += image is not None
            per_post.append(None)
            continue
        if path not in read:
            feats, boxes = read_region_file(path)
            if max_regions is not None:
                feats, boxes = feats[:max_regions], boxes[:max_regions]
            if width is None:
                width = (feats.shape[1], path)
            elif feats.shape[1] != width[0]:
                raise RegionFileError(f"{path}: features are {feats.shape[1]}-d but {width[1]} has "
                                      f"{width[0]}-d: every region file must have the same width")
            read[path] = (feats, boxes)
        feats, boxes = read[path]
        if feats.shape[0] == 0:
            empty += 1
            per_post.append(None)
            continue
        per_post.append((feats, boxes))
    if missing or empty:
        log.warning("%d images have no region file in %s and %d files hold no regions: those posts are treated "
                    "as having no image", missing, root, empty)
    n = len(image_paths)
    r = max([p[0].shape[0] for p in per_post if p is not None], default=1)
    dim = width[0] if width is not None else 0
    out = Regions(features=np.zeros((n, r, dim), dtype=np.float32), boxes=np.zeros((n, r, 4), dtype=np.float32),
                  mask=np.zeros((n, r), dtype=bool), found=np.zeros(n, dtype=bool))
    for i, item in enumerate(per_post):
        if item is None:
            continue
        feats, boxes = item
        k = feats.shape[0]
        out.features[i, :k], out.boxes[i, :k], out.mask[i, :k], out.found[i] = feats, boxes, True, True
    return out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file
            return dict(load_file(str(path)))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise RegionFileError(f"{path} holds a pickled (object) array, which mmpost never unpickles: save "
                                  "plain numeric arrays") from None
        raise RegionFileError(f"{path}: cannot read region features: {e}") from None
    except Exception as e:  # a truncated or foreign file
        raise RegionFileError(f"{path}: cannot read region features: {e}") from None
    if not isinstance(loaded, np.ndarray):
        raise RegionFileError(f"{path}: a .npy region file holds one features array; save several arrays "
                              "(features, boxes) as .npz or .safetensors")
    return {"features": loaded}


def _as_float(a: np.ndarray, path: Path, name: str) -> np.ndarray:
    if a.dtype.kind not in "fiu":
        raise RegionFileError(f"{path}: '{name}' must be numeric, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)
