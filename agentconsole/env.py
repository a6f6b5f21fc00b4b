"""Typed readers for configuration from the environment.

Every reader raises ImproperlyConfigured naming the variable, so a bad deployment fails at start-up with a
message an operator can act on instead of a stack trace deep in a request.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str | object = _MISSING) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is _MISSING:
            raise ImproperlyConfigured(f"{name} must be set.")
        return default  # type: ignore[return-value]
    return value


def env_secret(name: str, default: str | object = _MISSING) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    file_name = _raw(f"{name}_FILE")
    if file_name:
        if _raw(name):
            raise ImproperlyConfigured(f"Set only one of {name} and {name}_FILE.")
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points to an unreadable file: {exc}") from exc
    return env_str(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {value!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


def env_prices(name: str) -> dict[str, dict[str, float]]:
    """A JSON object of model -> {kind: USD per million tokens}, e.g. {"claude-haiku": {"input": 1, "output": 5}}."""
    import json

    value = _raw(name)
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a JSON object; it is not valid JSON.") from None
    kinds = {"input", "output", "cache_read", "cache_write"}
    if not isinstance(parsed, dict) or not all(isinstance(p, dict) for p in parsed.values()):
        raise ImproperlyConfigured(f'{name} must map model ids to prices, e.g. {{"claude-haiku": {{"input": 1}}}}.')
    for model, prices in parsed.items():
        for kind, price in prices.items():
            if kind not in kinds or isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise ImproperlyConfigured(
                    f"{name}: {model!r} has {kind!r}: {price!r}; kinds are {', '.join(sorted(kinds))}, prices "
                    "non-negative numbers (USD per million tokens)."
                )
    return {model: {kind: float(price) for kind, price in prices.items()} for model, prices in parsed.items()}


# The engineering pods when none are configured. "humans" receives escalations and is required (settings.py).
_DEFAULT_PODS = {
    "humans": ("20000", "Support engineers: anything the agent cannot or should not handle alone."),
    "billing": ("20001", "Plans, invoices, charges, refunds, trials and subscriptions."),
    "platform": ("20002", "Performance, caching and stale data, outages, infrastructure."),
    "identity": ("20003", "Sign-in, passwords, SSO and MFA, account lockouts, users and roles."),
    "integrations": ("20004", "Terraform, webhooks, the public API, SDKs and third-party connectors."),
}


def env_pods(name: str) -> dict[str, tuple[str, str]]:
    """Engineering pods, name -> (helpdesk group id, what it owns). Either JSON,
    {"billing": {"group_id": "20001", "description": "..."}}, or the short form "name=group id,..." (no
    descriptions). Unset: the defaults above."""
    import json

    raw = _raw(name)
    if raw is None:
        return dict(_DEFAULT_PODS)
    if raw.strip().startswith("{"):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
        pods: dict[str, tuple[str, str]] = {}
        for pod, spec in parsed.items():
            if isinstance(spec, str | int):
                spec = {"group_id": str(spec)}
            if not isinstance(spec, dict) or not str(spec.get("group_id", "")).strip():
                raise ImproperlyConfigured(f'{name}: pod {pod!r} needs a "group_id".')
            pods[str(pod)] = (str(spec["group_id"]).strip(), str(spec.get("description", "")).strip())
        return pods
    return {
        pod.strip(): (group.strip(), "")
        for pod, _, group in (item.partition("=") for item in raw.split(",") if "=" in item)
    }
