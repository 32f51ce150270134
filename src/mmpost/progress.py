"""Progress bars for long work: shown on a terminal, silent when output goes to a file or pipe."""
from __future__ import annotations

from tqdm.auto import tqdm


def bar(iterable=None, *, enabled: bool = True, **kwargs):
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
