from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    UserFactory,
    WorkflowFactory,
)

pytestmark = pytest.mark.django_db

CONSOLE_APPS = {"audit", "tickets", "agent", "sandbox"}


def test_it_registers_every_console_model_in_the_admin() -> None:
    from django.apps import apps

    models = {m for name in CONSOLE_APPS for m in apps.get_app_config(name).get_models()}
    assert models - set(admin.site._registry) == set()


def test_it_renders_every_changelist_and_change_page() -> None:
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    TicketCommentFactory()
    WorkflowFactory()
    ProposedActionFactory(run=StepFactory(run=AgentRunFactory()).run)
    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label not in CONSOLE_APPS:
            continue
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        assert client.get(url).status_code == 200, url
        instance = model.objects.first()
        if instance is not None:
            assert client.get(f"{url}{instance.pk}/change/").status_code == 200, url
