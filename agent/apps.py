from __future__ import annotations

from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"

    def tool_names_errors(self, names: object) -> list[str]:
        """What is wrong with a workflow's tool list, checked against the catalogue (for Workflow.tools' validator,
        which sits below the catalogue: agent/models/validators.py)."""
        from agent.catalogue import tool_names_errors

        return tool_names_errors(names)

    def ready(self) -> None:
        from celery import signals
        from django.core.signals import request_started

        from agent import checks  # noqa: F401 - registers the startup checks
        from agent.company.selectors import contract_tools_fresh
        from agent.telemetry import state_metrics_register

        state_metrics_register()
        # Each request and task reads which tool contracts are in force once, when it first needs them.
        request_started.connect(contract_tools_fresh, dispatch_uid="agent.contract_tools_fresh")
        signals.task_prerun.connect(contract_tools_fresh, dispatch_uid="agent.contract_tools_fresh", weak=False)
