"""The commands that read a CLIP or SigLIP checkpoint as it is: ``mmpost zeroshot`` and ``mmpost similarity``
(whose ``RUN_DIR`` form reads a trained run instead)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mmpost.cli_common import app, fail, metrics_table, setup_logging, table


def _recipe_and_overrides(config: Optional[Path], overrides: Optional[list[str]]) -> tuple[Optional[Path], list[str]]:
    """A first argument that is a key=value override rather than a recipe joins the overrides."""
    if config is not None and "=" in config.name and config.suffix.lower() not in (".yaml", ".yml"):
        return None, [str(config), *(overrides or [])]
    return config, list(overrides or [])


def _label_texts(pairs: Optional[list[str]]) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        label, sep, text = pair.partition("=")
        if not sep or not label or not text:
            raise typer.BadParameter(f"--label-text wants LABEL=TEXT, e.g. not_sarcastic=\"an earnest post\"; "
                                     f"got {pair!r}")
        out[label] = text
    return out


@app.command()
def zeroshot(
    config: Annotated[Optional[Path], typer.Argument(
        help="A recipe: its data, tasks and hf-clip encoders (default: the embedded synthetic set).",
        dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. task=sarcasm")] = None,
    template: Annotated[Optional[list[str]], typer.Option(
        "--template", help='A prompt with {label} in it (repeatable: the templates are averaged). '
                           'Default: "a post that is {label}".')] = None,
    checkpoint: Annotated[Optional[str], typer.Option(
        help="A CLIP or SigLIP checkpoint (hub name or folder) for both towers; default: the recipe's hf-clip "
             "encoders.")] = None,
    label_text: Annotated[Optional[list[str]], typer.Option(
        "--label-text", help="LABEL=TEXT: the words a label stands for in the prompts (default: its name, _ as "
                             "spaces). Repeatable.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: OUT_DIR/zeroshot-<task>-<time>).",
                                                           file_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score a task with a CLIP or SigLIP checkpoint and no training: each post's image against a prompt per label
    (`{label}` filled in; several `--template`s are averaged), with the checkpoint's own logit scale.

    Writes `metrics.json` (dev and test), `report.md` (with the majority-class baseline), `predictions_test.jsonl`
    and `zeroshot.json`, like a run. A multi-label task needs a SigLIP checkpoint.

    Example: `mmpost zeroshot configs/paper/memes-clip.yaml task=sarcasm --template "a meme that is {label}"
    --template "a {label} meme" --label-text not_sarcastic="plain"`
    """
    setup_logging(verbose)
    from mmpost.apps.zeroshot import DEFAULT_TEMPLATES, checkpoint_overrides
    from mmpost.apps.zeroshot import zeroshot as run_zeroshot
    from mmpost.config import ConfigError, load_config
    from mmpost.data.validate import DataValidationError
    config, extra = _recipe_and_overrides(config, overrides)
    try:
        cfg = load_config(config, (checkpoint_overrides(checkpoint) if checkpoint else []) + extra)
        result = run_zeroshot(cfg, template or list(DEFAULT_TEMPLATES), label_texts=_label_texts(label_text),
                              out_dir=out, progress=cfg.progress)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(e)
    metrics_table(str(result.out_dir), {**result.metrics, "majority": result.baselines})


@app.command()
def similarity(
    source: Annotated[Optional[Path], typer.Argument(
        help="A finished run (ideally trained with objectives.itc.enabled=true on another task than the relation); "
             "with --checkpoint, a recipe for the posts (default: the embedded synthetic set).")] = None,
    config: Annotated[Optional[Path], typer.Argument(
        help="With a run: a recipe for the posts to score (default: the run's own data).", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of that recipe")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(
        help="A CLIP or SigLIP checkpoint (hub name or folder): its own cosine, untrained, as the ITRp paper "
             "measures label quality.")] = None,
    task: Annotated[str, typer.Option(
        help="The label that carries the relation: relation (codes XY) or any task of posts that also have "
             "text_represented and image_adds.")] = "relation",
    out: Annotated[Optional[Path], typer.Option(
        help="JSON file for the result (default: RUN_DIR/relation_similarity.json, or relation_similarity.json "
             "here with --checkpoint).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """How well an image-text similarity ranks posts by relation strength: Spearman's rho between a cosine and the
    4-level score (1: text not represented, image adds nothing … 4: text represented and image adds), on test and
    on the dataset's other test labelings (TIR: test_RM, test_RL).

    Two forms: `mmpost similarity RUN_DIR` (the cosine of the run's ITC projections), and
    `mmpost similarity RECIPE --checkpoint DIR` (a CLIP or SigLIP checkpoint's own cosine, the paper's analysis),
    e.g. `mmpost similarity configs/paper/tir-clip.yaml --checkpoint openai/clip-vit-base-patch32`.
    """
    setup_logging(verbose)
    from mmpost.config import ConfigError, load_config
    try:
        if checkpoint is not None:
            recipe, extra = _recipe_and_overrides(source, [str(config)] if config is not None else [])
            extra += list(overrides or [])
            from mmpost.apps.similarity import checkpoint_similarity
            result = checkpoint_similarity(checkpoint, load_config(recipe, extra), task=task,
                                           out=out or Path("relation_similarity.json"), progress=True)
            title = f"{checkpoint} cosine vs relation score ({result['family']}, untrained)"
        else:
            if source is None or not source.is_dir():
                raise ValueError(f"{source} is not a run folder; give a finished run, or a recipe with --checkpoint")
            from mmpost.apps.similarity import relation_similarity
            cfg = load_config(config, overrides or []) if config is not None or overrides else None
            result = relation_similarity(source, cfg, task=task, out=out or source / "relation_similarity.json")
            title = f"ITC similarity vs relation score · run trained on {result['run_task']}"
    except (ConfigError, ValueError, FileNotFoundError) as e:
        fail(e)
    rows = [[name, f"{r['rho']:.3f}", f"{r['p']:.1e}", str(r["n"]), str(r["skipped"]),
             *("–" if r["mean_by_level"][lvl] is None else f"{r['mean_by_level'][lvl]:.3f}" for lvl in (1, 2, 3, 4))]
            for name, r in result["splits"].items()]
    table(title, ["split", "Spearman rho", "p", "n", "skipped", "mean sim 1", "2", "3", "4"], rows, left=1)
    for note in result["notes"]:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)
