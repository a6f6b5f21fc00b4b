"""Tokens and cost: billed input tokens per resolved ticket with prompt caching against the same transcripts
without it, and the dashboard's cost against what Bedrock would bill.

Tickets run through the real Bedrock path (BedrockEngine, langchain-aws, botocore) to a local Converse stand-in
(bench/_converse_standin.py) that bills as Bedrock does: the prompt is tools, system, messages; each cachePoint
closes a cacheable prefix (at least 1,024 tokens); a prefix seen within 5 minutes is read from the cache at 0.1x the
input price, a new one written at 1.25x, the rest paid in full. The uncached figure is the same requests priced as
if they carried no cache point. Each ticket makes --calls read calls (search_runbooks) and a final answer. With
--approval, its third call is a write a reviewer approves (--write: solve_ticket by default, the bench has no company's
Admin API; a reply or a private note posts a comment on the ticket): the run resumes, runs it and asks the model in the
same advance, as a run does after every approval.

    .venv/bin/python bench/tokens.py [--tickets 20] [--calls 5] [--approval [--write reply_to_customer]]

Prints input tokens per ticket by kind, their price-weighted total against the uncached one, and the dashboard's
cost against the stand-in's bill.
"""

from __future__ import annotations

import argparse
import os

from _common import configure, setup

configure(
    "agentconsole_bench_tokens",
    AGENT_LLM_PROVIDER="bedrock",
    CELERY_BROKER_URL="memory://",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - signs requests to the local stand-in
    AGENT_ROLE_ARN="",
    BEDROCK_INPUT_USD_PER_MTOK="3.0",
    BEDROCK_OUTPUT_USD_PER_MTOK="15.0",
    BEDROCK_CACHE_READ_USD_PER_MTOK="0.3",
    BEDROCK_CACHE_WRITE_USD_PER_MTOK="3.75",
)

# The writes --approval may make, with their arguments: a comment posted on the ticket, or none.
WRITES = {
    "solve_ticket": {},
    "reply_to_customer": {"body": "The dashboard's cache was reset: the numbers are current again."},
    "add_private_note": {"body": "Cache age 3 h; reset through the Admin API. Routing to platform: caches."},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--approval", action="store_true", help="the third call is a write a reviewer approves")
    parser.add_argument("--write", choices=sorted(WRITES), default="solve_ticket", help="the approved write")
    args = parser.parse_args(argv)
    from _converse_standin import PRICES, ConverseStandIn

    standin = ConverseStandIn(latency=0, calls=args.calls, tool="search_runbooks",
                              tool_args={"query": "stale dashboard cache"}, write_at=2 if args.approval else None,
                              write=(args.write, WRITES[args.write]))  # fmt: skip
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = standin.url
    setup()
    from django.contrib.auth.models import Group, User

    from agent.dashboard import dashboard_get
    from agent.loop import Outcome, run_advance
    from agent.models import AgentRun, ProposedAction, Runbook, Workflow
    from agent.services.actions import proposed_action_approve
    from agent.services.rollups import rollups_rebuild
    from agentconsole.roles import REVIEWERS
    from tickets.models import TenantLink, Ticket

    AgentRun.objects.all().delete()
    Ticket.objects.filter(external_id__startswith="bench-tok-").delete()
    rollups_rebuild()  # the dashboard's weekly rollups keep what they counted: empty them with the runs
    for n in range(6):
        Runbook.objects.get_or_create(slug=f"bench-{n}", defaults={
            "title": f"Stale dashboard cache, case {n}", "tags": ["cache"],
            "body": "When the dashboard shows stale numbers, check the tenant's cache age in support.tenants, read the "
                    "worker logs for cache errors, reset the cache through the Admin API, then verify. " * 6,
        })  # fmt: skip
    workflow, _ = Workflow.objects.update_or_create(
        slug="bench-tokens",
        defaults={"name": "Bench tokens", "phase": Workflow.Phase.TRIAGE, "match_tags": ["bench-tokens"],
                  "runbook": "Search the runbooks, read what they say, and answer the customer. " * 20},
    )  # fmt: skip
    link, _ = TenantLink.objects.get_or_create(organization_id="bench-org", defaults={"tenant_id": "acme"})
    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    reviewer.groups.add(Group.objects.get_or_create(name=REVIEWERS)[0])
    approved = 0
    for n in range(args.tickets):
        ticket = Ticket.objects.create(
            external_id=f"bench-tok-{n}", subject="Dashboard shows stale data", tags=["bench-tokens"],
            description="The numbers stopped updating this morning.", tenant_link=link, organization_id="bench-org",
        )  # fmt: skip
        run = AgentRun.objects.create(ticket=ticket, workflow=workflow, phase=workflow.phase, trigger="manual")
        while (outcome := run_advance(run_id=run.pk)) in (Outcome.CONTINUE, Outcome.PAUSED):
            if outcome == Outcome.PAUSED:
                for action in ProposedAction.objects.filter(run=run, status=ProposedAction.Status.PENDING):
                    proposed_action_approve(action=action, user=reviewer)
                    approved += 1
    resolved = AgentRun.objects.filter(status=AgentRun.Status.COMPLETED).count()
    bill = standin.bill
    standin.close()
    weighted = (
        bill.input
        + bill.cache_read * PRICES["cache_read"] / PRICES["input"]
        + bill.cache_write * (PRICES["cache_write"] / PRICES["input"])
    )
    per = max(resolved, 1)
    dashboard = dashboard_get().cost_usd
    which = f" ({args.write})" if approved else ""
    print(f"Tokens: {args.tickets} tickets ({resolved} resolved), {args.calls + 1} model calls each, {approved} "
          f"approvals{which}, through BedrockEngine to the Converse stand-in ({bill.requests} requests)")  # fmt: skip
    print(
        f"input tokens per resolved ticket: {bill.input / per:.0f} uncached + {bill.cache_read / per:.0f} cache "
        f"read + {bill.cache_write / per:.0f} cache write; without caching {bill.uncached_input / per:.0f}"
    )
    print(
        f"billed input (priced as input tokens) per ticket: {weighted / per:.0f} vs {bill.uncached_input / per:.0f}"
        f" uncached = {weighted / bill.uncached_input:.2f}x"
    )
    print(
        f"cost: Bedrock would bill ${bill.usd():.4f} (uncached ${bill.usd_uncached():.4f}); the dashboard says "
        f"${dashboard:.4f} ({dashboard / bill.usd() - 1:+.1%})"
    )


if __name__ == "__main__":
    main()
