"""Every page carries a Content-Security-Policy that allows no inline script or style, and the templates hold
none: the browser tests (tests/browser) run the console and its htmx under this header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

# The complete page table, and its world fixture, from the permission matrix (it fails when a page has no row).
from tests.console.test_url_permissions import (
    MATRIX,
    _args,
    world,  # noqa: F401 - its fixture
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
EXPECTED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def _policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def test_it_sends_a_strict_policy_on_every_console_page(admin, world) -> None:  # noqa: F811 - the fixture
    checked = 0
    for name, row in MATRIX.items():
        if row.get[3] != 200:
            continue
        response = admin.get(reverse(name, args=_args(name, world)))
        assert response.status_code == 200, name
        policy = _policy(response)
        for directive, value in EXPECTED.items():
            assert policy[directive] == value, (name, directive, policy)
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
        checked += 1
    assert checked >= 8


def test_it_sends_it_on_the_login_page_the_admin_and_the_api_docs(anonymous) -> None:
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    for response in (anonymous.get("/accounts/login/"), client.get("/admin/"), client.get("/api/docs")):
        assert _policy(response)["script-src"] == "'self'"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
# htmx evaluates these as code (hx-on, hx-vars, "js:" values): none under the CSP. Event filters in hx-trigger
# (`click[ctrlKey]`) are code too; a selector after `from:` (`from:input[type=checkbox]`) is not.
HTMX_EVAL = re.compile(r"\shx-on[:-]|\shx-vars=|[\"']js:", re.IGNORECASE)
TRIGGER = re.compile(r'hx-trigger="([^"]*)"')


def _event_filters(text: str) -> list[str]:
    return [
        spec.strip()
        for value in TRIGGER.findall(text)
        for spec in value.split(",")
        if "[" in spec.strip().split(" ")[0] and not spec.strip().startswith("from:")
    ]


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_it_keeps_templates_free_of_inline_script_style_and_handlers(template) -> None:
    text = template.read_text()
    assert not INLINE_SCRIPT.search(text)
    assert not HANDLER.search(text)
    assert not STYLE.search(text)
    assert not HTMX_EVAL.search(text)
    assert _event_filters(text) == []


def test_it_tells_htmx_not_to_inject_styles_or_evaluate_code() -> None:
    base = (TEMPLATES / "base.html").read_text()
    assert '"includeIndicatorStyles":false' in base
    assert '"allowEval":false' in base
