"""One episode of the agent loop against LangGraph's create_agent + human-in-the-loop middleware + PostgresSaver.

The episode, the same on both sides: a model that answers instantly asks for one write; a reviewer approves it; the
write runs and is verified by re-reading what it wrote; the model gives its final answer (2 model turns). The
product runs it through run_advance, the gate, proposed_action_approve and the real services on PostgreSQL (the
offline engine is the zero-latency model; the write is a bench tool registered here, as cheap as LangGraph's).
LangGraph runs it in its own environment (`make bench-langgraph` creates bench/.venv-langgraph from
bench/requirements-langgraph.txt), as a child process driven over a pipe, checkpointing in its own database.

    make bench-langgraph && .venv/bin/python bench/episode.py [--rounds 7] [--episodes 20]

Rounds alternate the two sides (medians of the rounds' per-episode figures), so a busy machine slows both alike.
Prints wall and CPU milliseconds per episode, SQL statements and commits per model turn, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _common import ROOT, SqlCounter, configure, machine_note, median, setup, timed

# run_advance here is what a worker's task runs: with the workers' database settings as README recommends them
# (`DATABASE_SERVER_SIDE_BINDING=true python -m agentconsole.worker`). LangGraph's side binds on the server too.
configure(
    "agentconsole_bench_episode",
    AGENT_LLM_PROVIDER="offline",
    CELERY_BROKER_URL="memory://",
    DATABASE_SERVER_SIDE_BINDING="true",
)
LANGGRAPH_PYTHON = ROOT / "bench" / ".venv-langgraph" / "bin" / "python"
TURNS = 2
PENDING_SQL = "SELECT id FROM agent_proposedaction WHERE run_id = %s AND status = 'pending'"


def _bench_tool() -> None:
    """A write as cheap as the LangGraph side's: it sets a value in memory; its verifier reads it back."""
    from pydantic import BaseModel

    from agent.policy import Risk
    from agent.tools import register
    from agent.tools.base import ErrorType, Observation, Tool

    store: dict[str, int] = {}

    class Args(BaseModel):
        value: int

    @register
    class BenchSetValue(Tool):
        name = "bench_set_value"
        description = "Set the bench value."
        args_schema = Args
        risk = Risk.WRITE
        tenant_arg = ""  # bound by the context
        verify_summary = "Reads the value back."

        def run(self, args: Args, ctx: Any) -> Observation:
            store[ctx.tenant_id] = args.value
            return Observation.success({"value": args.value})

        def verify(self, args: Args, ctx: Any, result: Observation, started_at: Any) -> Observation:
            if store.get(ctx.tenant_id) == args.value:
                return Observation.success({"value": args.value})
            return Observation.failure(ErrorType.VERIFICATION_FAILED, "the value is not set")


class Product:
    def __init__(self) -> None:
        from django.contrib.auth.models import Group, User

        from agent.models import Workflow
        from tickets.models import TenantLink

        _bench_tool()
        self.workflow, _ = Workflow.objects.update_or_create(
            slug="bench-episode",
            defaults={
                "name": "Bench episode",
                "phase": Workflow.Phase.TRIAGE,
                "runbook": "Set the value.",
                "match_tags": ["bench-episode"],
                "playbook": [{"tool": "bench_set_value", "args": {"value": 7}}],
            },
        )
        self.link, _ = TenantLink.objects.get_or_create(organization_id="bench-org", defaults={"tenant_id": "acme"})
        self.reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
        self.reviewer.groups.add(Group.objects.get(name="reviewers"))
        self.serial = 0

    def _new_run(self) -> int:
        from agent.models import AgentRun
        from tickets.models import Ticket

        self.serial += 1
        ticket = Ticket.objects.create(
            external_id=f"bench-episode-{self.serial}-{id(self)}",
            subject="Please set my value",
            tags=["bench-episode"],
            tenant_link=self.link,
            organization_id=self.link.organization_id,
        )
        run = AgentRun.objects.create(
            ticket=ticket, workflow=self.workflow, phase=self.workflow.phase, trigger="manual"
        )
        return run.pk

    def episode(self, run_id: int) -> None:
        from agent.loop import Outcome, run_advance
        from agent.services.actions import proposed_action_approve
        from agentconsole import rawsql

        assert run_advance(run_id=run_id) == Outcome.PAUSED
        # The reviewer learns the proposal's id (the page they decide from shows it; their POST carries it): one
        # statement. The approval locks and loads the proposal itself.
        ((action_id,),) = rawsql.execute(PENDING_SQL, [run_id])
        proposed_action_approve(action=action_id, user=self.reviewer)
        outcome = run_advance(run_id=run_id)
        while outcome == Outcome.CONTINUE:
            outcome = run_advance(run_id=run_id)
        assert outcome == Outcome.DONE, outcome

    def batch(self, n: int) -> dict[str, float]:
        from agent.models import AgentRun

        runs = [self._new_run() for _ in range(n)]
        with SqlCounter().installed() as sql, timed() as t:
            for run_id in runs:
                self.episode(run_id)
        done = AgentRun.objects.filter(pk__in=runs, status=AgentRun.Status.COMPLETED, turns=TURNS).count()
        assert done == n, f"{done} of {n} episodes completed in {TURNS} turns"
        return {"wall": t.wall, "cpu": t.cpu, "statements": sql.statements, "commits": sql.commits}


class LangGraph:
    def __init__(self, dsn: str) -> None:
        if not LANGGRAPH_PYTHON.exists():
            sys.exit(f"{LANGGRAPH_PYTHON} is missing: run `make bench-langgraph` first.")
        self.process = subprocess.Popen(
            [str(LANGGRAPH_PYTHON), str(ROOT / "bench" / "_langgraph_episode.py"), dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.process.stdout.readline()).get("ready")

    def batch(self, n: int) -> dict[str, float]:
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per side per round")
    args = parser.parse_args(argv)
    setup()
    import psycopg
    from _common import admin_dsn
    from django.conf import settings

    db = settings.DATABASES["default"]
    lg_db = f"{db['NAME']}_langgraph"
    with psycopg.connect(**admin_dsn(db), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [lg_db]).fetchone():
            conn.execute(f'CREATE DATABASE "{lg_db}"')
    dsn = psycopg.conninfo.make_conninfo(**{k: v for k, v in admin_dsn(db, lg_db).items() if v is not None})
    product, langgraph = Product(), LangGraph(dsn)
    product.batch(3)  # warm up: imports, the tool registry, prepared plans
    sides: dict[str, list[dict[str, float]]] = {"product": [], "langgraph": []}
    for _ in range(args.rounds):
        for name, side in (("product", product), ("langgraph", langgraph)):
            totals = side.batch(args.episodes)
            sides[name].append({key: value / args.episodes for key, value in totals.items()})
    langgraph.process.stdin.close()
    langgraph.process.wait()

    def fig(name: str, key: str) -> float:
        return median([r[key] for r in sides[name]])

    print(f"One episode ({TURNS} model turns, 1 approval, 1 write + verification, zero-latency model, PostgreSQL)")
    print(f"{args.rounds} interleaved rounds of {args.episodes} episodes per side; medians. {machine_note()}")
    print(f"{'':28} {'wall ms':>9} {'CPU ms':>9} {'SQL/turn':>9} {'commits/turn':>13}")
    for name, label in (("product", "Agent Console"), ("langgraph", "LangGraph + PostgresSaver")):
        print(
            f"{label:28} {1000 * fig(name, 'wall'):9.1f} {1000 * fig(name, 'cpu'):9.1f} "
            f"{fig(name, 'statements') / TURNS:9.1f} {fig(name, 'commits') / TURNS:13.1f}"
        )
    print(
        f"ratio (product / LangGraph): wall {fig('product', 'wall') / fig('langgraph', 'wall'):.2f}x, "
        f"CPU {fig('product', 'cpu') / fig('langgraph', 'cpu'):.2f}x"
    )


if __name__ == "__main__":
    main()
