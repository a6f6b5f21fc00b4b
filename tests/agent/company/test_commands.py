"""The management commands that connect a company: import_openapi (diff, picks, --apply) and import_contracts
(validation, versions). Bad input is a CommandError with a clear message, never a traceback; nothing half-stored."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from agent.catalogue import all_tools
from agent.models import ApiOperation, ToolContract
from audit.models import AuditEvent
from tests.companies.northwind import CONTRACTS, OPENAPI

pytestmark = pytest.mark.django_db


def run(*args: str, **options: object) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def empty() -> None:
    ApiOperation.objects.all().delete()
    ToolContract.objects.all().delete()


def test_it_shows_the_catalogue_and_stores_it_only_with_apply(empty) -> None:
    shown = run("import_openapi", str(OPENAPI))

    assert "Northwind Seats Admin API 2.4: 5 operation(s)." in shown
    assert "+ raiseSeatCap (added)" in shown
    assert "get_status: GET /status  (no operationId in the document: name generated)" in shown
    assert "uploadLogo: PUT /accounts/{account_ref}/logo  (cannot be a tool: its request body is multipart" in shown
    assert "Nothing stored" in shown
    assert not ApiOperation.objects.exists()

    stored = run("import_openapi", str(OPENAPI), "--pick", "raiseSeatCap,getUsage", "--apply")

    assert "Stored; 2 operation(s) picked (*)." in stored
    assert set(ApiOperation.objects.filter(picked=True).values_list("operation_id", flat=True)) == {
        "raiseSeatCap",
        "getUsage",
    }
    assert AuditEvent.objects.filter(verb="company.operation_imported").count() == 5


def test_it_shows_what_a_reimport_changes_and_keeps_the_picks(empty, tmp_path: Path) -> None:
    run("import_openapi", str(OPENAPI), "--pick", "raiseSeatCap", "--apply")
    changed = OPENAPI.read_text().replace("maximum: 90", "maximum: 30").replace("  /status:", "  /health:")
    document = tmp_path / "openapi.yaml"
    document.write_text(changed)

    shown = run("import_openapi", str(document), "--apply")

    assert "+ get_health (added)" in shown
    assert "- get_status (removed)" in shown
    assert "~ getUsage (schema changed)" in shown
    assert "raiseSeatCap" not in "".join(line for line in shown.splitlines() if line.startswith("  "))
    assert ApiOperation.objects.get(operation_id="raiseSeatCap").picked is True
    assert not ApiOperation.objects.filter(operation_id="get_status").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nope/openapi.yaml"], "No OpenAPI document at /nope/openapi.yaml"),
        ([str(OPENAPI), "--pick", "raiseSeatcap"], "Cannot pick raiseSeatcap: the document has no such operation"),
        ([str(OPENAPI), "--pick", "uploadLogo"], "Cannot pick uploadLogo: its request body is multipart/form-data"),
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(empty, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run("import_openapi", *args, "--apply")
    assert not ApiOperation.objects.exists()


def test_it_stores_contract_versions_and_the_tools_follow_the_file(empty, tmp_path: Path) -> None:
    run("import_openapi", str(OPENAPI), "--pick", "raiseSeatCap,getUsage", "--apply")

    first = run("import_contracts", str(CONTRACTS))
    again = run("import_contracts", str(CONTRACTS))
    edited = tmp_path / "contracts.yaml"
    edited.write_text(CONTRACTS.read_text().replace("max_per_call: 50", "max_per_call: 20").split("  get_usage:")[0])
    changed = run("import_contracts", str(edited))

    assert "+ raise_seat_cap v1 (new)" in first and "+ get_usage v1 (new)" in first
    assert "= raise_seat_cap v1 (unchanged)" in again
    assert "~ raise_seat_cap v2 (changed)" in changed and "- get_usage v1 (retired)" in changed
    assert list(ToolContract.objects.filter(name="raise_seat_cap").values_list("version", "active")) == [
        (2, True),
        (1, False),
    ]
    tools = all_tools()
    assert "get_usage" not in tools
    assert tools["raise_seat_cap"].spec()["input_schema"]["properties"]["extra_seats"]["maximum"] == 20
    assert tools["raise_seat_cap"].contract_version == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("operation: getUsage", "operation: getUsages"), "there is no operation 'getUsages'"),
        (lambda t: t.replace("after.seat_cap ==", "after.seat_cap =="), ""),
        (lambda t: t.replace("risk: read", "risk: sometimes"), "tools.get_usage.risk: Input should be 'read' or"),
        (lambda t: t + "\n  broken: [", "not valid YAML"),
    ],
)
def test_it_refuses_a_bad_contract_file_and_stores_nothing(empty, tmp_path: Path, edit, message: str) -> None:
    run("import_openapi", str(OPENAPI), "--pick", "raiseSeatCap,getUsage", "--apply")
    path = tmp_path / "contracts.yaml"
    path.write_text(edit(CONTRACTS.read_text()))
    if not message:  # the unchanged file: the control case
        assert "Stored." in run("import_contracts", str(path))
        return

    with pytest.raises(CommandError, match=message):
        run("import_contracts", str(path))
    assert not ToolContract.objects.exists()


def test_it_checks_a_file_without_storing_it(empty) -> None:
    run("import_openapi", str(OPENAPI), "--pick", "raiseSeatCap,getUsage", "--apply")

    assert "The contract file is valid: 2 tool(s)." in run("import_contracts", str(CONTRACTS), "--check")
    assert not ToolContract.objects.exists()
    with pytest.raises(CommandError, match="Cannot read the contract file"):
        run("import_contracts", "/nope.yaml")
