from __future__ import annotations

import json
from typing import Any

from django import forms

from agent.models import AgentRun, Rating, Workflow
from agent.selectors.evidence import EVIDENCE_KEYS
from agentconsole import jsonlimits
from console.ticket_search import OUTCOMES, SORTS

ARGS_NOT_JSON = "The arguments are not valid JSON: {error}"
ARGS_UNSAFE = "The arguments hold a value that cannot be accepted{where}: it {problem}."
ARGS_NOT_OBJECT = 'The arguments must be a JSON object, like {"tenant_id": "acme"}.'


class QueueFilterForm(forms.Form):
    workflow = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)  # a bigint id
    phase = forms.ChoiceField(required=False, choices=[("", "All phases"), *Workflow.Phase.choices])


class TicketQueryForm(forms.Form):
    """The tickets view's search, filters, sort and page cursor; anything not understood is ignored and said."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    workflow = forms.SlugField(required=False)
    phase = forms.ChoiceField(required=False, choices=[("", "Any phase"), *Workflow.Phase.choices])
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *OUTCOMES.items()])
    needs_rating = forms.BooleanField(required=False, label="Shadow drafts to rate")
    assigned = forms.ChoiceField(required=False, choices=[("", "Anyone"), ("me", "Me")])
    evidence = forms.ChoiceField(required=False, choices=[("", ""), *((key, key) for key in EVIDENCE_KEYS)])
    version = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    sort = forms.ChoiceField(
        required=False,
        choices=[("newest", "Newest first"), ("oldest", "Oldest first"), ("updated", "Recently updated")],
    )
    after = forms.CharField(required=False, max_length=200)
    before = forms.CharField(required=False, max_length=200)

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] if self.cleaned_data["sort"] in SORTS else "newest"


class ApproveForm(forms.Form):
    """Approve as proposed, or with edited args (a JSON object) when the field is sent."""

    args = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}))

    def clean_args(self) -> dict[str, Any] | None:
        raw = self.cleaned_data["args"]
        if not raw.strip():
            return None
        try:
            json.loads(raw)  # only for its message on a syntax error, which names line and column
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(ARGS_NOT_JSON.format(error=exc.msg)) from exc
        except (RecursionError, ValueError):
            pass  # too deep for the stack, or an integer past Python's digit limit: said below, never a 500
        try:
            value = jsonlimits.loads(raw.encode("utf-8"))
        except jsonlimits.UnsafeInput as exc:
            where = f" ({exc.field})" if exc.field else ""
            raise forms.ValidationError(ARGS_UNSAFE.format(where=where, problem=exc.problem)) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(ARGS_NOT_OBJECT)
        return value


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class RespondForm(forms.Form):
    feedback = forms.CharField(max_length=4000)


class TakeOverForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(choices=AgentRun.Outcome.choices)
    note = forms.CharField(required=False, max_length=4000)


class ClaimForm(forms.Form):
    take = forms.BooleanField(required=False)  # take a claim another reviewer holds, on purpose


class RateForm(forms.Form):
    value = forms.TypedChoiceField(coerce=int, choices=Rating.Value.choices)
    comment = forms.CharField(required=False, max_length=2000)
