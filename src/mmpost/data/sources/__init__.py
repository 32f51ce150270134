"""Dataset adapters: published multimodal-post datasets, read from their own files into split posts.

    from mmpost.data.sources import get_source
    data = get_source("tir").load(data_root, test="rm")    # SourceData: posts (split set) + notes
    for note in data.notes:
        print(note)

Every adapter reads its files relative to a *data root* (``data.data_root`` or ``MMPOST_DATA_ROOT``), sets
``meta["split"]`` (train / dev / test) on every post, and ``meta["source"]`` (the file, relative to the data
root) and ``meta["row"]`` (1-based data row, header not counted, as :mod:`mmpost.data.manifest` does) so that
problems and reports can name them. Labels are label *names* (``tasks`` lists them in order per task).

Images: a post gets ``images=[path]`` when its image file exists under ``image_root`` (or the adapter's
``default_image_root`` under the data root, when that folder exists), else ``images=[]`` and the model masks
the image. A note always says how many posts have an image.

The helpers the adapters share are in :mod:`.common`; a new adapter is one file here, imported below.
"""
from __future__ import annotations

from mmpost import registry

from . import memes, mhp, msd, multioff, mvsa, tir, twitter_emoticon  # noqa: F401  (each registers itself)
from .base import DatasetSource, SourceData
from .common import SourceError

__all__ = ["DatasetSource", "SourceData", "SourceError", "get_source", "names"]


def get_source(name: str) -> DatasetSource:
    """A new instance of the adapter registered as ``name`` (``RegistryError`` lists the known ones)."""
    return registry.get("dataset", name)()


def names() -> list[str]:
    """The registered dataset adapters."""
    return registry.names("dataset")
