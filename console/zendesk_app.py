"""Who is looking at the Zendesk sidebar app: Zendesk's signed-URL JWT, then a short-lived sidebar session.

The sidebar page runs in an iframe inside Zendesk, another site: its cookies are third-party cookies, which
browsers block. So the sidebar uses none. Zendesk POSTs the first request with a `token` form field, a JWT it signs
for the app (manifest.json `signedUrls: true`); we verify it with the app's shared secret (HS256,
ZENDESK_APP_SHARED_SECRET) or with the app's public key (RS256, ZENDESK_APP_PUBLIC_KEY: what Zendesk signs with
today), each key bound to its one algorithm so neither can pass for the other. The agent's e-mail in the token
maps to one active console user. That user then gets a sidebar token (signed with DJANGO_SECRET_KEY, valid
ZENDESK_APP_SESSION_SECONDS) that the page sends as `Authorization: Bearer …` with every request. Being a header,
not a cookie, it is never sent by another site: no CSRF token is needed, and none is used.
"""

from __future__ import annotations

from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.http import HttpRequest

from agentconsole.errors import PermissionDeniedError
from agentconsole.roles import is_reviewer

NOT_CONFIGURED = "The Zendesk app is not configured: set ZENDESK_APP_SHARED_SECRET or ZENDESK_APP_PUBLIC_KEY."
TOKEN_MISSING = "Open this page from the Agent Console app in Zendesk: the request carries no signed token."  # noqa: S105 - a message
TOKEN_EXPIRED = "The Zendesk token has expired: reload the ticket in Zendesk."  # noqa: S105 - a message
TOKEN_INVALID = "The Zendesk token is not valid: {reason}"  # noqa: S105 - a message
TOKEN_WRONG_ISSUER = "The Zendesk token was issued by {issuer!r}, not by this console's Zendesk account."  # noqa: S105 - a message
TOKEN_WRONG_LOCATION = "The Zendesk token is for the {location!r} location, not the ticket sidebar."  # noqa: S105 - a message
TOKEN_NO_EMAIL = "The Zendesk token names no user e-mail."  # noqa: S105 - a message
USER_UNKNOWN = "No active Agent Console user has the e-mail {email!r}: ask an admin to add you."
USER_AMBIGUOUS = "More than one Agent Console user has the e-mail {email!r}: ask an admin to fix it."
NOT_A_MEMBER = "Your Agent Console account is in neither the reviewers nor the admins group. Ask an admin for access."
SESSION_MISSING = "The sidebar session is missing: reload the ticket in Zendesk."
SESSION_INVALID = "The sidebar session has expired or is not valid: reload the ticket in Zendesk."

SESSION_SALT = "agentconsole.zendesk-sidebar"
SESSION_FIELD = "sidebar_token"
LEEWAY_SECONDS = 30


class SidebarDenied(PermissionDeniedError):
    """403 with a message the sidebar shows."""


def _keys() -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if settings.ZENDESK_APP_SHARED_SECRET:
        keys["HS256"] = settings.ZENDESK_APP_SHARED_SECRET
    if settings.ZENDESK_APP_PUBLIC_KEY:
        keys["RS256"] = settings.ZENDESK_APP_PUBLIC_KEY
    return keys


def _email(claims: dict[str, Any]) -> str:
    for holder in (claims, claims.get("user"), (claims.get("context") or {}).get("user")):
        if isinstance(holder, dict) and isinstance(holder.get("email"), str) and holder["email"].strip():
            return holder["email"].strip()
    return ""


def zendesk_token_verify(token: str) -> dict[str, Any]:
    """The claims of a Zendesk signed-URL token, or SidebarDenied saying what is wrong with it."""
    keys = _keys()
    if not keys:
        raise SidebarDenied(NOT_CONFIGURED)
    if not token:
        raise SidebarDenied(TOKEN_MISSING)
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError as exc:
        raise SidebarDenied(TOKEN_INVALID.format(reason=exc)) from None
    if algorithm not in keys:
        raise SidebarDenied(TOKEN_INVALID.format(reason=f"it is signed with {algorithm!r}, which is not accepted"))
    audience = settings.ZENDESK_APP_AUDIENCE or None
    try:
        claims = jwt.decode(
            token,
            keys[algorithm],
            algorithms=[algorithm],
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise SidebarDenied(TOKEN_EXPIRED) from None
    except jwt.InvalidTokenError as exc:
        raise SidebarDenied(TOKEN_INVALID.format(reason=exc)) from None
    if settings.ZENDESK_SUBDOMAIN:
        expected = f"{settings.ZENDESK_SUBDOMAIN}.zendesk.com"
        if claims.get("iss") not in (expected, f"https://{expected}"):
            raise SidebarDenied(TOKEN_WRONG_ISSUER.format(issuer=claims.get("iss")))
    location = (claims.get("context") or {}).get("location") if isinstance(claims.get("context"), dict) else None
    if location not in (None, "ticket_sidebar"):
        raise SidebarDenied(TOKEN_WRONG_LOCATION.format(location=location))
    return claims


def _member(user: AbstractBaseUser) -> AbstractBaseUser:
    if not user.is_active:
        raise SidebarDenied(SESSION_INVALID)
    if not is_reviewer(user):
        raise SidebarDenied(NOT_A_MEMBER)
    return user


def sidebar_user_for(claims: dict[str, Any]) -> AbstractBaseUser:
    """The one active console user with the token's e-mail, who must be a reviewer or an admin."""
    email = _email(claims)
    if not email:
        raise SidebarDenied(TOKEN_NO_EMAIL)
    users = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
    if not users:
        raise SidebarDenied(USER_UNKNOWN.format(email=email))
    if len(users) > 1:
        raise SidebarDenied(USER_AMBIGUOUS.format(email=email))
    return _member(users[0])


def sidebar_session_issue(user: AbstractBaseUser) -> str:
    return signing.dumps({"u": user.pk}, salt=SESSION_SALT, compress=True)


def sidebar_session_user(request: HttpRequest) -> AbstractBaseUser:
    """The user of a sidebar request: `Authorization: Bearer <sidebar token>`, or the form field without
    JavaScript. Checked again on every request, so a deactivated user or a removed role stops working at once."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else request.POST.get(SESSION_FIELD, "")
    if not token:
        raise SidebarDenied(SESSION_MISSING)
    try:
        data = signing.loads(token, salt=SESSION_SALT, max_age=settings.ZENDESK_APP_SESSION_SECONDS)
    except signing.BadSignature:
        raise SidebarDenied(SESSION_INVALID) from None
    user = get_user_model().objects.filter(pk=data.get("u")).first() if isinstance(data, dict) else None
    if user is None:
        raise SidebarDenied(SESSION_INVALID)
    return _member(user)


def frame_headers(response: Any) -> Any:
    """The sidebar is the one page Zendesk may frame: CSP frame-ancestors names who (ZENDESK_APP_FRAME_ANCESTORS),
    X-Frame-Options is left off (it cannot name another site), and nothing inline may run."""
    ancestors = " ".join(settings.ZENDESK_APP_FRAME_ANCESTORS) or "'none'"
    scripts = "'self'" + (f" {_origin(settings.ZENDESK_APP_SDK_URL)}" if settings.ZENDESK_APP_SDK_URL else "")
    response["Content-Security-Policy"] = (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response.xframe_options_exempt = True
    return response


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else url
