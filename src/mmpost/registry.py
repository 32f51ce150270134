"""One registry for every pluggable kind: encoder, fusion, model, objective, dataset, clusterer, sampler, metric.

Register with a decorator; a duplicate name raises. Everything registers when ``mmpost`` is imported.

    from mmpost.registry import register
    @register("objective", "itc")
    class ITCLoss(...): ...
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

KINDS = ("encoder", "fusion", "model", "objective", "dataset", "clusterer", "sampler", "metric")
_REGISTRY: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
T = TypeVar("T")


class RegistryError(KeyError):
    pass


def register(kind: str, name: str) -> Callable[[T], T]:
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown registry kind {kind!r}; kinds are {', '.join(KINDS)}")

    def deco(obj: T) -> T:
        if name in _REGISTRY[kind]:
            raise RegistryError(f"{kind} {name!r} is already registered (by {_REGISTRY[kind][name]!r})")
        _REGISTRY[kind][name] = obj
        return obj

    return deco


def get(kind: str, name: str) -> Any:
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown registry kind {kind!r}; kinds are {', '.join(KINDS)}")
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "(none)"
        raise RegistryError(f"no {kind} named {name!r}; known: {known}") from None


def names(kind: str) -> list[str]:
    return sorted(_REGISTRY[kind])
