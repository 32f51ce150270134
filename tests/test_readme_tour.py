"""The README's five-minute tour, run as written: its commands and its recipe are read from README.md itself and run
on a generated posts file, so the README cannot drift from what mmpost does. Each training command gets
``train.epochs=1`` and the tiny test towers appended (later overrides win), nothing else."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from mmpost.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = ["train.epochs=1", "text_encoder.name=tiny-text", "image_encoder.name=tiny-image", "model.hidden=16",
        "model.proj_dim=8", "progress=false"]


def tour() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## A five-minute tour")
    return text[start:re.search(r"\n##+ ", text[start + 1:]).start() + start + 1]


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def commands(section: str) -> list[str]:
    """Each line of the tour's bash blocks, its trailing comment removed."""
    out = []
    for block in blocks(section, "bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def write_posts(folder: Path, name: str, n: int, seed: int) -> None:
    """``post_id, tweet, photo, label`` (the tour's columns) and ``photos/``; the label is the image's colour."""
    rng = np.random.default_rng(seed)
    (folder / "photos").mkdir(exist_ok=True)
    colours = {"negative": (200, 30, 30), "neutral": (30, 200, 30), "positive": (30, 30, 200)}
    lines = ["post_id,tweet,photo,label"]
    for i in range(n):
        label = list(colours)[i % 3]
        pixels = np.clip(np.array(colours[label]) + rng.normal(0, 15, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "photos" / f"{name}{i}.jpg")
        lines.append(f"{name}{i},a post about thing {i % 7} on day {i},{name}{i}.jpg,{label}")
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")


def test_the_tour_runs_as_written(tmp_path, monkeypatch):
    section = tour()
    cmds = commands(section)
    assert cmds[0].startswith("mmpost train posts.csv "), "the tour starts with the no-YAML command"
    recipes = [b for b in blocks(section, "yaml") if b.startswith("# my.yaml")]
    assert len(recipes) == 1 and section.index("mmpost train posts.csv") < section.index("# my.yaml")
    monkeypatch.chdir(tmp_path)
    write_posts(tmp_path, "posts", 45, 0)
    write_posts(tmp_path, "other_posts", 12, 1)
    write_posts(tmp_path, "new_posts", 9, 2)
    (tmp_path / "my.yaml").write_text(recipes[0])
    runner = CliRunner()
    for line in cmds:
        if line.startswith("export "):
            key, _, _ = line[len("export "):].partition("=")
            monkeypatch.setenv(key, str(tmp_path))        # the folder the tour's posts.csv is in
            continue
        argv = shlex.split(line)
        assert argv[0] == "mmpost", line
        args = argv[1:]
        if args[0] == "train" and "--resume" not in args:
            args += FAST + [f"cache_dir={tmp_path / 'cache'}"]
        result = runner.invoke(app, args)
        if "--resume" in args:          # the tour's run finished: resuming it is refused, and says why
            assert result.exit_code == 2 and "already holds a finished run" in result.output, result.output
            continue
        assert result.exit_code == 0, f"{line}\n{result.output}"
    assert (tmp_path / "posts.yaml").exists()
    assert (tmp_path / "runs" / "itc-only" / "evaluations" / "other_posts" / "metrics.json").exists()
    predicted = [json.loads(x) for x in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predicted] == [f"new_posts{i}" for i in range(9)]
    assert all(p["image_used"] for p in predicted)
    assert (tmp_path / "runs" / "itc-only" / "run_report.html").exists()
