"""A tool made from an effect contract: one operation of the company's Admin API, called with the arguments the
model gave (checked against the schema the contract compiled), bound to the ticket's tenant, and — for a write —
proven by the contract's verification read and CEL condition before anything else happens.

It implements the same small interface as every hand-written tool, so the gate, the loop and the console treat it
exactly alike: risk, customer_facing, idempotent_sends, verify(), reconcile(), read_current().
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from openapi_schema_validator import OAS31Validator

from agent.company.auth import admin_api
from agent.company.cel import ConditionError, evaluate, holds, plain
from agent.company.contracts import TENANT_ARGUMENT
from agent.company.openapi import Operation
from agent.tools.admin_api import WRITE_METHODS, path_segment
from agent.tools.base import INVALID_ARGUMENTS, ErrorType, Observation, Risk, Tool, ToolContext, state_field

NOTHING_TO_VERIFY = "The write did not succeed, so there is no effect to verify."
NO_BASELINE = (
    "The state before this write was not recorded (the worker stopped mid-call), so re-reading cannot tell whether "
    "it took effect."
)
COULD_NOT_VERIFY = "Could not re-read the state to verify the write: {message}"
CONDITION_FAILED = "Verification failed: expected {condition}; read {read}."
NOT_VERIFIED = "Verification failed: {error}"
PRECONDITION_FAILED = "Refused before sending: {message}"
PRECONDITION_DEFAULT = "the precondition {condition} does not hold; read {read}"
ESCALATE_UNCERTAIN = (
    "This write's contract says an uncertain outcome is never reconciled automatically: a human must check it."
)
UNKNOWN_PATCH = "There is no enabled config patch {patch_id!r}. Known patches: {known}."
NO_PATCHES = "none are configured"
MUST_SATISFY = "must satisfy: {condition}"
SET_FAILED = "The contract could not compute the field {field!r}, so nothing was sent: {error}"
READ_CLIP = 600
AFTER_FIELD = re.compile(r"\bafter\.([A-Za-z_]\w*)")


class ContractArgs(dict):
    """Validated arguments: a dict that also reads as attributes (`args.tenant_id`), like a pydantic model."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return dict(self)


def _clip(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict) else str(value)
    return text if len(text) <= READ_CLIP else text[:READ_CLIP] + "…"


def _reread_failed(failure: Observation) -> Observation:
    return Observation.failure(
        failure.error_type, COULD_NOT_VERIFY.format(message=failure.message), retryable=failure.retryable,
        **failure.meta,
    )  # fmt: skip


class ContractTool(Tool):
    def __init__(self, compiled: dict[str, Any], *, contract_id: int | None = None, version: int = 0) -> None:
        spec = compiled["spec"]
        self.compiled = compiled
        self.contract = spec
        self.contract_id = contract_id
        self.contract_version = version
        self.name = compiled["name"]
        self.operation = Operation.from_dict(compiled["operation"])
        self.reads = {kind: read for kind, read in compiled.get("reads", {}).items() if read}
        self.description = spec.get("description") or (
            " ".join(p for p in (self.operation.summary, self.operation.description) if p)
            or f"{self.operation.method} {self.operation.path}"
        )
        self.risk = Risk.WRITE if spec["risk"] == "write" else Risk.READ
        self.tenant = spec["tenant"]
        self.tenant_argument = TENANT_ARGUMENT
        idempotency = spec.get("idempotency")
        self.idempotency_header = idempotency.get("header") if idempotency else None
        escalate = spec.get("on_uncertain") == "escalate"
        self.idempotent_sends = bool(self.risk == Risk.WRITE and self.idempotency_header and not escalate)
        verification = spec.get("verification")
        self.verification = verification
        self.verify_summary = (
            (verification.get("describe") or f"Re-reads {verification['operation']}: {verification['condition']}.")
            if verification
            else ""
        )
        self.args_json_schema = compiled["args_schema"]
        # max_per_run is a workflow limit's "max": the sum over the run's calls (agent/limits.py).
        own = {
            arg: {
                key: bounds[word]
                for word, key in (("max_per_run", "max"), ("max_per_tenant_per_day", "max_per_tenant_per_day"))
                if bounds.get(word) is not None
            }
            for arg, bounds in spec.get("limits", {}).items()
        }
        self.cumulative_limits = {arg: bounds for arg, bounds in own.items() if bounds}
        self._validator = OAS31Validator(self.args_json_schema)

    # --- The interface ------------------------------------------------------------------------------------------
    @property
    def has_verifier(self) -> bool:
        return self.verification is not None

    @property
    def can_read_current(self) -> bool:
        return bool(self.reads.get("verification") or self.reads.get("precondition"))

    def spec(self) -> dict[str, Any]:
        # Built once: a contract version's tool never changes (Tool.spec: never change it, copy it).
        held = self.__dict__.get("_spec")
        if held is None:
            held = self.__dict__["_spec"] = {
                "name": self.name, "description": self.description, "input_schema": self.args_json_schema,
            }  # fmt: skip
        return held

    def parse_args(self, raw: dict[str, Any]) -> ContractArgs | Observation:
        if not isinstance(raw, dict):
            raw = {"(arguments)": raw}
        errors = [
            {"field": _error_field(e, self.args_json_schema), "message": e.message[:300]}
            for e in sorted(self._validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
        ]
        if errors:
            return Observation.failure(ErrorType.INVALID_ARGUMENTS, INVALID_ARGUMENTS, errors=errors)
        return ContractArgs(raw)

    def run(self, args: ContractArgs, ctx: ToolContext) -> Observation:
        sent = self._operation_args(args, ctx, enabled_only=True)
        if isinstance(sent, Observation):
            return sent
        values = {**args, **sent}
        before: Any = None
        baseline = self.reads.get("precondition") or (self.reads.get("verification") if self._uses_before() else None)
        if baseline is not None:
            read = self._read(baseline, values, ctx)
            if isinstance(read, Observation):
                return read  # nothing was sent: the state could not be read first
            before = read
            refused = self._precondition_refuses(before, values, ctx)
            if refused is not None:
                return refused
        with admin_api() as api:
            reply = api.request(
                self.operation.method,
                self._path(self.operation, sent),
                query=self._fields(self.operation, sent, "query"),
                body=self._body(self.operation, sent),
                idempotency_key=ctx.idempotency_key,
                idempotency_header=self.idempotency_header,
                response_schema=self.operation.response_schema,
            )
        recorded: dict[str, Any] = {"sent": sent} if self.risk == Risk.WRITE else {}
        if baseline is not None and self.risk == Risk.WRITE:
            recorded["before"] = before  # what the verifier compares with if the outcome is unknown
        if isinstance(reply, Observation):
            return reply.with_meta(**recorded)
        return Observation.success(reply.body, **recorded, **reply.meta())

    def verify(self, args: ContractArgs, ctx: ToolContext, result: Observation, started_at: datetime) -> Observation:
        if self.verification is None:
            return super().verify(args, ctx, result, started_at)
        if not result.ok and not result.uncertain:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOTHING_TO_VERIFY)
        if self._uses_before() and "before" not in result.meta:
            return Observation.failure(ErrorType.OUTCOME_UNKNOWN, NO_BASELINE)
        sent = result.meta.get("sent")
        if sent is None:  # the answer was lost with the worker: what would have been sent
            sent = self._operation_args(args, ctx, enabled_only=False)
            if isinstance(sent, Observation):
                return Observation.failure(ErrorType.OUTCOME_UNKNOWN, NO_BASELINE)
        values = {**args, **sent}
        after = self._read(self.reads["verification"], values, ctx)
        if isinstance(after, Observation):
            return _reread_failed(after)
        condition = self.verification["condition"]
        variables = {
            "before": result.meta.get("before"),
            "after": after,
            "args": values,
            "result": result.data if result.ok and result.data is not None else {},
            # Whole seconds: an API that reports times without fractions must not fail a write made in the
            # second the call started.
            "started_at": _aware(started_at).replace(microsecond=0),
            "replayed": bool(result.meta.get("replayed")),
            "ticket_id": ctx.ticket_id,
        }
        try:
            proven = holds(condition, variables)
        except ConditionError as exc:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOT_VERIFIED.format(error=exc.message),
                                       after=after)  # fmt: skip
        if proven:
            return Observation.success({"verified": True, "read": after}, before=result.meta.get("before"))
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            self._failure_message(variables),
            after=after,
            before=result.meta.get("before"),
        )

    def _failure_message(self, variables: dict[str, Any]) -> str:
        assert self.verification is not None
        message = self.verification.get("message")
        if message:
            try:
                return NOT_VERIFIED.format(error=str(plain(evaluate(message, variables))))
            except ConditionError:
                pass  # a message that cannot be written for this read: the generic one says the same
        return CONDITION_FAILED.format(condition=self.verification["condition"], read=_clip(variables["after"]))

    def reconcile(self, args: ContractArgs, ctx: ToolContext, attempt: Observation, started_at: datetime) -> Any:
        if self.contract.get("on_uncertain") == "escalate" and self.risk == Risk.WRITE:
            from agent.tools.base import Reconciled

            return Reconciled.UNKNOWN, Observation.failure(ErrorType.OUTCOME_UNKNOWN, ESCALATE_UNCERTAIN)
        return super().reconcile(args, ctx, attempt, started_at)

    def read_current(self, args: ContractArgs, ctx: ToolContext) -> Observation:
        read_spec = self.reads.get("verification") or self.reads.get("precondition")
        if read_spec is None:
            return super().read_current(args, ctx)
        sent = self._operation_args(args, ctx, enabled_only=True)
        if isinstance(sent, Observation):
            return sent
        values = {**args, **sent}
        current = self._read(read_spec, values, ctx)
        if isinstance(current, Observation):
            return current
        current_map = current if isinstance(current, dict) else {}
        review = self.contract.get("review") or {}
        fields = []
        for name, expression in review.items():
            try:
                after = plain(evaluate(expression, {"current": current, "args": values}))
            except ConditionError as exc:
                after = exc.message
            fields.append(state_field(name, current_map.get(name), after))
        if not review and self.verification is not None:
            condition = self.verification["condition"]
            for name in dict.fromkeys(AFTER_FIELD.findall(condition)):
                fields.append(state_field(name, current_map.get(name), MUST_SATISFY.format(condition=condition)))
        return Observation.success({"fields": fields})

    # --- Building calls -----------------------------------------------------------------------------------------
    def _uses_before(self) -> bool:
        return bool(self.verification) and re.search(r"\bbefore\b", self.verification["condition"]) is not None

    def _operation_args(
        self, args: ContractArgs, ctx: ToolContext, *, enabled_only: bool
    ) -> dict[str, Any] | Observation:
        """The operation's fields from the model's arguments, the tenant (from the ticket, never from text), the
        config patch and the contract's computed fields."""
        locations = self.operation.locations
        sent = {k: v for k, v in args.items() if k in locations and locations[k] != "header"}
        sent.pop(TENANT_ARGUMENT, None) if self.tenant["name"] != TENANT_ARGUMENT else None
        sent[self.tenant["name"]] = ctx.tenant_id
        patch_values: dict[str, Any] = {}
        patch_spec = self.contract.get("config_patch")
        if patch_spec:
            patch = self._patch(args[patch_spec["argument"]], enabled_only=enabled_only)
            if isinstance(patch, Observation):
                return patch
            sent[patch_spec["key"]] = patch.config_key
            sent[patch_spec["value"]] = patch.value
            patch_values = {"patch_id": patch.patch_id, "title": patch.title, "key": patch.config_key,
                            "value": patch.value}  # fmt: skip
        for name, expression in (self.contract.get("set") or {}).items():
            variables = {"args": {**args, **sent}, "ticket_id": ctx.ticket_id, "patch": patch_values}
            try:
                sent[name] = plain(evaluate(expression, variables))
            except ConditionError as exc:  # the contract's own expression failed: nothing is sent
                return Observation.failure(ErrorType.INTERNAL, SET_FAILED.format(field=name, error=exc.message))
        return sent

    def _patch(self, patch_id: str, *, enabled_only: bool) -> Any:
        from agent.models import ConfigPatch

        patches = ConfigPatch.objects.filter(enabled=True) if enabled_only else ConfigPatch.objects.all()
        patch = patches.filter(patch_id=patch_id).first()
        if patch is not None:
            return patch
        known = list(ConfigPatch.objects.filter(enabled=True).values_list("patch_id", "title"))
        listing = ", ".join(f"{pid} ({title})" for pid, title in known) or NO_PATCHES
        return Observation.failure(
            ErrorType.REFUSED,
            UNKNOWN_PATCH.format(patch_id=patch_id, known=listing),
            known_patch_ids=[pid for pid, _ in known],
        )

    def _precondition_refuses(self, before: Any, values: dict[str, Any], ctx: ToolContext) -> Observation | None:
        precondition = self.contract.get("precondition") or {}
        condition = precondition.get("condition")
        if not condition:
            return None
        try:
            ok = holds(condition, {"before": before, "args": values, "ticket_id": ctx.ticket_id})
        except ConditionError as exc:
            ok, message = False, exc.message
        else:
            message = precondition.get("message") or PRECONDITION_DEFAULT.format(
                condition=condition, read=_clip(before)
            )
        if ok:
            return None
        return Observation.failure(ErrorType.REFUSED, PRECONDITION_FAILED.format(message=message), before=before)

    def _read(self, read: dict[str, Any], values: dict[str, Any], ctx: ToolContext) -> Any:
        """Call a read operation of the contract (precondition or verification): its JSON body, or the failure."""
        operation = Operation.from_dict(read["operation"])
        spec_args = self._read_spec_args(read)
        tenant_name = (read.get("tenant") or self.tenant)["name"]
        read_args: dict[str, Any] = {}
        for name, where in operation.locations.items():
            if where == "header":
                continue
            if name == tenant_name:
                read_args[name] = ctx.tenant_id
            elif name in spec_args:
                read_args[name] = plain(evaluate(spec_args[name], {"args": values, "ticket_id": ctx.ticket_id,
                                                                   "patch": {}}))  # fmt: skip
            elif name in values:
                read_args[name] = values[name]
        with admin_api() as api:
            reply = api.request(
                operation.method,
                self._path(operation, read_args),
                query=self._fields(operation, read_args, "query"),
                body=self._body(operation, read_args),
                response_schema=operation.response_schema,
            )
        return reply if isinstance(reply, Observation) else reply.body

    def _read_spec_args(self, read: dict[str, Any]) -> dict[str, str]:
        for kind in ("verification", "precondition"):
            if self.reads.get(kind) is read:
                return (self.contract.get(kind) or {}).get("args") or {}
        return {}

    @staticmethod
    def _path(operation: Operation, values: dict[str, Any]) -> str:
        return re.sub(r"\{([^}/]+)\}", lambda m: path_segment(values.get(m.group(1), "")), operation.path)

    @staticmethod
    def _fields(operation: Operation, values: dict[str, Any], location: str) -> dict[str, Any]:
        return {k: v for k, v in values.items() if operation.locations.get(k) == location}

    @classmethod
    def _body(cls, operation: Operation, values: dict[str, Any]) -> dict[str, Any] | None:
        if operation.has_body or operation.method in WRITE_METHODS:
            return cls._fields(operation, values, "body")
        return None


def _error_field(error: Any, schema: dict[str, Any]) -> str:
    """The argument an error is about: its path, or for a missing or unknown argument, that argument's name."""
    path = ".".join(map(str, error.absolute_path))
    if path or not isinstance(error.instance, dict):
        return path
    if error.validator == "required":
        return ", ".join(name for name in error.validator_value if name not in error.instance)
    if error.validator == "additionalProperties":
        return ", ".join(sorted(set(error.instance) - set(schema.get("properties") or {})))
    return ""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
