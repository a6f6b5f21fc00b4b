"""The one NinjaAPI of the project; each app contributes a Router."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.datastructures import MultiValueDict
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.parser import Parser

from agent.api import router as agent_router
from agentconsole import jsonlimits
from agentconsole.errors import ApplicationError
from console.auth import api_auth
from tickets.api import router as tickets_router


class BoundedParser(Parser):
    """Bodies and query strings pass the same limits as the webhook before any schema sees them: NUL, lone
    surrogates, deep nesting and oversized numbers are a 400 naming the field, never a database error."""

    def parse_body(self, request: HttpRequest) -> Any:
        return jsonlimits.loads(request.body)

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str], request: HttpRequest) -> dict[str, Any]:
        for key, values in data.lists():
            for value in [key, *values]:
                if problem := jsonlimits.text_problem(value):
                    raise jsonlimits.UnsafeInput(
                        jsonlimits.BODY_UNSAFE.replace("body", "query"), field=key, problem=problem
                    )
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    title="Agent Console API",
    version="1",
    description=(
        "Webhooks in; tickets, runs, proposed actions and workflows out. Authenticate with the browser session "
        "(unsafe methods need the CSRF token in X-CSRFToken) or `Authorization: Bearer <personal API token>`."
    ),
    urls_namespace="api",
    auth=api_auth,
    parser=BoundedParser(),
)
# Both routers hold absolute paths (/tickets, /runs, /webhooks/zendesk): one mount point, no prefixes to combine.
api.add_router("/", tickets_router)
api.add_router("/", agent_router)


@api.exception_handler(ApplicationError)
def application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status_code)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja wraps whatever the body parser raised in a bare "Cannot parse request body": say what and where.
    if isinstance(exc.__cause__, ApplicationError):
        return application_error(request, exc.__cause__)
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)
