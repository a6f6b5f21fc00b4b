"""The one NinjaAPI of the project; each app contributes a Router."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from agent.api import router as agent_router
from agentconsole.errors import ApplicationError
from tickets.api import router as tickets_router

api = NinjaAPI(
    title="Agent Console API",
    version="1",
    description=(
        "Webhooks in; tickets, runs, proposed actions and workflows out. Authenticate with the browser session "
        "(unsafe methods need the CSRF token in X-CSRFToken) or `Authorization: Bearer <personal API token>`."
    ),
    urls_namespace="api",
)
# Both routers hold absolute paths (/tickets, /runs, /webhooks/zendesk): one mount point, no prefixes to combine.
api.add_router("/", tickets_router)
api.add_router("/", agent_router)


@api.exception_handler(ApplicationError)
def application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)
