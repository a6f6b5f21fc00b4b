"""The one small interface every tool implements, and the structured observation every call returns.

A tool never raises into its caller: bad arguments, a refused call, a timeout or a crash all come back as an
Observation the model can read and react to.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from agent import telemetry
from agent.policy import Risk, TicketRole

logger = logging.getLogger(__name__)

TENANT_MISMATCH = "This ticket belongs to tenant {bound!r}; a call naming tenant {asked!r} is refused."
INVALID_ARGUMENTS = "The arguments do not match the tool's schema."
INTERNAL_ERROR = "The tool failed unexpectedly: {error}"
NOT_VERIFIABLE = "This tool has no verifier."
NO_STATE_READ = "This tool cannot read the state it would change."
REPLAY_READS_ONLY = "This is a replay: {tool} is not a read, and nothing but a read runs in a replay."


@cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    # Generating a schema costs about a millisecond, and every model turn sends all of them.
    return schema.model_json_schema()


@cache
def _spec(name: str, description: str, schema: type[BaseModel]) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": _json_schema(schema)}


class ErrorType(StrEnum):
    INVALID_ARGUMENTS = "invalid_arguments"
    TENANT_MISMATCH = "tenant_mismatch"
    REFUSED = "refused"  # a guard said no (SQL guard, phase gate, business rule)
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    UPSTREAM = "upstream_error"  # the other system failed (5xx, 429, unreachable)
    UNEXPECTED_RESPONSE = "unexpected_response"  # the other system answered in a shape we do not know
    VERIFICATION_FAILED = "verification_failed"  # state was re-read: the effect is not there
    OUTCOME_UNKNOWN = "outcome_unknown"  # a call may or may not have taken effect, and state could not tell
    INTERNAL = "internal_error"


@dataclass(frozen=True)
class Observation:
    ok: bool
    data: Any = None
    error_type: str = ""
    message: str = ""
    retryable: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    # A failed write that may nevertheless have taken effect: sent, then a timeout, a 5xx or an answer in a shape
    # we do not know. Its verifier decides; it is never retried blindly.
    uncertain: bool = False

    @classmethod
    def success(cls, data: Any, **meta: Any) -> Observation:
        return cls(ok=True, data=data, meta=meta)

    @classmethod
    def failure(
        cls, error_type: str, message: str, *, retryable: bool = False, uncertain: bool = False, **meta: Any
    ) -> Observation:
        return cls(
            ok=False,
            error_type=str(error_type),
            message=message,
            retryable=retryable and not uncertain,
            meta=meta,
            uncertain=uncertain,
        )

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> Observation:
        return cls(
            ok=bool(recorded.get("ok")),
            data=recorded.get("data"),
            error_type=recorded.get("error_type", ""),
            message=recorded.get("message", ""),
            retryable=bool(recorded.get("retryable")),
            meta=dict(recorded.get("meta") or {}),
            uncertain=bool(recorded.get("uncertain")),
        )

    def with_meta(self, **meta: Any) -> Observation:
        return replace(self, meta={**self.meta, **meta})

    def to_dict(self) -> dict[str, Any]:
        # What dataclasses.asdict gives (containers copied, dataclasses in them converted), without its generic
        # recursion and a deepcopy of every leaf: each call's observation is stored, and most hold a few plain values.
        return {
            "ok": self.ok,
            "data": _plain(self.data),
            "error_type": self.error_type,
            "message": self.message,
            "retryable": self.retryable,
            "meta": _plain(self.meta),
            "uncertain": self.uncertain,
        }


_ATOMS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if isinstance(value, _ATOMS):
        return value
    if type(value) is dict:
        return {key if type(key) is str else _json_key(key): _plain(item) for key, item in value.items()}
    if type(value) is list:
        return [_plain(item) for item in value]
    converted = asdict(Observation(ok=True, data=value))["data"]  # anything else exactly as asdict converts it
    return _plain(converted) if type(converted) is dict else converted  # a dataclass: its dicts' keys as below


def _json_key(key: Any) -> Any:
    # A number, a boolean or None as a key becomes the string JSON writes for it, as the transcript stores it: the
    # observation held in memory then has the keys the stored one has (the Bedrock engine sorts them, which would
    # order 9 before 10 but "10" before "9", and fail on a mix of strings and numbers).
    if isinstance(key, (int, float)) or key is None:  # a boolean is an int
        return json.dumps(key)
    return key


class Reconciled(StrEnum):
    """What re-reading state says about a call whose outcome was not recorded or not known."""

    APPLIED = "applied"  # it took effect: answer from what was read, never send it again
    NOT_APPLIED = "not_applied"  # it did not: it may be sent (with the same idempotency key / marker)
    UNKNOWN = "unknown"  # state could not be read


@dataclass(frozen=True)
class ToolContext:
    """What a tool call is bound to. tenant_id comes from the helpdesk organization mapping, never from text."""

    ticket_id: int
    tenant_id: str
    run_id: int | None = None
    # One per intent (tool + arguments) in a run: the Admin API's Idempotency-Key, the helpdesk comment's marker.
    idempotency_key: str | None = None
    # A replay (agent/replay.py): only reads may run, whatever called the tool.
    replay: bool = False


def state_field(name: str, current: Any, after: Any) -> dict[str, Any]:
    """One row of a proposal's diff: a field the write changes, its value now, and what it should be after
    (a value, or a sentence such as "above 41" when only the write can know the exact value)."""
    return {"field": name, "current": current, "after": after}


class Tool:
    """Subclass, set the class attributes, implement run(); writes also implement verify(), and read_current()
    when they can show a reviewer what they would change.

    A tool declares its own policy, and the gate (agent/gate.py), the loop and the console read these attributes,
    never tool names; a tool generated from a description (an OpenAPI operation and its contract) fills them in
    the same way. A call whose outcome was never recorded is settled by reconcile() before anything else.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # written for the model: what it does, when to use it, what it returns
    args_schema: ClassVar[type[BaseModel]]

    # --- Policy: what the gate decides from ------------------------------------------------------------------
    # What a call may change: a read runs without approval outside shadow; a write waits for a reviewer unless the
    # workflow pre-approves it; a helpdesk tool acts on the ticket only, so it needs no tenant.
    risk: ClassVar[Risk]
    # The customer reads it or is affected by it: held back until every write of the run is proven.
    customer_facing: ClassVar[bool] = False
    # Its effect is context for people (a private note, routing): it runs without approval outside shadow.
    context_only: ClassVar[bool] = False
    # The argument that names a tenant, if the tool has one: a call naming another tenant than the ticket's is
    # refused by the gate and again where the tool runs, and a reviewer's edit may not change it.
    tenant_arg: ClassVar[str] = "tenant_id"
    # A write must prove its effect before the customer hears of it: it needs a verifier (tests enforce it).
    # Sums the tool itself lets a run, or a tenant over 24 hours, reach without a human, per argument, in the words
    # of a workflow's tool_limits ({"days": {"max": 42, "max_per_tenant_per_day": 60}}; agent/limits.py). They hold
    # like the workflow's, and where both bound the same sum the stricter one does.
    cumulative_limits: ClassVar[dict[str, dict[str, float]]] = {}

    # --- Presentation: how people see its calls ----------------------------------------------------------------
    # The argument holding text a person reads as the agent's draft (a note, a reply): shown and rated as such.
    text_arg: ClassVar[str] = ""
    # The argument holding a query in the tool's own language, shown as written rather than as JSON; query_language
    # "sql" is laid out as SQL.
    query_arg: ClassVar[str] = ""
    query_language: ClassVar[str] = ""
    # What the tool does to the ticket, for helpdesk tools (see TicketRole).
    ticket_role: ClassVar[TicketRole | None] = None
    # For reviewers: what approving a proposed call does, in one sentence. Empty: "Approving runs <name> against the
    # company's systems."
    approval_effect: ClassVar[str] = ""
    # The system behind the tool applies a request once per idempotency key, so a call of unknown outcome may be
    # sent again with the same key. Without it such a call is never sent twice.
    idempotent_sends: ClassVar[bool] = False
    # For reviewers: what the verifier re-reads after the write, in one sentence. Empty for tools without one.
    verify_summary: ClassVar[str] = ""

    def run(self, args: BaseModel, ctx: ToolContext) -> Observation:
        raise NotImplementedError

    def verify(self, args: BaseModel, ctx: ToolContext, result: Observation, started_at: datetime) -> Observation:
        """Re-read system state and prove the write had its effect. Reads and helpdesk tools need none."""
        return Observation.failure(ErrorType.INTERNAL, NOT_VERIFIABLE)

    def template_quote(self, arg: str, text: str) -> str:
        """How a value is written into the templated argument `arg` of a runbook step (the offline engine fills
        `{requester_email}` and the like): escaped for the language the argument is written in, or as it is."""
        return text

    def summarize(self, args: dict[str, Any], data: Any) -> str:
        """What a successful call found, as one line a person reads in seconds: counts, the relevant rows or log
        lines with their times; never raw JSON. Triage notes and the console's transcript use it."""
        from agent.tools._summary import generic

        return generic(data)

    def read_current(self, args: BaseModel, ctx: ToolContext) -> Observation:
        """Read, now, the state this call would change, for the reviewer's diff: success with
        {"fields": [state_field(...), ...]}. A read only; never called for a dry run's sake on the agent's behalf.

        The hook an effect contract fills in: a declared read operation and the fields it compares. Tools that
        cannot read their state keep this default, and the console says the diff is not available.
        """
        return Observation.failure(ErrorType.INTERNAL, NO_STATE_READ)

    @property
    def has_verifier(self) -> bool:
        return type(self).verify is not Tool.verify

    def reconcile(
        self, args: BaseModel, ctx: ToolContext, attempt: Observation, started_at: datetime
    ) -> tuple[Reconciled, Observation]:
        """Did a call whose outcome is unknown (a crash before it was recorded, a timeout, a 5xx, a changed shape)
        take effect? A write asks its verifier, which re-reads state; a tool without one is safe to run again
        (a read, or an operation whose repeat changes nothing). Helpdesk comments override this."""
        if not self.has_verifier:
            return Reconciled.NOT_APPLIED, attempt
        verification = self.verify(args, ctx, attempt, started_at)
        if verification.ok:
            return Reconciled.APPLIED, verification
        if verification.error_type == ErrorType.VERIFICATION_FAILED:
            return Reconciled.NOT_APPLIED, verification
        return Reconciled.UNKNOWN, verification

    @property
    def can_read_current(self) -> bool:
        return type(self).read_current is not Tool.read_current

    def parse_args(self, raw: dict[str, Any]) -> BaseModel | Observation:
        try:
            return self.args_schema.model_validate(raw)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            return Observation.failure(ErrorType.INVALID_ARGUMENTS, INVALID_ARGUMENTS, errors=errors)

    def tenant_named(self, args: dict[str, Any]) -> Any:
        """The tenant these raw arguments name, or None when the tool has no tenant argument or they name none."""
        return args.get(self.tenant_arg) if self.tenant_arg else None

    def check_tenant(self, args: BaseModel, ctx: ToolContext) -> Observation | None:
        """Tenant binding, enforced where the tool runs whatever the model or a gate upstream decided."""
        asked = getattr(args, self.tenant_arg, None) if self.tenant_arg else None
        if asked is not None and asked != ctx.tenant_id:
            return Observation.failure(
                ErrorType.TENANT_MISMATCH, TENANT_MISMATCH.format(bound=ctx.tenant_id, asked=asked)
            )
        return None

    def invoke(self, raw_args: dict[str, Any], ctx: ToolContext) -> Observation:
        """Validate, bind to the tenant, run. Never raises. In a replay only reads run: writes and helpdesk calls are
        refused here, where every call goes through, not left to the replay's own bookkeeping."""
        if ctx.replay and self.risk != Risk.READ:
            return Observation.failure(ErrorType.REFUSED, REPLAY_READS_ONLY.format(tool=self.name))
        args = self.parse_args(raw_args)
        if isinstance(args, Observation):
            return args
        refused = self.check_tenant(args, ctx)
        if refused is not None:
            return refused
        try:
            return self.run(args, ctx)
        except Exception as exc:  # the model sees the failure and adjusts; the worker never crashes on a tool
            logger.exception("tool %s crashed", self.name)
            return Observation.failure(ErrorType.INTERNAL, INTERNAL_ERROR.format(error=type(exc).__name__))

    @telemetry.verification
    def invoke_verify(
        self, raw_args: dict[str, Any], ctx: ToolContext, result: Observation, started_at: datetime
    ) -> Observation:
        args = self.parse_args(raw_args)
        if isinstance(args, Observation):
            return args
        try:
            return self.verify(args, ctx, result, started_at)
        except Exception as exc:
            logger.exception("verifier of %s crashed", self.name)
            return Observation.failure(ErrorType.INTERNAL, INTERNAL_ERROR.format(error=type(exc).__name__))

    def invoke_reconcile(
        self, raw_args: dict[str, Any], ctx: ToolContext, attempt: Observation, started_at: datetime
    ) -> tuple[Reconciled, Observation]:
        args = self.parse_args(raw_args)
        if isinstance(args, Observation):
            return Reconciled.UNKNOWN, args
        try:
            return self.reconcile(args, ctx, attempt, started_at)
        except Exception as exc:
            logger.exception("reconciling %s crashed", self.name)
            return Reconciled.UNKNOWN, Observation.failure(
                ErrorType.INTERNAL, INTERNAL_ERROR.format(error=type(exc).__name__)
            )

    def invoke_read_current(self, raw_args: dict[str, Any], ctx: ToolContext) -> Observation:
        """Validate, bind to the tenant, read the current state. Never raises."""
        args = self.parse_args(raw_args)
        if isinstance(args, Observation):
            return args
        refused = self.check_tenant(args, ctx)
        if refused is not None:
            return refused
        try:
            return self.read_current(args, ctx)
        except Exception as exc:
            logger.exception("state read of %s crashed", self.name)
            return Observation.failure(ErrorType.INTERNAL, INTERNAL_ERROR.format(error=type(exc).__name__))

    def spec(self) -> dict[str, Any]:
        """The tool as the model sees it (name, description, JSON schema of its arguments). The same dict on every
        call while those stay the same (every model turn sends every spec, and versions hash them): never change
        it, copy it."""
        return _spec(self.name, self.description, self.args_schema)
