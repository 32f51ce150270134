"""CMA-CLIP: cross-modality attention over CLIP-like towers (the ITRp paper's CMA-CLIP baseline, after Liu et al.
2021), in two kinds that work in turn — sequence-wise attention, then modality-wise attention.

Shapes: B posts, Lt text tokens, T image tokens, Dt / Dv tower widths, H = ``hidden``, E = ``proj_dim``.

* inputs: the text tower's tokens with their mask and the image tower's tokens (cached when it is frozen). With
  ``hf-clip`` towers position 0 of each is the checkpoint's pooled vector (the projected EOS / CLS); other image
  towers get the mean of their tokens put in front, so position 0 of each side is always its summary.
* in: ``LN → Linear(D→H)`` per side.
* sequence-wise attention (``layers`` transformer layers, the ``sequence-attention`` fusion): every text token and
  every image token attend to each other in one sequence, so each side's summary ``h_t`` (text position 0) and
  ``h_v`` (image position 0) is read in the light of the other modality.
* modality-wise attention: per-post weights ``α = softmax(score([h_t; h_v]))`` [B, 2] (text, image; α_image = 0 for a
  post without an image; the score's last layer starts at zero, so equal weights at first);
  ``fused = α_t h_t + α_v h_v``; ``dropout → Linear(H→classes)``. The weights come back in every output
  (``output.modality_weights``) and from :meth:`CMAClip.modality_weights`.
* ITC (``contrast``): ``unimodal`` (default) contrasts ``P_t(text summary in)`` and ``P_v(image summary in)``, the
  inputs of the sequence-wise attention (so ITC shapes what it reads, even with frozen towers); ``fused`` contrasts
  ``P_t h_t`` and ``P_v h_v``. ``objectives.itc.space=checkpoint`` contrasts the towers' pooled vectors instead.
* ITM: each (text of post a, image of post b) pair runs through both attentions; a 2-way head reads its fused vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.models.base import FamilyConfig, MultimodalModel, eval_modality_weights
from mmpost.models.checks import CONTRASTS, check_at_least, check_choice, check_widths
from mmpost.models.fusions.gated_attention import modality_weights, weight_score
from mmpost.models.fusions.sequence_attention import SequenceAttentionFusion
from mmpost.models.head_count import attention_heads
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.registry import register


@dataclass
class CMAClipOutput(ModelOutput):
    """:class:`ModelOutput` plus ``modality_weights`` [B, 2]: the weight of (text, image) for each post."""

    modality_weights: Tensor | None = None


@register("model", "cma-clip")
class CMAClip(MultimodalModel):
    text_input = "tokens"
    image_input = "tokens"

    @dataclass
    class Config(FamilyConfig):
        hidden: int = 512            # width H of both attentions
        proj_dim: int = 512          # ITC projection size E
        layers: int = 1              # sequence-wise attention layers (0: none, the modality-wise attention alone)
        heads: int = 8               # their heads (the largest divisor of hidden not above it)
        dropout: float = 0.05        # in the attention layers and before the classifier
        contrast: str = "unimodal"   # ITC vectors: unimodal (before the attention) | fused (after it)

        def __post_init__(self) -> None:
            check_widths(self, ("hidden", "proj_dim"))
            check_at_least("layers", self.layers, 0)
            check_at_least("heads", self.heads, 1)
            check_choice("contrast", self.contrast, CONTRASTS)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "CMAClip.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        self.config = cfg
        h = cfg.hidden
        self.text_in = nn.Sequential(nn.LayerNorm(text_tower.dim), nn.Linear(text_tower.dim, h))
        self.image_in = nn.Sequential(nn.LayerNorm(image_tower.dim), nn.Linear(image_tower.dim, h))
        self.sequence = SequenceAttentionFusion(h, attention_heads(h, cfg.heads), cfg.layers, cfg.dropout)
        self.score = weight_score(h, h)
        self.dropout = nn.Dropout(cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(h, num_classes)
        self.text_proj = nn.Linear(h, cfg.proj_dim)
        self.image_proj = nn.Linear(h, cfg.proj_dim)
        self.itm_head = nn.Linear(h, 2)

    def image_sequence(self, batch: Batch) -> Tensor:
        """[B, 1 + T', Dv]: the image tokens with their summary at position 0."""
        image = self.image_tokens(batch)
        if self.image_tower.pooled_first:
            return image
        return torch.cat([image.mean(dim=1, keepdim=True), image], dim=1)

    def attend(self, text: Tensor, text_mask: Tensor, image: Tensor, has_image: Tensor) -> tuple[Tensor, ...]:
        """text [N, Lt, H] (mask [N, Lt]), image [N, T, H] (projected) → (fused [N, H], weights [N, 2], h_t, h_v)."""
        joint = self.sequence(text, text_mask, image)
        h_t, h_v = joint[:, 0], joint[:, text.shape[1]]
        w = modality_weights(h_t, h_v, has_image, self.score)
        return w[:, :1] * h_t + w[:, 1:] * h_v, w, h_t, h_v

    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> CMAClipOutput:
        text = self.text_output(batch)
        image_raw = self.image_sequence(batch)
        t_in, v_in = self.text_in(text.tokens), self.image_in(image_raw)
        fused, w, h_t, h_v = self.attend(t_in, text.mask, v_in, batch.has_image)
        if self.config.contrast == "fused":
            t, v = self.text_proj(h_t), self.image_proj(h_v)
        else:
            t, v = self.text_proj(t_in[:, 0]), self.image_proj(v_in[:, 0])
        out = CMAClipOutput.of_tasks(task_logits(self.classifier(self.dropout(fused)), self.tasks), text_embeds=t,
                                     image_embeds=v, fused=fused, has_image=batch.has_image, modality_weights=w,
                                     tower_text=text.pooled,
                                     tower_image=image_raw[:, 0] if self.image_tower.pooled_first else None)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            ti, ii = pairs.text_index, pairs.image_index
            pair_fused = self.attend(t_in[ti], text.mask[ti], v_in[ii], batch.has_image[ii])[0]
            out.itm_logits = self.itm_head(pair_fused)
            out.itm_labels = pairs.labels
        return out

    def modality_weights(self, batch: Batch) -> Tensor:
        """[B, 2]: how much each post's prediction rests on its text and on its image (eval mode)."""
        return eval_modality_weights(self, batch)
