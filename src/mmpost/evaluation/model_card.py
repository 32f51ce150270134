"""A run's model card (``README.md``, in the Hugging Face model-card layout: YAML front matter, then sections):
what the model was trained on, for which task and labels, how well it did with intervals, how its probabilities
are calibrated, what it is for and what it is not, and the command that made it. Plain data in, text out."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

METRIC_NAMES = {"weighted_f1": "weighted F1", "macro_f1": "macro F1", "accuracy": "accuracy", "mcc": "MCC"}


def front_matter(tasks: Sequence[Any], metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The YAML header: library, tags, and a model-index with the test (else dev) results per task."""
    split = "test" if "test" in metrics else "dev"
    results = []
    for t in tasks:
        m = metrics.get(split, {}).get(t.name, {})
        results.append({"task": {"type": "text-classification", "name": t.name},
                        "dataset": {"name": f"{split} split", "type": "custom"},
                        "metrics": [{"type": k, "value": round(float(m[k]), 4), "name": n}
                                    for k, n in METRIC_NAMES.items() if isinstance(m.get(k), (int, float))]})
    header = {"library_name": "mmpost", "tags": ["multimodal", "image-text-classification", "social-media"],
              "model-index": [{"name": "mmpost run", "results": results}]}
    return "---\n" + _yaml(header) + "---\n"


def _yaml(value: Any, indent: int = 0) -> str:
    """Enough YAML for the header (JSON scalars are valid YAML)."""
    pad = " " * indent
    if isinstance(value, dict):
        return "".join(f"{pad}{k}:\n{_yaml(v, indent + 2)}" if isinstance(v, (dict, list)) and v
                       else f"{pad}{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in value.items())
    if isinstance(value, list):
        out = ""
        for item in value:
            body = _yaml(item, indent + 2)
            out += f"{pad}- {body.lstrip()}" if isinstance(item, (dict, list)) else f"{pad}- {json.dumps(item)}\n"
        return out
    return f"{pad}{json.dumps(value, ensure_ascii=False)}\n"


def metrics_rows(tasks: Sequence[Any], metrics: dict, baselines: dict[str, dict]) -> list[str]:
    lines = ["| task | split | weighted F1 (95% CI) | macro F1 | accuracy | MCC | ECE (calibrated) | n |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for t in tasks:
        for split in ("dev", "test"):
            m = metrics.get(split, {}).get(t.name)
            if not m:
                continue
            ci = m.get("weighted_f1_ci95")
            wf1 = f"{m['weighted_f1']:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
            ece = f"{m['ece_raw']:.3f} → {m['ece']:.3f}" if "ece" in m else "–"
            lines.append(f"| {t.name} | {split} | {wf1} | {m.get('macro_f1', float('nan')):.3f} | "
                         f"{m.get('accuracy', float('nan')):.3f} | {m.get('mcc', float('nan')):.3f} | {ece} | "
                         f"{m.get('n', '')} |")
        b = baselines.get(t.name)
        if b and "weighted_f1" in b:
            lines.append(f"| {t.name} | majority class | {b['weighted_f1']:.3f} | {b.get('macro_f1', 0):.3f} | "
                         f"{b.get('accuracy', 0):.3f} | {b.get('mcc', 0):.3f} | – | {b.get('n', '')} |")
    return lines


def model_card(*, name: str, tasks: Sequence[Any], metrics: dict, baselines: dict[str, dict], data: str,
               encoders: str, model: str, calibration: dict[str, float], command: str, notes: Sequence[str]) -> str:
    """The card's text. ``tasks``: objects with ``name``, ``labels`` and ``multi_label``."""
    labels = "\n".join(f"- `{t.name}`{' (multi-label)' if t.multi_label else ''}: "
                       + ", ".join(f"`{x}`" for x in t.labels) for t in tasks)
    temps = ", ".join(f"`{k}` T = {v:.2f}" for k, v in calibration.items()) or "none"
    parts = [front_matter(tasks, metrics), f"# {name}\n",
             "A classifier of social-media posts (text and image), trained with mmpost.\n",
             "## Model\n", f"- Family: {model}", f"- Encoders: {encoders}", "",
             "## Training data\n", data, "", "## Tasks and labels\n", labels, "",
             "## Evaluation\n", *metrics_rows(tasks, metrics, baselines), "",
             "The interval is a 95% bootstrap over test posts. ECE: top-label expected calibration error before → "
             "after calibration.\n",
             "## Calibration\n", f"Temperature scaling fitted on dev: {temps}. Predictions carry calibrated `probs` "
             "and the model's own `probs_raw`.\n",
             "## Intended use and limits\n",
             "- For research and for triage by analysts who review the posts it flags; not for automated decisions "
             "about people without review.",
             "- It knows only the labels above, as the training data's annotators applied them; posts unlike the "
             "training data (other platforms, languages, periods) can be misjudged with confidence.",
             "- The scores above come from one split of one dataset; `mmpost cv` gives their spread over folds.", "",
             "## How it was made\n", f"```bash\n{command}\n```\n", "`config.yaml` holds the full resolved recipe.\n"]
    if notes:
        parts += ["## Notes\n"] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"
