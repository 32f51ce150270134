"""The one typed output every model family returns; objectives read what they need from it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from mmpost.models.heads import DEFAULT_TASK


@dataclass
class ModelOutput:
    """Shapes: B posts in the batch, C classes, P ITM pairs, E projection dim, H fused dim.

    logits        [B, C]  class scores for the post's (first) task: ``task_logits``' first value
    text_embeds   [B, E]  projected text vector (not normalised; ITC normalises)
    image_embeds  [B, E]  projected image vector
    fused         [B, H]  the fused representation the classifier reads
    has_image     [B]     bool; False where the image is missing or masked
    itm_logits    [P, 2]  match / no-match scores for the requested pairs (only when asked)
    itm_labels    [P]     1 = the pair comes from one post, 0 = a made-up negative (only when asked)
    task_logits   {task: [B, C_task]}  class scores of every task, in the model's order; a model built with an
                  int ``num_classes`` has the one task "default" (filled from ``logits`` when not given)
    tower_text    [B, D]  the towers' pooled vectors as the family read them (conc, att, cma-clip; else None); with
    tower_image   [B, D]  hf-clip towers they are in the checkpoint's own space (ITC ``space: checkpoint``)
    """

    logits: Tensor
    text_embeds: Tensor
    image_embeds: Tensor
    fused: Tensor
    has_image: Tensor
    itm_logits: Tensor | None = None
    itm_labels: Tensor | None = None
    task_logits: dict[str, Tensor] = field(default_factory=dict)
    tower_text: Tensor | None = None
    tower_image: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.task_logits:
            self.task_logits = {DEFAULT_TASK: self.logits}

    @classmethod
    def of_tasks(cls, task_logits: dict[str, Tensor], **fields) -> "ModelOutput":
        """An output whose ``logits`` is the first task's scores; ``fields`` are the other fields."""
        return cls(logits=next(iter(task_logits.values())), task_logits=task_logits, **fields)


@dataclass
class ItmPairs:
    """Image-text pairs for ITM: pair p joins the text of post ``text_index[p]`` with the image of post
    ``image_index[p]``; ``labels[p]`` is 1 when both come from the same post."""

    text_index: Tensor
    image_index: Tensor
    labels: Tensor


ItmSampler = Callable[[Tensor, Tensor], ItmPairs]
"""Given (text_embeds, image_embeds) of the batch, the ITM pairs to score (supplied by the ITM objective)."""
