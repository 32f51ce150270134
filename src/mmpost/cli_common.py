"""What every mmpost command shares: the typer app, logging setup, error exit and rich tables."""
from __future__ import annotations

import logging
import os

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
    help="""**mmpost** — train, evaluate and serve classifiers for social-media posts that carry an image and a text.

Start with `mmpost demo --quick` (the embedded synthetic set, about 2 minutes on a laptop CPU), then train on your
own CSV with `mmpost train configs/my.yaml` — see `configs/` for recipes. Data paths are relative to
`MMPOST_DATA_ROOT` (or `data.data_root=`).""")


def setup_logging(verbose: bool) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("lightning_fabric", "lightning.fabric", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def table(title: str, headers: list[str], rows: list[list[str]], left: int = 2) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title=title)
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i < left else "right", no_wrap=True)
    for r in rows:
        t.add_row(*r)
    Console(width=max(100, Console().width)).print(t)


def metrics_table(title: str, metrics: dict) -> None:
    from mmpost.evaluation.formatting import weighted_f1_cell
    rows = [[split, task, weighted_f1_cell(m), f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}", f"{m['mcc']:.3f}",
             str(m["n"])] for split, tasks in metrics.items() for task, m in tasks.items()]
    table(title, ["split", "task", "weighted F1 (95% CI)", "macro F1", "accuracy", "MCC", "n"], rows)
