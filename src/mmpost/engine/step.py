"""One module that runs model + objective, so Fabric (and DDP) wrap a single forward.

On one process the ITM pairs are drawn inside the model's forward, from its own batch. In data-parallel training
(a ``collective`` is given) the draw is made over the global batch, as one process would make it:

1. gather every rank's ids and image flags (and, for ``hard`` negatives, the embeddings of a no-gradient pass
   in eval mode) and draw the pairs of the global batch with the shared generator;
2. keep the pairs whose image is one of this rank's posts, and read the partner posts that other ranks hold
   from the dataset (``rows``), by their dataset row;
3. run the model once on this rank's posts plus those partners, scoring the chosen pairs; CE and ITC read only
   this rank's posts.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ItmPairs, ModelOutput
from mmpost.objectives.combined import LossBreakdown, Objective
from mmpost.objectives.itc import Collective
from mmpost.objectives.itm import pairs_of_rank

Rows = Callable[[Tensor], Batch]
"""Dataset rows [K] → a Batch of those posts on the training device."""


class TrainStep(nn.Module):
    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Batch, generator: torch.Generator | None = None, with_loss: bool = True,
                collective: Collective | None = None, rows: Rows | None = None):
        """(model output, losses). ``collective`` is used in training only: evaluation runs the whole set on
        every rank, so its numbers are the same everywhere and need no exchange."""
        if not with_loss:
            return self.model(batch), None
        if collective is not None and self.training:
            return self._data_parallel(batch, generator, collective, rows)
        kwargs = self.objective.model_kwargs(batch, generator)
        output = self.model(batch, **kwargs)
        return output, self.objective(output, batch)

    def _data_parallel(self, batch: Batch, generator: torch.Generator | None, collective: Collective,
                       rows: Rows | None) -> tuple[ModelOutput, LossBreakdown]:
        itm = self.objective.itm
        if itm is None:
            output = self.model(batch)
            return output, self.objective(output, batch, collective)
        if rows is None:
            raise ValueError("ITM across processes needs rows= (how to read a partner post by its dataset row)")
        index_all, start = collective.gather(batch.index)
        has_image_all = collective.gather(batch.has_image)[0]
        text_ids_all = collective.gather(batch.text_ids)[0]
        image_ids_all = collective.gather(batch.image_ids)[0]
        t_all = v_all = has_image_all.new_zeros((len(has_image_all), 0), dtype=torch.float)
        if itm.negatives == "hard":
            t, v = self._embeddings(batch)
            t_all, v_all = collective.gather(t)[0], collective.gather(v)[0]
        drawn = itm.make_pairs(has_image_all, t_all, v_all, text_ids=text_ids_all, image_ids=image_ids_all,
                               scale=self.objective.itm_scale(), generator=generator)
        n = len(batch)
        mine = pairs_of_rank(drawn, start, start + n)
        needed = torch.cat([mine.text_index, mine.image_index]).unique()
        partners = needed[(needed < start) | (needed >= start + n)]
        # global position → row of the batch the model sees: this rank's posts first, then the partners
        position = torch.full((len(index_all),), -1, dtype=torch.long, device=index_all.device)
        position[start:start + n] = torch.arange(n, device=index_all.device)
        position[partners] = n + torch.arange(len(partners), device=index_all.device)
        seen = rows(torch.cat([batch.index, index_all[partners]])) if len(partners) else batch
        pairs = ItmPairs(text_index=position[mine.text_index], image_index=position[mine.image_index],
                         labels=mine.labels)
        full = self.model(seen, itm=pairs)
        output = ModelOutput(logits=full.logits[:n], text_embeds=full.text_embeds[:n],
                             image_embeds=full.image_embeds[:n], fused=full.fused[:n], has_image=full.has_image[:n],
                             itm_logits=full.itm_logits, itm_labels=full.itm_labels)
        return output, self.objective(output, batch, collective)

    @torch.no_grad()
    def _embeddings(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """ITC embeddings to draw hard negatives from: eval mode (no dropout, no BatchNorm update), no gradient;
        every submodule's mode is put back afterwards (frozen towers stay in eval)."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            out = self.model(batch)
        finally:
            for m, mode in modes:
                m.training = mode
        return out.text_embeds, out.image_embeds
