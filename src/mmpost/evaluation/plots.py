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


CURVE_ORDER = ("loss", "ce", "itc", "itm")
CURVE_TITLES = {"loss": "total loss", "ce": "cross-entropy (CE)", "itc": "image-text contrastive (ITC)",
                "itm": "image-text matching (ITM)", "temperature": "ITC temperature τ",
                "weighted_f1": "dev weighted F1", "unreadable_images": "unreadable images (masked)"}


def curve_panels(history: Sequence[dict[str, float]]) -> list[str]:
    """The panels a training log gives, in reading order: losses (total, CE, ITC, ITM, then any other logged
    column), the ITC temperature, the dev score. A column is ``train_<name>`` or ``dev_<name>``; a name whose
    values are all zero (e.g. a count of unreadable images in a clean run) gets no panel."""
    def shown(name: str) -> bool:
        columns = (f"train_{name}", f"dev_{name}")
        return any(v == v and v != 0 for row in history for k, v in row.items() if k in columns)
    names = [n for n in dict.fromkeys(k.split("_", 1)[1] for row in history for k in row
                                      if k.startswith(("train_", "dev_"))) if shown(n)]
    tail = [n for n in ("temperature", "weighted_f1") if n in names]
    return [n for n in CURVE_ORDER if n in names] + [n for n in names if n not in CURVE_ORDER and n not in tail] + tail


def curves_png(path: str | Path, history: Sequence[dict[str, float]], title: str,
               best_epoch: int | None = None) -> Path:
    """One small panel per logged component (train and dev per epoch), the ITC temperature (the value during
    training; dev reads the same parameter) and the dev weighted F1, with the chosen epoch marked."""
    import math

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = curve_panels(history)
    if not panels:
        raise ValueError("the training log has no train_* or dev_* columns to plot")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 2.8 * rows), dpi=110, squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for ax, name in zip(axes.flat, panels):
        sides = ("train",) if name == "temperature" else ("train", "dev")
        for side, colour in zip(sides, ("tab:blue", "tab:orange")):
            values = [row.get(f"{side}_{name}", float("nan")) for row in history]
            if any(v == v for v in values):      # not all NaN
                ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=side)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
        ax.set_title(CURVE_TITLES.get(name, name), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if len(sides) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title + ("" if best_epoch is None else f" · dotted line: chosen epoch {best_epoch}"), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path


def embedding_map_png(path: str | Path, text_xy, text_labels: Sequence[int], image_xy, image_labels: Sequence[int],
                      label_names: Sequence[str], title: str, pairs: Sequence[tuple[int, int]] = ()) -> Path:
    """Text points (circles) and image points (triangles) in one 2-D map, coloured by true class.

    ``pairs`` (text row, image row) join a post's text and image with a faint line: short lines mean the two
    sides of a post sit close together, which is what ITC trains for."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    text_xy, image_xy = np.asarray(text_xy, dtype=float), np.asarray(image_xy, dtype=float).reshape(-1, 2)
    cmap = plt.get_cmap("tab10" if len(label_names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=110)
    for t, i in pairs:
        ax.plot([text_xy[t, 0], image_xy[i, 0]], [text_xy[t, 1], image_xy[i, 1]], color="0.75", linewidth=0.4,
                zorder=1)
    for xy, labels, marker in ((text_xy, text_labels, "o"), (image_xy, image_labels, "^")):
        if len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(k) % cmap.N) for k in labels], marker=marker, s=22,
                       edgecolors="white", linewidths=0.4, zorder=2)
    handles = [Line2D([], [], marker="s", linestyle="", color=cmap(k % cmap.N), label=name)
               for k, name in enumerate(label_names)]
    handles.append(Line2D([], [], marker="o", linestyle="", color="0.3", label="text"))
    if len(image_xy):
        handles.append(Line2D([], [], marker="^", linestyle="", color="0.3", label="image"))
    ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path
