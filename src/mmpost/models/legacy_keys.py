"""Loading weights saved under older state_dict key names."""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def rename_old_keys(module: nn.Module, renames: Mapping[str, str]) -> None:
    """Let ``module.load_state_dict`` read runs saved before a part moved: a key starting with an old prefix
    (relative to ``module``) is read as the new prefix, unless the new key is there too. E.g.
    ``{"attention.": "fusion.attention."}`` reads ``attention.in_proj_weight`` into ``fusion.attention``."""

    def hook(mod, state_dict, prefix, *_args, **_kwargs) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix):]
            for old, new in renames.items():
                if rest.startswith(old) and prefix + new + rest[len(old):] not in state_dict:
                    state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                    break

    module.register_load_state_dict_pre_hook(hook)
