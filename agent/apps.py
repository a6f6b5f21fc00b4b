from __future__ import annotations

from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"

    def ready(self) -> None:
        from agent import checks  # noqa: F401 - registers the startup checks
        from agent.telemetry import state_metrics_register

        state_metrics_register()
