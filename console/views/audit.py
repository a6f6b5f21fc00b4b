"""The audit log, for reviewers: every recorded event, filtered."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agentconsole.keyset import CursorError
from agentconsole.roles import is_reviewer
from audit.models import AuditEvent
from console.selectors.audit import AuditPage, audit_event_page

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."
FILTERS = ("verb", "actor", "object")


@require_GET
@login_required
def event_list(request: HttpRequest) -> HttpResponse:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)
    filters = {name: request.GET.get(name, "")[:200] for name in FILTERS}
    status, error = 200, ""
    try:
        page = audit_event_page(
            verb=filters["verb"],
            actor=filters["actor"],
            obj=filters["object"],
            after=request.GET.get("after", ""),
            before=request.GET.get("before", ""),
            oldest=request.GET.get("oldest", "") == "1",
        )
    except CursorError as exc:  # an edited or truncated link: say so, and offer the newest page
        status, error = exc.status_code, exc.message
        page = AuditPage(rows=[], newer="", older="", newest=False)
    # Pagination links keep the filters: the query string without its position.
    query = request.GET.copy()
    for key in ("page", "after", "before", "oldest"):
        query.pop(key, None)
    template = "audit/event_list.html#audit-results" if request.htmx else "audit/event_list.html"
    context = {
        "page": page,
        "error": error,
        "filters": filters,
        "query": query.urlencode(),
        "actor_kinds": AuditEvent.ActorKind.choices,
    }
    return render(request, template, context, status=status)
