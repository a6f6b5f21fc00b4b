"""Demo data: users, tenant links, workflows with runbooks, and a few tickets. Safe to run any number of times."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction

from agent.models import ConfigPatch, RegressionCase, Runbook, Workflow
from agent.services.intake import zendesk_event_receive
from agentconsole.roles import ADMINS, REVIEWERS
from tickets.models import HelpdeskUser, TenantLink, Ticket
from tickets.zendesk_webhook import EVENT_TICKET_CREATED, parse_event

DEMO_ORGANIZATIONS = [
    ("360001", "Acme Analytics", "acme"),
    ("360002", "Globex Logistics", "globex"),
    ("360003", "Initech Payroll", "initech"),
    ("360004", "Umbrella Health", "umbrella"),
    ("360005", "Hooli Search", "hooli"),
    ("360006", "Stark Manufacturing", "stark"),
]

# One requester per demo organization, in the local helpdesk's directory: the agent reads the requester's identity
# from here (from Zendesk's API in production), never from the ticket's text. Requester id: the organization id + "1".
DEMO_REQUESTERS = [
    ("360001", "Ada Lindqvist", "ops@acme.example", "en-GB"),
    ("360002", "Gus Moreau", "ops@globex.example", "en-US"),
    ("360003", "Olivia Park", "ops@initech.example", "en-US"),
    ("360004", "Uma Reyes", "billing@umbrella.example", "de"),
    ("360005", "Hank Sato", "ops@hooli.example", "en-US"),
    ("360006", "Pepper Ruiz", "ops@stark.example", "en-US"),
]


def demo_requester_id(organization_id: str) -> str:
    return f"{organization_id}1"


# What every demo workflow's model sees besides its own company tool: reads and the helpdesk. A lockout run does
# not see extend_trial (Workflow.tools).
COMMON_TOOLS = ["run_sql", "search_logs", "search_runbooks", "add_private_note", "route_ticket", "reply_to_customer",
                "solve_ticket"]  # fmt: skip

DEMO_WORKFLOWS = [
    {
        "slug": "stale-cache",
        "tools": [*COMMON_TOOLS, "reset_tenant_cache"],
        "name": "Stale cache reset",
        "phase": Workflow.Phase.AUTONOMOUS,
        "match_tags": ["stale_cache"],
        "match_keywords": ["stale data", "old data", "not updating", "cache"],
        "preapproved_tools": ["reset_tenant_cache"],
        "runbook": (
            "1. Read the tenant's cache version and last reset time from support_tenant_overview.\n"
            "2. Search the tenant's logs for cache errors in the last 24 hours.\n"
            "3. If cache errors are present, call reset_tenant_cache for the tenant.\n"
            "4. Verify: the cache version rose and the reset time is after the call.\n"
            "5. Reply to the customer that the cache was refreshed, then solve the ticket."
        ),
        "playbook": [
            {
                "tool": "run_sql",
                "why": "read the cache state",
                "args": {
                    "query": "SELECT tenant_id, status, cache_version, cache_reset_at FROM support_tenant_overview"
                },
            },
            {"tool": "search_logs", "why": "look for cache errors", "args": {"query": "cache_error", "minutes": 1440}},
            {
                "tool": "reset_tenant_cache",
                "why": "reset the cache",
                "args": {"tenant_id": "{tenant_id}"},
                # No cache errors: a reset would not fix what the customer sees, so a human looks instead.
                "when": {"tool": "search_logs", "field": "count", "above": 0},
                "otherwise": "escalate",
            },
            {
                "tool": "reply_to_customer",
                "why": "tell the customer",
                "args": {
                    "body": "Hello, we found stale entries in your workspace's cache and refreshed it. Your "
                    "dashboards show current data again. Sorry for the trouble!"
                },
            },
            {"tool": "solve_ticket", "why": "close the loop", "args": {}},
        ],
    },
    {
        "slug": "trial-extension",
        "tools": [*COMMON_TOOLS, "extend_trial"],
        "name": "Trial extension",
        "phase": Workflow.Phase.TRIAGE,
        "match_tags": ["trial_extension"],
        "match_keywords": ["extend my trial", "trial extension", "more time on the trial", "trial"],
        "preapproved_tools": ["extend_trial"],
        "tool_limits": {"extend_trial": {"days": {"max": 14}}},
        "runbook": (
            "1. Read the tenant's plan, status and trial end from support_tenant_overview.\n"
            "2. Only a tenant that is still trialing can be extended, by at most 14 days.\n"
            "3. Propose extend_trial with the number of days asked for (at most 14).\n"
            "4. Verify the new trial end date, then reply with it."
        ),
        "playbook": [
            {
                "tool": "run_sql",
                "why": "read the trial",
                "args": {"query": "SELECT tenant_id, plan, status, trial_ends_at FROM support_tenant_overview"},
            },
            {
                "tool": "add_private_note",
                "why": "share the context",
                "args": {"body": "Trial context:\n{findings}\n{routing}\n{full_data}"},
            },
            {
                "tool": "route_ticket",
                "why": "trials belong to billing",
                "args": {"pod": "billing", "reason": "A trial extension: billing owns trials."},
            },
            {
                "tool": "extend_trial",
                "why": "extend by a week",
                "args": {"tenant_id": "{tenant_id}", "days": 7},
                "when": {"tool": "run_sql", "field": "rows.0.2", "equals": "trialing"},
                "otherwise": "escalate",
            },
            {
                "tool": "reply_to_customer",
                "why": "tell the customer",
                # What ran, a reviewer's edit included: never the playbook's own 7.
                "args": {"body": "Hello, we extended your trial by {extend_trial.days} days. Enjoy the extra time!"},
            },
            {"tool": "solve_ticket", "why": "close the loop", "args": {}},
        ],
    },
    {
        "slug": "account-lockout",
        "tools": [*COMMON_TOOLS, "unlock_user"],
        "name": "Account lockout",
        "phase": Workflow.Phase.TRIAGE,
        "match_tags": ["locked_out"],
        "match_keywords": ["locked out", "cannot log in", "can't log in", "account locked"],
        "runbook": (
            "1. Find the requester (by the e-mail in their helpdesk profile) in support_tenant_users and read failed "
            "logins and lock state.\n"
            "2. Search the logs for login failures for that user in the last hour.\n"
            "3. Post a private note with what was found and route the ticket to the identity pod.\n"
            "4. If the account is locked, propose unlock_user; after it runs, verify the user is unlocked.\n"
            "5. Reply to the customer that they can log in again."
        ),
        "playbook": [
            {
                "tool": "run_sql",
                "why": "read the user's lock state",
                "args": {
                    "query": "SELECT email, failed_logins, locked, locked_at FROM support_tenant_users "
                    "WHERE email = '{requester_email}'"
                },
            },
            {
                "tool": "search_logs",
                "why": "count recent login failures",
                "args": {"query": 'login_failed "{requester_email}"', "minutes": 60},
            },
            {
                "tool": "add_private_note",
                "why": "share the context",
                "args": {
                    "body": "Lockout context for {requester_name} <{requester_email}>:\n{findings}\n{routing}\n"
                    "{full_data}"
                },
            },
            {
                "tool": "route_ticket",
                "why": "lockouts belong to identity",
                "args": {"pod": "identity", "reason": "An account lockout: identity owns sign-in and lockouts."},
            },
            {
                "tool": "unlock_user",
                "why": "unlock the account",
                "args": {"tenant_id": "{tenant_id}", "email": "{requester_email}"},
                "when": {"tool": "run_sql", "field": "rows.0.2", "equals": True},
                "otherwise": "escalate",
            },
            {
                "tool": "reply_to_customer",
                "why": "tell the customer",
                "args": {"body": "Hello, your account {unlock_user.email} is unlocked; you can log in again."},
            },
            {"tool": "solve_ticket", "why": "close the loop", "args": {}},
        ],
    },
    {
        "slug": "config-patch",
        "tools": [*COMMON_TOOLS, "apply_config_patch"],
        "name": "Known configuration patch",
        "phase": Workflow.Phase.SHADOW,
        "match_tags": ["config_issue"],
        "match_keywords": ["terraform", "configuration", "config"],
        "runbook": (
            "1. Read the tenant's configuration values from support_tenant_config.\n"
            "2. Search the runbooks for a known patch matching the symptom.\n"
            "3. Propose apply_config_patch with the patch id; verify the value changed.\n"
            "4. Reply with what was changed."
        ),
        "playbook": [
            {
                "tool": "run_sql",
                "why": "read the configuration",
                "args": {"query": "SELECT key, value FROM support_tenant_config"},
            },
            {"tool": "search_runbooks", "why": "find the known fix", "args": {"query": "terraform state lock timeout"}},
            {
                "tool": "apply_config_patch",
                "why": "apply the known fix",
                "args": {"tenant_id": "{tenant_id}", "patch_id": "terraform-lock-timeout"},
            },
            {
                "tool": "reply_to_customer",
                "why": "tell the customer",
                "args": {"body": "Hello, we applied the known fix for Terraform state lock timeouts."},
            },
        ],
    },
    {
        "slug": "billing-question",
        "tools": [*COMMON_TOOLS, "get_billing_status"],
        "name": "Billing question",
        "phase": Workflow.Phase.SHADOW,
        "match_tags": ["billing"],
        "match_keywords": ["invoice", "billing", "charged", "refund"],
        "runbook": (
            "1. Call get_billing_status for the tenant.\n"
            "2. Post a private note summarising the subscription and the last invoices.\n"
            "3. Route the ticket to the billing pod; never promise a refund."
        ),
        "playbook": [
            {"tool": "get_billing_status", "why": "read billing", "args": {"tenant_id": "{tenant_id}"}},
            {
                "tool": "add_private_note",
                "why": "share the context",
                "args": {"body": "Billing context:\n{findings}\n{routing}\n{full_data}"},
            },
            {
                "tool": "route_ticket",
                "why": "billing owns invoices",
                "args": {"pod": "billing", "reason": "An invoice question: billing owns invoices and charges."},
            },
        ],
    },
]

DEMO_CONFIG_PATCHES = [
    {
        "patch_id": "terraform-lock-timeout",
        "title": "Terraform state lock timeout",
        "description": "Applies when Terraform runs fail with 'Error acquiring the state lock' and the tenant's "
        "terraform.state_lock_timeout is 0.",
        "config_key": "terraform.state_lock_timeout",
        "value": "300",
    },
]

DEMO_RUNBOOKS = [
    {
        "slug": "terraform-state-lock",
        "title": "Terraform state lock timeouts",
        "tags": ["terraform", "config", "lock"],
        "body": "Symptom: runs fail acquiring the state lock. Cause: terraform.state_lock_timeout is 0. "
        "Fix: apply the known patch terraform-lock-timeout (sets it to 300), then verify the value.",
    },
    {
        "slug": "stale-dashboards",
        "title": "Dashboards show stale data",
        "tags": ["cache", "dashboard", "stale"],
        "body": "Look for cache_error lines in the tenant's logs. A cache reset (rate-limited to one a minute) "
        "clears stale entries; verify the cache version rose.",
    },
]

DEMO_TICKETS = [
    (
        90001,
        "360001",
        "Dashboard shows stale data since this morning",
        "Our numbers have not updated since 6am.",
        ["stale_cache"],
    ),
    (90002, "360002", "Can we extend our trial by a week?", "We need one more week to evaluate.", ["trial_extension"]),
    (
        90003,
        "360003",
        "Locked out of my account",
        "I get 'account locked' every time I try to log in.",
        ["locked_out"],
    ),
    (90004, "360004", "Question about last invoice", "We were charged twice in October.", ["billing"]),
    (
        90005,
        "360006",
        "Terraform runs fail: error acquiring the state lock",
        "Every terraform apply since yesterday stops with 'Error acquiring the state lock'.",
        ["config_issue"],
    ),
    # Two the agent cannot work, so the knowledge-gaps page has something to show: no workflow covers an export
    # request, and Umbrella is not on a trial, so the trial runbook's extension step does not apply.
    (90006, "360005", "Can you export our audit log to S3?", "We need a nightly export for compliance.", []),
    (90007, "360004", "Please extend our trial", "Two more weeks would help us decide.", ["trial_extension"]),
]

# The regression suite each demo workflow ships with, on the demo's own tickets: what any new version of the
# workflow must (not) do there. Replays answer from each ticket's recorded run.
DEMO_SUITE_CASES = [
    ("stale-cache", 90001, {"expect_call": {"tool": "reset_tenant_cache", "args": {"tenant_id": "acme"}}},
     "A stale cache with cache errors in the logs is reset."),
    ("trial-extension", 90002, {"expect_call": {"tool": "extend_trial", "args": {"tenant_id": "globex", "days": 7}}},
     "A trialing tenant asking for a week gets exactly a week."),
    ("account-lockout", 90003, {"expect_call": {"tool": "route_ticket", "args": {"pod": "identity"}}},
     "Lockouts go to the identity pod."),
    ("config-patch", 90005,
     {"expect_call": {"tool": "apply_config_patch",
                      "args": {"tenant_id": "stark", "patch_id": "terraform-lock-timeout"}}},
     "A state lock timeout of 0 gets the curated patch, nothing else."),
    ("billing-question", 90004, {"forbid_call": {"tool": "reply_to_customer", "args": None}},
     "Billing questions are never answered by the agent: billing replies, and never promises a refund."),
]  # fmt: skip


@dataclass(frozen=True)
class DemoCredentials:
    admin_password: str
    reviewer_password: str


def _user(username: str, password: str, group: str, *, staff: bool) -> None:
    user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.set_password(password)
    user.is_staff = staff
    user.is_superuser = staff
    user.save()
    user.groups.add(Group.objects.get(name=group))


def _demo_event(external_id: int, organization_id: str, subject: str, description: str, tags: list[str]) -> bytes:
    return json.dumps(
        {
            "id": f"demo-seed-{external_id}",
            "type": EVENT_TICKET_CREATED,
            "account_id": 1,
            "subject": f"zen:ticket:{external_id}",
            "detail": {
                "id": str(external_id),
                "subject": subject,
                "description": description,
                "requester_id": demo_requester_id(organization_id),
                "organization_id": organization_id,
                "status": "NEW",
                "priority": "NORMAL",
                "tags": tags,
            },
        }
    ).encode()


@transaction.atomic
def demo_seed(*, credentials: DemoCredentials) -> None:
    """Create or refresh the demo data. Idempotent: every row is keyed by a natural key."""
    _user("admin", credentials.admin_password, ADMINS, staff=True)
    _user("reviewer", credentials.reviewer_password, REVIEWERS, staff=False)
    for organization_id, name, tenant_id in DEMO_ORGANIZATIONS:
        TenantLink.objects.update_or_create(
            organization_id=organization_id, defaults={"organization_name": name, "tenant_id": tenant_id}
        )
    for organization_id, name, email, locale in DEMO_REQUESTERS:
        HelpdeskUser.objects.update_or_create(
            external_id=demo_requester_id(organization_id), defaults={"name": name, "email": email, "locale": locale}
        )
    for patch in DEMO_CONFIG_PATCHES:
        ConfigPatch.objects.get_or_create(patch_id=patch["patch_id"], defaults=patch)
    for runbook in DEMO_RUNBOOKS:
        Runbook.objects.get_or_create(slug=runbook["slug"], defaults=runbook)
    for spec in DEMO_WORKFLOWS:
        Workflow.objects.get_or_create(slug=spec["slug"], defaults={k: v for k, v in spec.items() if k != "slug"})
    for external_id, organization_id, subject, description, tags in DEMO_TICKETS:
        # The same path as a real delivery: a fixed event id makes the second seed a no-op.
        zendesk_event_receive(parsed=parse_event(_demo_event(external_id, organization_id, subject, description, tags)))
    for slug, external_id, expectation, note in DEMO_SUITE_CASES:
        RegressionCase.objects.get_or_create(
            workflow=Workflow.objects.get(slug=slug),
            ticket=Ticket.objects.get(external_id=str(external_id)),
            origin=RegressionCase.Origin.SEEDED,
            defaults={**expectation, "note": note},
        )
