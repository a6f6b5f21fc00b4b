"""Reads of the company's configuration: the tools its active contracts make."""

from __future__ import annotations

import threading
import time
from typing import Any

from agent.models import ApiOperation, ToolContract

# Pages and model turns ask for the tools many times; the contracts change when an admin imports a file. A new
# version reaches a running process within this many seconds (at once in the process that imported it).
CACHE_SECONDS = 30.0

_lock = threading.Lock()
_built: dict[int, Any] = {}  # contract version id -> its tool; versions never change, so this never goes stale
_current: tuple[float, dict[str, Any]] | None = None


def contract_tools_forget() -> None:
    """Read the active contracts again on the next call (after an import)."""
    global _current
    with _lock:
        _current = None


def contract_tools() -> dict[str, Any]:
    """The tools of the active contracts whose operation is picked in the catalogue, by name."""
    global _current
    with _lock:
        cached = _current
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    from agent.company.tool import ContractTool

    rows = list(
        ToolContract.objects.filter(
            active=True,
            operation_id__in=ApiOperation.objects.filter(picked=True, unsupported="").values("operation_id"),
        ).values_list("id", "name")
    )
    missing = [pk for pk, _ in rows if pk not in _built]
    built = {contract.pk: ContractTool(contract.compiled, contract_id=contract.pk, version=contract.version)
             for contract in ToolContract.objects.filter(pk__in=missing)} if missing else {}  # fmt: skip
    with _lock:
        _built.update(built)
        tools = {name: _built[pk] for pk, name in rows}
        _current = (time.monotonic(), tools)
    return tools


def contract_versions() -> dict[str, dict[str, Any]]:
    """name -> {"id", "version"} of every active contract: what a workflow version records as "contracts in use"."""
    return {
        name: {"id": pk, "version": version}
        for pk, name, version in ToolContract.objects.filter(active=True).values_list("id", "name", "version")
    }
