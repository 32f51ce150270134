"""Checks of model config values, each raising ``ValueError`` that names the key as ``model.<key>``."""
from __future__ import annotations

from collections.abc import Sequence

CONTRASTS = ("unimodal", "fused")   # which vectors ITC contrasts: unimodal passes | fused positions


def check_choice(key: str, value: object, choices: Sequence[str]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"model.{key} must be one of {', '.join(choices)}, got {value!r}")


def check_at_least(key: str, value: object, least: int) -> None:
    """``value`` must be an integer not below ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"model.{key} must be an integer of at least {least}, got {value!r}")


def check_probability(key: str, value: object) -> None:
    """``value`` must be a number in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"model.{key} must be a number in [0, 1), got {value!r}")


def check_widths(config: object, keys: Sequence[str] = ("proj_dim",)) -> None:
    """Every size in ``keys`` is a positive integer, and ``dropout`` (where the config has it) is in [0, 1)."""
    for key in keys:
        check_at_least(key, getattr(config, key), 1)
    if hasattr(config, "dropout"):
        check_probability("dropout", config.dropout)
