"""Figures a person reads next to report.md (matplotlib, no display needed)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmpost.atomic import atomic_write


def confusion_png(path: str | Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> Path:
    """A confusion matrix with counts in the cells and rows normalised for the colour."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k), dpi=120)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path
