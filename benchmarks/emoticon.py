"""The emoticon predictor and its baselines and ablations: accuracy, MCC and weighted F1, mean ± std over seeds.

    python benchmarks/emoticon.py --table runs/emoticon-bench/table.md
    MMPOST_DATA_ROOT=/path/to/data python benchmarks/emoticon.py --tir --table runs/emoticon-bench/table.md

Part 1, the embedded synthetic set's ``emoticon`` task (configs/emoticon.yaml: 2,000 posts, eight face emoji whose
choice needs both the text's and the image's sentiment; the set's own 70/15/15 split): the dual-branch model
(attention fusion + ITC), the same without ITC, concat fusion with and without ITC, the text-only and image-only
branches, and the Ber-ViT-Conc family on pooled features, each trained with ``train.seed`` = every seed.

The same again with a small training set (``--small``, default 140 posts, a seeded stratified sample per seed),
where the variants are further from the ceiling.

Part 2 (``--tir``, needs the data root): the TIR tweets that hold an emoji. Their images are not in the data, so
every post is text-only: the image is masked, the dual-branch model puts all its weight on the text, and ITC has no
pairs. Each seed re-splits the posts (stratified by emoticon, 60/20/20: a few hundred posts) and trains with that seed.

Both towers stay frozen (MiniLM, EfficientNet-Lite0), so their features are computed once and cached; each run
trains the branches, the fusion and the head. The epoch is chosen on dev weighted F1; the table reports test.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYNTHETIC_VARIANTS: dict[str, list[str]] = {
    "dual-branch: attention fusion + ITC (the model)": ["model.name=emoticon", "model.fusion=attention",
                                                        "objectives.itc.enabled=true"],
    "attention fusion, no ITC": ["model.name=emoticon", "model.fusion=attention", "objectives.itc.enabled=false"],
    "concat fusion + ITC": ["model.name=emoticon", "model.fusion=concat", "objectives.itc.enabled=true"],
    "concat fusion, no ITC": ["model.name=emoticon", "model.fusion=concat", "objectives.itc.enabled=false"],
    "text only": ["model.name=emoticon", "model.modalities=text", "objectives.itc.enabled=false"],
    "image only": ["model.name=emoticon", "model.modalities=image", "objectives.itc.enabled=false"],
    "Ber-ViT-Conc (pooled features), no ITC": ["model.name=conc", "objectives.itc.enabled=false"],
}
TIR_VARIANTS: dict[str, list[str]] = {
    "dual-branch: attention fusion + ITC (image masked)": ["model.name=emoticon", "model.fusion=attention",
                                                           "objectives.itc.enabled=true"],
    "text only": ["model.name=emoticon", "model.modalities=text", "objectives.itc.enabled=false"],
}


def image_weight(run_dir: Path, cfg, data, towers) -> float | None:
    """Mean weight of the image over the test posts that have one, for the trained attention model in ``run_dir``."""
    import torch

    from mmpost.apps.build import build_model
    from mmpost.apps.train import WEIGHTS
    from mmpost.apps.training_setup import loader, make_datasets
    from mmpost.engine.checkpoint import load_weights

    if cfg.model.name != "emoticon" or cfg.model.fusion != "attention" or cfg.model.modalities != "both":
        return None
    test = make_datasets(data, cfg, *towers)["test"]
    model = build_model(cfg.model, *towers, len(data.labels))
    model.load_state_dict(load_weights(run_dir / WEIGHTS), strict=False)
    weights, has = [], []
    for batch in loader(test, 256, shuffle=False, seed=0, workers=0):
        weights.append(model.modality_weights(batch)[:, 1])
        has.append(batch.has_image)
    w, h = torch.cat(weights), torch.cat(has)
    return float(w[h].mean()) if bool(h.any()) else 0.0


def run_block(title: str, recipe: str, base: list[str], variants: dict[str, list[str]], seeds: list[int],
              out_dir: Path, seeded_split: bool) -> tuple[list[str], list[str]]:
    """Train every variant with every seed; return the markdown rows and the data notes of the first seed."""
    import torch

    from mmpost.apps.build import build_tower
    from mmpost.apps.prepare import prepare
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from mmpost.evaluation.metrics import majority_baseline

    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    weights: dict[str, list[float]] = {name: [] for name in variants}
    majority: list[dict[str, float]] = []
    notes: list[str] = []
    towers = None
    for seed in seeds:
        seed_base = base + [f"train.seed={seed}"] + ([f"data.split_seed={seed}"] if seeded_split else [])
        cfg0 = load_config(recipe, seed_base)
        data = prepare(cfg0.data, cfg0.task, progress=False)
        report = data.emoticon
        if not notes:
            notes = data.notes + ["class distribution (first seed's split, as trained):", "", report.markdown(), ""]
        if towers is None:
            towers = (build_tower(cfg0.text_encoder), build_tower(cfg0.image_encoder))
        from mmpost.data.dataset import label_ids
        y_train = label_ids(data.splits["train"], data.task, data.labels)
        y_test = label_ids(data.splits["test"], data.task, data.labels)
        majority.append(majority_baseline(y_train, y_test, len(data.labels)))
        for name, overrides in variants.items():
            tag = name.split(" (")[0].replace(":", "").replace(",", "").replace(" ", "-")
            cfg = load_config(recipe, seed_base + overrides + [f"out_dir={out_dir}", f"name={title}-{tag}-seed{seed}"])
            t0 = time.time()
            torch.manual_seed(seed)
            result = train(cfg, data=data, towers=towers)
            m = result.metrics["test"][data.task]
            results[name].append(m)
            w = image_weight(result.run_dir, cfg, data, towers)
            if w is not None:
                weights[name].append(w)
            print(f"[{title}] seed {seed} · {name}: acc {m['accuracy']:.3f} mcc {m['mcc']:.3f} "
                  f"wF1 {m['weighted_f1']:.3f} (best epoch {result.best_epoch}, {time.time() - t0:.0f} s)"
                  + (f" · mean image weight {w:.2f}" if w is not None else ""), flush=True)

    def cell(values: list[float]) -> str:
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{mean:.3f} ± {std:.3f}"

    rows = []
    for name, ms in list(results.items()) + [("majority class (train)", majority)]:
        w = weights.get(name, [])
        rows.append(f"| {name} | {cell([m['accuracy'] for m in ms])} | {cell([m['mcc'] for m in ms])} | "
                    f"{cell([m['weighted_f1'] for m in ms])} | {cell(w) if w else '–'} |")
    return rows, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "configs" / "emoticon.yaml"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--tir", action=argparse.BooleanOptionalAction, default=False,
                    help="also the emoji-bearing TIR tweets (needs MMPOST_DATA_ROOT)")
    ap.add_argument("--small", type=int, default=140,
                    help="also train on this many training posts (a stratified sample; 0: skip)")
    ap.add_argument("--tir-top-k", default="5,10", help="label-set sizes for TIR, comma-separated")
    ap.add_argument("--out", default="runs/emoticon-bench", help="run folders go here")
    ap.add_argument("--table", default=None, help="write the markdown tables here too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run, e.g. train.epochs=5")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.ERROR)
    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    import mmpost  # noqa: F401  (registers every family)
    from mmpost.config import data_root, load_config

    seeds = [int(s) for s in args.seeds.split(",")]
    out_dir = Path(args.out).expanduser() / time.strftime("%Y%m%d-%H%M%S")
    head = ["| variant | accuracy | MCC | weighted F1 | mean image weight |", "|---|---:|---:|---:|---:|"]
    parts: list[str] = []
    base = ["progress=false", *args.overrides]
    t0 = time.time()
    if args.synthetic:
        rows, notes = run_block("synthetic", args.recipe, base, SYNTHETIC_VARIANTS, seeds, out_dir, False)
        parts += [f"### Synthetic `emoticon` (test split, {len(seeds)} seeds {args.seeds})", "", *head, *rows, "",
                  *notes, ""]
    if args.synthetic and args.small:
        rows, notes = run_block("synthetic-small", args.recipe, base + [f"data.max_train={args.small}"],
                                SYNTHETIC_VARIANTS, seeds, out_dir, True)
        parts += [f"### Synthetic `emoticon` with {args.small} training posts (test split, {len(seeds)} seeds "
                  f"{args.seeds}; each seed draws its own stratified sample)", "", *head, *rows, "", ""]
    if args.tir:
        if data_root(load_config(args.recipe, base).data) is None:
            sys.exit("--tir needs the data root: set MMPOST_DATA_ROOT (the folder holding tir/)")
        for k in [int(x) for x in args.tir_top_k.split(",")]:
            tir = base + ["data.source=tir", f"data.emoticon.top_k={k}", "data.emoticon.resplit=true",
                          "data.split_fractions=[0.6,0.2,0.2]"]
            rows, notes = run_block(f"tir-top{k}", args.recipe, tir, TIR_VARIANTS, seeds, out_dir, True)
            parts += [f"### TIR tweets with emoji, text only (test split, {len(seeds)} seeds {args.seeds}, the {k} "
                      "most frequent emoji)", "", *head, *rows, "", *notes, ""]
    parts.append(f"({time.time() - t0:.0f} s in all; runs in {out_dir})")
    text = "\n".join(parts)
    print(text)
    if args.table:
        from mmpost.atomic import atomic_write_text
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.table), text + "\n")


if __name__ == "__main__":
    main()
