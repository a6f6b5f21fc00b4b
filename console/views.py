from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agent.llm import engine_label
from console.roles import is_admin, is_reviewer
from console.selectors import ticket_list

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)
    return render(
        request,
        "console/home.html",
        {"tickets": ticket_list(), "is_admin": is_admin(request.user), "engine_label": engine_label()},
    )
