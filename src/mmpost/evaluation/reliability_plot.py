"""A reliability diagram: how often the model is right against how sure it says it is, before and after
temperature scaling (matplotlib, no display needed).

The bins are those of :func:`mmpost.evaluation.calibration.reliability_bins`. A perfectly calibrated model's bars
touch the diagonal; bars under it mean over-confidence. A small histogram under the diagram shows how many
predictions fall in each bin, since a bin of five posts says little.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mmpost.atomic import atomic_write


def _label(name: str, value: float | None) -> str:
    return name if value is None or not math.isfinite(value) else f"{name} (ECE {value:.3f})"


def reliability_png(path: str | Path, before: Sequence[dict], after: Sequence[dict] | None, title: str,
                    ece_before: float, ece_after: float | None) -> Path:
    """Accuracy per confidence bin as bars (before and, when given, after calibration side by side in each bin),
    the diagonal of perfect calibration, ECE in the legend, and the count per bin underneath."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(before, _label("before", ece_before), "tab:red")]
    if after is not None:
        series.append((after, _label("after", ece_after), "tab:blue"))
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.2, 5.6), dpi=120, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    share = 1.0 / len(series)
    for k, (bins, label, colour) in enumerate(series):
        widths = [(b["hi"] - b["lo"]) * share for b in bins]
        lefts = [b["lo"] + k * w for b, w in zip(bins, widths)]
        heights = [b["accuracy"] if b["count"] else 0.0 for b in bins]
        ax.bar(lefts, heights, width=widths, align="edge", color=colour, alpha=0.75, edgecolor="white",
               linewidth=0.5, label=label)
        hist.bar(lefts, [b["count"] for b in bins], width=widths, align="edge", color=colour, alpha=0.75)
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    hist.set_xlabel("confidence")
    hist.set_ylabel("predictions", fontsize=8)
    hist.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path
