"""The product's own tools. Each module of this package defines tools and registers them with @register. The
catalogue the agent uses adds the company's contract tools to these (agent/catalogue.py)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from agent.tools.base import Tool

_REGISTRY: dict[str, Tool] = {}
_INFRASTRUCTURE = {"base", "admin_api"}


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


def builtin_tools() -> dict[str, Tool]:
    """The product's own tools (SQL, logs, runbooks, helpdesk), whatever company is connected."""
    _load()
    return dict(_REGISTRY)
