"""One module that runs model + objective, so Fabric (and DDP) wrap a single forward.

Before the forward, each loss may ask the model for something (:meth:`mmpost.objectives.base.Loss.request`): ITM
asks it to score made-up image-text pairs. In data-parallel training (a ``collective`` is given) a request may
also name other posts (dataset rows) that the model must read — ITM's partners held by other ranks — which are
fetched with ``rows``; the model then runs once on this rank's posts plus those, and the output is cut back to
this rank's posts. The step knows nothing of which losses exist.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.base import RequestContext
from mmpost.objectives.collective import Collective
from mmpost.objectives.combined import Objective

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
        collective = collective if self.training else None
        context = RequestContext(generator=generator, collective=collective,
                                 similarity_scale=self.objective.similarity_scale(),
                                 embeddings=lambda: self._embeddings(batch))
        request = self.objective.request(batch, context)
        if request.extra_rows is None:
            output = self.model(batch, **request.kwargs)
        else:
            if rows is None:
                raise ValueError("an objective asks for posts of other processes: pass rows= (how to read a "
                                 "post by its dataset row)")
            seen = rows(torch.cat([batch.index, request.extra_rows]))
            output = first_rows(self.model(seen, **request.kwargs), len(batch))
        return output, self.objective(output, batch, collective)

    @torch.no_grad()
    def _embeddings(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """ITC embeddings of the batch: eval mode (no dropout, no BatchNorm update), no gradient; every
        submodule's mode is put back afterwards (frozen towers stay in eval)."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            out = self.model(batch)
        finally:
            for m, mode in modes:
                m.training = mode
        return out.text_embeds, out.image_embeds


def first_rows(output: ModelOutput, n: int) -> ModelOutput:
    """The output of the first ``n`` posts; pair scores (ITM) are kept whole."""
    return ModelOutput.of_tasks({t: v[:n] for t, v in output.task_logits.items()},
                                text_embeds=output.text_embeds[:n], image_embeds=output.image_embeds[:n],
                                fused=output.fused[:n], has_image=output.has_image[:n],
                                itm_logits=output.itm_logits, itm_labels=output.itm_labels,
                                tower_text=None if output.tower_text is None else output.tower_text[:n],
                                tower_image=None if output.tower_image is None else output.tower_image[:n])
