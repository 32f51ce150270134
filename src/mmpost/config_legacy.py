"""Recipe keys of earlier versions: a recipe that uses one fails with the key that replaced it, and a run saved by
an earlier version (its ``config.yaml``) is read by translating its sections."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmpost import registry
from mmpost.config_sections import ConfigError

OBJECTIVE_KEYS = {         # objectives.<old> → where it went
    "lambda_ce": "objectives.ce.weight", "lambda_itc": "objectives.itc.weight",
    "lambda_itm": "objectives.itm.weight", "beta_itc": "objectives.itc.weight (with objectives.weighting=convex)",
    "beta_itm": "objectives.itm.weight (with objectives.weighting=convex)",
    "class_weights": "objectives.ce.class_weights", "temperature": "objectives.itc.temperature",
    "mask_duplicates": "objectives.itc.mask_duplicates", "itm_negatives": "objectives.itm.negatives",
}


def _old_objective_keys(section: Any) -> dict[str, str]:
    """{old key: its replacement} for the old keys in an ``objectives`` section."""
    if not OmegaConf.is_dict(section):
        return {}
    found = {k: OBJECTIVE_KEYS[k] for k in section if k in OBJECTIVE_KEYS}
    for name in ("itc", "itm"):
        if name in section and isinstance(section[name], bool):
            found[name] = f"objectives.{name}.enabled={str(section[name]).lower()}"
    return found


def reject_old_keys(part: Any, where: str) -> None:
    """A recipe or override that uses a key of the old objectives section fails, naming the new key."""
    if not OmegaConf.is_dict(part) or "objectives" not in part:
        return
    found = _old_objective_keys(part.objectives)
    if found:
        old, new = next(iter(found.items()))
        raise ConfigError(f"{where}: objectives.{old} is an old key; losses are now named entries: use {new} "
                          "(see docs/architecture.md)")


def upgrade_saved_run(recipe: Any, path: Path) -> Any:
    """The ``config.yaml`` of a run saved before objectives and model configs were per-loss and per-family:
    translated to today's sections. Any other recipe is returned as it is."""
    is_run = path.name == "config.yaml" and (path.parent / "labels.json").exists()
    if not is_run or not OmegaConf.is_dict(recipe) or not _old_objective_keys(recipe.get("objectives")):
        return recipe
    old = OmegaConf.to_container(recipe.objectives)
    convex = old.get("weighting") == "convex"
    weight = (lambda k: old.get(f"beta_{k}", 0.1)) if convex else (lambda k: old.get(f"lambda_{k}", 1.0))
    objectives = {"weighting": old.get("weighting", "additive"),
                  "ce": {"weight": old.get("lambda_ce", 1.0), "class_weights": old.get("class_weights", "balanced")}}
    if old.get("itc"):
        objectives["itc"] = {"weight": weight("itc"), "temperature": old.get("temperature", 0.07),
                             "mask_duplicates": old.get("mask_duplicates", True)}
    if old.get("itm"):
        objectives["itm"] = {"weight": weight("itm"), "negatives": old.get("itm_negatives", "random")}
    recipe.objectives = objectives
    recipe.model = _family_keys(OmegaConf.to_container(recipe.get("model") or {}))
    return recipe


EMOTICON_ONLY = ("fusion", "modalities")   # the old flat section's emoticon keys (conc's `fusion` came later)


def _family_keys(model: dict[str, Any]) -> dict[str, Any]:
    """The old flat model section, cut to the keys that the chosen family read then."""
    name = model.get("name") or "conc"
    known = {f.name for f in dataclasses.fields(registry.get("model", name).Config)}
    if name != "emoticon":
        known -= set(EMOTICON_ONLY)
    return {**{k: v for k, v in model.items() if k in known}, "name": name}
