"""`manage.py demo` stops its web server and worker however it is stopped (Ctrl-C, SIGTERM, even SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_it_leaves_no_demo_process_behind(tmp_path: Path, stop: signal.Signals) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentconsole.settings",  # the product alone: embedded SQLite, filesystem broker
        "AGENTCONSOLE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
    }
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        children: set[int] = set()
        while len(children) < 2 and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(0.5)
            children = _children(demo.pid)
        assert len(children) == 2, f"the web server and the worker did not start ({demo.poll()=})"

        demo.send_signal(stop)
        demo.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
        if stop == signal.SIGTERM:
            assert demo.returncode == 0  # stopped as Ctrl-C stops it, not killed by the signal
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in _children(demo.pid):
            os.kill(pid, signal.SIGKILL)
