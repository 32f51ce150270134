"""The commands that make numbers trustworthy: ``mmpost cv``, ``mmpost calibrate`` and ``mmpost label-issues``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mmpost.cli_common import app, fail, setup_logging, table


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise typer.BadParameter(f"--seeds wants comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"--seeds wants distinct integers, got {text!r}")
    return seeds


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="YAML recipe: its posts (all splits pooled) are cross-validated.", dir_okay=False)],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (for --compare too), e.g. data.group_by=[image,text]")] = None,
    folds: Annotated[int, typer.Option(help="Outer folds K.", min=2)] = 5,
    seeds: Annotated[str, typer.Option(help="Training seeds per fold, comma-separated (the folds stay the same).")] = "0",
    compare: Annotated[Optional[Path], typer.Option(help="A second recipe trained on the same folds and seeds; the report adds a paired test.", dir_okay=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="The cross-validation folder (default: OUT_DIR/cv-<recipe>-<task>). Run again to resume.", file_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Cross-validate a recipe: K outer folds, stratified by the first task and grouped by `data.group_by` (no
    image, near-duplicate text or `column:NAME` value in two folds), each with a stratified, grouped 10% inner dev
    split that alone chooses the epoch and fits the calibration.

    Writes `oof.jsonl` (every post's out-of-fold prediction, calibrated `probs` and `probs_raw`), `folds.csv`,
    `metrics.json` and `report.md` (mean ± std over folds of every test metric, ECE and NLL before and after
    calibration, the majority baseline per fold, and with `--compare` a paired t-test over folds). Each fold ×
    seed is an ordinary run under `runs/`; an interrupted cross-validation resumes where it stopped.

    Example: `mmpost cv configs/memes.yaml --folds 5 --seeds 0,1 --compare configs/memes-itc.yaml`
    """
    setup_logging(verbose)
    from mmpost.apps.cv import cross_validate
    from mmpost.config import ConfigError
    from mmpost.data.validate import DataValidationError
    try:
        result = cross_validate(config, overrides, folds=folds, seeds=_seeds(seeds), compare=compare, out=out)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        fail(e)
    summary = result.summary
    for task, t in summary["tasks"].items():
        rows = []
        for metric, s in t["metrics"].items():
            row = [metric, f"{s['mean']:.3f} ± {s['std']:.3f}"]
            base = t["majority"].get(metric)
            row.append(f"{base['mean']:.3f}" if base else "")
            c = t["compare"].get(metric)
            row += [f"{c['mean']:.3f} ± {c['std']:.3f}", f"{c['diff']:+.3f}", f"{c['p']:.3f}"] if c else []
            rows.append(row)
        headers = ["metric", "mean ± std", "majority"] + (["compare", "Δ", "paired p"] if t["compare"] else [])
        table(f"{task} · {summary['folds']} folds × seeds {summary['seeds']}", headers, rows, left=1)
    typer.echo(f"{result.out_dir}: report.md, metrics.json, oof.jsonl ({result.n_runs} runs)")


@app.command()
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    operating_point: Annotated[str, typer.Option(help="TASK:precision=0.9 or TASK:recall=0.8 (a binary task; TASK may be left out for the first).")],
    positive: Annotated[Optional[str], typer.Option(help="The positive label (default: the rarer one on dev).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Choose a decision threshold for a binary task on the run's dev predictions, so that its precision (or
    recall) reaches the target, and check it once on test. The threshold is saved in the run's
    `calibration.json`: `mmpost predict`, `evaluate` and `serve` then predict the positive label wherever its
    calibrated probability reaches it. When dev never reaches the target, the best threshold is taken, and the
    command says so.

    Example: `mmpost calibrate runs/fakenews --operating-point fake:precision=0.9 --positive fake`
    """
    setup_logging(verbose)
    from mmpost.apps.calibrate import set_operating_point
    try:
        r = set_operating_point(run_dir, operating_point, positive)
    except (ValueError, FileNotFoundError) as e:
        fail(e)
    p = r.point
    rows = [["dev", f"{p.dev_precision:.3f}", f"{p.dev_recall:.3f}", ""]]
    if r.test_precision is not None:
        rows.append(["test", f"{r.test_precision:.3f}", f"{r.test_recall:.3f}", f"{r.test_predicted_positive} of {r.test_n}"])
    table(f"{p.task}: predict {p.positive} at p ≥ {p.threshold:.4f} ({p.metric} target {p.target:g}, "
          f"{'reached' if p.reached else 'NOT reached'} on dev)", ["split", "precision", "recall", "predicted positive"], rows, left=1)
    for note in r.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)
    typer.echo(f"saved in {run_dir / 'calibration.json'}")


@app.command("label-issues")
def label_issues(
    cv_dir: Annotated[Path, typer.Argument(help="A folder written by `mmpost cv` (it holds oof.jsonl).", exists=True, file_okay=False)],
    task: Annotated[Optional[str], typer.Option(help="The task to check (default: the first).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: CV_DIR/label_issues).", file_okay=False)] = None,
    top: Annotated[Optional[int], typer.Option(help="Posts shown on the review page (default: every flagged one, at most 500).", min=1)] = None,
    image_root: Annotated[Optional[Path], typer.Option(help="Label Studio's local-files document root, which the image URLs are relative to.", file_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Rank the posts whose given label the out-of-fold model doubts, by confident learning (cleanlab) on the
    cross-validation's out-of-fold probabilities (seeds averaged).

    Writes `label_issues.csv` (every post, most doubtful first), `label_issues.html` (each flagged post with its
    image, text, given and suggested label and score) and `label_studio.json` + `label_studio_config.xml` (import
    them into Label Studio: suspected errors first, with the suggestion as a prediction).

    Example: `mmpost cv configs/memes.yaml --out runs/cv-memes && mmpost label-issues runs/cv-memes`
    """
    setup_logging(verbose)
    from mmpost.apps.label_issues import find_label_issues_in
    try:
        r = find_label_issues_in(cv_dir, task=task, out_dir=out, top=top, image_root=image_root)
    except (ValueError, FileNotFoundError) as e:
        fail(e)
    typer.echo(f"{r.task}: {r.n_flagged} of {r.n_posts} posts flagged ({r.method}; {r.n_seeds} seed(s) averaged)")
    for path in (r.csv, r.html, r.label_studio, r.label_studio_config):
        typer.echo(f"  {path}")
    for note in r.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)
