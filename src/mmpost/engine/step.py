"""One module that runs model + objective, so Fabric (and DDP) wrap a single forward."""
from __future__ import annotations

import torch
from torch import nn

from mmpost.data.batch import Batch
from mmpost.objectives.combined import Objective


class TrainStep(nn.Module):
    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Batch, generator: torch.Generator | None = None, with_loss: bool = True):
        if not with_loss:
            return self.model(batch), None
        kwargs = self.objective.model_kwargs(batch, generator)
        output = self.model(batch, **kwargs)
        return output, self.objective(output, batch)
