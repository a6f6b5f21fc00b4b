"""Template source rules that rendering alone would not reveal."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_FILES = sorted(
    path
    for folder in ("templates", "zendesk_app")
    if (ROOT / folder).exists()
    for path in (ROOT / folder).rglob("*.html")
)


@pytest.mark.parametrize("template", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_it_keeps_every_short_comment_on_one_line(template: Path) -> None:
    # Django's {# … #} ends at the line's end: a comment that spans lines is printed on the page as text.
    for number, line in enumerate(template.read_text().splitlines(), start=1):
        assert "{#" not in line or "#}" in line.split("{#", 1)[1], (
            f"{template.name}:{number} opens {{# without closing it"
        )
