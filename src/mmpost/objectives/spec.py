"""The ``objectives:`` section of a recipe, resolved: which losses, with which options, weighted how.

    objectives:
      weighting: additive            # or convex (each auxiliary loss's weight is its β)
      ce:  {weight: 1.0, class_weights: balanced}
      itc: {weight: 1.0, temperature: 0.07}
      itm: {weight: 1.0, negatives: hard}

Every other key names a registered objective (``mmpost.registry.names("objective")``); its mapping holds that
loss's ``Config`` fields. An entry is on unless it says ``enabled: false``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mmpost.objectives.base import LossConfig
from mmpost.objectives.combined import WEIGHTINGS

RESERVED = ("weighting",)


@dataclass
class Objectives:
    weighting: str = "additive"
    losses: dict[str, LossConfig] = field(default_factory=dict)   # every entry, enabled or not, in recipe order

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"objectives.weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")

    def enabled(self) -> dict[str, LossConfig]:
        return {name: c for name, c in self.losses.items() if c.enabled}

    def on(self, name: str) -> bool:
        return name in self.enabled()

    def get(self, name: str) -> LossConfig | None:
        return self.enabled().get(name)

    def aux_name(self) -> str:
        """The auxiliary losses that are on, e.g. ``itc+itm``; ``base`` when only the classification loss is."""
        aux = [n for n in self.enabled() if n != "ce"]
        return "+".join(aux) if aux else "base"

    def to_section(self) -> dict:
        """The recipe form (what ``config.yaml`` holds)."""
        return {"weighting": self.weighting, **{name: asdict(c) for name, c in self.losses.items()}}
