"""Capture docs/screenshots/*.png from the running app: the browser tests (tests/browser) seed the sandbox company,
run real tickets through a real worker and save the pages they reach when SCREENSHOTS_DIR is set.

Usage: .venv/bin/python scripts/screenshots.py  (needs PostgreSQL, Redis and /usr/bin/chromium, like `make test`)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {**os.environ, "SCREENSHOTS_DIR": str(ROOT / "docs" / "screenshots")}
    command = [sys.executable, "-m", "pytest", "tests/browser", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
