"""Contrastive emoticon predictor (the seed paper 2408.02571): two transformer branches, a shared space aligned by
ITC, learned attention fusion that weighs each modality per post, and a classifier over emoticon classes.

Shapes: B posts, T image tokens, Dt / Dv tower widths, H = ``hidden``, E = ``proj_dim``, C classes.

* text branch: the text tower (a transformer: MiniLM or any HF encoder, fine-tuned, or frozen with its pooled
  vector cached) → LayerNorm → Linear(Dt→H) → GELU → dropout: ``h_t`` [B, H].
* image branch: the image tower's patch/grid tokens (EfficientNet-Lite0: the 7×7 grid, 49 tokens; cached when the
  tower is frozen) → LayerNorm → Linear(Dv→H), a learned [CLS] token in front, learned positions, ``layers``
  pre-norm transformer encoder layers → LayerNorm → the [CLS] output: ``h_v`` [B, H].
* shared space: ``text_embeds = P_t h_t`` and ``image_embeds = P_v h_v`` [B, E]; the ITC objective
  (:mod:`mmpost.objectives.itc`) contrasts them when ``objectives.itc`` is on, so "without the contrastive term"
  is that switch off, nothing in the model.
* fusion ``attention``: ``z_t = W_t text_embeds``, ``z_v = W_v image_embeds`` [B, H]; per-post modality weights
  ``α = softmax(score([text_embeds; image_embeds]))`` [B, 2] (text, image), with ``α_image = 0`` for a post
  without an image; ``fused = n·(α_t z_t + α_v z_v) + b`` with n the modalities present. The score's last layer
  starts at zero, so training starts from equal weights — which is exactly the ``concat`` fusion,
  ``fused = W [text_embeds; image_embeds] + b = z_t + z_v + b``: the two differ only by the learned weights.
  Both are the registered ``gated-attention`` fusion (learned weights, or equal ones), computed by its
  :func:`~mmpost.models.fusions.gated_attention.gated_fusion` on this model's own layers (``text_in``,
  ``image_in``, ``fusion_bias``, ``score``: built where they always were, so weights and saved runs are unchanged).
* classifier: ReLU → dropout → Linear(H→C) (one Linear per task with several tasks, :mod:`mmpost.models.heads`).

Ablations: ``fusion="concat"``; ``modalities="text"`` or ``"image"`` builds one branch only (its weight is 1; the
output reports no image-text pairs, so ITC and ITM have nothing to contrast). The weights are inspectable:
``output.modality_weights`` of every forward pass, or :meth:`DualBranchEmoticon.modality_weights`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.models.base import FamilyConfig, MultimodalModel, eval_modality_weights
from mmpost.models.checks import check_at_least, check_choice, check_widths
from mmpost.models.fusions.gated_attention import gated_fusion, weight_score
from mmpost.models.head_count import attention_heads
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.registry import register

FUSIONS = ("attention", "concat")
MODALITIES = ("both", "text", "image")
MAX_IMAGE_TOKENS = 1024      # learned positions; EfficientNet-Lite0 gives 49, a ViT-B/16 at 224 px 196 (+ CLS)


@dataclass
class EmoticonOutput(ModelOutput):
    """:class:`ModelOutput` plus ``modality_weights`` [B, 2]: the weight of (text, image) for each post."""

    modality_weights: Tensor | None = None


class ImageBranch(nn.Module):
    """Image tokens [B, T, Dv] → a small transformer with a [CLS] token → [B, H]."""

    def __init__(self, in_dim: int, hidden: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden))
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, hidden))
        self.positions = nn.Parameter(0.02 * torch.randn(1, MAX_IMAGE_TOKENS + 1, hidden))
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, tokens: Tensor) -> Tensor:
        b, t, _ = tokens.shape
        if t > MAX_IMAGE_TOKENS:
            raise ValueError(f"the image tower gives {t} tokens; the emoticon image branch takes at most "
                             f"{MAX_IMAGE_TOKENS}")
        x = torch.cat([self.cls.expand(b, -1, -1), self.inp(tokens)], dim=1) + self.positions[:, : t + 1]
        return self.norm(self.encoder(x)[:, 0])


@register("model", "emoticon")
class DualBranchEmoticon(MultimodalModel):
    text_input = "pooled"
    image_input = "tokens"

    @dataclass
    class Config(FamilyConfig):
        hidden: int = 512            # branch width H (image transformer, fusion)
        proj_dim: int = 512          # the shared (ITC) space E
        dropout: float = 0.05        # text branch, image transformer, before the classifier
        heads: int = 8               # image transformer heads (the largest divisor of hidden not above it)
        layers: int = 2              # image transformer layers
        fusion: str = "attention"    # attention (learned per-post modality weights) | concat (equal weights)
        modalities: str = "both"     # both | text | image (one-branch baselines)

        def __post_init__(self) -> None:
            check_widths(self, ("hidden", "proj_dim"))
            check_at_least("heads", self.heads, 1)
            check_at_least("layers", self.layers, 1)
            check_choice("fusion", self.fusion, FUSIONS)
            check_choice("modalities", self.modalities, MODALITIES)

    @classmethod
    def inputs(cls, config) -> tuple[str, str]:
        """A text-only model reads no image tokens (the pooled vector is cheaper and unused)."""
        return ("pooled", "pooled") if getattr(config, "modalities", "both") == "text" else ("pooled", "tokens")

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "DualBranchEmoticon.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        self.config = cfg
        h, e = cfg.hidden, cfg.proj_dim
        self.use_text = cfg.modalities in ("both", "text")
        self.use_image = cfg.modalities in ("both", "image")
        if self.use_text:
            self.text_branch = nn.Sequential(nn.LayerNorm(text_tower.dim), nn.Linear(text_tower.dim, h), nn.GELU(),
                                             nn.Dropout(cfg.dropout))
            self.text_proj = nn.Linear(h, e)
            self.text_in = nn.Linear(e, h, bias=False)
        if self.use_image:
            heads = attention_heads(h, cfg.heads)
            self.image_branch = ImageBranch(image_tower.dim, h, heads, cfg.layers, cfg.dropout)
            self.image_proj = nn.Linear(h, e)
            self.image_in = nn.Linear(e, h, bias=False)
            self.no_image_embed = nn.Parameter(0.02 * torch.randn(e))   # a post without an image, in the shared space
        self.fusion_bias = nn.Parameter(torch.zeros(h))
        learned = cfg.fusion == "attention" and self.use_text and self.use_image
        self.score = weight_score(e, h) if learned else None   # the gated-attention fusion's modality scores
        self.tasks = list(task_sizes(num_classes))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(cfg.dropout), build_classifier(h, num_classes))
        self.itm_head = nn.Sequential(nn.ReLU(), nn.Linear(h, 2))

    # ------------------------------------------------------------------------------------------ parts
    def embed_text(self, batch: Batch) -> Tensor:
        """[B, E]: the text branch in the shared space."""
        return self.text_proj(self.text_branch(self.pooled_text(batch)))

    def embed_image(self, batch: Batch) -> Tensor:
        """[B, E]: the image branch in the shared space; a post without an image gets the learned stand-in."""
        v = self.image_proj(self.image_branch(self.image_tokens(batch)))
        return torch.where(batch.has_image[:, None], v, self.no_image_embed.to(v.dtype).expand_as(v))

    def fuse(self, t: Tensor, v: Tensor, has_image: Tensor) -> tuple[Tensor, Tensor]:
        """text_embeds, image_embeds [B, E], has_image [B] → (fused [B, H], modality weights [B, 2]): the
        ``gated-attention`` fusion (:mod:`mmpost.models.fusions.gated_attention`) on this model's own layers —
        learned weights for ``attention``, equal weights (a linear layer over the concatenation) for ``concat``."""
        return gated_fusion(t, v, has_image, self.text_in, self.image_in, self.fusion_bias, self.score)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> EmoticonOutput:
        n = len(batch)
        if not (self.use_text and self.use_image):
            if itm is not None:
                raise ValueError(f"ITM needs both branches; this model is {self.config.modalities}-only")
            return self._single(batch, n)
        t, v = self.embed_text(batch), self.embed_image(batch)
        fused, w = self.fuse(t, v, batch.has_image)
        out = EmoticonOutput.of_tasks(task_logits(self.head(fused), self.tasks), text_embeds=t, image_embeds=v,
                                      fused=fused, has_image=batch.has_image, modality_weights=w)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            ti, ii = pairs.text_index, pairs.image_index
            pair_fused, _ = self.fuse(t[ti], v[ii], batch.has_image[ii])
            out.itm_logits = self.itm_head(pair_fused)
            out.itm_labels = pairs.labels
        return out

    def _single(self, batch: Batch, n: int) -> EmoticonOutput:
        """One branch: its embedding is fused alone (weight 1); the other side is zeros and no post is a pair."""
        if self.use_text:
            t = self.embed_text(batch)
            z, v, w = self.text_in(t), torch.zeros_like(t), torch.tensor([1.0, 0.0])
        else:
            v = self.embed_image(batch)
            z, t, w = self.image_in(v), torch.zeros_like(v), torch.tensor([0.0, 1.0])
        fused = z + self.fusion_bias
        no_pairs = torch.zeros(n, dtype=torch.bool, device=fused.device)
        return EmoticonOutput.of_tasks(task_logits(self.head(fused), self.tasks), text_embeds=t, image_embeds=v,
                                       fused=fused, has_image=no_pairs, modality_weights=w.to(fused).expand(n, 2))

    def modality_weights(self, batch: Batch) -> Tensor:
        """[B, 2]: how much each post's prediction rests on its text and on its image."""
        return eval_modality_weights(self, batch)
