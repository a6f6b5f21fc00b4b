"""The sandbox as one configured company: its OpenAPI document (sandbox/openapi.json, the one it serves) and its
contract file (sandbox/company.yaml), imported through the product's public commands like any company's."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import call_command

HERE = Path(__file__).resolve().parent
OPENAPI_DOCUMENT = HERE / "openapi.json"
CONTRACT_FILE = HERE / "company.yaml"
# The operations its tools call; its reads for verification need no pick, and /_faults is for demos only.
TOOL_OPERATIONS = (
    "sandbox_admin_api_tenant_cache_reset",
    "sandbox_admin_api_tenant_trial_extend",
    "sandbox_admin_api_tenant_user_unlock",
    "sandbox_admin_api_tenant_config_set",
    "sandbox_admin_api_tenant_billing_read",
)


def sandbox_connect() -> str:
    """Import the sandbox's catalogue and contracts (idempotent); returns what the commands printed."""
    out = StringIO()
    call_command("import_openapi", str(OPENAPI_DOCUMENT), pick=[",".join(TOOL_OPERATIONS)], apply=True, stdout=out)
    call_command("import_contracts", str(CONTRACT_FILE), stdout=out)
    return out.getvalue()
