from __future__ import annotations

from django import forms
from django.conf import settings

from agent.models import Workflow

REASON_REQUIRED = "Say why: every phase change is audited with its reason."


class PhaseChangeForm(forms.Form):
    phase = forms.ChoiceField(choices=Workflow.Phase.choices)
    reason = forms.CharField(max_length=1000, strip=True, error_messages={"required": REASON_REQUIRED})
    override = forms.BooleanField(required=False)


class StopAutonomyForm(forms.Form):
    reason = forms.CharField(max_length=1000, strip=True, error_messages={"required": REASON_REQUIRED})


class DashboardForm(forms.Form):
    weeks = forms.TypedChoiceField(choices=[(4, "4 weeks"), (12, "12 weeks"), (26, "26 weeks")], coerce=int)


def first_error(form: forms.Form) -> str:
    """The message to show in a card: forms here have one or two fields, so one message is enough."""
    return next(iter(message for messages in form.errors.values() for message in messages), "")


class ReplayForm(forms.Form):
    limit = forms.IntegerField(min_value=1, initial=20, label="Latest tickets")
    live_reads = forms.BooleanField(required=False, label="Let unrecorded reads run live (read-only)")

    def clean_limit(self) -> int:
        limit = self.cleaned_data["limit"]
        if limit > settings.REPLAY_MAX_TICKETS:
            raise forms.ValidationError(f"A replay covers at most {settings.REPLAY_MAX_TICKETS} tickets.")
        return limit


class GapsForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=3650, initial=90, label="Last days")
