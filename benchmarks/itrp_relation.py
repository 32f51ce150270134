"""ITRp on relation features vs ITRp as published and k-means on the concatenation (embedded synthetic set).

    python benchmarks/itrp_relation.py                       # both tasks, seeds 0 1 2, every variant below
    python benchmarks/itrp_relation.py --write docs/itrp.md  # and put the table between the relation markers
    python benchmarks/itrp_relation.py probe --write docs/itrp.md   # why the concatenation cannot show it

Rows per task, test split, mean ± std over the seeds:

* **k-means (concat)** and **ITRp as published**: the cells of ``benchmarks/itrp.py compare`` (the task's default
  settings: k-means clusterer, the paper's sampler and fine-tuned tower, ``relate.features: concat``), run here when
  missing and read back from ``--published-out`` otherwise;
* one row per variant of :data:`VARIANTS`: ``relate.features`` / ``relate.clusterer`` / what the loop trains, with
  the aligned space learned from the unlabelled training posts (``relate.align: itc``, early-stopped on held-out ITC).

Then the per-seed paired differences of every variant against published ITRp, and whether the target holds (a
variant beats published ITRp and k-means on weighted F1 in every seed of both tasks, with NMI >= 0.10).
``dev NMI`` (mapping-free, on dev) is the column to *choose* a variant by; test is for reporting only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from itrp import DEFAULTS, TASKS, read_cell, run_cell, write_between_markers  # noqa: E402

BEGIN, END = "<!-- relation:begin -->", "<!-- relation:end -->"
PROBE_BEGIN, PROBE_END = "<!-- probe:begin -->", "<!-- probe:end -->"
# name → relate.* overrides (the task's k and sampler stay the paper's; finetune none: only the head and, with
# align_finetune, the projections train in the loop, which keeps a CPU cell around a minute). "tasks" limits a
# variant to some tasks (fine-tuning EfficientNet-Lite0 costs 15–30 CPU minutes a cell).
VARIANTS: dict[str, dict[str, object]] = {
    "interaction · k-means": {"features": "interaction", "clusterer": "kmeans", "finetune": "none"},
    "interaction · GMM": {"features": "interaction", "clusterer": "gmm", "finetune": "none"},
    "interaction+itm · k-means": {"features": "interaction+itm", "clusterer": "kmeans", "finetune": "none"},
    "cos · k-means": {"features": "cos", "clusterer": "kmeans", "finetune": "none"},
    "both · k-means": {"features": "both", "clusterer": "kmeans", "finetune": "none"},
    "both · GMM": {"features": "both", "clusterer": "gmm", "finetune": "none"},
    "both · GMM · task tower": {"features": "both", "clusterer": "gmm", "tasks": ("text_represented",)},
    "both · GMM · E=64": {"features": "both", "clusterer": "gmm", "finetune": "none", "align_dim": 64},
    "concat · GMM (control)": {"features": "concat", "clusterer": "gmm", "finetune": "none"},
}
METRICS = (("f1_weighted", "weighted F1"), ("nmi", "NMI"), ("ari", "ARI"))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "+-" else "_" for c in name).strip("_")


def settings_of(name: str) -> dict[str, object]:
    return {k: v for k, v in VARIANTS[name].items() if k != "tasks"}


def applies(name: str, task: str) -> bool:
    return task in VARIANTS[name].get("tasks", TASKS)  # type: ignore[operator]


def run_variant(args: tuple[str, str, str, int, int, int, bool]) -> dict | None:
    """One relate run of a variant (1 torch thread), or its metrics read back (``collect``: None when missing)."""
    out, task, name, seed, epochs, subset, collect_only = args
    from mmpost.relate.config import RelateConfig
    dim = settings_of(name).get("align_dim", RelateConfig().align_dim)
    folder = Path(out) / task / f"{slug(name)}-d{dim}-e{epochs}-m{subset}-s{seed}"
    if (folder / "metrics.json").exists():
        return json.loads((folder / "metrics.json").read_text())
    if collect_only:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)
    from mmpost.apps.relate import relate
    from mmpost.config import load_config

    settings = {"task": task, "seed": seed, "epochs": epochs, "subset_size": subset, **settings_of(name)}
    cfg = load_config(None, ["progress=false", "text_encoder.trainable=false",
                             *(f"relate.{k}={v}" for k, v in settings.items())])
    start = time.perf_counter()
    metrics = relate(cfg, folder, progress=False)
    print(f"  {task} {name} seed {seed}: ITRp {metrics['itrp']['test']['f1_weighted']:.3f} "
          f"NMI {metrics['itrp']['test']['nmi']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return metrics


def _ms(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.3f}" if a.size == 1 else f"{a.mean():.3f} ± {a.std(ddof=1):.3f}"


def _row(task: str, title: str, runs: list[dict | None], method: str, seeds: list[int] | None = None) -> str:
    """Mean ± std over the seeds whose cell exists; a partial row names its seeds."""
    done = [r for r in runs if r is not None]
    if not done:
        return f"| {task} | {title} | not run | | | |"
    if len(done) < len(runs) and seeds is not None:
        title += " (seed " + ", ".join(str(s) for s, r in zip(seeds, runs) if r is not None) + " only)"
    runs = done
    cells = [_ms([r[method]["test"][key] for r in runs]) for key, _ in METRICS]
    dev = _ms([r[method]["dev"]["nmi"] for r in runs]) if all("dev" in r[method] for r in runs) else "–"
    return f"| {task} | {title} | {' | '.join(cells)} | {dev} |"


def collect(args: argparse.Namespace) -> tuple[dict, dict]:
    """{task: {seed: published metrics}}, {task: {variant: {seed: metrics}}}; the variants run first."""
    variants = {t: {v: {s: run_variant((str(args.out), t, v, s, args.epochs, args.subset_size, args.collect))
                        for s in args.seeds} for v in args.variants if applies(v, t)} for t in args.tasks}
    if args.variants_only:
        return {}, variants
    cells = {t: {s: (str(args.published_out), t, *DEFAULTS[t], s, args.epochs, args.subset_size) for s in args.seeds}
             for t in args.tasks}
    published = {t: {s: (read_cell(c) if args.collect else run_cell(c)) for s, c in cells[t].items()}
                 for t in args.tasks}
    return published, variants


def table(args: argparse.Namespace, published: dict, variants: dict) -> str:
    seeds = ", ".join(map(str, args.seeds))
    lines = [f"Embedded default, test split, mean ± std over seeds {seeds}; m = {args.subset_size}, {args.epochs} "
             "epoch(s). ITRp rows: the clusterer refitted on the final training features, dev/test assigned to its "
             "centroids; mapping fitted on dev. `dev NMI`: the mapping-free score to choose a variant by.", "",
             "| task | method | weighted F1 | NMI | ARI | dev NMI |", "|---|---|---|---|---|---|"]
    for t in args.tasks:
        pub = [published[t][s] for s in args.seeds]
        lines.append(_row(t, "k-means (concat)", pub, "kmeans", args.seeds))
        lines.append(_row(t, "ITRp as published", pub, "itrp", args.seeds))
        for v in variants[t]:
            lines.append(_row(t, f"ITRp · {v}", [variants[t][v][s] for s in args.seeds], "itrp", args.seeds))
    lines += ["", "Paired differences against ITRp as published, per seed (weighted F1 / NMI):", ""]
    lines += ["| task | variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " |",
              "|---|---|" + "---|" * len(args.seeds)]
    for t in args.tasks:
        for v in variants[t]:
            diffs = []
            for s in args.seeds:
                if variants[t][v][s] is None or published[t][s] is None:
                    diffs.append("not run")
                    continue
                a, b = variants[t][v][s]["itrp"]["test"], published[t][s]["itrp"]["test"]
                diffs.append(f"{a['f1_weighted'] - b['f1_weighted']:+.3f} / {a['nmi'] - b['nmi']:+.3f}")
            lines.append(f"| {t} | {v} | " + " | ".join(diffs) + " |")
    return "\n".join(lines + ["", *target_lines(args, published, variants)]) + "\n"


def target_lines(args: argparse.Namespace, published: dict, variants: dict) -> list[str]:
    """Per variant: does it beat published ITRp and k-means on weighted F1 in every seed of every task, NMI >= 0.10?"""
    out = ["Target (beats published ITRp and k-means on weighted F1 in every seed, both tasks, NMI >= 0.10):", ""]
    for v in args.variants:
        misses = []
        for t in args.tasks:
            if v not in variants[t]:
                misses.append(f"{t}: not run")
                continue
            for s in args.seeds:
                if variants[t][v][s] is None or published[t][s] is None:
                    misses.append(f"{t} seed {s}: not run")
                    continue
                mine, pub = variants[t][v][s]["itrp"]["test"], published[t][s]
                best_other = max(pub["itrp"]["test"]["f1_weighted"], pub["kmeans"]["test"]["f1_weighted"])
                if mine["f1_weighted"] <= best_other:
                    misses.append(f"{t} seed {s}: F1 {mine['f1_weighted']:.3f} vs {best_other:.3f}")
                if mine["nmi"] < 0.10:
                    misses.append(f"{t} seed {s}: NMI {mine['nmi']:.3f}")
        out.append(f"- {v}: " + ("**met**" if not misses else "missed (" + "; ".join(misses) + ")"))
    return out


def probe(args: argparse.Namespace) -> str:
    """Why the concatenation cannot show the relation, and what the aligned space sees: k-means (k=2) on the frozen
    ``text ⊕ image`` three ways, NMI against each task's test labels; the held-out ITC loss per ``align_dim``; then
    the aligned space's cosine by relation (test posts) and its Spearman rho against the 4-level relation score.
    Labels are read only to score."""
    import torch

    from mmpost.apps.build import build_tower
    from mmpost.apps.datasets import cache_dir
    from mmpost.apps.prepare import prepare
    from mmpost.config import load_config
    from mmpost.encoders.features import post_features

    torch.set_num_threads(1)
    cfg = load_config(None, ["progress=false"])
    data = prepare(cfg.data, "relation", progress=False)
    towers = build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)
    feats = {s: post_features(data.splits[s], *towers, cache_dir=cache_dir(cfg), progress=False)
             for s in ("train", "test")}
    pooled = {s: np.concatenate([f.text, np.asarray(f.image, np.float32)], axis=1) for s, f in feats.items()}
    dt = feats["train"].text.shape[1]
    y = {t: np.array([p.labels["relation"][i] == "1" for p in data.splits["test"]], dtype=int)
         for i, t in enumerate(TASKS)}
    lines = _concat_rows(args, pooled, dt, y) + [""] + _aligned_rows(args, pooled, dt, y, data.splits)
    return "\n".join(lines) + "\n"


def _concat_rows(args: argparse.Namespace, pooled: dict, dt: int, y: dict) -> list[str]:
    from sklearn.metrics import normalized_mutual_info_score

    from mmpost.relate.clustering import get_clusterer, normalize_features

    ways = {"raw concatenation": lambda x: x,
            "each block L2-normalised": lambda x: np.concatenate(
                [normalize_features(x[:, :dt]), normalize_features(x[:, dt:])], axis=1),
            "each block standardised and equally weighted": lambda x: np.concatenate(
                [_std(x[:, :dt], pooled["train"][:, :dt]), _std(x[:, dt:], pooled["train"][:, dt:])], axis=1)}
    lines = ["| features (frozen, k-means, k=2) | NMI text_represented | NMI image_adds |", "|---|---:|---:|"]
    for name, way in ways.items():
        nmi: dict[str, list[float]] = {t: [] for t in TASKS}
        for seed in args.seeds:
            km = get_clusterer("kmeans", normalize="none")
            km.fit_predict(way(pooled["train"]), 2, seed=seed)
            labels = km.predict(way(pooled["test"]))
            for t in TASKS:
                nmi[t].append(normalized_mutual_info_score(y[t], labels))
        lines.append(f"| {name} | {_ms(nmi[TASKS[0]])} | {_ms(nmi[TASKS[1]])} |")
    return lines


def _aligned_rows(args: argparse.Namespace, pooled: dict, dt: int, y: dict, splits: dict) -> list[str]:
    import torch

    from mmpost.relate.config import RelateConfig
    from mmpost.relate.similarity import relation_scores, spearman_by_level
    from mmpost.relate.space import build_space

    def space(seed: int, **kw):
        return build_space(RelateConfig(features="interaction", seed=seed, **kw), pooled["train"][:, :dt],
                           pooled["train"][:, dt:], splits["train"])

    lines = ["Label-free choice of `relate.align_dim`: the lowest ITC loss on the held-out unlabelled posts "
             "(no label read), per seed:", "",
             "| align_dim | " + " | ".join(f"held-out ITC, seed {s}" for s in args.seeds) + " |",
             "|---|" + "---:|" * len(args.seeds)]
    for dim in args.dims:
        held = [space(seed, align_dim=dim).report.best_holdout_itc for seed in args.seeds]
        lines.append(f"| {dim} | " + " | ".join(f"{h:.3f}" for h in held) + " |")
    lines += ["", "| aligned space (relate.align: itc, default align_dim), seed | mean cos, not represented | "
              "represented | Spearman rho vs 4-level score | epoch kept |", "|---|---:|---:|---:|---:|"]
    for seed in args.seeds:
        sp = space(seed)
        with torch.no_grad():
            t, v = sp.alignment.project(torch.from_numpy(pooled["test"][:, :dt]),
                                        torch.from_numpy(pooled["test"][:, dt:]))
        cos = (t * v).sum(1).numpy()
        rho = spearman_by_level(cos, relation_scores(splits["test"])).rho
        rep = y["text_represented"] == 1
        lines.append(f"| {seed} | {cos[~rep].mean():.3f} | {cos[rep].mean():.3f} | {rho:.2f} | "
                     f"{sp.report.best_epoch} of {sp.report.epochs_run} |")
    return lines


def _std(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Columns standardised with ``ref``'s statistics, the block then scaled to total variance 1."""
    z = (x - ref.mean(0)) / np.where(ref.std(0) > 0, ref.std(0), 1.0)
    return z / np.sqrt(z.shape[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="compare", choices=("compare", "probe"),
                    help="compare (the table) or probe (why the concatenation cannot show the relation)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--dims", nargs="+", type=int, default=[64, 256, 1024, 2048], help="probe: align_dim sweep")
    ap.add_argument("--subset-size", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-itrp-relation"))
    ap.add_argument("--published-out", type=Path, default=Path("runs/bench-itrp"),
                    help="where benchmarks/itrp.py compare keeps (or this run puts) the published-ITRp cells")
    ap.add_argument("--variants-only", action="store_true", help="run the variant cells, tabulate nothing")
    ap.add_argument("--collect", action="store_true", help="run nothing: tabulate the cells already finished")
    ap.add_argument("--write", type=Path, default=None, help="replace the table between the relation markers")
    args = ap.parse_args()
    start = time.perf_counter()
    if args.what == "probe":
        text = probe(args)
        print(text)
        if args.write:
            write_between_markers(args.write, text, PROBE_BEGIN, PROBE_END)
        return
    published, variants = collect(args)
    if args.variants_only:
        return
    text = table(args, published, variants)
    print(text)
    if args.write:
        write_between_markers(args.write, text, BEGIN, END)
        print(f"wrote the table into {args.write}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
