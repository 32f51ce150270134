"""``sequence-attention`` fusion: one transformer over a post's text tokens and image tokens together (CMA-CLIP's
sequence-wise attention).

Shapes: B posts, Lt text tokens, T image tokens, H the width.

text [B, Lt, H] with its mask [B, Lt], image [B, T, H] → the joint sequence ``[text + m_t; image + m_v]`` (a learned
modality embedding per side; the tokens carry their towers' own positions) → ``layers`` pre-norm transformer encoder
layers (self-attention over both modalities, padding masked) → LayerNorm → [B, Lt + T, H]. The text part comes first,
so the image part starts at ``Lt``. ``layers: 0`` leaves the tokens as they came (the ablation without it).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpost.registry import register


@register("fusion", "sequence-attention")
class SequenceAttentionFusion(nn.Module):
    def __init__(self, hidden: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.modality = nn.Parameter(0.02 * torch.randn(2, hidden))
        self.layers = layers
        if layers > 0:
            layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=4 * hidden, dropout=dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(hidden)

    def forward(self, text: Tensor, text_mask: Tensor, image: Tensor) -> Tensor:
        x = torch.cat([text + self.modality[0].to(text.dtype), image + self.modality[1].to(image.dtype)], dim=1)
        if self.layers == 0:
            return x
        mask = torch.cat([text_mask.bool(), text_mask.new_ones(image.shape[:2], dtype=torch.bool)], dim=1)
        return self.norm(self.encoder(x, src_key_padding_mask=~mask))
