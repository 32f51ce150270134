"""Fine-tuning only the top N transformer layers of a text tower (``text_encoder.train_layers: N``).

The embeddings and the lower ``L − N`` layers stay frozen and always run as in evaluation (no dropout), so what they
give — the *lower states*, ``[L_i, D]`` per text — depends on the text alone. They are computed once per distinct
text, under inference mode in the tower's extraction precision (like a frozen tower's features), and kept in the
feature cache (``<cache_dir>/text-states``: float16, one row of ``L_i`` token vectors per text, memory-mapped). A
training batch then carries them in ``text_inputs["lower_states"]`` and runs only the top N layers, forward and
backward. A text that has no stored states (a new post at prediction time) gets them computed on the fly, with the same
frozen layers, so a run predicts the same with or without the cache.

The split works on BERT-like Hugging Face encoders, whose layers are ``model.encoder.layer`` (BERT, MiniLM, RoBERTa,
XLM-R, ELECTRA ...); other architectures say so.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

STATES_DTYPE = np.float16


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a BERT-like HF encoder."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(model, "embeddings"):
        raise ValueError(f"text_encoder.train_layers needs a BERT-like encoder (embeddings + encoder.layer); "
                         f"{type(model).__name__} is not one: fine-tune it whole (drop train_layers)")
    return layers


def check_train_layers(model: nn.Module, train_layers: int) -> int:
    """The number of frozen lower layers (``L − N``), after checking ``N``."""
    total = len(transformer_layers(model))
    if not 1 <= int(train_layers) <= total:
        raise ValueError(f"text_encoder.train_layers must be between 1 and {total} (the layers of this encoder), "
                         f"got {train_layers}")
    return total - int(train_layers)


def lower_modules(model: nn.Module, frozen: int) -> list[nn.Module]:
    """The modules that stay frozen: the embeddings and the first ``frozen`` layers."""
    return [model.embeddings, *list(transformer_layers(model))[:frozen]]


def attention_bias(model: nn.Module, hidden: Tensor, mask: Tensor):
    """The attention mask in the form the model's layers take, built the way the model's own forward builds it."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:       # transformers 4: the additive extended mask
        return model.get_extended_attention_mask(mask, mask.shape, dtype=hidden.dtype)
    return create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)


def run_layers(model: nn.Module, layers: Sequence[nn.Module], hidden: Tensor, mask: Tensor) -> Tensor:
    bias = attention_bias(model, hidden, mask)
    for layer in layers:
        out = layer(hidden, bias)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def embed(model: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    kwargs = {k: inputs[k] for k in ("input_ids", "token_type_ids") if k in inputs}
    return model.embeddings(**kwargs)


def lower_states(model: nn.Module, frozen: int, inputs: dict[str, Tensor]) -> Tensor:
    """[B, L, D]: the output of the embeddings and the first ``frozen`` layers (the caller picks the grad mode)."""
    hidden = embed(model, inputs)
    return run_layers(model, list(transformer_layers(model))[:frozen], hidden, inputs["attention_mask"])


def upper_states(model: nn.Module, frozen: int, hidden: Tensor, mask: Tensor) -> Tensor:
    """[B, L, D]: the top layers run on ``hidden`` (the lower states)."""
    return run_layers(model, list(transformer_layers(model))[frozen:], hidden, mask)


class LowerStates:
    """Text → its lower states ``[L_i, D]`` (float16; read-only views of the cache's memory map)."""

    def __init__(self, texts: Sequence[str], rows: Sequence[np.ndarray]) -> None:
        self.rows = dict(zip(texts, rows))

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, texts: Sequence[str], length: int) -> Tensor | None:
        """[B, length, D] float16, zero past each text's tokens; None unless every text is known (and no row is
        longer than ``length``: the batch's tokenization must match the one that made the states)."""
        rows = [self.rows.get(t) for t in texts]
        if any(r is None or len(r) > length for r in rows):
            return None
        out = np.zeros((len(rows), length, rows[0].shape[1]), dtype=STATES_DTYPE)   # type: ignore[union-attr]
        for i, r in enumerate(rows):
            out[i, :len(r)] = r      # type: ignore[arg-type]
        return torch.from_numpy(out)
