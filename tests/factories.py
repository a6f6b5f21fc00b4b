from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User

from agent.models import AgentRun, ConfigPatch, ProposedAction, Runbook, Step, Workflow
from agent.policy import Risk
from agent.versions import workflow_version_ensure
from audit.services import canonical_hash
from tickets.models import TenantLink, Ticket, TicketComment


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def groups(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            # get_or_create: transactional tests flush the groups the data migration made.
            self.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in extracted))
        if create:
            self.save()


class TenantLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantLink
        django_get_or_create = ["organization_id"]

    organization_id = factory.Sequence(lambda n: str(500000 + n))
    organization_name = factory.Sequence(lambda n: f"Org {n}")
    tenant_id = factory.Sequence(lambda n: f"tenant-{n}")


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    source = Ticket.Source.ZENDESK
    external_id = factory.Sequence(lambda n: str(10_000 + n))
    subject = factory.Sequence(lambda n: f"Problem {n}")
    description = "Something is wrong."
    tenant_link = factory.SubFactory(TenantLinkFactory)
    organization_id = factory.LazyAttribute(lambda t: t.tenant_link.organization_id if t.tenant_link else "")


class TicketCommentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TicketComment

    ticket = factory.SubFactory(TicketFactory)
    body = "A comment."
    public = True
    author_kind = TicketComment.AuthorKind.CUSTOMER


class WorkflowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workflow

    slug = factory.Sequence(lambda n: f"workflow-{n}")
    name = factory.Sequence(lambda n: f"Workflow {n}")
    phase = Workflow.Phase.TRIAGE
    runbook = "1. Look.\n2. Fix."


class AgentRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentRun

    ticket = factory.SubFactory(TicketFactory)
    phase = Workflow.Phase.TRIAGE
    trigger = AgentRun.Trigger.MANUAL
    workflow = None
    # A run records the workflow version it ran: the one in force when it is made.
    version = factory.LazyAttribute(lambda run: run.workflow and workflow_version_ensure(workflow=run.workflow))


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    run = factory.SubFactory(AgentRunFactory)
    index = factory.Sequence(lambda n: n)
    kind = Step.Kind.THOUGHT
    content = "Thinking."


class ProposedActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProposedAction

    run = factory.SubFactory(AgentRunFactory)
    tool = "reset_tenant_cache"
    args = factory.LazyFunction(lambda: {"tenant_id": "acme"})
    args_hash = factory.LazyAttribute(lambda a: canonical_hash(a.args))
    risk = Risk.WRITE


class RunbookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Runbook

    slug = factory.Sequence(lambda n: f"runbook-{n}")
    title = factory.Sequence(lambda n: f"Runbook {n}")
    body = "1. Look at the logs.\n2. Fix the cause."
    tags = factory.LazyFunction(list)


class ConfigPatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigPatch

    patch_id = factory.Sequence(lambda n: f"patch-{n}")
    title = factory.Sequence(lambda n: f"Config patch {n}")
    config_key = "terraform.state_lock_timeout"
    value = "300"
    enabled = True
