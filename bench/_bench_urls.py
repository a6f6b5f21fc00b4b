"""The product's URLs plus the anchors the bench scripts compare with (served by the same gunicorn)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

BARE_TABLE = "bench_bare_insert"


@csrf_exempt
@require_POST
def bare_insert(request: HttpRequest) -> JsonResponse:
    """The anchor: one INSERT of the raw body, nothing else."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {BARE_TABLE} (body) VALUES (%s)", [request.body.decode()])  # noqa: S608
    return JsonResponse({"stored": True}, status=202)


urlpatterns = [
    path("bench/bare-insert", bare_insert),
    path("", include("agentconsole.urls")),
]
