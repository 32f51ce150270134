"""Ber-ViT-Conc: pooled text ⊕ pooled image → MLP → classes (dual-stream, late fusion).

Each pooled vector is layer-normed and projected (``text_embeds = P_t·LN(t)``, ``image_embeds = P_v·LN(v)``);
the fused vector is ``dropout(ReLU(W [text_embeds; image_embeds]))`` (``fusion: concat``), or with
``fusion: gated-attention`` ``dropout(ReLU(α_t W_t t + α_v W_v v + b))`` with learned per-post weights α.
ITC contrasts the same projected vectors the fusion reads, so it shapes the classifier's input even when both
towers are frozen. ITM scores the fused vector of (text of post a, image of post b) with a 2-way head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.models.base import FamilyConfig, MultimodalModel
from mmpost.models.checks import check_choice, check_widths
from mmpost.models.fusions.concat import ConcatFusion
from mmpost.models.fusions.gated_attention import GatedAttentionFusion
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.registry import register

POOLED_FUSIONS = ("concat", "gated-attention")


class GatedPooledFusion(nn.Module):
    """``gated-attention`` over Conc's two projected vectors, then ReLU and dropout as the concat fusion has:
    text, image [B, E], has_image [B] → [B, H]."""

    def __init__(self, embed_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gate = GatedAttentionFusion(embed_dim, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))

    def forward(self, text: Tensor, image: Tensor, has_image: Tensor) -> Tensor:
        return self.out(self.gate(text, image, has_image)[0])


def pooled_fusion(name: str, embed_dim: int, hidden: int, dropout: float) -> nn.Module:
    return ConcatFusion(embed_dim, hidden, dropout) if name == "concat" else GatedPooledFusion(embed_dim, hidden,
                                                                                               dropout)


@register("model", "conc")
class BerViTConc(MultimodalModel):
    @dataclass
    class Config(FamilyConfig):
        hidden: int = 512        # fused vector size H (the classifier's input)
        proj_dim: int = 512      # ITC projection size E (each side's projected vector, the fusion's input)
        dropout: float = 0.05    # after the fusion's ReLU
        fusion: str = "concat"   # a registered fusion of two pooled vectors: concat | gated-attention

        def __post_init__(self) -> None:
            check_widths(self, ("hidden", "proj_dim"))
            check_choice("fusion", self.fusion, POOLED_FUSIONS)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "BerViTConc.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        self.config = cfg
        dt, dv = text_tower.dim, image_tower.dim
        self.text_norm = nn.LayerNorm(dt)
        self.image_norm = nn.LayerNorm(dv)
        self.text_proj = nn.Linear(dt, cfg.proj_dim)
        self.image_proj = nn.Linear(dv, cfg.proj_dim)
        self.fusion = pooled_fusion(cfg.fusion, cfg.proj_dim, cfg.hidden, cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(cfg.hidden, num_classes)
        self.itm_head = nn.Linear(cfg.hidden, 2)

    def fuse(self, text_embeds: Tensor, image_embeds: Tensor, has_image: Tensor | None = None) -> Tensor:
        """text_embeds, image_embeds [B, proj_dim], has_image [B] (default: all) → fused [B, hidden]."""
        if isinstance(self.fusion, ConcatFusion):
            return self.fusion(text_embeds, image_embeds)
        if has_image is None:
            has_image = torch.ones(len(text_embeds), dtype=torch.bool, device=text_embeds.device)
        return self.fusion(text_embeds, image_embeds, has_image)

    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> ModelOutput:
        pooled_text, pooled_image = self.pooled_text(batch), self.pooled_image(batch)
        t = self.text_proj(self.text_norm(pooled_text))
        v = self.image_proj(self.image_norm(pooled_image))
        fused = self.fuse(t, v, batch.has_image)
        out = ModelOutput.of_tasks(task_logits(self.classifier(fused), self.tasks), text_embeds=t, image_embeds=v,
                                   fused=fused, has_image=batch.has_image, tower_text=pooled_text,
                                   tower_image=pooled_image)
        if itm is not None:
            itm_pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            pair_fused = self.fuse(t[itm_pairs.text_index], v[itm_pairs.image_index])
            out.itm_logits = self.itm_head(pair_fused)
            out.itm_labels = itm_pairs.labels
        return out
