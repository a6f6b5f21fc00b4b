"""The agent's tools. Each module of this package defines tools and registers them with @register."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from agent.tools.base import Tool

_REGISTRY: dict[str, Tool] = {}
_INFRASTRUCTURE = {"base"}
UNKNOWN_TOOL = "There is no tool named {name!r}."


def register(cls: type[Tool]) -> type[Tool]:
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise RuntimeError(f"Two tools are named {cls.name!r}.")
    _REGISTRY[cls.name] = cls()
    return cls


@cache
def _load() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def all_tools() -> dict[str, Tool]:
    _load()
    return dict(_REGISTRY)


def get_tool(name: str) -> Tool | None:
    _load()
    return _REGISTRY.get(name)
