"""ViLT-style single stream (Kim et al. 2021): one transformer reads ``[text tokens; image tokens]`` together.

Layout of one joint sequence (text as its tokenizer gives it, capped at ``max_text_tokens``, default 40 as in
the seed paper)::

    [CLS] w_1 .. w_n [SEP] [PAD]..   v_1 .. v_T
    |--- modality type 0 --------|   |- type 1 -|

Every position gets a modality-type embedding (text 0, image 1) on top of its own embedding; the attention
mask covers both parts, so every text token sees every image token and back (early fusion in all layers).
The fused vector is the joint pass's first position (``[CLS]``) through a pooler (``tanh(W·h)``);
``dropout → Linear(d → classes)`` classifies it.

**The text cap.** A text longer than the cap keeps its first ``cap − 1`` tokens and ends in the tokenizer's
separator, exactly what the tokenizer itself gives with ``max_length=cap`` (right padding assumed, as for
BERT). The text tower's ``max_length`` only bounds what the batch carries; the model cuts the rest.

Two ways to get the transformer:

1. **Offline (default, ``model.path`` unset).** The transformer is the text tower's own (``text_tower.model``,
   BERT-like: MiniLM, BERT, RoBERTa), run on ``inputs_embeds``. Text positions use its word-embedding table;
   image tokens are the image tower's token grid (cached EfficientNet-Lite0: 49 tokens of 1,280-d; every token
   of a post without an image is the learned "no image" vector), ``v_t = W·LN(x_t) + p_t`` with a learned
   image position ``p_t``. The transformer's embedding layer then adds its own absolute positions — text
   ``0 .. n``, image ``cap .. cap + T − 1`` whatever the text length, so a post's output never depends on
   the padding of its batch — token type 0, and its LayerNorm. ``cap + T`` must fit
   ``max_position_embeddings`` (MiniLM: 512; 40 + 49 = 89). Frozen or fine-tuned text tower alike: a frozen
   transformer still passes gradients back to the image projection and the type embeddings.
   Reads: text tokens, cached image tokens.
2. **Hugging Face ``ViltModel``** (``model.path``: a hub name such as ``dandelin/vilt-b32-mlm`` or a folder):
   its own word, position, patch and modality embeddings, encoder and (pretrained) pooler; it reads pixels
   (``batch.pixels`` at ``image_encoder.image_size`` — set it to ViLT's own, 384 for the dandelin checkpoints;
   other sizes interpolate its patch positions). Pixels arrive normalised by the image tower's mean/std and
   are re-normalised to ViLT's (its ``preprocessor_config.json``, else 0.5/0.5). The image tower itself is
   not run. The batch's token ids come from the *text tower's* tokenizer, so the text tower must share
   ViLT's vocabulary: MiniLM and ``bert-base-uncased`` do (the dandelin checkpoints use that vocabulary), or
   ``text_encoder.name=hf-text text_encoder.path=<a BERT with the same vocab>``; the vocabularies are compared
   at build time (against ViLT's tokenizer where its folder has one, else the id range against its
   ``vocab_size``) and a mismatch is an error. The text tower is never run on this path. A post without an
   image has every image position (image ``[CLS]`` and patches) masked out of the attention, so it is
   predicted from its text alone. The ViLT weights are listed by ``pretrained_parameters()``, so the
   optimizer trains them at ``train.encoder_lr`` and only the new heads at ``train.lr``.

ITC (``contrast``), both sides projected to ``proj_dim`` (unnormalised):

- ``unimodal`` (default): ``text_embeds = P_t·mean(last hidden states of the text positions)`` of a
  *text-only* pass (the same text embeddings, type 0 included, with no image tokens); ``image_embeds`` —
  offline: ``P_v·mean_t(W·LN(x_t))``, the mean projected image token before fusion (so ITC trains the same
  projection the fusion reads); ViLT: ``P_v·mean(last hidden states of the image positions)`` of an
  *image-only* pass (the text masked out). The unimodal passes run on every call (the model cannot know
  whether ITC is on): one extra text pass offline, one text and one image pass with ViLT.
- ``fused``: from the joint pass alone: ``text_embeds = P_t·mean(text positions)``,
  ``image_embeds = P_v·mean(image positions)`` of the last hidden states.

ITM: the sampler (fed the ITC embeddings) picks pairs (text of post a, image of post b); each made-up pair is
built as a joint sequence from post a's text embeddings and post b's image embeddings and run through the
transformer; a 2-way ``itm_head`` reads its pooled ``[CLS]`` (after dropout). Pairs of a post with itself
reuse the main pass, so only the negatives cost a transformer pass.
"""
from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.models.base import FamilyConfig, MultimodalModel
from mmpost.models.checks import CONTRASTS, check_at_least, check_choice, check_widths
from mmpost.models.heads import NumClasses, build_classifier, task_logits, task_sizes
from mmpost.models.output import ItmPairs, ItmSampler, ModelOutput
from mmpost.models.pooling import masked_mean
from mmpost.registry import register

log = logging.getLogger(__name__)

TEXT_TOKENS = 40            # the seed paper's text cap
VILT_MEAN_STD = 0.5         # ViLT's pixel normalisation when its folder does not say


def cap_text(ids: Tensor, mask: Tensor, cap: int, sep_id: int | None) -> tuple[Tensor, Tensor]:
    """ids, mask [B, L] → [B, min(L, cap)]; a row longer than ``cap`` keeps its first cap − 1 tokens and ends
    in ``sep_id`` (what the tokenizer gives with ``max_length=cap``)."""
    if ids.shape[1] <= cap:
        return ids, mask
    too_long = mask.sum(1) > cap
    ids, mask = ids[:, :cap].clone(), mask[:, :cap]
    if sep_id is not None:
        ids[too_long, cap - 1] = sep_id
    return ids, mask


@dataclass
class Part:
    """One side of a joint sequence: embeddings [B, N, d] and attention mask [B, N] (long, 1 = real)."""
    embeds: Tensor
    mask: Tensor

    def __getitem__(self, rows: Tensor) -> "Part":
        return Part(self.embeds[rows], self.mask[rows])

    @staticmethod
    def empty(like: Tensor, n: int = 1) -> "Part":
        """n fully masked positions (a side that takes no part in a unimodal pass)."""
        b, d = like.shape[0], like.shape[-1]
        return Part(like.new_zeros(b, n, d), torch.zeros(b, n, dtype=torch.long, device=like.device))


class OfflineStream(nn.Module):
    """The text tower's transformer over [text; projected image tokens] (init path 1)."""

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, cap: int) -> None:
        super().__init__()
        model = getattr(text_tower, "model", None)
        if model is None or not hasattr(model, "get_input_embeddings"):
            raise TypeError(
                f"vilt runs the joint sequence through the text tower's transformer, so it needs a BERT-like "
                f"Hugging Face text encoder (text_encoder.name=minilm or hf-text), or model.path set to a "
                f"ViltModel; {type(text_tower).__name__} has no HF model (.model with get_input_embeddings)")
        accepts = inspect.signature(model.forward).parameters
        if "inputs_embeds" not in accepts:
            raise TypeError(f"vilt needs a text model that takes inputs_embeds; {type(model).__name__} does not")
        hf = model.config
        d, dv = int(hf.hidden_size), image_tower.dim
        self.pass_positions = "position_ids" in accepts
        self.pass_types = "token_type_ids" in accepts and int(getattr(hf, "type_vocab_size", 0) or 0) > 0
        # RoBERTa-like models number positions from padding_idx + 1
        emb = getattr(model, "embeddings", None)
        self.position_offset = (int(hf.pad_token_id) + 1
                                if hasattr(type(emb), "create_position_ids_from_inputs_embeds") else 0)
        budget = int(getattr(hf, "max_position_embeddings", 512)) - self.position_offset
        n_image = image_token_count(image_tower)
        if cap + n_image > budget:
            raise ValueError(f"vilt: {cap} text tokens (model.max_text_tokens) + {n_image} image tokens exceed the "
                             f"text model's {budget} positions; lower model.max_text_tokens")
        self.cap, self.n_image = cap, n_image
        tok = getattr(text_tower, "tokenizer", None)
        sep = getattr(tok, "sep_token_id", None)
        self.sep_id = sep if sep is not None else getattr(tok, "eos_token_id", None)
        std = float(getattr(hf, "initializer_range", 0.02))
        self.text_tower = [text_tower]          # a list: not a submodule (the tower is saved, or not, as a tower)
        self.image_in = nn.Sequential(nn.LayerNorm(dv), nn.Linear(dv, d))
        self.image_position = nn.Parameter(std * torch.randn(n_image, d))
        self.modality = nn.Embedding(2, d)      # 0 text, 1 image
        nn.init.normal_(self.modality.weight, std=std)
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.dim = d

    @property
    def transformer(self) -> nn.Module:
        return self.text_tower[0].model

    def text(self, ids: Tensor, mask: Tensor) -> Part:
        return Part(self.transformer.get_input_embeddings()(ids), mask.long())

    def image(self, tokens: Tensor) -> tuple[Part, Tensor]:
        """tokens [B, T, Dv] → (image part, mean projected token before fusion [B, d])."""
        x = self.image_in(tokens)
        if x.shape[1] != self.n_image:
            raise ValueError(f"vilt was built for {self.n_image} image tokens per post, the batch has {x.shape[1]}")
        mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
        return Part(x + self.image_position.to(x.dtype), mask), x.mean(1)

    def encode(self, text: Part, image: Part) -> tuple[Tensor, Tensor]:
        """→ (last hidden states [B, L + N, d], pooled first position [B, d])."""
        b, n_text, n_img = text.embeds.shape[0], text.embeds.shape[1], image.embeds.shape[1]
        embeds = torch.cat([text.embeds + self.modality.weight[0], image.embeds + self.modality.weight[1]], dim=1)
        mask = torch.cat([text.mask, image.mask], dim=1)
        kwargs = {}
        device = embeds.device
        if self.pass_positions:
            pos = torch.cat([torch.arange(n_text, device=device), self.cap + torch.arange(n_img, device=device)])
            kwargs["position_ids"] = (pos + self.position_offset).unsqueeze(0).expand(b, -1)
        if self.pass_types:
            kwargs["token_type_ids"] = torch.zeros(mask.shape, dtype=torch.long, device=device)
        hidden = self.transformer(inputs_embeds=embeds, attention_mask=mask, **kwargs).last_hidden_state
        return hidden, self.pooler(hidden[:, 0])


class HFViltStream(nn.Module):
    """A Hugging Face ``ViltModel`` (init path 2): its own embeddings, encoder and pooler; reads pixels."""

    def __init__(self, path: str, text_tower: TextTower, image_tower: ImageTower, cap: int) -> None:
        super().__init__()
        from transformers import ViltModel
        with quiet_transformers():
            self.vilt = ViltModel.from_pretrained(path)
        hf = self.vilt.config
        check_vocabulary(path, text_tower, int(hf.vocab_size))
        self.cap = min(cap, int(hf.max_position_embeddings))
        tok = getattr(text_tower, "tokenizer", None)
        sep = getattr(tok, "sep_token_id", None)
        self.sep_id = sep if sep is not None else getattr(tok, "eos_token_id", None)
        # pixels arrive as (x - m_t) / s_t; ViLT wants (x - m_v) / s_v = p · s_t / s_v + (m_t - m_v) / s_v
        m_v, s_v = vilt_normalisation(path)
        m_t = torch.tensor(image_tower.mean, dtype=torch.float32)
        s_t = torch.tensor(image_tower.std, dtype=torch.float32)
        self.register_buffer("pixel_scale", (s_t / s_v).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_shift", ((m_t - m_v) / s_v).view(1, 3, 1, 1), persistent=False)
        self.dim = int(hf.hidden_size)

    def text(self, ids: Tensor, mask: Tensor) -> Part:
        return Part(self.vilt.get_input_embeddings()(ids), mask.long())

    def image(self, pixels: Tensor, has_image: Tensor) -> Part:
        """pixels [B, 3, H, W] (the image tower's normalisation) → image ``[CLS]`` + patch embeddings with
        positions [B, 1 + h·w, d]; the mask drops every image position of a post without an image. Every patch
        is kept, in grid order (HF's own ``visual_embed`` samples patches at random)."""
        emb = self.vilt.embeddings
        x = emb.patch_embeddings(pixels * self.pixel_scale + self.pixel_shift)          # [B, d, h, w]
        b, d, h, w = x.shape
        g = self.vilt.config.image_size // self.vilt.config.patch_size
        grid = emb.position_embeddings[:, 1:].transpose(1, 2).reshape(1, d, g, g)
        if (h, w) != (g, g):
            grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
        patches = x.flatten(2).transpose(1, 2) + grid.flatten(2).transpose(1, 2)
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(b, -1, -1)
        embeds = emb.dropout(torch.cat([cls, patches], dim=1))
        mask = has_image.long()[:, None].expand(b, embeds.shape[1]).contiguous()
        return Part(embeds, mask)

    def encode(self, text: Part, image: Part) -> tuple[Tensor, Tensor]:
        out = self.vilt(inputs_embeds=text.embeds, attention_mask=text.mask, image_embeds=image.embeds,
                        pixel_mask=image.mask)
        return out.last_hidden_state, out.pooler_output


@register("model", "vilt")
class ViltStyle(MultimodalModel):
    text_input = "tokens"
    image_input = "tokens"       # "pixels" with model.path (see inputs)

    @dataclass
    class Config(FamilyConfig):
        proj_dim: int = 512                  # ITC projection size
        dropout: float = 0.05                # before the classifier and the ITM head
        contrast: str = "unimodal"           # ITC vectors: unimodal passes | the joint pass's text / image positions
        path: str | None = None              # an HF ViltModel (hub name or folder); unset: the text tower's model
        max_text_tokens: int | None = None   # text cap in tokens, [CLS] and [SEP] included (unset: 40, the seed's)

        def __post_init__(self) -> None:
            check_widths(self)
            check_choice("contrast", self.contrast, CONTRASTS)
            if self.max_text_tokens is not None:
                check_at_least("max_text_tokens", self.max_text_tokens, 2)

    @classmethod
    def inputs(cls, config) -> tuple[str, str]:
        return ("tokens", "pixels") if getattr(config, "path", None) else (cls.text_input, cls.image_input)

    def __init__(self, text_tower: TextTower, image_tower: ImageTower, num_classes: NumClasses,
                 config: "ViltStyle.Config | None" = None) -> None:
        super().__init__(text_tower, image_tower)
        cfg = config or self.Config()
        cap = TEXT_TOKENS if cfg.max_text_tokens is None else int(cfg.max_text_tokens)
        self.config = cfg
        self.stream: OfflineStream | HFViltStream = (
            HFViltStream(cfg.path, text_tower, image_tower, cap) if cfg.path
            else OfflineStream(text_tower, image_tower, cap))
        d = self.stream.dim
        self.dropout = nn.Dropout(cfg.dropout)
        self.tasks = list(task_sizes(num_classes))
        self.classifier = build_classifier(d, num_classes)
        self.text_proj = nn.Linear(d, cfg.proj_dim)
        self.image_proj = nn.Linear(d, cfg.proj_dim)
        self.itm_head = nn.Linear(d, 2)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The HF ViLT checkpoint's weights (empty offline): the optimizer trains them at ``train.encoder_lr``."""
        return list(self.stream.vilt.parameters()) if isinstance(self.stream, HFViltStream) else []

    @property
    def hf(self) -> bool:
        return isinstance(self.stream, HFViltStream)

    # ------------------------------------------------------------------ the two sides
    def text_part(self, batch: Batch) -> Part:
        if batch.text_inputs is None:
            raise ValueError("vilt reads text tokens: the batch must carry text inputs")
        ids, mask = cap_text(batch.text_inputs["input_ids"], batch.text_inputs["attention_mask"],
                             self.stream.cap, self.stream.sep_id)
        return self.stream.text(ids, mask)

    def image_part(self, batch: Batch) -> tuple[Part, Tensor | None]:
        """(image part, offline: the mean projected image token before fusion)."""
        if isinstance(self.stream, HFViltStream):
            if batch.pixels is None:
                raise ValueError("vilt with model.path reads pixels: the batch carries none")
            return self.stream.image(batch.pixels, batch.has_image), None
        tokens = self.image_tokens(batch)
        n = self.stream.n_image
        if tokens.shape[1] != n and not bool(batch.has_image.any()):
            # a batch with no readable image carries a one-token stand-in grid: every token is "no image"
            tokens = self.no_image.to(tokens.dtype).expand(tokens.shape[0], n, -1)
        return self.stream.image(tokens)

    # ------------------------------------------------------------------ ITC vectors
    def contrast_embeds(self, text: Part, image: Part, hidden: Tensor, image_mean: Tensor | None
                        ) -> tuple[Tensor, Tensor]:
        n_text = text.embeds.shape[1]
        if self.config.contrast == "fused":
            return (self.text_proj(masked_mean(hidden[:, :n_text], text.mask)),
                    self.image_proj(masked_mean(hidden[:, n_text:], image.mask)))
        # offline: no image tokens at all; ViltModel wants an image side: one fully masked position
        text_only, _ = self.stream.encode(text, Part.empty(text.embeds, 1 if self.hf else 0))
        t = self.text_proj(masked_mean(text_only[:, :n_text], text.mask))
        if image_mean is None:     # ViLT: an image-only pass; every image attends (ITC skips image-less posts)
            seen = Part(image.embeds, torch.ones_like(image.mask))
            image_only, _ = self.stream.encode(Part.empty(image.embeds), seen)
            image_mean = image_only[:, 1:].mean(1)
        return t, self.image_proj(image_mean)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch, itm: ItmSampler | ItmPairs | None = None) -> ModelOutput:
        text = self.text_part(batch)
        image, image_mean = self.image_part(batch)
        hidden, pooled = self.stream.encode(text, image)
        t, v = self.contrast_embeds(text, image, hidden, image_mean)
        out = ModelOutput.of_tasks(task_logits(self.classifier(self.dropout(pooled)), self.tasks), text_embeds=t,
                                   image_embeds=v, fused=pooled, has_image=batch.has_image)
        if itm is not None:
            pairs = itm if isinstance(itm, ItmPairs) else itm(t, v)
            out.itm_logits = self.itm_head(self.dropout(self.pair_pooled(pairs, pooled, text, image)))
            out.itm_labels = pairs.labels
        return out

    def pair_pooled(self, pairs: ItmPairs, pooled: Tensor, text: Part, image: Part) -> Tensor:
        """[P, d]: the pooled joint pass of each (text a, image b) pair; a == b reuses the main pass."""
        ti, ii = pairs.text_index, pairs.image_index
        own = ti == ii
        if bool(own.all()):
            return pooled[ti]
        other = ~own
        _, made_up = self.stream.encode(text[ti[other]], image[ii[other]])
        slot = torch.cumsum(other.long(), 0) - 1 + pooled.shape[0]       # row of each made-up pair after the cat
        return torch.cat([pooled, made_up])[torch.where(own, ti, slot)]


# ---------------------------------------------------------------------- helpers
@torch.no_grad()
def image_token_count(image_tower: ImageTower) -> int:
    """How many tokens the image tower gives per image at its size (one dummy forward, in eval mode)."""
    was_training = image_tower.training
    image_tower.eval()
    try:
        param = next(image_tower.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        size = int(image_tower.image_size)
        return int(image_tower(torch.zeros(1, 3, size, size, dtype=dtype)).tokens.shape[1])
    finally:
        image_tower.train(was_training)


def check_vocabulary(path: str, text_tower: TextTower, vocab_size: int) -> None:
    """The batch's ids come from the text tower's tokenizer: they must mean the same tokens to ViLT."""
    tok = getattr(text_tower, "tokenizer", None)
    hint = ("with model.path the text tower only tokenizes, and must share ViLT's vocabulary: use "
            "text_encoder.name=minilm, or hf-text with text_encoder.path set to a model with ViLT's vocabulary "
            "(bert-base-uncased for the dandelin checkpoints)")
    if tok is None or not hasattr(tok, "get_vocab"):
        raise ValueError(f"vilt: {type(text_tower).__name__} has no Hugging Face tokenizer; {hint}")
    ours = tok.get_vocab()
    try:
        from transformers import AutoTokenizer
        theirs = AutoTokenizer.from_pretrained(path).get_vocab()
    except Exception:  # a ViltModel folder without tokenizer files: fall back to the id range
        theirs = None
    if theirs is not None:
        if ours != theirs:
            differ = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
            raise ValueError(f"vilt: the text tower's vocabulary ({len(ours)} tokens) differs from ViLT's at "
                             f"{path} ({len(theirs)} tokens; e.g. {differ}); {hint}")
        return
    top = max(ours.values(), default=-1)
    if top >= vocab_size:
        raise ValueError(f"vilt: the text tower's tokenizer has ids up to {top}, but ViLT at {path} knows "
                         f"{vocab_size} tokens; {hint}")
    log.warning("vilt: %s has no tokenizer to compare with; assuming the text tower's vocabulary is ViLT's", path)


def vilt_normalisation(path: str) -> tuple[Tensor, Tensor]:
    """ViLT's pixel mean and std: from the checkpoint's ``preprocessor_config.json`` where there is one."""
    mean, std = [VILT_MEAN_STD] * 3, [VILT_MEAN_STD] * 3
    try:
        if Path(path).is_dir():
            local = Path(path) / "preprocessor_config.json"
            file = local if local.exists() else None
        else:
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(path, "preprocessor_config.json")
            file = Path(cached) if isinstance(cached, str) else None
        if file is not None:
            spec = json.loads(file.read_text())
            mean, std = list(spec.get("image_mean", mean)), list(spec.get("image_std", std))
    except Exception as e:  # the defaults are ViLT's own
        log.warning("vilt: could not read the pixel normalisation of %s (%s); using 0.5/0.5", path, e)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
