"""The allowed values of the emoticon task's options, in a module with no imports so that the run
configuration can check them without loading the Unicode emoji data (:mod:`mmpost.data.emoji` uses them too)."""
from __future__ import annotations

__all__ = ["MULTI_POLICIES", "STRIP_MODES", "SKIN_TONE_MODES", "EMOTICON_TASK"]

MULTI_POLICIES = ("first", "last", "most", "single")
STRIP_MODES = ("label", "all")
SKIN_TONE_MODES = ("fold", "keep")
EMOTICON_TASK = "emoticon"          # the task whose labels come from the emoji in the texts
