"""The bench scripts stay runnable: each imports and parses its arguments (they are run by hand, never in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = ["episode.py", "intake.py", "pages.py", "throughput.py", "tokens.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_it_parses_its_arguments(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
