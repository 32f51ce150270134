"""CLIP and SigLIP checkpoints as a pair of towers (``hf-clip``): one checkpoint, any hub name or local folder.

Outputs, both towers in the checkpoint's own projected space (width ``dim``):

- ``pooled``: what the checkpoint's ``get_text_features`` / ``get_image_features`` return. CLIP: the projected
  EOS token / the projected, layer-normed CLS token. SigLIP: the text head on the last position / the vision
  attention-pooling head.
- ``tokens``: the pooled vector in front (position 0, where a BERT tower has its ``[CLS]``; so a family that reads
  the first token reads the checkpoint's own summary), then every text token / image patch. CLIP projects them
  with its own projection (after the final / post layer norm); SigLIP's text tokens go through its text head, its
  image patches are the last layer's (post layer norm, already ``dim`` wide).

Preprocessing is the checkpoint's own: its tokenizer (SigLIP's texts padded to its length, as it was trained) and
its image processor (``preprocessor_config.json``). A frozen tower's cached features key on a fingerprint of the
checkpoint's weights and on the processor's settings.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from mmpost.encoders.base import ImageTower, TextTower, TowerOutput
from mmpost.encoders.clip_checkpoint import claim
from mmpost.encoders.precision import extraction_precision, resolve_precision
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.registry import register


def _pooled_in_front(pooled: Tensor, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    tokens = torch.cat([pooled[:, None].to(tokens.dtype), tokens], dim=1)
    mask = torch.cat([mask.new_ones((mask.shape[0], 1)), mask], dim=1)
    return tokens, mask


def _with_precision(tower, inputs) -> TowerOutput:
    param = next(tower.parameters())
    with extraction_precision(tower.precision, param.device):
        out = tower(inputs)
    return TowerOutput(tokens=out.tokens.float(), mask=out.mask, pooled=out.pooled.float())


class ClipTextTower(TextTower):
    """The text half of a CLIP or SigLIP checkpoint."""

    pooled_first = True

    def __init__(self, path: str, *, max_length: int = 128, precision: str = "fp32",
                 key: str = "text_encoder") -> None:
        super().__init__()
        checkpoint, self.encoder, self.projection = claim(path, "text", key)
        self.space = checkpoint.space
        self.family = self.space.family
        self.tokenizer = _tokenizer(path, key)
        limit = int(self.encoder.config.max_position_embeddings)
        self.max_length = min(int(max_length), limit)
        cfg = self.encoder.config
        self.dim = int(self.projection.out_features if self.projection is not None
                       else getattr(cfg, "projection_size", None) or cfg.hidden_size)
        self.precision = resolve_precision(precision)
        self.identity = f"hf-clip-text:{self.space.key}:max={self.max_length}" + (
            "" if self.precision == "fp32" else f":{self.precision}")

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        padding = "max_length" if self.family == "siglip" else True
        enc = self.tokenizer(list(texts), padding=padding, truncation=True, max_length=self.max_length,
                             return_attention_mask=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def token_lengths(self, texts: list[str]) -> list[int]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def forward(self, inputs: dict[str, Tensor]) -> TowerOutput:
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if self.family == "siglip":     # as trained: no attention mask, the last position pooled
            out = self.encoder(input_ids=ids)
            tokens, pooled = self.encoder.head(out.last_hidden_state), out.pooler_output
        else:
            out = self.encoder(input_ids=ids, attention_mask=mask)
            tokens, pooled = self.projection(out.last_hidden_state), self.projection(out.pooler_output)
        tokens, full_mask = _pooled_in_front(pooled, tokens, mask.bool())
        return TowerOutput(tokens=tokens, mask=full_mask, pooled=pooled)

    def extract(self, inputs: dict[str, Tensor]) -> TowerOutput:
        return _with_precision(self, inputs)


class ClipImageTower(ImageTower):
    """The image half of a CLIP or SigLIP checkpoint, with the checkpoint's own image processor."""

    pooled_first = True

    def __init__(self, path: str, *, precision: str = "fp32", key: str = "image_encoder") -> None:
        super().__init__()
        checkpoint, self.encoder, self.projection = claim(path, "image", key)
        self.space = checkpoint.space
        self.family = self.space.family
        self.processor = _image_processor(path, key)
        self.image_size = _processor_size(self.processor)
        self.mean = tuple(float(x) for x in self.processor.image_mean)
        self.std = tuple(float(x) for x in self.processor.image_std)
        self.fit = "processor"
        cfg = self.encoder.config
        self.dim = int(self.projection.out_features if self.projection is not None else cfg.hidden_size)
        self.precision = resolve_precision(precision)
        self.identity = f"hf-clip-image:{self.space.key}" + ("" if self.precision == "fp32" else f":{self.precision}")

    def preprocess_spec(self) -> str:
        settings = self.processor.to_json_string()
        return f"processor={hashlib.sha1(settings.encode()).hexdigest()[:12]}"

    def load(self, path: str) -> np.ndarray:
        """Decode one image (the project's guarded decoder) and run the checkpoint's processor → [3, H, W]."""
        from mmpost.data.images import open_image
        img = open_image(path, draft_size=self.image_size)
        pixels = self.processor(images=img, return_tensors="np")["pixel_values"][0]
        return np.ascontiguousarray(pixels, dtype=np.float32)

    def forward(self, pixels: Tensor) -> TowerOutput:
        out = self.encoder(pixel_values=pixels)
        hidden = out.last_hidden_state
        if self.projection is not None:        # CLIP: CLS first; patches layer-normed and projected like it
            tokens = self.projection(self.encoder.post_layernorm(hidden[:, 1:]))
            pooled = self.projection(out.pooler_output)
        else:                                   # SigLIP: no CLS; the attention-pooling head (or the mean)
            tokens = hidden
            pooled = out.pooler_output if out.pooler_output is not None else hidden.mean(dim=1)
        mask = tokens.new_ones(tokens.shape[:2], dtype=torch.bool)
        tokens, mask = _pooled_in_front(pooled, tokens, mask)
        return TowerOutput(tokens=tokens, mask=mask, pooled=pooled)

    def extract(self, pixels: Tensor) -> TowerOutput:
        return _with_precision(self, pixels)


def shared_logit_scale(text_tower, image_tower) -> tuple[float, float | None] | None:
    """(log logit scale, logit bias or None) of the checkpoint both towers come from; None unless they are the
    two halves of one CLIP or SigLIP checkpoint."""
    text, image = getattr(text_tower, "space", None), getattr(image_tower, "space", None)
    if text is None or image is None or text.key != image.key:
        return None
    return text.logit_scale, text.logit_bias


def _tokenizer(path: str, key: str):
    from transformers import AutoTokenizer
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{key}.path={path!r}: no tokenizer could be read from the checkpoint ({e}); save the "
                         "checkpoint's processor beside its weights (processor.save_pretrained)") from None


def _image_processor(path: str, key: str):
    from transformers import AutoImageProcessor
    try:
        with quiet_transformers():
            return AutoImageProcessor.from_pretrained(path)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{key}.path={path!r}: no image processor (preprocessor_config.json) could be read from "
                         f"the checkpoint ({e}); save the checkpoint's processor beside its weights") from None


def _processor_size(processor) -> int:
    """The side of the square the processor makes: its crop when it crops (CLIP), else its resize (SigLIP)."""
    size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
    if isinstance(size, dict):
        return int(size.get("height") or size.get("shortest_edge"))
    return int(getattr(size, "height", None) or size)


@register("encoder", "hf-clip")
def hf_clip(*, path: str | None = None, side: str | None = None, max_length: int = 128, precision: str = "fp32",
            image_size: int | None = None, pooling: str | None = None, **_: object) -> ClipTextTower | ClipImageTower:
    """The ``side`` (text | image) tower of the CLIP or SigLIP checkpoint at ``path``."""
    key = f"{side}_encoder"
    if side not in ("text", "image"):
        raise ValueError(f"hf-clip builds the text or the image tower of a checkpoint: side must be text or image, "
                         f"got {side!r}")
    if not path:
        raise ValueError(f"{key}.name=hf-clip needs {key}.path: a CLIP or SigLIP checkpoint (a hub name such as "
                         "openai/clip-vit-base-patch32, or a folder)")
    if pooling is not None:
        raise ValueError(f"{key}.pooling: hf-clip pools as the checkpoint does (its get_text_features / "
                         "get_image_features); leave it unset")
    if side == "text":
        return ClipTextTower(path, max_length=max_length, precision=precision, key=key)
    if image_size is not None:
        raise ValueError(f"{key}.image_size: hf-clip takes its image size from the checkpoint's image processor "
                         "(preprocessor_config.json); leave it unset")
    return ClipImageTower(path, precision=precision, key=key)
