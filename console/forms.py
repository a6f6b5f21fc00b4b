from __future__ import annotations

import json
from typing import Any

from django import forms

from agent.models import AgentRun, Rating, Workflow
from console.selectors import ACTIVE_RUN_STATUSES

ARGS_NOT_JSON = "The arguments are not valid JSON: {error}"
ARGS_NOT_OBJECT = 'The arguments must be a JSON object, like {"tenant_id": "acme"}.'


class QueueFilterForm(forms.Form):
    workflow = forms.IntegerField(required=False, min_value=1)
    phase = forms.ChoiceField(required=False, choices=[("", "All phases"), *Workflow.Phase.choices])
    status = forms.ChoiceField(
        required=False,
        label="Run status",
        choices=[("", "Active runs"), *[(s.value, s.label) for s in AgentRun.Status if s in ACTIVE_RUN_STATUSES]],
    )


class ApproveForm(forms.Form):
    """Approve as proposed, or with edited args (a JSON object) when the field is sent."""

    args = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}))

    def clean_args(self) -> dict[str, Any] | None:
        raw = self.cleaned_data["args"]
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(ARGS_NOT_JSON.format(error=exc.msg)) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(ARGS_NOT_OBJECT)
        return value


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class RateForm(forms.Form):
    value = forms.TypedChoiceField(coerce=int, choices=Rating.Value.choices)
    comment = forms.CharField(required=False, max_length=2000)
