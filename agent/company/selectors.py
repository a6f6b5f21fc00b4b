"""Reads of the company's configuration: the tools its active contracts make."""

from __future__ import annotations

import threading
from typing import Any

from agent.company.models import ApiOperation, ToolContract

_lock = threading.Lock()
_built: dict[int, Any] = {}  # contract version id -> its tool; versions never change, so this never goes stale


def contract_tools() -> dict[str, Any]:
    """The tools of the active contracts whose operation is picked in the catalogue, by name."""
    from agent.company.tool import ContractTool

    rows = list(
        ToolContract.objects.filter(
            active=True,
            operation_id__in=ApiOperation.objects.filter(picked=True, unsupported="").values("operation_id"),
        ).values_list("id", "name")
    )
    missing = [pk for pk, _ in rows if pk not in _built]
    if missing:
        for contract in ToolContract.objects.filter(pk__in=missing):
            tool = ContractTool(contract.compiled, contract_id=contract.pk, version=contract.version)
            with _lock:
                _built[contract.pk] = tool
    return {name: _built[pk] for pk, name in rows}


def contract_versions() -> dict[str, dict[str, Any]]:
    """name -> {"id", "version"} of every active contract: what a workflow version records as "contracts in use"."""
    return {
        name: {"id": pk, "version": version}
        for pk, name, version in ToolContract.objects.filter(active=True).values_list("id", "name", "version")
    }
