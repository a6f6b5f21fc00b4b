"""How the API knows who is calling: a personal API token (automation) or the browser's session (with CSRF).

Token issue and revoke live here too, beside the only code that reads tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth

from agentconsole.errors import NotAuthenticated, PermissionDeniedError
from agentconsole.roles import is_reviewer
from audit.services import audit_event_record
from console.models import ApiToken

TOKEN_PREFIX = "ac_"  # noqa: S105 -- a marker that makes leaked tokens greppable, not a secret
TOKEN_INVALID = "The API token is unknown or revoked."  # noqa: S105 -- a message
NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."
LAST_USED_RESOLUTION = timedelta(minutes=1)


def login_client_address(request: HttpRequest) -> str:
    """The address login throttling counts failures against. Behind the TLS proxy (DJANGO_BEHIND_TLS_PROXY) every
    request comes from the proxy, so take the address the proxy appended last to X-Forwarded-For; anything before
    it came from the client and proves nothing."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_issue(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token for user; returns the row and the token, which is never stored and cannot be shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken(user=user, name=name.strip(), prefix=token[:8], token_hash=token_hash(token))
    api_token.full_clean()
    api_token.save()
    audit_event_record(verb="api_token.issued", obj=api_token, payload={"name": api_token.name}, user=user)
    return api_token, token


@transaction.atomic
def api_token_revoke(*, api_token: ApiToken, user: AbstractBaseUser | AnonymousUser) -> ApiToken:
    """Stop a token from working. Revoking a revoked token changes nothing."""
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        audit_event_record(verb="api_token.revoked", obj=api_token, payload={"name": api_token.name}, user=user)
    return api_token


def _require_member(user: AbstractBaseUser) -> AbstractBaseUser:
    # Read access for the whole API is decided here, once; writes are checked again by the services.
    if not is_reviewer(user):
        raise PermissionDeniedError(NOT_A_MEMBER)
    return user


class ApiTokenAuth(HttpBearer):
    """`Authorization: Bearer ac_…`. A Bearer header that does not match a live token is refused outright
    rather than falling through to the session: a script with a revoked token must notice."""

    def __call__(self, request: HttpRequest) -> Any:
        # ninja's HttpBearer logs the whole header in DEBUG when the scheme is not Bearer: never log a token.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        # The lookup is by hash: comparing hashes in an index leaks nothing useful about the token's characters.
        api_token = (
            ApiToken.objects.select_related("user")
            .filter(token_hash=token_hash(token), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if api_token is None:
            raise NotAuthenticated(TOKEN_INVALID)
        now = timezone.now()
        if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
            # At most one write a minute per token, however busy the script is.
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        request.user = api_token.user
        return _require_member(api_token.user)


class ConsoleSessionAuth(SessionAuth):
    """The browser's Django session; unsafe methods need the CSRF token (ninja's cookie auth checks it).

    Unlike ninja's django_auth it checks CSRF only when there is a logged-in session: a request with no
    session carries no ambient authority to forge, and deserves 401 (log in or send a token), not a CSRF 403.
    """

    def _get_key(self, request: HttpRequest) -> str | None:
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> AbstractBaseUser | None:
        if not request.user.is_authenticated:
            return None
        return _require_member(request.user)


api_auth = [ApiTokenAuth(), ConsoleSessionAuth()]
