"""The one NinjaAPI of the project; each app contributes a Router."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from agentconsole.errors import ApplicationError
from tickets.api import router as webhooks_router

api = NinjaAPI(
    title="Agent Console API",
    version="1",
    description="Webhooks in; tickets, runs and proposed actions out.",
    urls_namespace="api",
)
api.add_router("/webhooks/", webhooks_router)


@api.exception_handler(ApplicationError)
def application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)
