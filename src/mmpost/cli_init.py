"""``mmpost init posts.csv``: propose a recipe from a data file, saying what was guessed and why."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mmpost.cli_common import app, fail, setup_logging


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="A posts file: CSV, TSV, .txt (tab-separated), JSONL or Parquet.", dir_okay=False)],
    out: Annotated[Optional[Path], typer.Option(help="The recipe to write (default: the data file's name with .yaml, beside it).", dir_okay=False)] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing recipe file.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Propose a YAML recipe for a posts file: the id, text, image and label columns are guessed from the content
    of its first rows (cells that name image files that exist under the file's folder or a sub-folder, columns
    with few distinct values, long free text) and each guess is printed with its reason.

    Example: `mmpost init posts.csv` writes `posts.yaml`; check it, then `mmpost train posts.yaml`. Without a
    recipe: `mmpost train posts.csv --text COL --image COL --label COL`.
    """
    setup_logging(verbose)
    from mmpost.apps.init_recipe import propose_recipe
    try:
        target, said = propose_recipe(data, out, force=force)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as e:
        fail(e)
    for line in said:
        typer.echo(line)
    typer.secho(f"wrote {target}: check it, then `mmpost train {target}`", fg=typer.colors.GREEN)
