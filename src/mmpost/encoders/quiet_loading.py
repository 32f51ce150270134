"""Loading a Hugging Face model without its console output: no "Loading weights" progress bar and no info-level
messages, so that ``mmpost.load(run)`` in a notebook or a server prints nothing. The previous settings are put
back afterwards (a user's own transformers settings are left as they were)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
