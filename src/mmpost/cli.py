"""mmpost's command line: thin — it parses, loads the config and calls an app."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
    help="""**mmpost** — train, evaluate and serve classifiers for social-media posts that carry an image and a text.

Start with `mmpost demo --quick` (the embedded synthetic set, about 2 minutes on a laptop CPU), then train on your
own CSV with `mmpost train configs/my.yaml` — see `configs/` for recipes. Data paths are relative to
`MMPOST_DATA_ROOT` (or `data.data_root=`).""")


def _setup(verbose: bool) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("lightning_fabric", "lightning.fabric", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _table(title: str, headers: list[str], rows: list[list[str]], left: int = 2) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title=title)
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i < left else "right", no_wrap=True)
    for r in rows:
        t.add_row(*r)
    Console(width=max(100, Console().width)).print(t)


def _metrics_table(title: str, metrics: dict) -> None:
    def wf1(m: dict) -> str:
        ci = m.get("weighted_f1_ci95")
        return f"{m['weighted_f1']:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
    rows = [[split, task, wf1(m), f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}", f"{m['mcc']:.3f}", str(m["n"])]
            for split, tasks in metrics.items() for task, m in tasks.items()]
    _table(title, ["split", "task", "weighted F1 (95% CI)", "macro F1", "accuracy", "MCC", "n"], rows)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Freeze both towers and train on cached features (< 3 min on 2 cores).")] = False,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated tasks (default: all five with --quick, sentiment without).")] = None,
    out: Annotated[str, typer.Option(help="Folder for the demo's runs.")] = "runs/demo",
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value config overrides, e.g. train.epochs=10")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the main job on the **embedded synthetic set**: train the default model without and with ITC+ITM
    and print weighted F1 on the test split for each task.

    The synthetic set (2,000 posts, 128 px) is drawn by a seeded generator inside mmpost; its labels need both
    the image and the text. It is a smoke test of the whole pipeline, not a benchmark of real posts.
    """
    _setup(verbose)
    from mmpost.apps.demo import ALL_TASKS, run_demo
    chosen = tuple(t.strip() for t in tasks.split(",")) if tasks else (ALL_TASKS if quick else ("sentiment",))
    start = time.time()
    rows_out: list[list[str]] = []

    def show(row) -> None:
        m = row.result.metrics.get("test", row.result.metrics.get("dev"))[row.task]
        rows_out.append([row.task, row.setting, f"{m['weighted_f1']:.3f}", f"{m['accuracy']:.3f}",
                         f"{row.result.baseline['weighted_f1']:.3f}", str(row.result.best_epoch)])
        typer.echo(f"  {row.task:<17} {row.setting:<9} test weighted F1 {m['weighted_f1']:.3f}", err=True)

    try:
        rows = run_demo(quick=quick, tasks=chosen, out_dir=out, overrides=overrides, on_row=show)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    _table(f"mmpost demo{' --quick' if quick else ''} · synthetic set · test split",
           ["task", "setting", "weighted F1", "accuracy", "majority F1", "best epoch"], rows_out)
    typer.echo(f"runs in {rows[0].result.run_dir.parent} · {time.time() - start:.0f} s")


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(help="YAML recipe (see configs/). Not needed with --resume.", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. objectives.itc=true train.epochs=5")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run from its last checkpoint (its config.yaml is used).", file_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train a model from a YAML recipe and write a run folder: `model.safetensors`, `config.yaml`,
    `metrics.json`, `report.md`, `confusion_test.png`, `log.csv`, `checkpoints/`.

    Example: `mmpost train configs/memes.yaml objectives.itc=true objectives.itm=true`

    After a crash or Ctrl-C: `mmpost train --resume runs/<run>` goes on from the last finished epoch and ends
    where an uninterrupted run would have.
    """
    _setup(verbose)
    from mmpost.apps.train import train as run_train
    from mmpost.config import ConfigError, load_config
    from mmpost.data.validate import DataValidationError
    try:
        if resume is not None:
            if config is not None and config.suffix.lower() not in (".yaml", ".yml"):
                overrides, config = [str(config), *(overrides or [])], None
            cfg = load_config(resume / "config.yaml", overrides)
            cfg.out_dir, cfg.name = str(resume.parent), resume.name
        elif config is None:
            raise ConfigError("give a YAML recipe, or --resume RUN_DIR")
        else:
            cfg = load_config(config, overrides)
        result = run_train(cfg, resume=resume is not None)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        typer.secho("fix the rows above, or set data.policy=skip (drop them) or data.policy=text-only "
                    "(mask bad images)", err=True)
        raise typer.Exit(code=3)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(e)
    _metrics_table(str(result.run_dir), {**result.metrics, "majority": {cfg.task: result.baseline}})


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    data: Annotated[Optional[str], typer.Option(help="A CSV/JSONL manifest, read with the run's column mapping. Default: the run's test split.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="data.* overrides, e.g. data.columns.image_root=/imgs")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Evaluate a trained run and write `evaluations/<name>/metrics.json` and `report.md` inside it."""
    _setup(verbose)
    from mmpost.apps.evaluate import evaluate as run_eval
    from mmpost.data.validate import DataValidationError
    try:
        metrics, out = run_eval(run_dir, data, overrides)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    _metrics_table(str(out), metrics)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    data: Annotated[str, typer.Option(help="A CSV/JSONL manifest, read with the run's column mapping (no labels needed).")],
    out: Annotated[Path, typer.Option(help="Where to write one JSON line per post.")] = Path("predictions.jsonl"),
    overrides: Annotated[Optional[list[str]], typer.Argument(help="data.* overrides, e.g. data.columns.image_root=/imgs")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write class probabilities for every post: `{"id", "label", "probs": {label: p}, "image_used"}` per line.

    A post whose image is missing or unreadable is predicted from its text with the learned "no image" vector;
    `image_used` says so. The file appears only when complete.
    """
    _setup(verbose)
    from mmpost.apps.predict import predict_file
    try:
        counts = predict_file(run_dir, data, out, overrides=overrides)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    typer.echo(f"{counts['posts']} posts → {out} ({counts['without_image']} predicted without an image)")


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="YAML recipe whose data section to check.", exists=True, dir_okay=False)],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. data.path=other.csv")] = None,
    max_lines: Annotated[int, typer.Option(help="How many problem lines to show.")] = 50,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Check a data set without training: missing or undecodable images, empty texts, unknown labels and
    duplicate ids, in one report naming file, row and field. Exit code 0 when clean, 3 when not."""
    _setup(verbose)
    from mmpost.apps.prepare import default_labels, load_posts
    from mmpost.config import ConfigError, load_config
    from mmpost.data.validate import validate_posts
    try:
        cfg = load_config(config, overrides)
        posts = load_posts(cfg.data)
        labels = default_labels(cfg.task, cfg.data, posts)
        report = validate_posts(posts, {cfg.task: labels} if cfg.data.labels else None, progress=True)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(e)
    if report.ok:
        typer.secho(f"{report.n_posts} posts checked: no problems", fg=typer.colors.GREEN)
        return
    typer.echo(report.format(max_lines=max_lines))
    raise typer.Exit(code=3)


@app.command()
def grid(
    config: Annotated[Path, typer.Argument(help="A grid file (see configs/grid/).", exists=True, dir_okay=False)],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides for every run, e.g. train.epochs=3")] = None,
    datasets: Annotated[Optional[str], typer.Option(help="Only these datasets (comma-separated names from the grid file).")] = None,
    models: Annotated[Optional[str], typer.Option(help="Only these models, e.g. conc,att.")] = None,
    aux: Annotated[Optional[str], typer.Option(help="Only these aux settings: base,itc,itm,itc+itm.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="These seeds instead of the file's, e.g. 0,1,2.")] = None,
    out: Annotated[Optional[str], typer.Option(help="Output folder instead of the file's out_dir.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the cells and their state; train nothing.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the ablation grid: datasets × models × aux settings {base, +ITC, +ITM, +ITC+ITM} × seeds.

    Writes `OUT/results.csv` (one row per cell), `OUT/results.md` (mean ± std over seeds, Δ vs base, paired
    t-test across seeds) and `OUT/results.png`, rewritten after every cell. Re-running the same command skips
    finished cells and resumes an interrupted one. A dataset without images runs base only (the table says why).

    Example: `mmpost grid configs/grid/smoke.yaml --seeds 0,1,2`
    """
    _setup(verbose)
    from mmpost.apps.grid import cell_dir, cells, run_grid
    from mmpost.config import ConfigError, load_grid
    from mmpost.data.validate import DataValidationError
    from mmpost.engine.resume import LAST

    def listed(value: str | None) -> list[str] | None:
        return [v.strip() for v in value.split(",") if v.strip()] if value else None

    try:
        g = load_grid(config)
        if (names := listed(datasets)) is not None:
            unknown = set(names) - {d.name for d in g.datasets}
            if unknown:
                raise ConfigError(f"no dataset {sorted(unknown)} in {config}; it has {[d.name for d in g.datasets]}")
            g.datasets = [d for d in g.datasets if d.name in names]
        g.models = listed(models) or g.models
        g.aux = listed(aux) or g.aux
        g.seeds = [int(x) for x in listed(seeds)] if seeds else g.seeds
        g.out_dir = out or g.out_dir
        plan = list(cells(g))
        if dry_run:
            def state(c) -> str:
                d = cell_dir(g, c)
                return "finished" if (d / "cell.json").exists() else "resume" if (d / LAST).exists() else "to run"
            _table(f"{len(plan)} cells → {g.out_dir}", ["dataset", "model", "aux", "seed", "state"],
                   [[c.dataset.name, c.model, c.aux, str(c.seed), state(c)] for c in plan])
            return
        start, done = time.time(), [0]

        def show(r, how: str) -> None:
            done[0] += 1
            score = f"wF1 {r.weighted_f1:.3f}" if r.status == "done" else r.note
            typer.echo(f"[{done[0]}/{len(plan)}] {r.dataset} {r.model} {r.aux} seed {r.seed}: {how} · {score}"
                       + (f" · {r.seconds:.0f} s" if how in ("trained", "resumed") else ""))

        run_grid(g, extra=list(overrides or []), on_cell=show)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(e)
    typer.echo(f"done in {time.time() - start:.0f} s: {g.out_dir}/results.md, results.csv, results.png")


@app.command()
def relate(
    config: Annotated[Optional[Path], typer.Argument(help="A recipe for the data and encoders (default: the embedded synthetic set).", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of the recipe, e.g. data.synthetic.n=600")] = None,
    task: Annotated[str, typer.Option(help="The relation to discover: text_represented, image_adds or relation (labels are only used to evaluate).")] = "text_represented",
    k: Annotated[Optional[int], typer.Option(help="Clusters (default: 2, or 4 for relation).")] = None,
    clusterer: Annotated[str, typer.Option(help="kmeans (faiss, every point) or gmm.")] = "kmeans",
    sampler: Annotated[Optional[str], typer.Option(help="random, under, over or combine (default: the paper's best for the task).")] = None,
    finetune: Annotated[Optional[str], typer.Option(help="text, image, both or none (default: the task's tower).")] = None,
    subset_size: Annotated[int, typer.Option(help="Posts per round (m).")] = 1000,
    epochs: Annotated[int, typer.Option(help="Passes over the unlabelled training posts.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path, typer.Option(help="Output folder (metrics.json, report.md).")] = Path("runs/relate"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Discover image-text relations without labels (ITRp): cluster the posts' frozen text ⊕ image features into
    pseudo-labels, balance-sample them, reset the head, fine-tune the task's tower on them, and repeat per subset.

    Labels are read only to evaluate: the cluster→label mapping (Hungarian) is fitted on the dev split, then
    weighted F1, NMI and ARI are reported on test for ITRp and for plain k-means on frozen features. Each round
    prints the share of its wall time spent clustering.

    Example: `mmpost relate --task image_adds --epochs 2`
    """
    _setup(verbose)
    from mmpost.apps.relate import relate as run_relate
    from mmpost.config import ConfigError, load_config
    from mmpost.relate.loop import RelateConfig

    def show(r) -> None:
        typer.echo(f"epoch {r.epoch + 1} round {r.round + 1}: {r.n} posts, clusters {r.sizes}, clustering "
                   f"{r.cluster_seconds:.2f} s of {r.round_seconds:.1f} s ({100 * r.share:.2f}%)")

    if config is not None and "=" in config.name and config.suffix.lower() not in (".yaml", ".yml"):
        overrides, config = [str(config), *(overrides or [])], None      # no recipe: the first arg is an override
    try:
        cfg = load_config(config, ["text_encoder.trainable=false", *(overrides or [])])
        rc = RelateConfig(task=task, k=k, clusterer=clusterer, sampler=sampler, finetune=finetune,
                          subset_size=subset_size, epochs=epochs, seed=seed)
        metrics = run_relate(cfg, rc, out, on_round=show)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(e)
    names = {"itrp": "ITRp (clusters of the tuned features)", "itrp_head": "ITRp (its last head)",
             "kmeans": "k-means on frozen features"}
    rows = [[names[m], metrics[m]["test"]["f1_weighted"], metrics[m]["test"]["nmi"], metrics[m]["test"]["ari"]]
            for m in names if metrics[m].get("test")]
    _table(f"{task} · test, mapping fitted on dev → {out}", ["method", "weighted F1", "NMI", "ARI"],
           [[r[0], *(f"{x:.3f}" for x in r[1:])] for r in rows], left=1)
    typer.echo(f"clustering took {100 * metrics['timing']['cluster_share']:.2f}% of the ITRp rounds' time")


@app.command()
def datasets() -> None:
    """List the dataset adapters (`data.source: NAME` in a recipe): their tasks, labels and options.

    Their files are read under the data root (`MMPOST_DATA_ROOT` or `data.data_root=`); `data.options.KEY=VALUE`
    sets an option and `data.image_root=PATH` points an adapter at images you have.
    """
    from mmpost import registry
    from mmpost.data.sources import get_source
    for name in registry.names("dataset"):
        src = get_source(name)
        typer.secho(name, bold=True, nl=False)
        typer.echo(f" — {src.description}")
        typer.echo("    tasks:   " + "; ".join(f"{t} ({', '.join(labels)})" for t, labels in src.tasks.items()))
        typer.echo("    options: " + (", ".join(f"{k}={v}" for k, v in src.options.items()) or "none"))
        typer.echo(f"    images:  {src.default_image_root or 'not shipped (give data.image_root)'}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
