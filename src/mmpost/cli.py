"""mmpost's command line: thin — it parses, loads the config and calls an app."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmpost.cli_common import app
from mmpost.cli_common import fail as _fail
from mmpost.cli_common import metrics_table as _metrics_table
from mmpost.cli_common import setup_logging as _setup
from mmpost.cli_common import table as _table
from mmpost.serve.limits import ServeLimits


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
    config: Annotated[Optional[Path], typer.Argument(help="YAML recipe (see configs/), or a data file (CSV, TSV, .txt, JSONL, Parquet) with --text and --label. Not needed with --resume.", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. objectives.itc.enabled=true train.epochs=5")] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", help="A data file's text column (repeatable: the columns are joined).")] = None,
    image: Annotated[Optional[str], typer.Option(help="A data file's image column (file names, or ids with --image-pattern).")] = None,
    image_root: Annotated[Optional[Path], typer.Option(help="Folder of the images (default: the data file's folder).", file_okay=False)] = None,
    image_pattern: Annotated[Optional[str], typer.Option(help='How an image cell becomes a file name, e.g. "{}.jpg"; "{}.*" takes any image extension.')] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", help="A data file's label column, or TASK=COLUMN (repeatable: one task each).")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id", help="A data file's post id column (default: row numbers).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run from its last checkpoint (its config.yaml is used).", file_okay=False)] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Also checkpoint every N training batches within an epoch (0: at epoch ends only; same as train.checkpoint_every=N), so a killed run loses at most N batches.", min=0)] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train a model from a YAML recipe, or straight from a data file, and write a run folder:
    `model.safetensors`, `config.yaml` (the resolved recipe: repeat or edit it), `metrics.json`, `report.md`,
    `confusion_test.png`, `log.csv`, `checkpoints/`.

    Examples: `mmpost train posts.csv --text tweet --image photo --image-root photos --label sentiment` (no YAML;
    the defaults), `mmpost train configs/memes.yaml objectives.itc.enabled=true objectives.itm.enabled=true`

    After a crash or Ctrl-C: `mmpost train --resume runs/<run>` goes on from the last checkpoint (the last
    finished epoch, or batch with `--checkpoint-every N`) and ends where an uninterrupted run would have. The first
    Ctrl-C stops after the batch in progress and writes a checkpoint; a second stops at once.
    """
    _setup(verbose)
    from mmpost.apps.train import train as run_train
    from mmpost.config import ConfigError
    from mmpost.data.validate import DataValidationError
    from mmpost.engine.checkpoint import CheckpointWriteError
    from mmpost.engine.loop import TrainingInterrupted
    from mmpost.engine.setup import is_multiprocess, is_rank_zero, rank_zero_value
    try:
        cfg = _train_config(config, overrides, resume, dict(text=text, label=label, image=image, image_root=image_root,
                                                            image_pattern=image_pattern, id_column=id_column))
        if cfg.name is None and is_multiprocess(cfg.fabric):    # every process must write into the one run folder
            from mmpost.apps.train import run_name
            cfg.name = rank_zero_value(cfg.fabric, run_name(cfg))
        if checkpoint_every:
            cfg.train.checkpoint_every = checkpoint_every      # saved with the run, so --resume keeps it
        result = run_train(cfg, resume=resume is not None)
    except TrainingInterrupted as e:
        typer.secho(str(e), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130)
    except CheckpointWriteError as e:
        _fail(e)
    except DataValidationError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        typer.secho("fix the rows above, or set data.policy=skip (drop them) or data.policy=text-only "
                    "(mask bad images)", err=True)
        raise typer.Exit(code=3)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(e)
    if is_rank_zero():
        _metrics_table(str(result.run_dir), {**result.metrics, "majority": result.baselines})


def _train_config(config: Optional[Path], overrides: Optional[list[str]], resume: Optional[Path], columns: dict):
    """The run config of `mmpost train`: a resumed run's, a YAML recipe's, or a data file's (``columns``: the
    --text / --label / --image options)."""
    from mmpost.config import ConfigError, load_config
    if resume is not None:
        if config is not None and config.suffix.lower() not in (".yaml", ".yml"):
            overrides, config = [str(config), *(overrides or [])], None
        cfg = load_config(resume / "config.yaml", overrides)
        cfg.out_dir, cfg.name = str(resume.parent), resume.name
    elif config is None:
        raise ConfigError("give a YAML recipe, a data file with --text and --label, or --resume RUN_DIR")
    elif config.suffix.lower() not in (".yaml", ".yml"):
        from mmpost.apps.quick_recipe import label_columns, manifest_overrides
        if not config.exists():
            raise ConfigError(f"data file not found: {config}")
        if not columns["text"] or not columns["label"]:
            raise ConfigError(f"{config} is a data file: say which columns to read with --text COLUMN and "
                              "--label COLUMN (or TASK=COLUMN), and --image COLUMN for images; or give a YAML "
                              "recipe")
        over = manifest_overrides(config, text=columns["text"], labels=label_columns(columns["label"]),
                                  image=columns["image"], image_root=columns["image_root"],
                                  image_pattern=columns["image_pattern"], id_column=columns["id_column"])
        cfg = load_config(None, over + list(overrides or []))
    else:
        if columns["text"] or columns["label"] or columns["image"]:
            raise ConfigError("--text, --image and --label describe a data file; a YAML recipe has data.columns")
        cfg = load_config(config, overrides)
    return cfg


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
    overrides: Annotated[Optional[list[str]], typer.Argument(help="data.* overrides, e.g. data.columns.image_root=/imgs; fabric.* to shard over processes, e.g. fabric.devices=2")] = None,
    chunk: Annotated[int, typer.Option(help="Posts read, predicted and written (then fsynced) at a time; memory does not grow with the file.", min=1)] = 1024,
    batch_size: Annotated[int, typer.Option(help="Posts per model batch.", min=1)] = 128,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and extend the run's feature cache (worth it for posts you will predict again); by default a chunk's features are thrown away.")] = False,
    engine: Annotated[str, typer.Option(help="torch: this machine's processes (fabric.devices=N fabric.num_nodes=M shard the file); ray: Ray Data on a Ray cluster, writing a folder of Parquet files (pip install \"mmpost[ray]\").")] = "torch",
    address: Annotated[Optional[str], typer.Option(help="--engine ray: the cluster to join (e.g. ray://head:10001 or auto); default: a local one.")] = None,
    workers: Annotated[int, typer.Option(help="--engine ray: Ray workers, each with the model loaded once.", min=1)] = 1,
    runtime: Annotated[str, typer.Option(help="torch, or onnx / onnx-int8: compute with onnxruntime from the run's `mmpost export RUN --format onnx`.")] = "torch",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write class probabilities for every post: `{"id", "label", "probs": {label: p}, "probs_raw": {...},
    "image_used"}` per line (a run with several tasks: `{"id", "image_used", "tasks": {task: {"label", "probs",
    "probs_raw"}}}`). `probs` are calibrated with the run's `calibration.json` (temperature fitted on dev),
    `probs_raw` are the model's own; a binary task with an operating point (`mmpost calibrate`) decides by it.

    A post whose image is missing or unreadable is predicted from its text with the learned "no image" vector;
    `image_used` says so. The manifest is streamed: results go to `OUT.part` chunk by chunk, and `OUT` appears
    (in one rename) only when complete. After a crash or Ctrl-C, run the same command again: finished posts are
    skipped.

    Several processes: `mmpost predict RUN --data F fabric.devices=4` (or under torchrun / SLURM with
    `fabric.num_nodes`) gives each process every N-th chunk and merges them into the file one process writes.
    Ray: `--engine ray --workers 8 [--address auto] --out preds/` writes Parquet.
    """
    _setup(verbose)
    from mmpost.apps.predict import predict_file
    if engine not in ("torch", "ray"):
        raise typer.BadParameter(f"--engine must be torch or ray, got {engine!r}")
    try:
        if engine == "ray":
            from mmpost.apps.predict_ray import predict_with_ray
            roots = [o.split("=", 1)[1] for o in overrides or [] if o.startswith("data.columns.image_root=")]
            if len(roots) != len(overrides or []):
                raise ValueError("--engine ray reads the file with the run's columns: the one override it takes is "
                                 "data.columns.image_root=FOLDER")
            counts = predict_with_ray(run_dir, data, out, address=address, workers=workers, chunk=chunk,
                                      batch_size=batch_size, image_root=roots[-1] if roots else None)
        else:
            counts = predict_file(run_dir, data, out, overrides=overrides, chunk=chunk, batch_size=batch_size,
                                  cache=cache, runtime=runtime)
    except (ValueError, FileNotFoundError, ImportError) as e:
        _fail(e)
    if counts.get("rank", 0) != 0:      # sharded: process 0 reports
        return
    resumed = f"; {counts['resumed']} were done before the interruption" if counts["resumed"] else ""
    typer.echo(f"{counts['posts']} posts → {out} ({counts['without_image']} predicted without an image{resumed})")


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    host: Annotated[str, typer.Option(help="Address to listen on. The default answers this machine only; 0.0.0.0 answers every network it is on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body in bytes (413 above).")] = ServeLimits.max_body_bytes,
    max_image_bytes: Annotated[int, typer.Option(help="Largest image file in bytes (413 above).")] = ServeLimits.max_image_bytes,
    max_image_pixels: Annotated[int, typer.Option(help="Most pixels in one image, read from its header before decoding (413 above).")] = ServeLimits.max_image_pixels,
    max_text_chars: Annotated[int, typer.Option(help="Longest text in characters (422 above).")] = ServeLimits.max_text_chars,
    max_batch: Annotated[int, typer.Option(help="Most posts in one /predict/batch request (413 above).")] = ServeLimits.max_batch,
    max_connections: Annotated[int, typer.Option(help="Open connections; past this, new ones get 503 at once.")] = 64,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = True,
    runtime: Annotated[str, typer.Option(help="torch, or onnx / onnx-int8: compute with onnxruntime from the run's `mmpost export RUN --format onnx`.")] = "torch",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve a trained run over HTTP: `POST /predict` (a multipart form with `text` and an `image` file, or JSON
    with a base64 `image`), `POST /predict/batch`, `GET /health`, `GET /model`, and the API docs at `/docs`.

    The model is loaded once; requests over a limit get 413 or 422 with a message naming the field.

    Example: `mmpost serve runs/my-run --port 8000`, then
    `curl -F text="what a lovely day" -F image=@photo.jpg http://127.0.0.1:8000/predict`
    """
    _setup(verbose)
    from mmpost.serve.run import run_server
    try:
        limits = ServeLimits(max_body_bytes=max_body_bytes, max_image_bytes=max_image_bytes,
                             max_image_pixels=max_image_pixels, max_text_chars=max_text_chars, max_batch=max_batch)
        typer.echo(f"loading {run_dir} and making a warm-up prediction …", err=True)
        run_server(run_dir, host=host, port=port, limits=limits, max_connections=max_connections,
                   access_log=access_log, runtime=runtime)
    except (ValueError, FileNotFoundError) as e:
        _fail(e)


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


def _listed(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _narrowed_grid(g, config: Path, datasets: str | None, models: str | None, aux: str | None, seeds: str | None,
                   out: str | None):
    """The grid file's cells narrowed by the command-line options."""
    from mmpost.config import ConfigError
    if (names := _listed(datasets)) is not None:
        unknown = set(names) - {d.name for d in g.datasets}
        if unknown:
            raise ConfigError(f"no dataset {sorted(unknown)} in {config}; it has {[d.name for d in g.datasets]}")
        g.datasets = [d for d in g.datasets if d.name in names]
    g.models = _listed(models) or g.models
    g.aux = _listed(aux) or g.aux
    g.seeds = [int(x) for x in _listed(seeds)] if seeds else g.seeds
    g.out_dir = out or g.out_dir
    return g


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

    try:
        g = _narrowed_grid(load_grid(config), config, datasets, models, aux, seeds, out)
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
    config: Annotated[Optional[Path], typer.Argument(help="A recipe: data, encoders and its relate: section (default: the embedded synthetic set with the relate defaults).", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of the recipe, e.g. relate.epochs=1 data.synthetic.n=600")] = None,
    task: Annotated[Optional[str], typer.Option(help="relate.task: the relation to discover, text_represented, image_adds or relation (labels are only used to evaluate). [recipe default: text_represented]")] = None,
    k: Annotated[Optional[int], typer.Option(help="relate.k: clusters. [recipe default: the task's, 2, or 4 for relation]")] = None,
    clusterer: Annotated[Optional[str], typer.Option(help="relate.clusterer: kmeans (faiss, every point) or gmm. [recipe default: kmeans]")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="relate.sampler: random, under, over or combine. [recipe default: the paper's best for the task]")] = None,
    finetune: Annotated[Optional[str], typer.Option(help="relate.finetune: text, image, both or none. [recipe default: the task's tower]")] = None,
    subset_size: Annotated[Optional[int], typer.Option(help="relate.subset_size: posts per round (m). [recipe default: 1000]")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="relate.epochs: passes over the unlabelled training posts. [recipe default: 3]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="relate.seed. [recipe default: 0]")] = None,
    unlabelled: Annotated[Optional[Path], typer.Option(help="Train on these posts instead of the recipe's train split: a CSV/JSONL/Parquet manifest (the recipe's data.columns) or a YAML recipe; dev/test still come from the recipe.", dir_okay=False)] = None,
    device: Annotated[Optional[str], typer.Option(help="relate.device: where the towers train, auto (CUDA when available), cpu, cuda, cuda:1 … [recipe default: auto]")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (metrics.json, report.md, cluster-word plots).")] = Path("runs/relate"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Discover image-text relations without labels (ITRp): cluster the posts' frozen text ⊕ image features into
    pseudo-labels, balance-sample them, reset the head, fine-tune the task's tower on them, and repeat per subset.

    Labels are read only to evaluate: the cluster→label mapping (Hungarian) is fitted on the dev split, then
    weighted F1, NMI and ARI are reported on test for ITRp and for plain k-means on frozen features. Each round
    prints the share of its wall time spent clustering.

    The settings live in the recipe's relate: section, e.g.
    `relate: {task: image_adds, k: 2, sampler: over, finetune: image, subset_size: 1000, epochs: 3}`;
    k, sampler and finetune left out take the task's defaults. key=value overrides change it (relate.epochs=1), and
    each flag is the override relate.KEY=VALUE of its key (--subset-size 500 is relate.subset_size=500), applied
    after the key=value ones.

    Examples: `mmpost relate --task image_adds --epochs 2`, `mmpost relate MY_RECIPE.yaml relate.sampler=combine`
    """
    _setup(verbose)
    from mmpost.apps.relate import relate as run_relate
    from mmpost.apps.relate import unlabelled_posts
    from mmpost.config import ConfigError, load_config
    from mmpost.relate.config import flag_overrides

    def show(r) -> None:
        typer.echo(f"epoch {r.epoch + 1} round {r.round + 1}: {r.n} posts, clusters {r.sizes}, clustering "
                   f"{r.cluster_seconds:.2f} s of {r.round_seconds:.1f} s ({100 * r.share:.2f}%)")

    if config is not None and "=" in config.name and config.suffix.lower() not in (".yaml", ".yml"):
        overrides, config = [str(config), *(overrides or [])], None      # no recipe: the first arg is an override
    flags = flag_overrides(task=task, k=k, clusterer=clusterer, sampler=sampler, finetune=finetune,
                           subset_size=subset_size, epochs=epochs, seed=seed, device=device)
    try:
        cfg = load_config(config, ["text_encoder.trainable=false", *(overrides or []), *flags])
        extra = unlabelled_posts(cfg, unlabelled) if unlabelled is not None else None
        metrics = run_relate(cfg, out, on_round=show, unlabelled=extra)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(e)
    names = {"itrp": "ITRp (clusters of the tuned features)", "itrp_head": "ITRp (its last head)",
             "kmeans": "k-means on frozen features"}
    rows = [[split, names[m], *(f"{metrics[m][split][key]:.3f}" for key in ("f1_weighted", "nmi", "ari"))]
            for split in metrics["tests"] for m in names if metrics[m].get(split)]
    _table(f"{metrics['task']} · mapping fitted on dev → {out}", ["split", "method", "weighted F1", "NMI", "ARI"],
           rows)
    typer.echo(f"clustering took {100 * metrics['timing']['cluster_share']:.2f}% of the ITRp rounds' time")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    out: Annotated[Optional[Path], typer.Option(help="The HTML file to write (default: RUN_DIR/run_report.html); the markdown twin and its figures folder go beside it.", dir_okay=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="data.* overrides when the run's data moved, e.g. data.data_root=/data")] = None,
    examples: Annotated[int, typer.Option(help="Mistakes shown per true class.")] = 4,
    projection: Annotated[str, typer.Option(help="Embedding map: auto (t-SNE for small maps, else PCA), pca or tsne.")] = "auto",
    max_points: Annotated[int, typer.Option(help="At most this many posts in the embedding map (a seeded sample).")] = 2000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write one self-contained HTML page about a run (figures inlined, nothing fetched) and a markdown twin:
    metrics, confusion matrices, training curves of every loss component and the ITC temperature, a 2-D map of
    the text and image vectors, and the mistakes per class with their images.

    The run's model predicts its dev and test posts again, read from the data its config names.

    Example: `mmpost report runs/itc-only --out itc-only.html`
    """
    _setup(verbose)
    from mmpost.apps.report import write_run_report
    from mmpost.config import ConfigError
    try:
        files = write_run_report(run_dir, out, overrides=overrides, examples=examples, projection=projection,
                                 max_points=max_points, progress=True)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(e)
    for warning in files.warnings:
        typer.secho(f"note: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{files.html} · markdown twin {files.markdown} (figures in {files.figures})")


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


from mmpost import (  # noqa: E402
    cli_clip,  # noqa: F401  (registers zeroshot, similarity)
    cli_export,  # noqa: F401  (registers export)
    cli_init,  # noqa: F401  (registers init)
    cli_trust,  # noqa: F401  (registers cv, calibrate, label-issues)
)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
