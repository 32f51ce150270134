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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmpost.data.batch import Batch
from mmpost.models.output import ItmPairs, ModelOutput
from mmpost.objectives.base import Loss, LossConfig, ModelRequest, RequestContext
from mmpost.objectives.collective import Collective, rank_share
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
class ITMLoss(Loss):
    """One part, ``itm``. Asks the model (:meth:`request`) to score the pairs it draws."""

    @dataclass
    class Config(LossConfig):
        negatives: str = "random"          # random (the seed paper's) | hard (from the image-text similarity)
        p_negative: float = 0.5            # random: the chance that a post's text is swapped for another's

        def __post_init__(self) -> None:
            if self.negatives not in STRATEGIES:
                raise ValueError(f"objectives.itm.negatives must be one of {', '.join(STRATEGIES)}, "
                                 f"got {self.negatives!r}")
            if not 0.0 <= self.p_negative <= 1.0:
                raise ValueError(f"objectives.itm.p_negative must be in [0, 1], got {self.p_negative}")

    def __init__(self, config: "ITMLoss.Config | None" = None, context=None) -> None:
        super().__init__(config, context)
        self.negatives = self.config.negatives
        self.p_negative = self.config.p_negative

    def make_pairs(self, has_image: Tensor, text_embeds: Tensor, image_embeds: Tensor, *,
                   text_ids: Tensor | None = None, image_ids: Tensor | None = None, scale: float = 1 / 0.07,
                   generator: torch.Generator | None = None) -> ItmPairs:
        if self.negatives == "hard":
            return hard_pairs(has_image, text_embeds, image_embeds, text_ids=text_ids, image_ids=image_ids,
                              scale=scale, generator=generator)
        return random_pairs(has_image, text_ids, p_negative=self.p_negative, generator=generator)

    def request(self, batch: Batch, context: RequestContext) -> ModelRequest:
        """One process: a sampler the model calls once it has the batch's embeddings. Several: the pairs of the
        global batch drawn here, and the partner posts other ranks hold (:func:`global_request`)."""
        if context.collective is not None:
            return global_request(self, batch, context)

        def sampler(text_embeds: Tensor, image_embeds: Tensor) -> ItmPairs:
            return self.make_pairs(batch.has_image, text_embeds, image_embeds, text_ids=batch.text_ids,
                                   image_ids=batch.image_ids, scale=context.similarity_scale,
                                   generator=context.generator)

        return ModelRequest(kwargs={"itm": sampler})

    def forward(self, output: ModelOutput, batch: Batch | None = None,
                collective: Collective | None = None) -> dict[str, Tensor]:
        """Mean over the scored pairs; with ``collective``, this rank's scaled share of the global mean."""
        if output.itm_logits is None or output.itm_labels is None:
            raise ValueError("ITM is on but the model output has no itm_logits: pass itm= to the model")
        loss = itm_loss(output.itm_logits, output.itm_labels)
        if collective is None:
            return {"itm": loss}
        n_local = output.itm_labels.numel()
        n_global = float(collective.total(torch.tensor(float(n_local), device=output.itm_logits.device)))
        return {"itm": rank_share(loss, n_local, n_global, collective.world_size) if n_global else loss}


def global_request(itm: ITMLoss, batch: Batch, context: RequestContext) -> ModelRequest:
    """Data-parallel ITM: draw the pairs of the global batch as one process would (every rank gathers the ids
    and, for hard negatives, the embeddings of a no-gradient eval pass, and makes the same draw with the shared
    generator), keep the pairs whose image is one of this rank's posts, and ask for the partner posts that other
    ranks hold. The model sees this rank's posts first, then the partners; pair indices point into that order."""
    collective = context.collective
    index_all, start = collective.gather(batch.index)
    has_image_all = collective.gather(batch.has_image)[0]
    text_ids_all = collective.gather(batch.text_ids)[0]
    image_ids_all = collective.gather(batch.image_ids)[0]
    t_all = v_all = has_image_all.new_zeros((len(has_image_all), 0), dtype=torch.float)
    if itm.negatives == "hard":
        t, v = context.embeddings()
        t_all, v_all = collective.gather(t)[0], collective.gather(v)[0]
    drawn = itm.make_pairs(has_image_all, t_all, v_all, text_ids=text_ids_all, image_ids=image_ids_all,
                           scale=context.similarity_scale, generator=context.generator)
    n = len(batch)
    mine = pairs_of_rank(drawn, start, start + n)
    needed = torch.cat([mine.text_index, mine.image_index]).unique()
    partners = needed[(needed < start) | (needed >= start + n)]
    # global position → row of the batch the model sees: this rank's posts first, then the partners
    position = torch.full((len(index_all),), -1, dtype=torch.long, device=index_all.device)
    position[start:start + n] = torch.arange(n, device=index_all.device)
    position[partners] = n + torch.arange(len(partners), device=index_all.device)
    pairs = ItmPairs(text_index=position[mine.text_index], image_index=position[mine.image_index],
                     labels=mine.labels)
    return ModelRequest(kwargs={"itm": pairs}, extra_rows=index_all[partners] if len(partners) else None)
