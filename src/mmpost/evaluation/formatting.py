"""How a score with its bootstrap interval is written, the same in the terminal, ``report.md`` and the run
report (HTML and markdown): ``0.812 (0.790–0.833)``. Each caller passes its own way of writing one number (the
HTML and markdown reports write NaN as "—"); this module decides the rest."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

INTERVAL_KEY = "weighted_f1_ci95"


def three_decimals(x: float) -> str:
    return f"{x:.3f}"


def with_interval(value: float, interval: Sequence[float] | None, number: Callable[[float], str] = three_decimals,
                  label: str = "") -> str:
    """``value`` then, when there is an interval, `` (<label>low–high)``: e.g. ``label="95% CI "``."""
    text = number(float(value))
    if interval:
        text += f" ({label}{number(float(interval[0]))}–{number(float(interval[1]))})"
    return text


def weighted_f1_cell(metrics: Mapping[str, Any], number: Callable[[float], str] = three_decimals,
                     label: str = "") -> str:
    """A metrics dict's weighted F1 with its 95% interval (``weighted_f1_ci95``) when it has one."""
    return with_interval(metrics["weighted_f1"], metrics.get(INTERVAL_KEY), number, label)
