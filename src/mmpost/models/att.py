"""Ber-ViT-Att: text tokens attend over image tokens (dual-stream, cross-attention fusion).

Image tokens (EfficientNet-Lite0: the 7×7 grid) are projected to the text width d; each text token queries
them with multi-head attention. ``concat(text CLS, attended first token) → Linear(2d→d) → ReLU → dropout``
is the fused vector, and ``Linear(d→classes)`` classifies it. ITC contrasts projections of the text CLS and
of the mean image token; ITM runs the same attention on (text of post a, image of post b) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.models.base import FamilyConfig, MultimodalModel
from mmpost.models.checks import check_at_least, check_widths
from mmpost.models.fusions.cross_attention import CrossAttentionFusion
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.legacy_keys import rename_old_keys
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.registry import register

OLD_KEYS = {"attention.": "fusion.attention.", "fusion.0.": "fusion.mlp.0."}   # runs saved before the fusion module


@register("model", "att")
class BerViTAtt(MultimodalModel):
    text_input = "first-token"
    image_input = "tokens"

    @dataclass
    class Config(FamilyConfig):
        proj_dim: int = 512      # ITC projection size
        dropout: float = 0.05    # in the cross-attention and after the fusion's ReLU
        heads: int = 8           # cross-attention heads (the largest divisor of the text width not above it)

        def __post_init__(self) -> None:
            check_widths(self)
            check_at_least("heads", self.heads, 1)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "BerViTAtt.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        self.config = cfg
        d, dv = text_tower.dim, image_tower.dim
        self.image_in = nn.Sequential(nn.LayerNorm(dv), nn.Linear(dv, d))
        self.fusion = CrossAttentionFusion(d, cfg.heads, cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(d, num_classes)
        self.text_proj = nn.Linear(d, cfg.proj_dim)
        self.image_proj = nn.Linear(dv, cfg.proj_dim)
        self.itm_head = nn.Linear(d, 2)
        rename_old_keys(self, OLD_KEYS)

    def fuse(self, first: Tensor, image_tokens: Tensor) -> Tensor:
        """first [B, d] (the first text token), image_tokens [B, T, d] (projected) → fused [B, d]. Only the
        first text token's attention output is read, and queries do not interact, so it is the only query:
        the rest of the text never needs to reach the model, and a frozen text tower's first token is cached."""
        return self.fusion(first, image_tokens)

    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> ModelOutput:
        first = self.first_text_token(batch)                   # [B, d]
        image = self.image_tokens(batch)                       # [B, T, Dv]
        image_d = self.image_in(image)
        fused = self.fuse(first, image_d)
        t, v = self.text_proj(first), self.image_proj(image.mean(dim=1))
        out = ModelOutput.of_tasks(task_logits(self.classifier(fused), self.tasks), text_embeds=t, image_embeds=v,
                                   fused=fused, has_image=batch.has_image,   # hf-clip: pooled vectors in front
                                   tower_text=first if self.text_tower.pooled_first else None,
                                   tower_image=image[:, 0] if self.image_tower.pooled_first else None)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            ti, ii = pairs.text_index, pairs.image_index
            out.itm_logits = self.itm_head(self.fuse(first[ti], image_d[ii]))
            out.itm_labels = pairs.labels
        return out
