"""HTMX and an expired session: login_required answers a background request with a redirect to the login page,
which htmx would follow and swap the whole login page into a card. Tell htmx to load the login page instead."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url


class HtmxLoginRedirectMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or response.status_code != 302:
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response.get("Location", "")).path != login:
            return response
        # Back to the page the reviewer was on, not the fragment or POST endpoint the request went to.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        page = current.path + (f"?{current.query}" if current.query else "") if current.path else "/"
        redirected = HttpResponse(status=200)
        redirected["HX-Redirect"] = f"{login}?{urlencode({'next': page})}"
        return redirected
