from __future__ import annotations

from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"

    def ready(self) -> None:
        from agent.telemetry import state_metrics_register

        state_metrics_register()
