"""Image-Text Matching: a 2-way head on the fused pair tells a post's own (image, text) from a made-up one.

Negatives are made in the batch, among posts with an image:
- ``random`` (the seed paper's): each post keeps its own text with probability 1 - p, otherwise takes the
  text of another post whose text differs. One pair per post.
- ``hard`` (ALBEF/BLIP): both directions. Each image gets a negative text, and each text a negative image,
  drawn from softmax of the ITC similarity with the diagonal and every same-text / same-image entry zeroed,
  so a negative is never the positive nor a pair that some post really has. Three pairs per post
  (1 positive, 2 negatives).
Pass a seeded ``torch.Generator`` at evaluation so the negatives are the same every time.

The model calls the sampler once it has the projected embeddings (``hard`` needs them).

Across processes the draw is made over the *global* batch: every rank gathers the ids (and, for ``hard``, the
embeddings), makes the same draw with the same generator — the pairs one process would draw — and scores the
pairs whose image is one of its own rows (:func:`pairs_of_rank`), fetching partner posts from other ranks as
needed. The loss is then each rank's scaled share, as for ITC.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.models.output import ItmPairs, ModelOutput
from mmpost.objectives.itc import Collective, rank_share
from mmpost.registry import register

STRATEGIES = ("random", "hard")


def random_pairs(has_image: Tensor, text_ids: Tensor | None = None, *, p_negative: float = 0.5,
                 generator: torch.Generator | None = None) -> ItmPairs:
    """One pair per post with an image. has_image [B] bool, text_ids [B] (posts with equal ids share a text).

    A negative takes its text from a uniformly drawn post j != i whose text id differs; a post with no such
    partner stays positive.
    """
    device = has_image.device
    b = has_image.numel()
    ids = text_ids if text_ids is not None else torch.arange(b, device=device)
    image_index = torch.nonzero(has_image, as_tuple=False).flatten()
    if image_index.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return ItmPairs(empty, empty, empty)
    allowed = ids[image_index][:, None] != ids[None, :]             # [P, B]; excludes i itself
    has_partner = allowed.any(dim=1)
    coin = torch.rand(image_index.numel(), generator=generator, device="cpu").to(device) < p_negative
    negative = coin & has_partner
    weights = allowed.float() + (~has_partner).float()[:, None]      # rows with no partner: any column
    partner = torch.multinomial(weights.cpu(), 1, generator=generator).flatten().to(device)
    text_index = torch.where(negative, partner, image_index)
    return ItmPairs(text_index=text_index, image_index=image_index, labels=(~negative).long())


def _draw(logits: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """One column per row from softmax(logits), where -inf means never; ``ok`` flags rows that had a choice."""
    ok = torch.isfinite(logits).any(dim=1)
    probs = torch.softmax(torch.where(ok[:, None], logits, torch.zeros_like(logits)), dim=1)  # exp(-inf) = 0
    pick = torch.multinomial(probs.cpu(), 1, generator=generator).flatten().to(logits.device)
    return pick, ok


def hard_pairs(has_image: Tensor, text_embeds: Tensor, image_embeds: Tensor, *, text_ids: Tensor | None = None,
               image_ids: Tensor | None = None, scale: float = 1 / 0.07,
               generator: torch.Generator | None = None) -> ItmPairs:
    """Positives plus one hard negative text per image and one hard negative image per text (in-batch)."""
    device = has_image.device
    idx = torch.nonzero(has_image, as_tuple=False).flatten()
    if idx.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return ItmPairs(empty, empty, empty)
    t = F.normalize(text_embeds[idx].detach().float(), dim=-1)
    v = F.normalize(image_embeds[idx].detach().float(), dim=-1)
    sim = scale * v @ t.T                                                   # [P, P] image i vs text j
    b = idx.numel()
    tid = (text_ids if text_ids is not None else torch.arange(has_image.numel(), device=device))[idx]
    iid = (image_ids if image_ids is not None else torch.arange(has_image.numel(), device=device))[idx]
    # (text j, image i) is a real post's pair when j shares i's text or i's image: never a negative
    taken = (tid[:, None] == tid[None, :]) | (iid[:, None] == iid[None, :])      # symmetric, includes the diagonal
    neg_text, ok_t = _draw(sim.masked_fill(taken, float("-inf")), generator)        # a text for each image
    neg_image, ok_i = _draw(sim.T.masked_fill(taken, float("-inf")), generator)     # an image for each text
    pos = torch.arange(b, device=device)
    text_index = torch.cat([pos, neg_text[ok_t], pos[ok_i]])
    image_index = torch.cat([pos, pos[ok_t], neg_image[ok_i]])
    labels = torch.cat([torch.ones(b, dtype=torch.long, device=device),
                        torch.zeros(int(ok_t.sum()) + int(ok_i.sum()), dtype=torch.long, device=device)])
    return ItmPairs(text_index=idx[text_index], image_index=idx[image_index], labels=labels)


def pairs_of_rank(pairs: ItmPairs, start: int, stop: int) -> ItmPairs:
    """The pairs (global indices) whose image is one of the rows ``[start, stop)`` of the global batch: each pair
    of a global draw is scored by exactly one rank."""
    mine = (pairs.image_index >= start) & (pairs.image_index < stop)
    return ItmPairs(text_index=pairs.text_index[mine], image_index=pairs.image_index[mine], labels=pairs.labels[mine])


def itm_loss(itm_logits: Tensor, itm_labels: Tensor) -> Tensor:
    """itm_logits [P, 2], itm_labels [P] → mean cross-entropy (0 when there are no pairs)."""
    if itm_labels.numel() == 0:
        return itm_logits.sum() * 0.0
    return F.cross_entropy(itm_logits, itm_labels)


@register("objective", "itm")
class ITMLoss(nn.Module):
    def __init__(self, negatives: str = "random", p_negative: float = 0.5) -> None:
        super().__init__()
        if negatives not in STRATEGIES:
            raise ValueError(f"unknown ITM negative strategy {negatives!r}; choose from {', '.join(STRATEGIES)}")
        self.negatives = negatives
        self.p_negative = p_negative

    def make_pairs(self, has_image: Tensor, text_embeds: Tensor, image_embeds: Tensor, *,
                   text_ids: Tensor | None = None, image_ids: Tensor | None = None, scale: float = 1 / 0.07,
                   generator: torch.Generator | None = None) -> ItmPairs:
        if self.negatives == "hard":
            return hard_pairs(has_image, text_embeds, image_embeds, text_ids=text_ids, image_ids=image_ids,
                              scale=scale, generator=generator)
        return random_pairs(has_image, text_ids, p_negative=self.p_negative, generator=generator)

    def forward(self, output: ModelOutput, collective: Collective | None = None) -> Tensor:
        """Mean over the scored pairs; with ``collective``, this rank's scaled share of the global mean."""
        if output.itm_logits is None or output.itm_labels is None:
            raise ValueError("ITM is on but the model output has no itm_logits: pass itm= to the model")
        loss = itm_loss(output.itm_logits, output.itm_labels)
        if collective is None:
            return loss
        n_local = output.itm_labels.numel()
        n_global = float(collective.total(torch.tensor(float(n_local), device=output.itm_logits.device)))
        return rank_share(loss, n_local, n_global, collective.world_size) if n_global else loss
