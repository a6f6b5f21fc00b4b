"""Regression suites from reviewer feedback: each edit, rejection, thumbs-down (and each approved, verified write)
becomes a case on its ticket with what a version must or must not do there; every new version runs the suite
(agent.replay.suite_run_start), and promotion needs the version in force to pass it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Q

from agent.catalogue import get_tool
from agent.enqueue import replay_execute_send, suite_rerun_send
from agent.lifecycle import RUN_STOPPED
from agent.models import AgentRun, ProposedAction, Rating, RegressionCase, Replay, ReplayItem, Workflow, WorkflowVersion
from agent.policy import Risk, TicketRole
from audit.services import audit_event_record


def _is_reply(tool_name: str) -> bool:
    """A call that answers the customer, as the tool declares it (its ticket role), whatever its name."""
    tool = get_tool(tool_name)
    return tool is not None and tool.ticket_role == TicketRole.REPLY


APPROVED = (ProposedAction.Status.APPROVED, ProposedAction.Status.EXECUTED)


def _call(action: ProposedAction, args: dict[str, Any] | None) -> dict[str, Any]:
    return {"tool": action.tool, "args": args}


def _case_defaults(action: ProposedAction) -> dict[str, Any] | None:
    """The case an action's decision makes, or None when it teaches nothing."""
    status, human = action.status, action.decided_by_id is not None
    if status == ProposedAction.Status.REJECTED:
        if _is_reply(action.tool):
            return {"origin": RegressionCase.Origin.REJECTED, "forbid_reply": str(action.args.get("body", ""))}
        return {"origin": RegressionCase.Origin.REJECTED, "forbid_call": _call(action, action.args)}
    approved = status in APPROVED
    if human and approved and action.original_args is not None:
        return {
            "origin": RegressionCase.Origin.EDITED,
            "expect_call": _call(action, action.args),
            "forbid_call": _call(action, action.original_args),
        }
    proven = status == ProposedAction.Status.EXECUTED and action.verification == ProposedAction.Verification.PASSED
    if human and proven and action.risk == Risk.WRITE:
        return {"origin": RegressionCase.Origin.APPROVED, "expect_call": _call(action, action.args)}
    return None


@transaction.atomic
def regression_case_capture(*, action: ProposedAction) -> RegressionCase | None:
    """Turn a decided action into a regression case of its workflow (once per action and kind of case)."""
    run = action.run
    defaults = _case_defaults(action)
    if defaults is None or run.workflow_id is None:
        return None
    case, _ = RegressionCase.objects.get_or_create(
        source_action=action,
        origin=defaults.pop("origin"),
        defaults={
            **defaults,
            "workflow_id": run.workflow_id,
            "ticket_id": run.ticket_id,
            "source_run": run,
            "note": action.decision_reason,
        },
    )
    return case


@transaction.atomic
def regression_case_from_rating(*, rating: Rating) -> RegressionCase | None:
    """A thumbs-down makes a case (the call, or the reply, must not come again); a rating changed to thumbs-up
    retires it."""
    existing = RegressionCase.objects.filter(source_rating=rating).first()
    if rating.value != Rating.Value.DOWN:
        if existing is not None and existing.active:
            existing.active = False
            existing.save(update_fields=["active"])
        return None
    if existing is not None:
        if not existing.active:
            existing.active = True
            existing.save(update_fields=["active"])
        return existing
    if rating.action_id is not None:
        action = rating.action
        run, tool, args = action.run, action.tool, action.args
    else:
        step = rating.step
        run, tool, args = step.run, step.tool_name, step.tool_input or {}
    if run.workflow_id is None or not tool:
        return None
    expectation: dict[str, Any] = {"forbid_call": {"tool": tool, "args": args}}
    if _is_reply(tool):
        expectation = {"forbid_reply": str(args.get("body", ""))}
    case = RegressionCase(
        workflow_id=run.workflow_id,
        ticket_id=run.ticket_id,
        source_run=run,
        source_rating=rating,
        origin=RegressionCase.Origin.THUMBS_DOWN,
        note=rating.comment,
        **expectation,
    )
    case.full_clean(validate_constraints=False)
    case.save()
    return case


def regression_cases_sync(*, workflow_id: int) -> int:
    """Capture every decided action of a workflow that is not a case yet (approvals are only known to be good once
    verified, after the decision). Returns how many cases were added."""
    covered = set(
        RegressionCase.objects.filter(workflow_id=workflow_id, source_action__isnull=False)
        .exclude(origin=RegressionCase.Origin.THUMBS_DOWN)
        .values_list("source_action_id", flat=True)
    )
    teaching = (
        Q(status=ProposedAction.Status.REJECTED)
        | Q(status__in=APPROVED, original_args__isnull=False)
        | Q(status=ProposedAction.Status.EXECUTED, verification=ProposedAction.Verification.PASSED,
            risk=Risk.WRITE)
    )  # fmt: skip
    decided = (
        ProposedAction.objects.filter(teaching, run__workflow_id=workflow_id, decided_by__isnull=False)
        .exclude(pk__in=covered)
        .select_related("run")
    )
    return sum(1 for action in decided if regression_case_capture(action=action) is not None)


@transaction.atomic
def suite_run_start(*, version: WorkflowVersion, user: Any) -> Replay | None:
    """Run the workflow's regression suite against a version, in the background. None: the suite is empty."""
    regression_cases_sync(workflow_id=version.workflow_id)
    cases = list(RegressionCase.objects.filter(workflow_id=version.workflow_id, active=True).order_by("id"))
    if not cases:
        return None
    replay = Replay.objects.create(
        workflow_id=version.workflow_id, version=version, kind=Replay.Kind.SUITE, total=len(cases), created_by=user
    )
    ReplayItem.objects.bulk_create(
        ReplayItem(replay=replay, position=n, ticket_id=case.ticket_id, case=case, source_run=case.source_run)
        for n, case in enumerate(cases)
    )
    audit_event_record(
        verb="suite.started", obj=replay, payload={"version": version.number, "cases": len(cases)}, user=user
    )
    transaction.on_commit(lambda: replay_execute_send(replay.pk))
    return replay


# --- A run a skipped case was waiting for stops: the suite runs again --------------------------------------------


def suite_waiting_sql(run_table: str) -> str:
    """suite_rerun_on_stop's query as one SQL expression on a row of `run_table` (the run's ticket and workflow),
    for a statement that changes the run's status to return with it: the suite run to run again, or NULL."""
    item, case, replay = (f'"{m._meta.db_table}"' for m in (ReplayItem, RegressionCase, Replay))
    return (
        f"(SELECT ri.replay_id FROM {item} ri JOIN {case} rc ON rc.id = ri.case_id "  # noqa: S608 - names from the models' meta
        f"JOIN {replay} rp ON rp.id = ri.replay_id WHERE ri.ticket_id = {run_table}.ticket_id "
        f"AND ri.case_result = '{ReplayItem.CaseResult.SKIPPED}' AND rc.workflow_id = {run_table}.workflow_id "
        f"AND rp.kind = '{Replay.Kind.SUITE}' ORDER BY ri.replay_id DESC LIMIT 1)"
    )


def suite_rerun_later(replay_id: int | None) -> None:
    """Send the suite run again once the caller's transaction commits (the id suite_waiting_sql found, if any)."""
    if replay_id is not None:
        transaction.on_commit(lambda: suite_rerun_send(replay_id), robust=True)


def suite_rerun_on_stop(*, run: AgentRun) -> None:
    """A version's suite runs as soon as the version is made, often while a case's ticket is still being worked: the
    case is then skipped (no recorded run) and blocks promotion. When that run stops advancing, the suite is run
    again for the version (by a task, when the caller's transaction commits). The check is one query on the run's
    ticket, which finds nothing on almost every run."""
    if run.status not in RUN_STOPPED or run.workflow_id is None:
        return
    waiting = ReplayItem.objects.filter(
        ticket_id=run.ticket_id,
        case_result=ReplayItem.CaseResult.SKIPPED,
        case__workflow_id=run.workflow_id,
        replay__kind=Replay.Kind.SUITE,
    )
    replay_id = waiting.order_by("-replay_id").values_list("replay_id", flat=True).first()
    if replay_id is not None:
        transaction.on_commit(lambda: suite_rerun_send(replay_id), robust=True)


@transaction.atomic
def suite_rerun(*, replay_id: int) -> Replay | None:
    """Run the suite again for its version when `replay_id` is still the latest (finished) suite run of the version
    in force; otherwise nothing. Idempotent: a second message about the same suite run finds a newer one."""
    replay = Replay.objects.filter(pk=replay_id, kind=Replay.Kind.SUITE).first()
    if replay is None:
        return None
    Workflow.objects.select_for_update().filter(pk=replay.workflow_id).first()  # one decision at a time
    in_force = WorkflowVersion.objects.filter(workflow_id=replay.workflow_id).order_by("-number").first()
    if in_force is None or in_force.pk != replay.version_id:
        return None
    latest = suite_latest_run(version=in_force)
    if latest is None or latest.pk != replay.pk or latest.status != Replay.Status.DONE:
        return None
    return suite_run_start(version=in_force, user=None)


# --- Judging a replay against a case ----------------------------------------------------------------------------


def _matches(expected: dict[str, Any], effect: dict[str, Any]) -> bool:
    """A call matches an expectation on its tool and, when the expectation names arguments, on each of them."""
    if effect.get("tool") != expected.get("tool"):
        return False
    wanted = expected.get("args")
    if wanted is None:
        return True
    got = effect.get("args") or {}
    return all(got.get(key) == value for key, value in wanted.items())


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def case_failures(*, case: RegressionCase, effects: list[dict[str, Any]]) -> list[str]:
    """What a replay did against what the case expects; empty when it passes."""
    failures = []
    if case.expect_call and not any(_matches(case.expect_call, effect) for effect in effects):
        failures.append(f"expected {_describe(case.expect_call)}; it was not made")
    if case.forbid_call and any(_matches(case.forbid_call, effect) for effect in effects):
        failures.append(f"made {_describe(case.forbid_call)}, which a reviewer {_verb(case)}")
    if case.forbid_reply:
        for effect in effects:
            if _is_reply(str(effect.get("tool") or "")) and _same_text(str((effect.get("args") or {}).get("body", "")),
                                                               case.forbid_reply):  # fmt: skip
                failures.append("sent the reply a reviewer " + _verb(case))
    return failures


def _describe(call: dict[str, Any]) -> str:
    args = call.get("args")
    if args is None:
        return f"any {call.get('tool')} call"
    shown = ", ".join(f"{key}={value!r}" for key, value in sorted(args.items()))
    return f"{call.get('tool')}({shown})"


def _verb(case: RegressionCase) -> str:
    return {
        RegressionCase.Origin.REJECTED: "rejected",
        RegressionCase.Origin.EDITED: "corrected",
        RegressionCase.Origin.THUMBS_DOWN: "rated thumbs-down",
    }.get(case.origin, "ruled out")


# --- The promotion gate's view of a suite -----------------------------------------------------------------------


def suite_latest_run(*, version: WorkflowVersion) -> Replay | None:
    return Replay.objects.filter(version=version, kind=Replay.Kind.SUITE).order_by("-created_at", "-id").first()


def suite_unmet(*, version: WorkflowVersion) -> list[str]:
    """Why the version in force does not (yet) pass its workflow's regression suite; empty when it does."""
    return suite_unmet_many(versions=[version])[version.pk]


def suite_unmet_many(*, versions: list[WorkflowVersion]) -> dict[int, list[str]]:
    """suite_unmet for many versions in three queries in all (the workflows page shows every workflow's)."""
    cases: dict[int, set[int]] = defaultdict(set)
    workflow_ids = {version.workflow_id for version in versions}
    for workflow_id, case_id in RegressionCase.objects.filter(workflow_id__in=workflow_ids, active=True).values_list(
        "workflow_id", "id"
    ):
        cases[workflow_id].add(case_id)
    latest: dict[int, Replay] = {}
    for replay in Replay.objects.filter(version__in=versions, kind=Replay.Kind.SUITE).order_by("created_at", "id"):
        latest[replay.version_id] = replay
    results: dict[int, dict[int, str]] = defaultdict(dict)
    for replay_id, case_id, result in ReplayItem.objects.filter(
        replay__in=list(latest.values()), case__isnull=False
    ).values_list("replay_id", "case_id", "case_result"):
        results[replay_id][case_id] = result
    return {
        version.pk: _suite_unmet(version, cases[version.workflow_id], latest.get(version.pk), results)
        for version in versions
    }


def _suite_unmet(
    version: WorkflowVersion, cases: set[int], latest: Replay | None, results: dict[int, dict[int, str]]
) -> list[str]:
    if not cases:
        return []
    if latest is None:
        return [f"the regression suite ({len(cases)} cases) has not run on version {version.number}"]
    if latest.status in (Replay.Status.QUEUED, Replay.Status.RUNNING):
        return [f"the regression suite is still running on version {version.number}"]
    if latest.status == Replay.Status.FAILED:
        return [f"the regression suite run on version {version.number} failed: {latest.error}"]
    ran = results.get(latest.pk, {})
    unmet = []
    failed = [case for case, result in ran.items() if result == ReplayItem.CaseResult.FAILED and case in cases]
    if failed:
        unmet.append(f"version {version.number} fails {len(failed)} of {len(cases)} regression cases")
    skipped = [case for case, result in ran.items() if result == ReplayItem.CaseResult.SKIPPED and case in cases]
    if skipped:
        unmet.append(f"{len(skipped)} regression cases had no recorded run to replay on version {version.number}")
    new = cases - set(ran)
    if new:
        unmet.append(f"{len(new)} regression cases were added since the suite last ran on version {version.number}")
    return unmet
