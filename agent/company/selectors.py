"""Reads of the company's configuration: the tools its active contracts make."""

from __future__ import annotations

import threading
from typing import Any

from agent.models import ToolContract
from agentconsole import rawsql

_lock = threading.Lock()
# Contract version id -> its tool. A version never changes once stored, so this never goes stale.
_built: dict[int, Any] = {}
# Which versions are in force is read from the database once per unit of work (a request, a task) in each thread:
# every page and model turn sees the contracts as they were when it started, and an import reaches every process
# on its next request or task. `contract_tools_fresh` marks the start of a unit of work.
_seen = threading.local()


# The active contracts whose operation is picked and supported, in the model's order (name, newest version first).
# Read on every task and request: written by hand, it costs a sixth of the same SELECT built by the ORM.
_IN_FORCE = (
    'SELECT c.id, c.name FROM "agent_toolcontract" c WHERE c.active = %s AND c.operation_id IN '
    '(SELECT o.operation_id FROM "agent_apioperation" o WHERE o.picked = %s AND o.unsupported = %s) '
    "ORDER BY c.name, c.version DESC"
)


def contract_tools_fresh(**_: Any) -> None:
    """Read the contracts in force again on this thread's next call (connected to request and task start)."""
    _seen.tools = None


def contract_tools_forget() -> None:
    """Drop every built tool and this thread's reading (after an import, or when a test flushes the database)."""
    with _lock:
        _built.clear()
    contract_tools_fresh()


def contract_tools() -> dict[str, Any]:
    """The tools of the active contracts whose operation is picked in the catalogue, by name."""
    tools = getattr(_seen, "tools", None)
    if tools is not None:
        return tools
    from agent.company.tool import ContractTool

    rows = rawsql.execute(_IN_FORCE, [True, True, ""])
    with _lock:
        missing = [pk for pk, _ in rows if pk not in _built]
    built = {contract.pk: ContractTool(contract.compiled, contract_id=contract.pk, version=contract.version)
             for contract in ToolContract.objects.filter(pk__in=missing)} if missing else {}  # fmt: skip
    with _lock:
        _built.update(built)
        tools = {name: _built[pk] for pk, name in rows if pk in _built}
    _seen.tools = tools
    return tools


def contract_versions() -> dict[str, dict[str, Any]]:
    """name -> {"id", "version"} of every active contract: what a workflow version records as "contracts in use"."""
    return {
        name: {"id": pk, "version": version}
        for pk, name, version in ToolContract.objects.filter(active=True).values_list("id", "name", "version")
    }
