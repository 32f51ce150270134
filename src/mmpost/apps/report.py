"""``mmpost report RUN_DIR``: read a finished run back and write one self-contained HTML page and its markdown
twin — metrics, confusion matrices, training curves, a map of the text and image vectors, and the mistakes.

The scores come from the predictions the run kept (``predictions_dev.jsonl``, ``predictions_test.jsonl``); the
posts themselves (texts and images of the examples) are read again from the data its ``config.yaml`` names, and
the model (``mmpost.load``) runs only for the embedding map's sample. A run that kept no predictions, or whose
data changed since, is predicted again; either way the page checks that the scores agree with ``metrics.json``.
When the data cannot be read any more, the page still shows what the run wrote (metrics, curves) and says what is
missing and why.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import numpy as np

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.atomic import atomic_write_text
from mmpost.config import RunConfig, load_config
from mmpost.data.dataset import label_ids
from mmpost.data.post import Post
from mmpost.evaluation.embedding_map import TSNE_MAX_POINTS, TSNE_MIN_POINTS, choose_projection, project_2d
from mmpost.evaluation.error_examples import errors_by_class, try_thumbnail
from mmpost.evaluation.html_report import render_html
from mmpost.evaluation.markdown_report import render_markdown
from mmpost.evaluation.metrics import majority_baseline
from mmpost.evaluation.plots import confusion_png, curves_png, embedding_map_png
from mmpost.evaluation.predictions import Task, run_tasks
from mmpost.evaluation.report_content import ClassErrorSection, ExampleCard, Figure, RunReport, SplitResult
from mmpost.evaluation.run_files import chosen_epoch, read_json, read_log, run_metric_rows
from mmpost.evaluation.saved_predictions import predictions_path, read_saved_split
from mmpost.evaluation.task_scores import TaskScore, confusion_file, score_task

log = logging.getLogger(__name__)
DEFAULT_NAME = "run_report.html"
MAX_PAIR_LINES = 300        # above this many posts the text–image lines of the map turn into a grey smear


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    figures: Path
    warnings: list[str] = field(default_factory=list)


@dataclass
class Predicted:
    """One split predicted again by the loaded model: ``y`` the label ids of the map's task (:func:`map_task`),
    ``outputs`` what :meth:`Predictor.embed` gives, ``scores`` every task's."""

    posts: list[Post]
    y: np.ndarray
    outputs: dict[str, np.ndarray]
    scores: dict[str, TaskScore] = field(default_factory=dict)


def output_paths(run_dir: Path, out: str | Path | None) -> tuple[Path, Path, Path]:
    """(HTML, markdown twin, figures folder). The twin and the folder sit beside the page, named after it."""
    html_path = Path(out).expanduser() if out is not None else run_dir / DEFAULT_NAME
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must name an .html file (the markdown twin is written beside it), got {html_path}")
    md_path = html_path.with_suffix(".md")
    if md_path.resolve() == (run_dir / "report.md").resolve():
        raise ValueError(f"{md_path} is the report the run wrote when it trained; choose another --out name")
    return html_path, md_path, html_path.with_name(f"{html_path.stem}_figures")


def check_run(run_dir: Path) -> None:
    for needed in ("config.yaml", "labels.json", "metrics.json"):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f"{run_dir} is not a finished mmpost run: {needed} is missing")


def describe(cfg: RunConfig, run_dir: Path, tasks: list[Task]) -> list[str]:
    o = cfg.objectives
    parts = [name.upper() for name in o.enabled()]
    loss = " + ".join(parts) + (f" ({o.weighting} weighting)" if len(parts) > 1 else "")

    def tower(side: str, enc) -> str:
        return f"{side} `{enc.name}` ({'fine-tuned' if enc.trainable else 'frozen'})"
    what = " · ".join(f"task `{t.name}` · labels " + ", ".join(f"`{x}`" for x in t.labels)
                      + (" (several per post)" if t.multi_label else "") for t in tasks)
    return [f"run `{run_dir.name}` · {what}",
            f"model `{cfg.model.name}` · loss {loss} · {tower('text', cfg.text_encoder)}, "
            f"{tower('image', cfg.image_encoder)}"]


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def read_data(cfg: RunConfig, task: str, labels: list[str]) -> tuple[PreparedData | None, str]:
    """The run's posts split as in training, or (None, why not)."""
    try:
        return prepare(cfg.data, task, labels=labels, progress=False, require_splits=False), ""
    except (FileNotFoundError, ValueError) as e:      # ConfigError and DataValidationError are ValueErrors
        return None, first_line(e)


def figure_from(make, name: str, alt: str) -> Figure:
    """Run a plot function that writes a PNG file and keep the bytes (the figure is written again later, with
    the report, so nothing half-made is ever left in the output folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        make(path)
        return Figure(name=name, png=path.read_bytes(), alt=alt)


def consistency_warning(split: str, task: str, recorded: dict, y: np.ndarray, pred: np.ndarray) -> str | None:
    keep = y >= 0
    accuracy = float((y[keep] == pred[keep]).mean()) if keep.any() else 0.0
    if int(keep.sum()) == int(recorded.get("n", -1)) and abs(accuracy - float(recorded["accuracy"])) < 1e-9:
        return None
    return (f"The {split} posts predicted now differ from those the run scored: accuracy {accuracy:.3f} on "
            f"{int(keep.sum())} posts now, {float(recorded['accuracy']):.3f} on {recorded.get('n')} in metrics.json "
            f"({split} · {task}). The data, its images or the feature cache changed since training; the matrices, "
            "map and examples below show the posts as they are now.")


def curves_part(report: RunReport, run_dir: Path, cfg: RunConfig, history: list[dict[str, float]]) -> None:
    if not history:
        report.curve_notes.append("This run folder has no training log (log.csv), so there are no curves.")
        return
    best = chosen_epoch(history)
    report.history = history
    report.curves = figure_from(lambda p: curves_png(p, history, f"{run_dir.name} · per epoch", best),
                                "curves.png", "training curves: loss components, temperature, dev weighted F1")
    report.curve_notes.append(
        "Each loss is a mean per post: train over the epoch's batches (while the weights were changing), dev "
        "after the epoch, with ITM negatives drawn from a fixed seed. Components are unweighted; the total is the "
        "weighted sum the optimiser saw." + (f" The run kept the weights of epoch {best} (best dev weighted F1)."
                                             if best is not None else ""))
    has_temperature = any("train_temperature" in row for row in history)
    if not cfg.objectives.on("itc"):
        report.curve_notes.append("ITC is off in this run (no enabled objectives.itc): there is no ITC loss and no "
                                  "temperature curve.")
    elif not has_temperature:
        report.curve_notes.append("ITC is on, but log.csv has no temperature column: no temperature curve.")
    else:
        report.curve_notes.append(
            "Temperature: the learnable τ that divides the ITC similarities (started at "
            f"{cfg.objectives.get('itc').temperature};"
            " kept within [0.01, 1]), averaged over each epoch's batches. A falling τ sharpens the contrast.")


def map_part(report: RunReport, split: str, pred: Predicted, labels: list[str], projection: str,
             max_points: int, itc: bool, embed: Callable[[list[Post]], dict[str, np.ndarray]]) -> None:
    """The 2-D map of one split's text and image vectors (``embed`` gives them for the posts shown)."""
    n = len(pred.posts)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
        report.map_notes.append(f"The map shows a random sample of {max_points} of the {n} {split} posts (seed 0).")
    if "text_embeds" in pred.outputs:
        out = {k: v[rows] for k, v in pred.outputs.items()}
    else:                               # scores came from the saved predictions: embed only the posts shown
        out = embed([pred.posts[r] for r in rows])
    has_image = out["has_image"]
    n_points = len(rows) + int(has_image.sum())
    method = choose_projection(projection, n_points)
    m = project_2d(out["text_embeds"], out["image_embeds"], has_image, method=method)
    y = pred.y[rows]
    pairs = [(int(t), k) for k, t in enumerate(m.image_rows)] if len(rows) <= MAX_PAIR_LINES else []
    title = f"{split} · {'t-SNE' if m.method == 'tsne' else 'PCA'} of L2-normalised vectors · {len(rows)} posts"
    report.embedding_map = figure_from(
        lambda p: embedding_map_png(p, m.text_xy, y, m.image_xy, y[m.image_rows], labels, title, pairs),
        "embeddings.png", "2-D map of the text and image vectors, coloured by true class")
    how = ("t-SNE keeps each point's neighbours together but not the distances between groups"
           if m.method == "tsne" else "PCA keeps the largest directions of spread; near points are near in cosine")
    report.map_notes.insert(0, (
        "Circles are texts, triangles images, coloured by the post's true class"
        + ("; a grey line joins the text and the image of one post" if pairs else "")
        + f". The vectors are the projections the ITC loss compares, L2-normalised and mapped together by "
        f"{'t-SNE' if m.method == 'tsne' else 'PCA'} ({how}; the axes have no units"
        + (f"; `--projection auto` uses t-SNE for {TSNE_MIN_POINTS} to {TSNE_MAX_POINTS} points, this map has "
           f"{n_points}" if projection == "auto" else "")
        + ")."))
    missing = len(rows) - int(has_image.sum())
    if missing == len(rows):
        report.map_notes.append("No post here has an image: the map shows text vectors only.")
    elif missing:
        report.map_notes.append(f"{missing} of {len(rows)} posts have no usable image; their image side (the "
                                "learned no-image vector, the same for all of them) is left out.")
    if not itc:
        report.map_notes.append("Without ITC the text and image projections are not trained to share a space: "
                                "how far a text point lies from an image point means little here.")


def errors_part(report: RunReport, split: str, pred: Predicted, score: TaskScore, per_class_n: int,
                named: bool) -> None:
    """The mistakes of one single-label task; ``named``: the run has several tasks, so sections name theirs."""
    labels, task = list(score.task.labels), score.task.name
    probs = pred.outputs[f"probs:{task}"]
    sections = errors_by_class(score.y, probs, labels, per_class_n)
    wrong = sum(s.n_errors for s in sections)
    report.error_notes.append(
        f"{split} split{f' · {task}' if named else ''}: {wrong} of {int((score.y >= 0).sum())} posts wrong. For "
        f"each true class, up to {per_class_n} mistakes, the ones the model was surest of first; p is the "
        "probability it gave a label.")
    count = len([e for c in report.errors for e in c.examples])
    for s in sections:
        cards = []
        for r in s.rows:
            post = pred.posts[r]
            png, why = try_thumbnail(post.images)
            count += 1
            thumb = Figure(f"mistake_{count:03d}.png", png, f"image of post {post.id}") if png else None
            k = int(probs[r].argmax())
            cards.append(ExampleCard(post_id=post.id, text=post.text, true_label=s.label, predicted=labels[k],
                                     p_predicted=float(probs[r, k]), p_true=float(probs[r, int(score.y[r])]),
                                     thumbnail=thumb, image_note=why))
        report.errors.append(ClassErrorSection(s.label, s.support, s.n_errors, cards, task if named else ""))


def task_result(report: RunReport, split: str, score: TaskScore, n_tasks: int, recorded: dict) -> None:
    """One task's confusion matrix (single-label tasks) and per-class table on one split, and a warning where
    the predictions disagree with what ``metrics.json`` recorded for it."""
    task, labels = score.task.name, list(score.task.labels)
    fig = None
    if score.confusion is not None:
        matrix = score.confusion
        fig = figure_from(lambda p: confusion_png(p, matrix, labels, f"{task} · {split}"),
                          confusion_file(split, task, n_tasks), f"confusion matrix, {split} · {task}"
                          if n_tasks > 1 else f"confusion matrix, {split}")
    report.splits.append(SplitResult(split, task, labels, score.confusion or [], score.per_class, fig))
    if task in recorded and not score.task.multi_label:
        warning = consistency_warning(split, task, recorded[task], score.y, score.pred)
        if warning:
            report.warnings.append(warning)


def split_outputs(predictor: Predictor, split: str, posts: list[Post], progress: bool) -> tuple[dict, str]:
    """``probs:TASK`` and ``has_image`` of one split, and where they came from: the run's saved predictions when
    they list exactly these posts, else the model run again (with the map's vectors too)."""
    try:
        saved = read_saved_split(predictor.run_dir, split, predictor.tasks)
    except (FileNotFoundError, ValueError) as e:
        return predictor.embed(posts, progress=progress), f"{split}: predicted again ({first_line(e)})"
    if saved.ids != [p.id for p in posts]:
        return (predictor.embed(posts, progress=progress),
                f"{split}: predicted again (the saved predictions list other posts than the data now has)")
    outputs = {f"probs:{t.name}": saved.probs[t.name] for t in predictor.tasks}
    outputs["has_image"] = saved.image_used
    return outputs, f"{split}: scores read from {predictions_path(predictor.run_dir, split).name}"


def predict_split(report: RunReport, predictor: Predictor, split: str, posts: list[Post], recorded: dict,
                  progress: bool) -> Predicted:
    """One split's scores (saved or predicted again) and every task's results on it."""
    outputs, source = split_outputs(predictor, split, posts, progress)
    report.notes.append(source)
    scores = {t.name: score_task(t, posts, outputs[f"probs:{t.name}"]) for t in predictor.tasks}
    for score in scores.values():
        task_result(report, split, score, len(predictor.tasks), recorded)
    shown = map_task(predictor.tasks)
    y = scores[shown.name].y if shown else np.full(len(posts), -1)
    return Predicted(posts, y, outputs, scores)


def map_task(tasks: list[Task]) -> Task | None:
    """The task whose classes colour the embedding map: the first single-label one."""
    return next((t for t in tasks if not t.multi_label), None)


def baseline_part(report: RunReport, split: str, data: PreparedData, pred: Predicted, tasks: list[Task]) -> None:
    """The majority-class baseline of each single-label task, from the training split's labels."""
    single = [t for t in tasks if not t.multi_label]
    if not data.splits.get("train") or not single:
        return
    for t in single:
        labels = list(t.labels)
        base = majority_baseline(label_ids(data.splits["train"], t.name, labels), pred.scores[t.name].y, len(labels))
        name = f"{split} · majority-class baseline" + (f" · {t.name}" if len(tasks) > 1 else "")
        report.metrics.append((name, base))
    report.metrics_notes.append("The majority-class baseline always predicts the most frequent training label.")


def start_report(run_dir: Path, overrides: list[str] | None,
                 projection: str) -> tuple[RunReport, RunConfig, list[Task]]:
    """The report's title, facts, metrics and curves: what the run folder alone says."""
    check_run(run_dir)
    choose_projection(projection, TSNE_MAX_POINTS)          # a bad name fails before any work
    foreign = [o for o in overrides or [] if not o.startswith("data.")]
    if foreign:
        raise ValueError(f"a report reads the trained run as it is: only data.* overrides, got {' '.join(foreign)}")
    tasks = run_tasks(run_dir)
    cfg = load_config(run_dir / "config.yaml", overrides)
    names = ", ".join(t.name for t in tasks)
    report = RunReport(title=f"{cfg.model.name} · {names} · {run_dir.name}", facts=describe(cfg, run_dir, tasks))
    report.metrics = run_metric_rows(run_dir)
    history = read_log(run_dir / "log.csv") if (run_dir / "log.csv").exists() else []
    curves_part(report, run_dir, cfg, history)
    if not cfg.objectives.on("itc"):
        report.warnings.append("ITC is off in this run: no temperature curve, and the map's text and image "
                               "vectors were not trained to share a space.")
    return report, cfg, tasks


def build_report(run_dir: Path, *, overrides: list[str] | None = None, examples: int = 4,
                 projection: str = "auto", max_points: int = 2000, progress: bool = False) -> RunReport:
    """Everything the page shows, in memory; nothing is written."""
    run_dir = Path(run_dir).resolve()
    report, cfg, tasks = start_report(run_dir, overrides, projection)
    data, why = read_data(cfg, tasks[0].name, list(tasks[0].labels))
    if data is None:
        report.warnings.append(
            f"The run's posts could not be read again ({why}). This page shows what the run wrote — metrics and "
            "curves — without confusion matrices, the embedding map or examples. Point mmpost at the data with "
            "data.* overrides, e.g. `mmpost report RUN data.data_root=FOLDER`.")
        return report
    report.notes = list(data.notes) + ["split sizes: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())]
    predictor = Predictor(run_dir)
    recorded = read_json(run_dir / "metrics.json")
    predicted = {split: predict_split(report, predictor, split, data.splits[split], recorded.get(split, {}), progress)
                 for split in ("dev", "test") if data.splits.get(split)}
    if not predicted:
        report.warnings.append("The run's dev and test splits are empty now: no matrices, map or examples.")
        return report
    split = "test" if "test" in predicted else "dev"
    pred = predicted[split]
    baseline_part(report, split, data, pred, predictor.tasks)
    if not pred.outputs["has_image"].any():
        report.warnings.append(f"No post of the {split} split has a usable image: the run is text-only here. "
                               "The map shows text vectors only and the mistakes come without pictures.")
    shown = map_task(predictor.tasks)
    if shown is None:
        report.map_notes.append("Every task of this run is multi-label: there is no one class to colour the map by.")
    else:
        map_part(report, split, pred, list(shown.labels), projection, max_points, cfg.objectives.on("itc"),
                 lambda posts: predictor.embed(posts, progress=progress))
    for t in (t for t in predictor.tasks if not t.multi_label):
        errors_part(report, split, pred, pred.scores[t.name], examples, len(predictor.tasks) > 1)
    return report


def replace_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Fill a fresh folder, then swap it in for the old one: a crash leaves the old figures or the new, never
    a mix, and figures of an earlier report do not linger."""
    if folder.exists() and any(not p.name.endswith(".png") for p in folder.iterdir()):
        raise FileExistsError(f"{folder} holds files other than report figures; choose another --out name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
    tmp.mkdir()
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_run_report(run_dir: str | Path, out: str | Path | None = None, *, overrides: list[str] | None = None,
                     examples: int = 4, projection: str = "auto", max_points: int = 2000,
                     progress: bool = False) -> ReportFiles:
    """Write the HTML page (default ``RUN_DIR/run_report.html``), its markdown twin beside it and the twin's
    figures folder (``<name>_figures/``). The page is written last: when it exists, the rest is complete."""
    run_dir = Path(run_dir)
    if examples < 0 or max_points < 1:
        raise ValueError(f"examples must be >= 0 and max_points >= 1, got {examples} and {max_points}")
    html_path, md_path, figures = output_paths(run_dir, out)
    report = build_report(run_dir, overrides=overrides, examples=examples, projection=projection,
                          max_points=max_points, progress=progress)
    replace_folder(figures, {f.name: f.png for f in report.figures()})
    atomic_write_text(md_path, render_markdown(report, quote(figures.name)))
    atomic_write_text(html_path, render_html(report))
    log.info("report written to %s", html_path)
    return ReportFiles(html=html_path, markdown=md_path, figures=figures, warnings=list(report.warnings))
