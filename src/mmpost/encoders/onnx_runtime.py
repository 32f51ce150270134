"""A run's exported ONNX files (``mmpost export RUN --format onnx``) run by onnxruntime in place of torch.

:class:`OnnxTextTower` and :class:`OnnxImageTower` stand in for the run's towers in feature extraction: they keep
the torch towers' tokenizer, image preprocessing and batch sizes, so the batching of
:mod:`mmpost.encoders.features` (length-sorted texts, threaded decoding, the cache) is unchanged; only the forward
pass moves to onnxruntime. Their ``identity`` names the ONNX file, so the feature cache never mixes their features
with torch's. :class:`OnnxHead` runs the model on the features and gives the :class:`ModelOutput` the Predictor
reads. The towers' input and output names are those of :mod:`mmpost.export.graphs`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmpost.encoders.base import ImageTower, TextTower, TowerOutput
from mmpost.models.output import ModelOutput


def onnxruntime_module():
    """``onnxruntime``, or an error (a ValueError, as for any setting that cannot be met) saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ValueError("runtime onnx needs onnxruntime, which is not installed: pip install 'mmpost[onnx]'") from e
    return onnxruntime


def open_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session on ``path`` with every graph optimisation, on ``threads`` intra-op threads
    (default: as many as torch uses) that sleep when idle instead of spinning, so that the other session (text
    and image alternate) and the image decoding threads get the cores."""
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxTextTower(TextTower):
    """The torch tower's tokenizer, and its forward pass from an ONNX file."""

    def __init__(self, tower: TextTower, path: str | Path, identity: str) -> None:
        super().__init__()
        self.session = open_session(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dim, self.max_length, self.identity = tower.dim, tower.max_length, identity
        self._tokenize, self._token_lengths = tower.tokenize, tower.token_lengths

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        return self._tokenize(texts)

    def token_lengths(self, texts: list[str]) -> list[int]:
        return self._token_lengths(texts)

    def extract(self, inputs: dict[str, Tensor]) -> TowerOutput:
        """``pooled`` [B, D] and, as the only token, the first output token [B, 1, D]."""
        feeds = {name: inputs[name].numpy().astype(np.int64) for name in self.input_names}
        pooled, first = self.session.run(["pooled", "first"], feeds)
        first_token = torch.from_numpy(first)[:, None]
        mask = torch.ones(first_token.shape[:2], dtype=torch.bool)
        return TowerOutput(tokens=first_token, mask=mask, pooled=torch.from_numpy(pooled))

    forward = extract


class OnnxImageTower(ImageTower):
    """The torch tower's preprocessing and batch sizes, and its forward pass from an ONNX file."""

    def __init__(self, tower: ImageTower, path: str | Path, identity: str) -> None:
        super().__init__()
        self.session = open_session(path)
        self.dim, self.image_size, self.identity = tower.dim, tower.image_size, identity
        self.mean, self.std, self.fit = tower.mean, tower.std, tower.fit
        self.extract_batch_size, self.decode_workers = tower.extract_batch_size, tower.decode_workers

    def extract(self, pixels: Tensor) -> TowerOutput:
        pooled, tokens = self.session.run(["pooled", "tokens"], {"pixels": pixels.float().numpy()})
        tokens_t = torch.from_numpy(tokens)
        mask = torch.ones(tokens_t.shape[:2], dtype=torch.bool)
        return TowerOutput(tokens=tokens_t, mask=mask, pooled=torch.from_numpy(pooled))

    forward = extract


class OnnxHead:
    """The model on a batch of features → its :class:`ModelOutput` (task logits, the projected text and image
    vectors, the fused vector; no ITM)."""

    def __init__(self, path: str | Path, tasks: Sequence[str]) -> None:
        self.session = open_session(path)
        self.tasks = list(tasks)

    def __call__(self, text_features: Tensor, image_features: Tensor, has_image: Tensor) -> ModelOutput:
        feeds = {"text_features": text_features.float().numpy(), "image_features": image_features.float().numpy(),
                 "has_image": has_image.numpy().astype(bool)}
        *logits, text_embeds, image_embeds, fused = (torch.from_numpy(a) for a in self.session.run(None, feeds))
        return ModelOutput.of_tasks(dict(zip(self.tasks, logits)), text_embeds=text_embeds,
                                    image_embeds=image_embeds, fused=fused, has_image=has_image)
