"""The recipe sections whose keys depend on a choice: ``model`` (the chosen family's own ``Config``) and
``objectives`` (each named loss's own ``Config``). Each section is checked against those dataclasses, so every
allowed value is checked once, where it is defined, and an unknown key fails with the valid keys."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from mmpost import registry
from mmpost.objectives.spec import RESERVED, Objectives

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    pass


def typed(cls: type, values: Mapping[str, Any], where: str, owner: str) -> Any:
    """``cls(**values)`` with OmegaConf's type checks; errors name the key ``where.<key>`` and the valid keys."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a setting of {owner}; its settings: {', '.join(known)}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), dict(values)))
    except Exception as e:      # the dataclass's own check (__post_init__) or a value of the wrong type
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def model_config(section: Any) -> Any:
    """``model: {name: att, heads: 8}`` → ``BerViTAtt.Config(name="att", heads=8)``."""
    if dataclasses.is_dataclass(section):
        return section
    values = dict(section or {})
    name = values.get("name") or "conc"
    try:
        family = registry.get("model", name)
    except KeyError as e:
        raise ConfigError(f"model.name: {e.args[0]}") from None
    return typed(family.Config, {**values, "name": name}, "model", f"model {name}")


def objectives(section: Any) -> Objectives:
    """``objectives: {weighting: additive, ce: {...}, itc: {...}}`` → :class:`Objectives`."""
    if isinstance(section, Objectives):
        return section
    values = dict(section or {})
    losses = {}
    for name, options in values.items():
        if name in RESERVED:
            continue
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"objectives.{name} must be a mapping of that loss's options, e.g. "
                              f"objectives.{name}.enabled=true or objectives.{name}.weight=0.5; got {options!r}")
        try:
            loss = registry.get("objective", name)
        except KeyError as e:
            raise ConfigError(f"objectives.{name}: {e.args[0]} (a loss of your own: list its module in plugins:)") \
                from None
        losses[name] = typed(loss.Config, dict(options or {}), f"objectives.{name}", f"objective {name}")
    try:
        return Objectives(weighting=values.get("weighting", "additive"), losses=losses)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def switch_family(merged: Any, family: str) -> Any:
    """``merged`` with its model section moved to ``family``: keys that family lacks are left out (and logged)."""
    section = merged.get("model") if OmegaConf.is_dict(merged) else None
    if section is None or section.get("name", "conc") == family:
        return merged
    known = {f.name for f in dataclasses.fields(registry.get("model", family).Config)}
    dropped = [k for k in section if k not in known]
    if dropped:
        log.info("model %s has no %s: the recipe's values for them are not used", family, ", ".join(dropped))
    merged = merged.copy()
    merged.model = {**{k: v for k, v in section.items() if k in known}, "name": family}
    return merged
