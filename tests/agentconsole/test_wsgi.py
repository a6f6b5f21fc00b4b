from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_leaves_what_the_application_loaded_out_of_the_collectors_full_collections() -> None:
    code = (
        "import gc; before = gc.get_freeze_count(); import agentconsole.wsgi; "
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sandbox.settings_test"}
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-2000:]
    before, frozen, tracked = map(int, found.stdout.split()[-3:])
    assert before == 0
    assert frozen > 10 * tracked  # the application's objects are frozen; what is left to walk is what came after
