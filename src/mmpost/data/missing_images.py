"""When image files are missing: which pattern and folder were tried, and the nearest existing file names, so that a
wrong ``data.columns.image_pattern`` (``{}.jpg`` for a folder of ``.png`` files) or image root is obvious."""
from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

MIN_MISSING = 3          # fewer missing files than this are just listed, with no hint
EXAMPLES = 3


def missing_images_hint(missing: Sequence[str], tried: str | None = None) -> str | None:
    """One line for a validation report, or None when fewer than :data:`MIN_MISSING` files are missing."""
    if len(missing) < MIN_MISSING:
        return None
    listings: dict[str, list[str]] = {}
    examples = []
    for path in list(dict.fromkeys(missing))[:EXAMPLES]:
        folder, name = os.path.split(path)
        if folder not in listings:
            listings[folder] = _files(folder)
        near = nearest(name, listings[folder])
        examples.append(f"{name!r} → nearest: {', '.join(near) if near else 'none'}")
    folders = ", ".join(sorted(listings))
    where = f"tried {tried}; " if tried else ""
    existing = sum(len(v) for v in listings.values())
    return (f"{len(missing):,} image files not found ({where}looked in {folders}, which holds {existing:,} files). "
            + "; ".join(examples)
            + ". Check data.columns.image_pattern (\"{}.*\" accepts any image extension) and the image root.")


def nearest(name: str, files: Sequence[str], n: int = 3) -> list[str]:
    """The files most like ``name``: the same name with another extension first (``im2.jpg`` → ``im2.PNG``), then
    the closest spellings."""
    stem = os.path.splitext(name)[0].lower()
    same = [f for f in files if os.path.splitext(f)[0].lower() == stem]
    close = [f for f in difflib.get_close_matches(name, files, n=n, cutoff=0.5) if f not in same]
    return (same + close)[:n]


def _files(folder: str) -> list[str]:
    try:
        with os.scandir(folder or ".") as entries:
            return sorted(e.name for e in entries if e.is_file())
    except OSError:
        return []
