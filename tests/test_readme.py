from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_it_documents_every_setting_read_from_the_environment() -> None:
    modules = ("agentconsole/settings.py", "agentconsole/settings_test.py", "sandbox/settings.py")
    sources = "".join((ROOT / module).read_text() for module in modules)
    read = set(re.findall(r'env_(?:str|secret|bool|int|float|list|choice|prices)\(\s*"([A-Z0-9_]+)"', sources))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z0-9_]+)"', sources))
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`(?: †)? \|", (ROOT / "README.md").read_text(), flags=re.MULTILINE))
    assert read, "no settings found: the pattern is wrong"
    assert read - documented == set()


def test_it_shows_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
