"""Typed run configuration: dataclasses merged from YAML by OmegaConf, with ``key=value`` overrides.

    cfg = load_config("configs/memes.yaml", ["train.epochs=5", "objectives.itc.enabled=true"])

Every path in ``data`` is relative to ``data.data_root`` unless absolute; ``data_root`` defaults to the
environment variable MMPOST_DATA_ROOT. The resolved config is saved into each run folder.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmpost import config_legacy as legacy
from mmpost import config_sections as sections
from mmpost.config_sections import ConfigError
from mmpost.relate.config import RelateConfig


@dataclass
class ColumnsConfig:
    """How a CSV/JSONL manifest's columns map onto posts (see ``mmpost.data.manifest.ColumnMapping``)."""
    id: str | None = "id"
    text: Any = "text"                     # a column, or a list of columns joined with a space
    image: str | None = None
    image_root: str | None = None          # relative to data_root unless absolute
    image_pattern: str | None = None       # e.g. "{}.jpg": a cell holds an id formatted into a file name;
                                           # "{}.*": whatever the extension (image_extensions, tried in order)
    image_extensions: list[str] = field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp",
                                                                 ".tif", ".tiff"])
    image_sep: str | None = None           # several images in one cell, e.g. ";"
    labels: dict[str, Any] = field(default_factory=dict)              # task -> column, or a list of 0/1 columns
                                                                      # (multi-label: one per label, named after it)
    label_values: dict[str, dict[str, str]] = field(default_factory=dict)
    label_sep: dict[str, str] = field(default_factory=dict)           # task -> separator of several labels in a cell
    split: str | None = None               # column holding train / dev / test
    keep: list[str] = field(default_factory=list)
    format: str | None = None              # csv | jsonl | parquet; default: from the extension
    encoding: str = "utf-8"                # CSV and JSONL text, e.g. cp1252 for files saved by Excel
    csv_options: dict[str, Any] = field(default_factory=dict)   # e.g. {delimiter: "\t"} for tab-separated text


@dataclass
class SyntheticConfig:
    n: int = 2000
    size: int = 128
    seed: int = 0
    words_in_image: bool = True


@dataclass
class OcrConfig:
    """Text written in the images, read by OCR and joined to the post text (``mmpost.data.ocr``; ``mmpost[ocr]``)."""
    enabled: bool = False
    into: str = "text"                     # text: after the post text | field: after the text tower's [SEP]
    min_score: float = 0.5                 # recognised lines below this score are dropped

    def __post_init__(self) -> None:
        if self.into not in ("text", "field"):
            raise ConfigError(f"data.ocr.into must be text or field, got {self.into!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"data.ocr.min_score must be within 0..1, got {self.min_score}")


@dataclass
class EmoticonConfig:
    """The ``emoticon`` task from emoji in the texts (``mmpost.data.emoji.emoticon_task``)."""
    top_k: int | None = 10                 # the label set: the K emoji held by the most posts (null: all)
    labels: list[str] | None = None        # or a fixed label set: CLDR names (red_heart) or the emoji themselves
    multi: str = "first"                   # several emoji in a post: first | last | most | single (drop the post)
    strip: str = "label"                   # leak removal: label (every form of the label emoji) | all (every emoji)
    skin_tones: str = "fold"               # fold (👍🏽 is 👍) | keep
    text_symbols: bool = True              # count bare text-default symbols (©, ™, ❤ without VS16)
    resplit: bool = False                  # split again, stratified by emoticon (a source's split served another task)

    def __post_init__(self) -> None:
        from mmpost.data.emoji_options import MULTI_POLICIES, SKIN_TONE_MODES, STRIP_MODES
        for key, choices in (("multi", MULTI_POLICIES), ("strip", STRIP_MODES), ("skin_tones", SKIN_TONE_MODES)):
            value = getattr(self, key)
            if value not in choices:
                raise ConfigError(f"data.emoticon.{key} must be one of {', '.join(choices)}, got {value!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"data.emoticon.top_k must be at least 1 or null, got {self.top_k}")


@dataclass
class DataConfig:
    source: str = "synthetic"              # "synthetic" (the embedded default), "manifest", or a dataset adapter
    data_root: str | None = None           # default: $MMPOST_DATA_ROOT
    path: str | None = None                # the manifest, relative to data_root unless absolute
    options: dict[str, Any] = field(default_factory=dict)   # a dataset adapter's options (`mmpost datasets`)
    image_root: str | None = None          # a dataset adapter's images, where you have them
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    labels: Any = None                     # the task's label names in order (a list: the first task's), or
                                           # {task: [names]} for several tasks; default: the source's / those seen
    require_image: bool = False            # keep only posts whose (first) image file exists
    policy: str = "stop"                   # bad rows: stop (with a report) | skip | text-only
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_method: str = "stratified"       # for data without splits: stratified (by label, grouped) | hash
    group_by: list[str] = field(default_factory=lambda: ["image"])   # posts sharing any key stay in one split
                                           # and one fold: image (its name, even when the file is missing) |
                                           # text (near-duplicates) | column:NAME (an event, user, claim column)
    splits_from: str | None = None         # a run folder (or its splits.csv): reuse that run's split post by post
    files: dict[str, str] = field(default_factory=dict)   # one manifest per split: {train: a.csv, dev: b.csv,
                                           # test: c.csv}, read with data.columns (instead of data.path)
    split_seed: int = 0
    split_salt: str = "mmpost"             # hash method only
    limit: int | None = None               # use the first N posts (quick runs)
    max_train: int | None = None           # at most N training posts: a stratified, seeded subsample (split_seed)
    emoticon: EmoticonConfig = field(default_factory=EmoticonConfig)   # task=emoticon: labels from emoji in texts
    ocr: OcrConfig = field(default_factory=OcrConfig)   # read the words written in the images (mmpost[ocr])

    def __post_init__(self) -> None:
        if self.labels is None or self.labels == []:
            return
        if isinstance(self.labels, dict):
            for task, names in self.labels.items():
                self._check_label_names(names, f"data.labels.{task}")
        else:
            self._check_label_names(self.labels, "data.labels")

    @staticmethod
    def _check_label_names(names: Any, key: str) -> None:
        """``names`` must be a list of distinct label names (strings or numbers, e.g. a 0/1 column's values)."""
        if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)) or not names:
            raise ConfigError(f"{key} must be a non-empty list of label names (or data.labels a mapping "
                              f"task -> list), got {names!r}")
        bad = [n for n in names if not isinstance(n, (str, int)) or isinstance(n, bool)]
        if bad or len({str(n) for n in names}) != len(names):
            raise ConfigError(f"{key} must list distinct label names, got {list(names)!r}")


@dataclass
class EncoderConfig:
    name: str
    path: str | None = None                # HF name or local folder for "hf-text", "hf-image", "hf-clip"
    side: str | None = None                # text | image: which of the run's towers this is (set by the defaults;
                                           # hf-clip, one checkpoint for both towers, reads it)
    trainable: bool = False
    pooling: str | None = None             # mean | cls; default: the encoder's own (minilm mean, hf-* cls)
    max_length: int = 128
    image_size: int | None = None          # default: the encoder's own (224 for EfficientNet-Lite0)
    fit: str = "crop"                      # crop | pad | squash
    precision: str | None = None           # feature extraction (frozen tower): fp32 | bf16 | auto (bf16 where native);
                                           # default: auto for the text tower (cosine 0.99996 to fp32, ~2x faster),
                                           # fp32 for the image tower (bf16: cosine 0.996); training always runs fp32
    channels_last: bool | None = None      # CNN towers: NHWC memory layout (efficientnet-lite0: true)
    batch_size: int | None = None          # texts / images per forward in feature extraction on CPU; default: the
                                           # fastest for the resolved precision (minilm fp32 16, bf16 32;
                                           # efficientnet 4), so it follows the CPU's bf16 support
    decode_workers: int | None = None      # threads decoding the next images while the tower runs (default 2; 0: none)
    train_layers: int | None = None        # text, with trainable: true: fine-tune only the top N transformer layers;
                                           # the frozen lower layers' outputs are computed once and cached
    length_buckets: bool = False           # text tower run during training: training batches of texts of similar
                                           # token length (seeded; docs/performance.md)
    parts: list[Any] | None = None         # name: concat: the frozen towers side by side, e.g. [{name: minilm},
                                           # {name: e5-multilingual}]

    def __post_init__(self) -> None:
        if self.train_layers is not None and self.train_layers < 1:
            raise ConfigError(f"text_encoder.train_layers must be 1 or more (the top layers to fine-tune), got "
                              f"{self.train_layers}")
        if self.parts is not None and self.name != "concat":
            raise ConfigError(f"text_encoder.parts is for text_encoder.name: concat (several frozen towers side by "
                              f"side); {self.name!r} has no parts")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3                       # head
    encoder_lr: float = 1e-5               # fine-tuned towers
    weight_decay: float = 2.5e-4
    patience: int = 4                      # early stopping on dev weighted F1
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    eval_batch_size: int = 128
    threads: int | None = None             # torch threads while training (default: every core)
    checkpoint_every: int = 0              # also checkpoint every N batches within an epoch (0: epoch ends only)


@dataclass
class FabricConfig:
    accelerator: str = "cpu"
    devices: int = 1                       # processes per machine (CPU: gloo; GPUs: one per GPU)
    num_nodes: int = 1                     # machines (launched by torchrun or SLURM)
    strategy: str = "auto"                 # auto | ddp (several processes, each a slice of the global batch)
    precision: str = "32-true"


@dataclass
class RunConfig:
    task: str = "sentiment"                # one task; a later `tasks` replaces it (and a later `task` replaces those)
    tasks: list[str] | None = None         # several tasks: one head and one CE part each; the first stratifies splits
    plugins: list[str] = field(default_factory=list)   # modules imported first: their registered parts are usable
    data: DataConfig = field(default_factory=DataConfig)
    text_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="minilm", trainable=True,
                                                                              precision="auto", side="text"))
    image_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="efficientnet-lite0",
                                                                               side="image"))
    model: Any = field(default_factory=lambda: {"name": "conc"})   # a family's own Config (docs/models.md)
    objectives: Any = field(default_factory=lambda: {"ce": {}})     # resolved to mmpost.objectives.spec.Objectives
    train: TrainConfig = field(default_factory=TrainConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    relate: RelateConfig = field(default_factory=RelateConfig)   # mmpost relate (ITRp)
    calibration: str = "temperature"       # temperature (scaling fitted per task on dev at the end of training) |
                                           # temperature+bias (and a bias per label: undoes a prior shift) | none
    out_dir: str = "runs"
    name: str | None = None                # run folder name; default: <task>-<model>-<aux>-<time>
    cache_dir: str | None = None           # feature cache; default: ~/.cache/mmpost/features
    progress: bool = True


AUX_SETTINGS: dict[str, list[str]] = {      # the grid's auxiliary settings → run overrides
    "base": ["objectives.itc.enabled=false", "objectives.itm.enabled=false"],
    "itc": ["objectives.itc.enabled=true", "objectives.itm.enabled=false"],
    "itm": ["objectives.itc.enabled=false", "objectives.itm.enabled=true"],
    "itc+itm": ["objectives.itc.enabled=true", "objectives.itm.enabled=true"],
}


@dataclass
class GridDataset:
    name: str                              # the row label in the tables
    recipe: str                            # a run recipe (YAML), relative to the grid file unless absolute
    task: str | None = None                # default: the recipe's
    overrides: list[str] = field(default_factory=list)


@dataclass
class GridConfig:
    """``mmpost grid``: every dataset × model × aux setting × seed is one run (a cell)."""
    datasets: list[GridDataset] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: ["conc", "att"])
    aux: list[str] = field(default_factory=lambda: list(AUX_SETTINGS))
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)   # for every cell, after the dataset's
    model_overrides: dict[str, list[str]] = field(default_factory=dict)   # per model name, applied last
    out_dir: str = "runs/grid"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The run config: the defaults, then the recipe at ``path``, then ``key=value`` overrides, each later one
    winning. The ``model`` and ``objectives`` sections are checked against the chosen family's and losses' own
    ``Config`` (an unknown key names the valid ones); ``plugins`` are imported first. A later part that switches
    ``model.name`` to another family drops the earlier model keys that family does not have (and logs them)."""
    parts: list[tuple[str, Any]] = [("defaults", OmegaConf.structured(RunConfig()))]
    if path is not None:
        parts.append((str(path), read_recipe(Path(path))))
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got: {' '.join(bad)}")
        parts += [(f"override {o}", OmegaConf.from_dotlist([o])) for o in overrides]   # each in turn
    merged = parts[0][1]
    for where, part in parts[1:]:
        legacy.reject_old_keys(part, where)
        merged = merge_part(merged, part, where)
    import_plugins(list(merged.plugins))
    tasks = chosen_tasks([p for _, p in parts[1:]], RunConfig.task)
    try:
        cfg: RunConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as e:
        raise ConfigError(f"bad config{f' in {path}' if path else ''}: {e}") from None
    cfg.task, cfg.tasks = tasks[0], tasks
    cfg.model = sections.model_config(cfg.model)
    cfg.objectives = sections.objectives(cfg.objectives)
    check(cfg)
    return cfg


def merge_part(merged: Any, part: Any, where: str) -> Any:
    family = OmegaConf.select(part, "model.name") if OmegaConf.is_dict(part) else None
    if family is not None:
        merged = sections.switch_family(merged, str(family))
    try:
        return OmegaConf.merge(merged, part)
    except Exception as e:  # OmegaConf names the key and the expected type
        raise ConfigError(f"bad config in {where}: {e}") from None


def read_recipe(p: Path) -> Any:
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if p.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"{p} is not a YAML recipe (.yaml/.yml); data files go in data.path, or train on one "
                          "directly: mmpost train FILE --text COLUMN --label COLUMN")
    try:
        recipe = OmegaConf.load(p)
    except Exception as e:
        raise ConfigError(f"{p} is not valid YAML: {e}") from None
    return legacy.upgrade_saved_run(recipe, p)


def chosen_tasks(parts: list[Any], default: str) -> list[str]:
    """The run's tasks: whichever of ``task`` / ``tasks`` was set last (a dot-list ``tasks=[a,b]`` on a single-task
    recipe, or ``task=c`` on a multi-task one, both do what they say)."""
    chosen = [default]
    for part in parts:
        for key in part.keys() if OmegaConf.is_dict(part) else ():
            if key == "task" and part.task is not None:
                chosen = [str(part.task)]
            elif key == "tasks" and part.tasks is not None:
                chosen = [str(t) for t in part.tasks]
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"tasks must be a non-empty list of distinct names, got {chosen}")
    return chosen


def import_plugins(modules: list[str]) -> None:
    """Import each plugin module (its ``@register`` decorators add its parts to the registry)."""
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"plugins: cannot import {name!r} ({e}); it must be importable from the current "
                              "folder or the Python path (PYTHONPATH)") from None


def check(cfg: RunConfig) -> None:
    if cfg.data.policy not in ("stop", "skip", "text-only"):
        raise ConfigError(f"data.policy must be stop, skip or text-only, got {cfg.data.policy!r}")
    if cfg.data.split_method not in ("stratified", "hash"):
        raise ConfigError(f"data.split_method must be stratified or hash, got {cfg.data.split_method!r}")
    if cfg.data.source not in ("synthetic", "manifest"):
        from mmpost import registry
        if cfg.data.source not in registry.names("dataset"):
            raise ConfigError(f"data.source must be synthetic, manifest or a dataset adapter "
                              f"({', '.join(registry.names('dataset'))}), got {cfg.data.source!r}")
    check_data_files(cfg.data)
    if cfg.calibration not in CALIBRATIONS:
        raise ConfigError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {cfg.calibration!r}")
    from mmpost.data.groups import check_group_by
    try:
        check_group_by(list(cfg.data.group_by))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for side, enc in (("text_encoder", cfg.text_encoder), ("image_encoder", cfg.image_encoder)):
        if enc.precision not in (None, "auto", "fp32", "bf16"):
            raise ConfigError(f"{side}.precision must be auto, fp32 or bf16, got {enc.precision!r}")
        if enc.side not in (None, side.split("_")[0]):
            raise ConfigError(f"{side}.side must be {side.split('_')[0]} (it says which tower this is), "
                              f"got {enc.side!r}")


CALIBRATIONS = ("temperature", "temperature+bias", "none")


def check_data_files(d: DataConfig) -> None:
    """data.path or data.files (one manifest per split), never both; data.files needs a training file."""
    if d.files:
        bad = [k for k in d.files if k not in ("train", "dev", "test")]
        if bad:
            raise ConfigError(f"data.files: unknown split(s) {', '.join(map(str, bad))}; use train, dev and test")
        if "train" not in d.files:
            raise ConfigError("data.files needs a train file (dev is split from it when missing; test may be left out)")
        if d.source != "manifest":
            raise ConfigError(f"data.files reads manifests with data.columns: set data.source: manifest "
                              f"(it is {d.source!r})")
        if d.path:
            raise ConfigError("give data.path (one file, split by a column or by mmpost) or data.files "
                              "(one file per split), not both")
    elif d.source == "manifest" and not d.path:
        raise ConfigError("data.source=manifest needs data.path (a CSV or JSONL file) or data.files "
                          "({train: a.csv, dev: b.csv, test: c.csv})")


def load_grid(path: str | Path, overrides: list[str] | None = None) -> GridConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"grid file not found: {p}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(GridConfig()), OmegaConf.load(p),
                                 OmegaConf.from_dotlist(list(overrides or [])))
        grid: GridConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as e:
        raise ConfigError(f"bad grid file {p}: {e}") from None
    if not grid.datasets:
        raise ConfigError(f"{p} lists no datasets")
    bad = [a for a in grid.aux if a not in AUX_SETTINGS]
    if bad:
        raise ConfigError(f"{p}: unknown aux setting(s) {bad}; known: {', '.join(AUX_SETTINGS)}")
    names = [d.name for d in grid.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{p}: dataset names must be unique, got {names}")
    for d in grid.datasets:
        if not Path(d.recipe).is_absolute():
            d.recipe = str((p.parent / d.recipe).resolve()) if (p.parent / d.recipe).exists() else d.recipe
    return grid


def to_yaml(cfg: RunConfig) -> str:
    """The resolved config as a recipe: loading it again gives the same config."""
    return OmegaConf.to_yaml(OmegaConf.create(to_container(cfg)))


def to_container(cfg: RunConfig) -> dict[str, Any]:
    out = dataclasses.asdict(dataclasses.replace(cfg, model={}, objectives={}))
    out["model"] = dataclasses.asdict(cfg.model)
    out["objectives"] = cfg.objectives.to_section()
    if len(cfg.tasks or []) <= 1:
        out["tasks"] = None
    return out


def data_root(cfg: DataConfig) -> Path | None:
    root = cfg.data_root or os.environ.get("MMPOST_DATA_ROOT")
    return Path(root).expanduser() if root else None


def resolve(cfg: DataConfig, path: str | None) -> str | None:
    """A data path: absolute as given, else relative to data_root (which must then be set)."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    root = data_root(cfg)
    if root is None:
        raise ConfigError(f"{path!r} is relative but no data root is set: set MMPOST_DATA_ROOT or data.data_root")
    return str(root / p)


def default_cache_dir() -> Path:
    base = os.environ.get("MMPOST_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "mmpost")
    return Path(base).expanduser()
