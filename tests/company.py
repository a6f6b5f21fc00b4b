"""Companies for tests: an OpenAPI document and a contract file, compiled once per process and installed into
the test database in two inserts (the management commands are tested on their own, in tests/agent/company)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from agent.company.contracts import contracts_compile
from agent.company.openapi import catalogue_load
from agent.company.selectors import contract_tools, contract_tools_forget
from agent.models import ApiOperation, ToolContract
from agent.tools import builtin_tools

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_OPENAPI = ROOT / "sandbox" / "openapi.json"
SANDBOX_CONTRACTS = ROOT / "sandbox" / "company.yaml"
# The sandbox company's tool operations, as sandbox/company.py picks them (tests never import the sandbox app).
SANDBOX_PICKED = (
    "sandbox_admin_api_tenant_cache_reset",
    "sandbox_admin_api_tenant_trial_extend",
    "sandbox_admin_api_tenant_user_unlock",
    "sandbox_admin_api_tenant_config_set",
    "sandbox_admin_api_tenant_billing_read",
)


@cache
def _compiled(openapi: Path, contracts: Path, picked: tuple[str, ...]) -> tuple[dict, dict]:
    catalogue = catalogue_load(str(openapi))
    compiled = contracts_compile(
        contracts.read_text(), catalogue=catalogue.operations, picked=set(picked), builtin=set(builtin_tools())
    )
    return catalogue.operations, compiled


def company_install(openapi: Path, contracts: Path, picked: tuple[str, ...]) -> None:
    """Replace the stored catalogue and contracts with this company's (no audit events: test set-up)."""
    operations, compiled = _compiled(openapi, contracts, tuple(picked))
    ApiOperation.objects.all().delete()
    ToolContract.objects.all().delete()
    ApiOperation.objects.bulk_create(
        ApiOperation(
            operation_id=name,
            method=op.method,
            path=op.path,
            summary=op.summary[:500],
            definition=op.to_dict(),
            fingerprint=op.fingerprint,
            picked=name in picked,
            unsupported=op.unsupported,
            source=str(openapi),
        )
        for name, op in operations.items()
    )
    ToolContract.objects.bulk_create(
        ToolContract(
            name=name,
            version=1,
            operation_id=definition["operation"]["operation_id"],
            risk=definition["spec"]["risk"],
            spec=definition["spec"],
            compiled=definition,
            source=str(contracts),
        )
        for name, definition in compiled.items()
    )
    contract_tools_forget()
    contract_tools()


def sandbox_company_install() -> None:
    company_install(SANDBOX_OPENAPI, SANDBOX_CONTRACTS, SANDBOX_PICKED)
