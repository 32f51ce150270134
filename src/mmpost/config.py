"""Typed run configuration: dataclasses merged from YAML by OmegaConf, with ``key=value`` overrides.

    cfg = load_config("configs/memes.yaml", ["train.epochs=5", "objectives.itc=true"])

Every path in ``data`` is relative to ``data.data_root`` unless absolute; ``data_root`` defaults to the
environment variable MMPOST_DATA_ROOT. The resolved config is saved into each run folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmpost.relate.config import RelateConfig


@dataclass
class ColumnsConfig:
    """How a CSV/JSONL manifest's columns map onto posts (see ``mmpost.data.manifest.ColumnMapping``)."""
    id: str | None = "id"
    text: Any = "text"                     # a column, or a list of columns joined with a space
    image: str | None = None
    image_root: str | None = None          # relative to data_root unless absolute
    image_pattern: str | None = None       # e.g. "{}.jpg": a cell holds an id formatted into a file name
    image_sep: str | None = None           # several images in one cell, e.g. ";"
    labels: dict[str, str] = field(default_factory=dict)              # task -> column
    label_values: dict[str, dict[str, str]] = field(default_factory=dict)
    split: str | None = None               # column holding train / dev / test
    keep: list[str] = field(default_factory=list)
    format: str | None = None
    csv_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyntheticConfig:
    n: int = 2000
    size: int = 128
    seed: int = 0
    words_in_image: bool = True


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


@dataclass
class DataConfig:
    source: str = "synthetic"              # "synthetic" (the embedded default), "manifest", or a dataset adapter
    data_root: str | None = None           # default: $MMPOST_DATA_ROOT
    path: str | None = None                # the manifest, relative to data_root unless absolute
    options: dict[str, Any] = field(default_factory=dict)   # a dataset adapter's options (`mmpost datasets`)
    image_root: str | None = None          # a dataset adapter's images, where you have them
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    labels: list[str] | None = None        # the task's label names in order; default: those seen in train
    require_image: bool = False            # keep only posts whose (first) image file exists
    policy: str = "stop"                   # bad rows: stop (with a report) | skip | text-only
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_method: str = "stratified"       # for data without splits: stratified (by label, grouped by image) | hash
    split_seed: int = 0
    split_salt: str = "mmpost"             # hash method only
    limit: int | None = None               # use the first N posts (quick runs)
    max_train: int | None = None           # at most N training posts: a stratified, seeded subsample (split_seed)
    emoticon: EmoticonConfig = field(default_factory=EmoticonConfig)   # task=emoticon: labels from emoji in texts


@dataclass
class EncoderConfig:
    name: str
    path: str | None = None                # HF name or local folder for "hf-text"
    trainable: bool = False
    pooling: str | None = None             # mean | cls; default: the encoder's own (minilm mean, hf-* cls)
    max_length: int = 128
    image_size: int | None = None          # default: the encoder's own (224 for EfficientNet-Lite0)
    fit: str = "crop"                      # crop | pad | squash
    precision: str | None = None           # feature extraction (frozen tower): fp32 | bf16 | auto (bf16 where native);
                                           # default: auto for the text tower (cosine 0.99996 to fp32, ~2x faster),
                                           # fp32 for the image tower (bf16: cosine 0.996); training always runs fp32
    channels_last: bool | None = None      # CNN towers: NHWC memory layout (efficientnet-lite0: true)
    batch_size: int | None = None          # images per forward in feature extraction (efficientnet-lite0: 8)
    decode_workers: int | None = None      # threads decoding the next images while the tower runs (default 2; 0: none)


@dataclass
class ModelConfig:
    name: str = "conc"                     # conc | att | mmbt | vilt | lxmert | emoticon (docs/models.md)
    hidden: int = 512                      # conc: fused size (att uses the text width)
    proj_dim: int = 512                    # ITC projection size
    dropout: float = 0.05
    heads: int = 8                         # att: attention heads
    contrast: str = "unimodal"             # single-stream / cross families: ITC on unimodal passes | fused tokens
    path: str | None = None                # vilt / lxmert: an HF ViltModel / LxmertModel name or folder
    layers: int = 2                        # lxmert offline: cross-modality layers trained from scratch; emoticon:
                                           # image-branch transformer layers
    max_text_tokens: int | None = None     # vilt: text cap (default 40, as in the seed paper)
    region_features: str | None = None     # lxmert with HF weights: folder of <image stem>.safetensors/.npz/.npy
    fusion: str = "attention"              # emoticon: attention (learned per-post modality weights) | concat
    modalities: str = "both"               # emoticon: both | text | image (one-branch baselines)


@dataclass
class ObjectivesConfig:
    itc: bool = False
    itm: bool = False
    weighting: str = "additive"            # additive: λ·loss summed | convex: (1−β_itc−β_itm)·CE + β·aux
    lambda_ce: float = 1.0
    lambda_itc: float = 1.0
    lambda_itm: float = 1.0
    beta_itc: float = 0.1
    beta_itm: float = 0.1
    class_weights: str = "balanced"        # balanced | none
    temperature: float = 0.07
    mask_duplicates: bool = True
    itm_negatives: str = "random"          # random (the seed paper's) | hard (from the ITC similarity)


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
    task: str = "sentiment"
    data: DataConfig = field(default_factory=DataConfig)
    text_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="minilm", trainable=True,
                                                                              precision="auto"))
    image_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="efficientnet-lite0"))
    model: ModelConfig = field(default_factory=ModelConfig)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    relate: RelateConfig = field(default_factory=RelateConfig)   # mmpost relate (ITRp)
    out_dir: str = "runs"
    name: str | None = None                # run folder name; default: <task>-<model>-<aux>-<time>
    cache_dir: str | None = None           # feature cache; default: ~/.cache/mmpost/features
    progress: bool = True


class ConfigError(ValueError):
    pass


AUX_SETTINGS: dict[str, list[str]] = {      # the grid's auxiliary settings → run overrides
    "base": ["objectives.itc=false", "objectives.itm=false"],
    "itc": ["objectives.itc=true", "objectives.itm=false"],
    "itm": ["objectives.itc=false", "objectives.itm=true"],
    "itc+itm": ["objectives.itc=true", "objectives.itm=true"],
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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: RunConfig | None = None) -> RunConfig:
    schema = OmegaConf.structured(base or RunConfig())
    parts = [schema]
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        if p.suffix.lower() not in (".yaml", ".yml"):
            raise ConfigError(f"{p} is not a YAML recipe (.yaml/.yml); data files go in data.path")
        parts.append(OmegaConf.load(p))
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got: {' '.join(bad)}")
        parts.append(OmegaConf.from_dotlist(list(overrides)))
    try:
        merged = OmegaConf.merge(*parts)
    except Exception as e:  # OmegaConf names the key and the expected type
        raise ConfigError(f"bad config{f' in {path}' if path else ''}: {e}") from None
    cfg: RunConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    check(cfg)
    return cfg


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
    if cfg.data.source == "manifest" and not cfg.data.path:
        raise ConfigError("data.source=manifest needs data.path (a CSV or JSONL file)")
    if cfg.model.contrast not in ("unimodal", "fused"):
        raise ConfigError(f"model.contrast must be unimodal or fused, got {cfg.model.contrast!r}")
    if cfg.objectives.itm_negatives not in ("random", "hard"):
        raise ConfigError(f"objectives.itm_negatives must be random or hard, got {cfg.objectives.itm_negatives!r}")
    for side, enc in (("text_encoder", cfg.text_encoder), ("image_encoder", cfg.image_encoder)):
        if enc.precision not in (None, "auto", "fp32", "bf16"):
            raise ConfigError(f"{side}.precision must be auto, fp32 or bf16, got {enc.precision!r}")
    if cfg.objectives.weighting not in ("additive", "convex"):
        raise ConfigError(f"objectives.weighting must be additive or convex, got {cfg.objectives.weighting!r}")
    from mmpost.data.emoji import MULTI_POLICIES, SKIN_TONE_MODES, STRIP_MODES
    emo = cfg.data.emoticon
    for key, value, choices in (("multi", emo.multi, MULTI_POLICIES), ("strip", emo.strip, STRIP_MODES),
                                ("skin_tones", emo.skin_tones, SKIN_TONE_MODES)):
        if value not in choices:
            raise ConfigError(f"data.emoticon.{key} must be one of {', '.join(choices)}, got {value!r}")
    if cfg.model.fusion not in ("attention", "concat") or cfg.model.modalities not in ("both", "text", "image"):
        raise ConfigError(f"model.fusion must be attention or concat and model.modalities both, text or image; got "
                          f"{cfg.model.fusion!r} and {cfg.model.modalities!r}")


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
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


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
