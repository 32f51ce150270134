"""LXMERT-style: a language encoder, a visual encoder, and cross-modality layers that join them.

LXMERT (Tan & Bansal 2019) encodes the text and the image regions separately, then runs *cross-modality
layers*: in each, the language tokens attend to the visual tokens and the visual tokens to the language
tokens (one shared cross-attention), then each side runs its own self-attention and feed-forward block.
The post is read from the language side's first token after the last cross layer, through a pooler
(Linear + Tanh): ``fused = tanh(W·lang[:, 0])``, ``logits = classifier(dropout(fused))``.

Two ways to build it
--------------------
**Offline (default, ``model.path`` unset).** Nothing is downloaded:

- language encoder = the text tower's token outputs (D-wide; frozen or fine-tuned as ``text_encoder.trainable``
  says; it runs on every batch);
- visual encoder = the image tower's grid tokens (EfficientNet-Lite0: 7×7 = 49 tokens of 1,280-d, cached when
  the tower is frozen). Each token is embedded as LXMERT embeds a region: ``LN(Linear(LN(token)))`` for the
  feature and ``LN(Linear(box))`` for its grid cell's box (x0, y0, x1, y1 in [0, 1], row-major), averaged;
- ``model.layers`` cross-modality layers (transformers' ``LxmertXLayer``: width D, ``model.heads`` heads —
  the largest divisor of D not above it — feed-forward 4·D, dropout ``model.dropout``) and the pooler,
  trained from scratch.

**Pretrained (``model.path`` = an HF ``LxmertModel`` name or folder, e.g. ``unc-nlp/lxmert-base-uncased``).**
The whole checkpoint is used: its word embeddings and language layers, its region encoder (``visual_feat_dim``
features + 4-d boxes → relational layers), its cross-modality layers and its pooler; ``model.layers`` and
``model.heads`` are the checkpoint's. It reads *region features* that you precompute
(``model.region_features`` = a folder of one file per image; format in :mod:`mmpost.encoders.regions`).
The text tower supplies only the tokenizer and must share LXMERT's vocabulary (BERT uncased), e.g.
``text_encoder.name=hf-text text_encoder.path=bert-base-uncased text_encoder.trainable=false``; a tokenizer
with more ids than the checkpoint's vocabulary is refused. A post without region features (no image, or no
file for it) reads a single learned "no image" region (a ``visual_feat_dim`` vector, box = the whole image)
with every other region masked, so the cross layers always have something to attend to.
The checkpoint's weights belong to the model (they are fine-tuned and saved with the run); see
:meth:`LxmertStyle.pretrained_parameters`.

Auxiliary objectives
--------------------
ITC (``model.contrast``):

- ``unimodal`` (default): ``text_embeds`` = projection of the language encoder's pooled vector *before* the
  cross layers (offline: the text tower's pooled output; pretrained: the masked mean of the language layers'
  tokens), ``image_embeds`` = projection of the mean visual token before the cross layers (after the
  feature/box embedding, and after the relational layers of a pretrained checkpoint);
- ``fused``: projections of the masked mean language token and mean visual token *after* the cross layers.

ITM: the sampler gets the ITC embeddings and returns pairs (text of post a, image of post b); each pair's
language and visual tokens (encoded once per batch) go through the cross layers together, and a 2-way
``itm_head`` scores the pooled vector (LXMERT's own matching head reads the same pooled output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.models.base import FamilyConfig, MultimodalModel
from mmpost.models.checks import CONTRASTS, check_at_least, check_choice, check_widths
from mmpost.models.head_count import attention_heads
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.models.pooling import masked_mean
from mmpost.registry import register


@dataclass
class Encoded:
    """Both sides of a batch, D-wide, ready for the cross layers."""
    lang: Tensor          # [B, L, D]
    lang_mask: Tensor     # [B, L] bool
    vis: Tensor           # [B, R, D]
    vis_mask: Tensor      # [B, R] bool
    text_pooled: Tensor   # [B, D] the language encoder's pooled vector (before the cross layers)


class VisualEmbedding(nn.Module):
    """A visual token and its box → D, LXMERT's way: (LN(W_f·feature) + LN(W_b·box)) / 2."""

    def __init__(self, feat_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.LayerNorm(feat_dim), nn.Linear(feat_dim, dim), nn.LayerNorm(dim, eps=1e-12))
        self.box = nn.Sequential(nn.Linear(4, dim), nn.LayerNorm(dim, eps=1e-12))
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: Tensor, boxes: Tensor) -> Tensor:
        return self.dropout((self.feature(feats) + self.box(boxes)) / 2)


def grid_boxes(n: int, *, device=None, dtype=torch.float32) -> Tensor:
    """[n, 4] normalised (x0, y0, x1, y1) of n row-major grid cells: an s×s grid when n = s², else one row."""
    side = math.isqrt(n)
    rows, cols = (side, side) if side * side == n else (1, n)
    r = torch.arange(rows, device=device, dtype=dtype).repeat_interleave(cols)
    c = torch.arange(cols, device=device, dtype=dtype).repeat(rows)
    return torch.stack([c / cols, r / rows, (c + 1) / cols, (r + 1) / rows], dim=-1)


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """[B, N] bool (True = attend) → [B, 1, 1, N] added to attention scores, as LXMERT's layers expect."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _init_bert_style(module: nn.Module, std: float = 0.02) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register("model", "lxmert")
class LxmertStyle(MultimodalModel):
    text_input = "tokens"
    image_input = "tokens"

    @dataclass
    class Config(FamilyConfig):
        proj_dim: int = 512          # ITC projection size
        dropout: float = 0.05        # classifier input; offline: also inside the cross layers
        heads: int = 8               # offline cross layers (the largest divisor of the text width not above it)
        layers: int = 2              # offline cross-modality layers (the pretrained path uses the checkpoint's)
        contrast: str = "unimodal"   # ITC vectors: before the cross layers | after them
        path: str | None = None      # an HF LxmertModel name or folder: the pretrained path
        region_features: str | None = None   # pretrained path: folder of <image stem>.safetensors/.npz/.npy

        def __post_init__(self) -> None:
            check_widths(self)
            check_choice("contrast", self.contrast, CONTRASTS)
            check_at_least("heads", self.heads, 1)
            if not self.path:     # offline, the cross layers are the only place text meets image
                check_at_least("layers", self.layers, 1)

    @classmethod
    def inputs(cls, config) -> tuple[str, str]:
        """The pretrained path reads precomputed region features; the offline path the image tower's grid."""
        return ("tokens", "regions") if getattr(config, "path", None) else (cls.text_input, cls.image_input)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "LxmertStyle.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        self.config = cfg
        self.lxmert = None
        if cfg.path:
            self._build_pretrained(cfg.path)
        else:
            self._build_offline(cfg)
        d = self.width
        self.dropout = nn.Dropout(cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(d, num_classes)
        self.text_proj = nn.Linear(d, cfg.proj_dim)
        self.image_proj = nn.Linear(d, cfg.proj_dim)
        self.itm_head = nn.Linear(d, 2)

    # ---- building -------------------------------------------------------------------------------------------

    def _build_offline(self, cfg: "LxmertStyle.Config") -> None:
        from transformers import LxmertConfig
        from transformers.models.lxmert.modeling_lxmert import LxmertXLayer
        d = self.width = self.text_tower.dim
        xcfg = LxmertConfig(hidden_size=d, num_attention_heads=attention_heads(d, cfg.heads), intermediate_size=4 * d,
                            hidden_act="gelu", hidden_dropout_prob=cfg.dropout,
                            attention_probs_dropout_prob=cfg.dropout, l_layers=0, r_layers=0, x_layers=cfg.layers)
        self.visual_embed = VisualEmbedding(self.image_tower.dim, d, cfg.dropout)
        self.cross_layers = nn.ModuleList([LxmertXLayer(xcfg) for _ in range(cfg.layers)])
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        _init_bert_style(self.cross_layers)
        _init_bert_style(self.pooler)

    def _build_pretrained(self, path: str) -> None:
        from transformers import LxmertModel
        with quiet_transformers():
            self.lxmert = LxmertModel.from_pretrained(path)
        lc = self.lxmert.config
        self.width = int(lc.hidden_size)
        if int(lc.visual_pos_dim) != 4:
            raise ValueError(f"{path}: visual_pos_dim is {lc.visual_pos_dim}; mmpost's region files give 4-d boxes "
                             "(x0, y0, x1, y1)")
        vocab = _vocab_size(self.text_tower)
        if vocab is not None and vocab > int(lc.vocab_size):
            raise ValueError(f"the text tower's tokenizer has {vocab} ids but the LXMERT checkpoint {path} knows "
                             f"{lc.vocab_size}: use a tokenizer with LXMERT's vocabulary (BERT uncased), e.g. "
                             "text_encoder.name=hf-text text_encoder.path=bert-base-uncased "
                             "text_encoder.trainable=false")
        # stands in for a post without region features: one region, the whole image
        self.no_region = nn.Parameter(0.02 * torch.randn(int(lc.visual_feat_dim)))

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters loaded from an HF checkpoint (empty offline). They are part of the model, not of a tower,
        so they train at ``train.lr`` unless the optimizer puts them at ``train.encoder_lr``."""
        return [] if self.lxmert is None else list(self.lxmert.parameters())

    # ---- encoding ---------------------------------------------------------------------------------------------

    def encode(self, batch: Batch) -> Encoded:
        """Each side alone, up to the cross layers."""
        return self._encode_pretrained(batch) if self.lxmert is not None else self._encode_offline(batch)

    def _encode_offline(self, batch: Batch) -> Encoded:
        text = self.text_output(batch)                                     # tokens [B, L, D]
        tokens = self.image_tokens(batch)                                  # [B, T, Dv]; no_image where absent
        boxes = grid_boxes(tokens.shape[1], device=tokens.device, dtype=tokens.dtype)
        vis = self.visual_embed(tokens, boxes.expand(tokens.shape[0], -1, -1))
        vis_mask = torch.ones(vis.shape[:2], dtype=torch.bool, device=vis.device)
        return Encoded(text.tokens, text.mask, vis, vis_mask, text.pooled)

    def _encode_pretrained(self, batch: Batch) -> Encoded:
        lx = self.lxmert
        if batch.text_inputs is None:
            raise ValueError("lxmert reads text tokens: the batch must carry text inputs")
        ids = batch.text_inputs["input_ids"]
        if int(ids.max()) >= lx.config.vocab_size:
            raise ValueError(f"token id {int(ids.max())} is outside LXMERT's vocabulary ({lx.config.vocab_size}): "
                             "the text tower's tokenizer must be LXMERT's (BERT uncased)")
        mask = batch.text_inputs.get("attention_mask", torch.ones_like(ids)).bool()
        types = batch.text_inputs.get("token_type_ids")
        lang = lx.embeddings(ids, types if types is not None else torch.zeros_like(ids))
        ext = additive_mask(mask, lang.dtype)
        for layer in lx.encoder.layer:
            lang = layer(lang, ext)[0]
        feats, boxes, vis_mask = self._regions(batch)
        vis = lx.encoder.visn_fc(feats.to(lang.dtype), boxes.to(lang.dtype))
        vext = additive_mask(vis_mask, vis.dtype)
        for layer in lx.encoder.r_layers:
            vis = layer(vis, vext)[0]
        return Encoded(lang, mask, vis, vis_mask, masked_mean(lang, mask))

    def _regions(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """The batch's regions, with the learned "no image" region for posts that have none."""
        if batch.regions is None or batch.region_boxes is None or batch.region_mask is None:
            raise ValueError("lxmert with model.path reads region features: the batch carries none "
                             "(set model.region_features)")
        feats, boxes, mask = batch.regions, batch.region_boxes, batch.region_mask.bool()
        dim = self.no_region.numel()
        has = batch.has_image
        if feats.shape[-1] != dim:
            if bool(has.any()):
                raise ValueError(f"region features are {feats.shape[-1]}-d but the LXMERT checkpoint expects "
                                 f"visual_feat_dim={dim}")
            feats = feats.new_zeros(*feats.shape[:2], dim)                  # no post has regions (width unknown)
        r = feats.shape[1]
        stand_feats = torch.cat([self.no_region[None].to(feats.dtype), feats.new_zeros(r - 1, dim)])
        stand_boxes = torch.cat([boxes.new_tensor([[0.0, 0.0, 1.0, 1.0]]), boxes.new_zeros(r - 1, 4)])
        stand_mask = torch.arange(r, device=mask.device) == 0
        return (torch.where(has[:, None, None], feats, stand_feats),
                torch.where(has[:, None, None], boxes, stand_boxes),
                torch.where(has[:, None], mask, stand_mask))

    # ---- fusion -----------------------------------------------------------------------------------------------

    def cross(self, lang: Tensor, lang_mask: Tensor, vis: Tensor, vis_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The cross-modality layers: ([B, L, D], [B, R, D]) → the same, each side having read the other."""
        layers = self.lxmert.encoder.x_layers if self.lxmert is not None else self.cross_layers
        lext, vext = additive_mask(lang_mask, lang.dtype), additive_mask(vis_mask, vis.dtype)
        for layer in layers:
            lang, vis = layer(lang, lext, vis, vext)[:2]
        return lang, vis

    def pool(self, lang: Tensor) -> Tensor:
        """The language side's first token after the cross layers → Linear + Tanh."""
        return self.lxmert.pooler(lang) if self.lxmert is not None else self.pooler(lang[:, 0])

    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> ModelOutput:
        enc = self.encode(batch)
        lang, vis = self.cross(enc.lang, enc.lang_mask, enc.vis, enc.vis_mask)
        fused = self.pool(lang)
        if self.config.contrast == "fused":
            t = self.text_proj(masked_mean(lang, enc.lang_mask))
            v = self.image_proj(masked_mean(vis, enc.vis_mask))
        else:
            t = self.text_proj(enc.text_pooled)
            v = self.image_proj(masked_mean(enc.vis, enc.vis_mask))
        out = ModelOutput.of_tasks(task_logits(self.classifier(self.dropout(fused)), self.tasks), text_embeds=t,
                                   image_embeds=v, fused=fused, has_image=batch.has_image)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            ti, ii = pairs.text_index, pairs.image_index
            if ti.numel() == 0:                                   # no post with an image in the batch
                out.itm_logits = self.itm_head(fused[:0])
            else:
                pair_lang, _ = self.cross(enc.lang[ti], enc.lang_mask[ti], enc.vis[ii], enc.vis_mask[ii])
                out.itm_logits = self.itm_head(self.pool(pair_lang))
            out.itm_labels = pairs.labels
        return out


def _vocab_size(tower: TextTower) -> int | None:
    """How many ids the text tower's tokenizer can produce, where it says."""
    tokenizer = getattr(tower, "tokenizer", None)
    if tokenizer is not None:
        try:
            return len(tokenizer)
        except TypeError:
            return getattr(tokenizer, "vocab_size", None)
    vocab = getattr(tower, "vocab", None)
    return vocab if isinstance(vocab, int) else None
