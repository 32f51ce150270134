"""Fusions: modules that join a post's text and image representations into one vector, registered under the
``fusion`` kind and shared by the model families.

- ``concat``: two pooled vectors [B, E] each → Linear(2E→H) → ReLU → dropout → [B, H] (Ber-ViT-Conc);
- ``cross-attention``: a query vector [B, D] attends over image tokens [B, T, D] → [B, D] (Ber-ViT-Att);
- ``gated-attention``: two pooled vectors [B, E] each → learned per-post modality weights [B, 2] and their
  weighted sum [B, H] (the emoticon family).
"""
from mmpost.models.fusions.concat import ConcatFusion
from mmpost.models.fusions.cross_attention import CrossAttentionFusion
from mmpost.models.fusions.gated_attention import GatedAttentionFusion

__all__ = ["ConcatFusion", "CrossAttentionFusion", "GatedAttentionFusion"]
