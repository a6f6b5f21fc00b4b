"""Every tool the registry holds declares a policy the gate can act on: whatever registered it (a hand-written
module, or tools generated from a description), the tests below run over all of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from agent.catalogue import all_tools
from agent.gate import OTHER_TENANT, RunState, Verdict, gate_decide
from agent.policy import Risk, TicketRole
from agent.tools.base import Observation, Tool, ToolContext

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db


@pytest.fixture
def tools() -> dict[str, Tool]:
    """Every tool the registry holds once a company is connected by configuration (the second test company's
    OpenAPI document and contract file): the product's own and the generated ones."""
    from tests.companies.northwind import CONTRACTS, OPENAPI, PICKED
    from tests.company import company_install

    company_install(OPENAPI, CONTRACTS, PICKED)
    found = all_tools()
    assert any(tool.risk == Risk.WRITE for tool in found.values()), "no generated write tool to check"
    return found


def test_it_proves_every_write_with_a_verifier(tools: dict[str, Tool]) -> None:
    for name, tool in tools.items():
        if tool.risk == Risk.WRITE:
            assert tool.has_verifier, f"{name} writes to the company's systems but has no verify(): nothing proves it"
            assert tool.verify_summary, f"{name} does not tell reviewers what its verifier re-reads"


def test_it_declares_a_policy_that_names_its_own_arguments(tools: dict[str, Tool]) -> None:
    for name, tool in tools.items():
        assert tool.risk in Risk.values
        fields = set(tool.spec()["input_schema"].get("properties", {}))
        for attribute in ("tenant_arg", "text_arg", "query_arg"):
            argument = getattr(tool, attribute)
            assert not argument or argument in fields, f"{name}.{attribute} names {argument!r}, not an argument"
        assert not (tool.context_only and tool.customer_facing), f"{name}: context for people is not customer-facing"
        assert tool.ticket_role is None or tool.risk == Risk.HELPDESK, f"{name}: only helpdesk tools act on the ticket"
        assert tool.ticket_role is None or tool.ticket_role in TicketRole.__members__.values()


class _AccountArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str


class _Annotate(Tool):
    """No tool of the product: a tool whose policy says what the gate must do, whatever its name."""

    name = "annotate_account"
    description = "test"
    args_schema = _AccountArgs
    risk = Risk.HELPDESK
    context_only = True
    tenant_arg = "account"

    def run(self, args: BaseModel, ctx: ToolContext) -> Observation:
        return Observation.success({})


def _decide(tool: Tool, args: dict, phase: str = "triage") -> Verdict | str:
    state = RunState(phase=phase, tenant_id="acme", workflow=None)
    decision = gate_decide(tool=tool, name=tool.name, args=args, state=state, available=[tool.name])
    return decision.reason if decision.verdict == Verdict.REFUSE else decision.verdict


def test_it_decides_from_the_declared_policy_never_the_name() -> None:
    tool = _Annotate()
    assert _decide(tool, {"account": "acme"}) == Verdict.EXECUTE  # context_only: runs in triage
    assert _decide(tool, {"account": "acme"}, phase="shadow") == Verdict.DRY_RUN
    assert _decide(tool, {"account": "globex"}) == OTHER_TENANT.format(bound="acme", asked="globex")
    type(tool).context_only = False
    try:
        assert _decide(tool, {"account": "acme"}) == Verdict.PROPOSE
    finally:
        type(tool).context_only = True


def _string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


# Where a tool's name may appear besides its own module: data that names tools on purpose (demo workflows and
# their runbooks).
NAMED_ON_PURPOSE = {"console/demo.py"}


def test_it_keeps_tool_names_inside_their_own_modules() -> None:
    names = set(all_tools())
    leaks = []
    # Only the agent and the console can know tools; the layers below cannot import them (.importlinter), and the
    # helpdesk's own operations (tickets/helpdesk.py: add_private_note) are its vocabulary, not a tool's name.
    for app in ("agent", "console"):
        for path in sorted((REPO / app).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith("agent/tools/") or "/migrations/" in relative or relative in NAMED_ON_PURPOSE:
                continue
            leaks += [f"{relative}: {name}" for name in sorted(_string_constants(path) & names)]
    assert leaks == []
