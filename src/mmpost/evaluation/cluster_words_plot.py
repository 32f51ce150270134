"""The words most associated with each discovered cluster, as one bar chart per cluster (``mmpost relate``)."""
from __future__ import annotations

from pathlib import Path

from mmpost.atomic import atomic_write


def cluster_words_png(path: str | Path, words: dict[int, list[tuple[str, float]]], names: dict[int, str],
                      title: str, top: int = 10) -> Path:
    """One panel per cluster: its ``top`` words by log-odds z-score (:func:`mmpost.relate.mapping.cluster_words`),
    titled with the cluster id and the label the dev mapping gave it (``names``). A cluster without a distinctive
    word gets an empty panel that says so."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clusters = sorted(words)
    if not clusters:
        raise ValueError("no cluster to plot")
    fig, axes = plt.subplots(1, len(clusters), figsize=(3.2 * len(clusters), 0.9 + 0.32 * top), dpi=120,
                             squeeze=False)
    for ax, c in zip(axes[0], clusters):
        ws = words[c][:top]
        ax.set_title(f"cluster {c} → {names.get(c, '?')}", fontsize=9)
        if not ws:
            ax.text(0.5, 0.5, "no distinctive words", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        labels = [w for w, _ in ws][::-1]
        ax.barh(range(len(ws)), [z for _, z in ws][::-1], color="#4c72b0")
        ax.set_yticks(range(len(ws)), labels, fontsize=8)
        ax.set_xlabel("log-odds z-score", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path
