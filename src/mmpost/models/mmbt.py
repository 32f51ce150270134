"""MMBT, the Supervised Multimodal Bitransformer (Kiela et al. 2019): image tokens as extra input tokens of the
text tower's own BERT-like transformer (single-stream, early fusion).

Layout of one joint sequence (the text as its tokenizer gives it: ``[CLS] w_1 .. w_n [SEP] [PAD]..``)::

    [CLS]  img_1 .. img_T  [SEP]  w_1 .. w_n [SEP]  [PAD] ..
    type 0 |---- type 1 -------|  |------ type 0 ---------|

- ``[CLS]`` is the text's own first token; ``[SEP]`` after the image block is the tokenizer's separator, both
  embedded by the transformer's own word-embedding table, as are the text tokens.
- ``img_t = W·LN(v_t) + p_t + s``: each of the image tower's T tokens (cached EfficientNet-Lite0 grid: 49 of
  1,280-d; every token of a post without an image is the learned "no image" vector) is layer-normed and
  projected to the text width d, and gets its own learned position embedding ``p_t`` and its own learned
  segment embedding ``s`` (also on the image block's ``[SEP]``).
- The transformer (``text_tower.model``) runs on these ``inputs_embeds`` with the joint attention mask: its
  embedding layer adds its own absolute positions 0..N-1 and token types — type 1 for the image block where
  the model has two segments (BERT, MiniLM), type 0 otherwise (RoBERTa) — then its LayerNorm.
- Positions: T + 1 + (text length) must fit ``max_position_embeddings`` (512 for MiniLM): longer texts are cut
  (ending in ``[SEP]``) so image + text fit.

The fused vector is the last hidden state at ``[CLS]``; ``dropout → Linear(d → classes)`` classifies it.

ITC (``contrast``):
- ``unimodal`` (default): ``text_embeds = P_t·(text tower's pooled output of a text-only pass)``,
  ``image_embeds = P_v·(mean image token, Dv, before fusion)``. The text-only pass is one more forward of the
  tower, computed on every call (the model does not know whether ITC is on); it runs without a graph when
  the text tower is frozen.
- ``fused``: from the joint pass, no second pass: ``text_embeds = P_t·(mean last hidden state over the real
  text positions w_1 .. [SEP])``, ``image_embeds = P_v·(mean last hidden state over img_1 .. img_T)``.

ITM: pairs (text of post a, image of post b) from the sampler (fed the ITC embeddings) are built as joint
sequences and run through the transformer; a 2-way ``itm_head`` reads their ``[CLS]``. Pairs of a post with
itself reuse the main pass, so only the negatives cost a transformer pass.

The text tower may be frozen or fine-tuned: a frozen transformer still passes gradients back to the image
projection and embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.models.base import FamilyConfig, MultimodalModel
from mmpost.models.checks import CONTRASTS, check_choice, check_widths
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.models.pooling import masked_mean
from mmpost.registry import register


def position_budget(model: nn.Module) -> int:
    """How many positions the transformer can take: ``max_position_embeddings``, less RoBERTa's offset
    (its positions start after the padding index)."""
    cfg = model.config
    n = int(getattr(cfg, "max_position_embeddings", 512))
    embeddings = getattr(model, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if padding_idx is not None:
        n -= int(padding_idx) + 1
    return n


@register("model", "mmbt")
class MMBT(MultimodalModel):
    text_input = "tokens"
    image_input = "tokens"

    @dataclass
    class Config(FamilyConfig):
        proj_dim: int = 512          # ITC projection size
        dropout: float = 0.05        # before the classifier
        contrast: str = "unimodal"   # ITC vectors: unimodal passes | the fused sequence's text / image positions

        def __post_init__(self) -> None:
            check_widths(self)
            check_choice("contrast", self.contrast, CONTRASTS)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "MMBT.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        model = getattr(text_tower, "model", None)
        if model is None or not hasattr(model, "get_input_embeddings"):
            raise TypeError(
                f"mmbt feeds image tokens into the text tower's transformer, so it needs a BERT-like Hugging "
                f"Face text encoder (text_encoder.name=minilm or hf-text); {type(text_tower).__name__} has no "
                f"HF model (.model with get_input_embeddings)")
        self.config = cfg
        d, dv = text_tower.dim, image_tower.dim
        hf = model.config
        self.budget = position_budget(model)
        self.type_vocab = int(getattr(hf, "type_vocab_size", 0) or 0)   # 0: the model takes no token types
        tok = getattr(text_tower, "tokenizer", None)
        sep = getattr(tok, "sep_token_id", None)
        self.sep_id = sep if sep is not None else getattr(tok, "eos_token_id", None)
        std = float(getattr(hf, "initializer_range", 0.02))
        n_image_pos = max(self.budget - 2, 1)     # the image block can be at most budget - [CLS] - [SEP]
        self.image_in = nn.Sequential(nn.LayerNorm(dv), nn.Linear(dv, d))
        self.image_position = nn.Parameter(std * torch.randn(n_image_pos, d))
        self.image_segment = nn.Parameter(std * torch.randn(d))
        self.dropout = nn.Dropout(cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(d, num_classes)
        self.text_proj = nn.Linear(d, cfg.proj_dim)
        self.image_proj = nn.Linear(d if cfg.contrast == "fused" else dv, cfg.proj_dim)
        self.itm_head = nn.Linear(d, 2)

    # ------------------------------------------------------------------ the joint sequence
    def text_fields(self, batch: Batch, n_image: int) -> tuple[Tensor, Tensor, Tensor]:
        """(input_ids, attention_mask, token_type_ids) [B, L'], the text cut so that [CLS] + T image tokens +
        [SEP] + the rest of the text fit the transformer's positions; a cut text ends in [SEP]."""
        if batch.text_inputs is None:
            raise ValueError("mmbt reads text tokens: the batch must carry text inputs")
        ids = batch.text_inputs["input_ids"]
        mask = batch.text_inputs["attention_mask"].long()
        types = batch.text_inputs.get("token_type_ids")
        types = torch.zeros_like(ids) if types is None else types
        room = self.budget - n_image - (1 if self.sep_id is not None else 0)
        if room < 2:
            raise ValueError(f"{n_image} image tokens leave no room for text in the text model's "
                             f"{self.budget} positions")
        if ids.shape[1] > room:
            cut = mask.sum(1) > room
            ids, mask, types = ids[:, :room].clone(), mask[:, :room], types[:, :room]
            if self.sep_id is not None:
                ids[cut, room - 1] = self.sep_id
        return ids, mask, types

    def encode(self, ids: Tensor, mask: Tensor, types: Tensor, image: Tensor) -> Tensor:
        """ids, mask, types [N, L] (the text, first token [CLS]); image [N, T, d] (projected) → last hidden
        states [N, 1 + T + s + L - 1, d] of ``[CLS] img_1..img_T [SEP] text[1:]`` (s = 1 with a separator)."""
        model = self.text_tower.model
        words = model.get_input_embeddings()
        n, t = image.shape[:2]
        block = image + self.image_position[:t].to(image.dtype) + self.image_segment.to(image.dtype)
        if self.sep_id is not None:
            sep = words(torch.full((n, 1), self.sep_id, dtype=torch.long, device=ids.device))
            block = torch.cat([block, sep + self.image_segment.to(sep.dtype)], dim=1)
        text = words(ids)
        embeds = torch.cat([text[:, :1], block.to(text.dtype), text[:, 1:]], dim=1)
        ones = torch.ones(n, block.shape[1], dtype=mask.dtype, device=mask.device)
        joint_mask = torch.cat([mask[:, :1], ones, mask[:, 1:]], dim=1)
        kwargs = {}
        if self.type_vocab:
            image_type = 1 if self.type_vocab > 1 else 0
            block_types = torch.full((n, block.shape[1]), image_type, dtype=types.dtype, device=types.device)
            kwargs["token_type_ids"] = torch.cat([types[:, :1], block_types, types[:, 1:]], dim=1)
        return model(inputs_embeds=embeds, attention_mask=joint_mask, **kwargs).last_hidden_state

    def image_block_size(self, n_image: int) -> int:
        return n_image + (1 if self.sep_id is not None else 0)

    # ------------------------------------------------------------------ ITC vectors
    def contrast_embeds(self, batch: Batch, image: Tensor, hidden: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """image [B, T, Dv] (raw tokens), hidden [B, N, d] (joint pass), mask [B, L] (text) → (text, image)."""
        t = image.shape[1]
        if self.config.contrast == "fused":
            start = 1 + self.image_block_size(t)
            text_vec = masked_mean(hidden[:, start:], mask[:, 1:])         # text positions after [CLS]
            image_vec = hidden[:, 1:1 + t].mean(1)
            return self.text_proj(text_vec), self.image_proj(image_vec)
        assert batch.text_inputs is not None
        tuned = any(p.requires_grad for p in self.text_tower.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and tuned):
            pooled = self.text_tower(batch.text_inputs).pooled
        return self.text_proj(pooled), self.image_proj(image.mean(1))

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> ModelOutput:
        image = self.image_tokens(batch)                       # [B, T, Dv]
        image_d = self.image_in(image)                         # [B, T, d]
        ids, mask, types = self.text_fields(batch, image.shape[1])
        hidden = self.encode(ids, mask, types, image_d)        # [B, N, d]
        cls = hidden[:, 0]
        t, v = self.contrast_embeds(batch, image, hidden, mask)
        out = ModelOutput.of_tasks(task_logits(self.classifier(self.dropout(cls)), self.tasks), text_embeds=t,
                                   image_embeds=v, fused=cls, has_image=batch.has_image)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            out.itm_logits = self.itm_head(self.pair_cls(pairs, cls, ids, mask, types, image_d))
            out.itm_labels = pairs.labels
        return out

    def pair_cls(self, pairs: ItmPairs, cls: Tensor, ids: Tensor, mask: Tensor, types: Tensor,
                 image_d: Tensor) -> Tensor:
        """[P, d]: the fused [CLS] of each (text a, image b) pair; a == b reuses the main pass's."""
        ti, ii = pairs.text_index, pairs.image_index
        own = ti == ii
        if bool(own.all()):
            return cls[ti]
        other = ~own
        a, b = ti[other], ii[other]
        new_cls = self.encode(ids[a], mask[a], types[a], image_d[b])[:, 0]
        slot = torch.cumsum(other.long(), 0) - 1 + cls.shape[0]          # row of each made-up pair in the cat
        return torch.cat([cls, new_cls])[torch.where(own, ti, slot)]
