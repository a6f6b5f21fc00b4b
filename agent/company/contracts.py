"""Effect contracts: what a company declares, per tool, about the operation behind it — its risk, where the tenant
goes, how a write is proven (a read and a CEL condition), what to read before, which idempotency header to send,
limits on its arguments, and what an uncertain outcome does.

`contracts_compile` checks a contract file against the imported OpenAPI catalogue and turns each tool into a
self-contained definition (the operations it calls, snapshotted, and the argument schema the model sees). Every
problem is reported with the path of the key at fault; nothing half-valid is ever stored.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.company.cel import ConditionError, condition_check
from agent.company.openapi import Operation
from agentconsole.errors import ApplicationError

TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
TENANT_ARGUMENT = "tenant_id"  # what the model calls the tenant, whatever the API calls it
TENANT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Names a condition may use. `started_at` is the call's start in whole seconds (APIs that report seconds must
# not fail a write made in the same second); `replayed`: the API answered from its idempotency memory.
VERIFY_NAMES = {"before", "after", "args", "result", "started_at", "replayed", "ticket_id"}
PRECONDITION_NAMES = {"before", "args", "ticket_id"}
ARG_NAMES = {"args", "ticket_id", "patch"}
REVIEW_NAMES = {"current", "args"}

NOT_YAML = "The contract file is not valid YAML: {error}"
NOT_A_MAPPING = "The contract file must be a mapping with a 'tools' key."
SCHEMA_ERROR = "{where}: {message}"
UNKNOWN_OPERATION = "{where}: there is no operation {operation!r} in the imported OpenAPI catalogue{hint}."
NOT_PICKED = (
    "{where}: the operation {operation!r} is in the catalogue but not picked; pick it with "
    "`manage.py import_openapi ... --pick {operation} --apply` or in the Django admin (API operations)."
)
UNSUPPORTED_OPERATION = "{where}: the operation {operation!r} cannot be a tool: {reason}."
WRITE_WITHOUT_VERIFICATION = (
    "tools.{tool}: a write needs a `verification` (a read operation and a condition proving its effect)."
)
TENANT_FIELD_MISSING = (
    "{where}: the operation {operation!r} has no {location} field {name!r}; its {location} fields are: {fields}."
)
TENANT_HIDDEN = "{where}: {name!r} carries the tenant; it cannot also be set by `set` or `config_patch`."
ARGUMENT_CLASH = "tools.{tool}: the operation has its own field {name!r}, which clashes with the tool's {name!r}."
UNKNOWN_FIELD = "{where}: the operation {operation!r} has no field {name!r}; its fields are: {fields}."
UNKNOWN_ARGUMENT = "{where}: the tool has no argument {name!r}; its arguments are: {fields}."
READ_ARG_MISSING = (
    "{where}: the read {operation!r} needs {name!r}; name it under `args` (a CEL expression such as args.{name})."
)
BAD_TOOL_NAME = "tools.{tool}: a tool name is a letter then up to 63 letters, digits, '_' or '-'."
NAME_TAKEN = "tools.{tool}: a built-in tool already has this name."
LIMIT_NOT_NUMERIC = "{where}: {key} applies to numbers, and {name!r} is not one."


class ContractError(ApplicationError):
    """A contract file refused at import; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("The contract file was refused:\n- " + "\n- ".join(errors), extra={"errors": errors})
        self.errors = errors


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TenantSpec(_Spec):
    location: Literal["path", "query", "body"] = Field(alias="in")
    name: str


class ReadSpec(_Spec):
    operation: str
    # The read's arguments as CEL expressions over the tool's `args` (and `ticket_id`). By default each argument
    # of the read is taken from the tool's argument of the same name, and the tenant goes where `tenant` says.
    args: dict[str, str] = Field(default_factory=dict)
    tenant: TenantSpec | None = None  # where the read takes the tenant, when not the tool's own tenant field


class PreconditionSpec(ReadSpec):
    condition: str | None = None  # over `before` (what was read) and `args`: false refuses the call, unsent
    message: str = ""


class VerificationSpec(ReadSpec):
    condition: str
    describe: str = ""  # for reviewers: what is re-read and what must hold, in one sentence
    # What the model and reviewers read when the condition does not hold: a CEL string over the same names as the
    # condition, e.g. "'expected locked false; read ' + string(after.locked)". Default: the condition and the read.
    message: str = ""


class IdempotencySpec(_Spec):
    header: str = "Idempotency-Key"


class ConfigPatchSpec(_Spec):
    """The tool takes the id of an admin-curated config patch instead of a key and a value."""

    argument: str = "patch_id"
    key: str  # the operation's field that receives the patch's config key
    value: str  # the operation's field that receives the patch's value


class LimitSpec(_Spec):
    max_per_call: float | None = None  # a hard bound of the argument's schema: above it the call is invalid
    min_per_call: float | None = None
    max_per_run: float | None = None  # summed over a run's calls: beyond it a reviewer decides
    max_per_tenant_per_day: float | None = None
    allowed: list[Any] | None = None


class ToolSpec(_Spec):
    operation: str
    description: str = ""
    risk: Literal["read", "write"]
    tenant: TenantSpec
    idempotency: IdempotencySpec | None = None
    precondition: PreconditionSpec | None = None
    verification: VerificationSpec | None = None
    arguments: dict[str, dict[str, Any]] = Field(default_factory=dict)  # schema overlays: description, pattern...
    set: dict[str, str] = Field(default_factory=dict)  # operation fields computed by CEL, hidden from the model
    config_patch: ConfigPatchSpec | None = None
    limits: dict[str, LimitSpec] = Field(default_factory=dict)
    on_uncertain: Literal["reconcile", "escalate"] = "reconcile"
    review: dict[str, str] = Field(default_factory=dict)  # field -> CEL over `current`, `args`: the value after


class ContractFile(_Spec):
    version: Literal[1] = 1
    tools: dict[str, ToolSpec]


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(file)"


def contracts_parse(text: str) -> ContractFile:
    """The contract file's YAML, checked against the contract schema (not yet against the catalogue)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError([NOT_YAML.format(error=" ".join(str(exc).split()))]) from exc
    if not isinstance(raw, dict):
        raise ContractError([NOT_A_MAPPING])
    try:
        return ContractFile.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(
            [
                SCHEMA_ERROR.format(where=_where(e["loc"]), message=e["msg"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from exc


def _fields(operation: Operation, location: str | None = None) -> str:
    names = [n for n, where in operation.locations.items() if where != "header" and location in (None, where)]
    return ", ".join(names) or "(none)"


class _Compiler:
    def __init__(self, catalogue: dict[str, Operation], picked: set[str], builtin: set[str]) -> None:
        self.catalogue = catalogue
        self.picked = picked
        self.builtin = builtin
        self.errors: list[str] = []

    def operation(self, where: str, operation_id: str, *, must_be_picked: bool) -> Operation | None:
        operation = self.catalogue.get(operation_id)
        if operation is None:
            close = difflib.get_close_matches(operation_id, list(self.catalogue), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            self.errors.append(UNKNOWN_OPERATION.format(where=where, operation=operation_id, hint=hint))
            return None
        if operation.unsupported:
            self.errors.append(
                UNSUPPORTED_OPERATION.format(where=where, operation=operation_id, reason=operation.unsupported)
            )
            return None
        if must_be_picked and operation_id not in self.picked:
            self.errors.append(NOT_PICKED.format(where=where, operation=operation_id))
        return operation

    def condition(self, where: str, expression: str, names: set[str]) -> None:
        try:
            condition_check(expression, names=names)
        except ConditionError as exc:
            self.errors.append(f"{where}: {exc.message}")

    def tenant(self, where: str, tenant: TenantSpec, operation: Operation) -> None:
        if operation.locations.get(tenant.name) != tenant.location:
            self.errors.append(
                TENANT_FIELD_MISSING.format(
                    where=where,
                    operation=operation.operation_id,
                    location=tenant.location,
                    name=tenant.name,
                    fields=_fields(operation, tenant.location),
                )
            )

    def read(
        self, where: str, spec: ReadSpec, tool_tenant: TenantSpec, tool_args: set[str], names: set[str]
    ) -> dict[str, Any] | None:
        operation = self.operation(f"{where}.operation", spec.operation, must_be_picked=False)
        if operation is None:
            return None
        tenant = spec.tenant or tool_tenant
        self.tenant(f"{where}.tenant", tenant, operation)
        for name, expression in spec.args.items():
            if name not in operation.locations:
                self.errors.append(
                    UNKNOWN_FIELD.format(
                        where=f"{where}.args", operation=spec.operation, name=name, fields=_fields(operation)
                    )
                )
            self.condition(f"{where}.args.{name}", expression, ARG_NAMES)
        for name in operation.args_schema.get("required", []):
            if name != tenant.name and name not in spec.args and name not in tool_args:
                self.errors.append(READ_ARG_MISSING.format(where=where, operation=spec.operation, name=name))
        condition = getattr(spec, "condition", None)
        if condition is not None:
            self.condition(f"{where}.condition", condition, names)
        if getattr(spec, "message", ""):
            self.condition(f"{where}.message", spec.message, names) if isinstance(spec, VerificationSpec) else None
        return {"operation": operation.to_dict(), "tenant": tenant.model_dump(by_alias=True)}

    def args_schema(self, name: str, spec: ToolSpec, operation: Operation) -> dict[str, Any]:
        source = operation.args_schema
        properties = dict(source.get("properties") or {})
        required = [n for n in source.get("required") or [] if n in properties]
        hidden = set(spec.set)
        if spec.config_patch is not None:
            hidden |= {spec.config_patch.key, spec.config_patch.value}
        for field_name in sorted(hidden):
            where = f"tools.{name}.set" if field_name in spec.set else f"tools.{name}.config_patch"
            if field_name not in properties:
                self.errors.append(
                    UNKNOWN_FIELD.format(
                        where=where, operation=operation.operation_id, name=field_name, fields=_fields(operation)
                    )
                )
            if field_name == spec.tenant.name:
                self.errors.append(TENANT_HIDDEN.format(where=where, name=field_name))
        for field_name, expression in spec.set.items():
            self.condition(f"tools.{name}.set.{field_name}", expression, ARG_NAMES)
        properties = {k: v for k, v in properties.items() if k not in hidden}
        required = [k for k in required if k not in hidden]
        # The tenant: one argument named tenant_id, whatever the API calls it, bound to the ticket in code.
        if spec.tenant.name != TENANT_ARGUMENT and TENANT_ARGUMENT in properties:
            self.errors.append(ARGUMENT_CLASH.format(tool=name, name=TENANT_ARGUMENT))
        properties.pop(spec.tenant.name, None)
        required = [k for k in required if k != spec.tenant.name]
        tenant_schema = {
            "type": "string",
            "pattern": TENANT_PATTERN,
            "description": "The ticket's tenant id. Calls naming any other tenant are refused.",
        }
        properties = {TENANT_ARGUMENT: tenant_schema, **properties}
        required = [TENANT_ARGUMENT, *required]
        if spec.config_patch is not None:
            argument = spec.config_patch.argument
            if argument in properties:
                self.errors.append(ARGUMENT_CLASH.format(tool=name, name=argument))
            properties[argument] = {
                "type": "string",
                "pattern": r"^[A-Za-z0-9_-]{1,100}$",
                "description": "The id of a known config patch, e.g. from a runbook.",
            }
            required.append(argument)
        for arg, overlay in spec.arguments.items():
            if arg not in properties:
                self.errors.append(
                    UNKNOWN_ARGUMENT.format(where=f"tools.{name}.arguments", name=arg, fields=", ".join(properties))
                )
                continue
            properties[arg] = {**properties[arg], **overlay}
        for arg, limit in spec.limits.items():
            where = f"tools.{name}.limits"
            if arg not in properties:
                self.errors.append(UNKNOWN_ARGUMENT.format(where=where, name=arg, fields=", ".join(properties)))
                continue
            numeric = properties[arg].get("type") in ("integer", "number")
            for key in ("max_per_call", "min_per_call", "max_per_run", "max_per_tenant_per_day"):
                if getattr(limit, key) is not None and not numeric:
                    self.errors.append(LIMIT_NOT_NUMERIC.format(where=f"{where}.{arg}", key=key, name=arg))
            if limit.max_per_call is not None:
                properties[arg] = {**properties[arg], "maximum": _number(limit.max_per_call)}
            if limit.min_per_call is not None:
                properties[arg] = {**properties[arg], "minimum": _number(limit.min_per_call)}
            if limit.allowed is not None:
                properties[arg] = {**properties[arg], "enum": limit.allowed}
        return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}

    def tool(self, name: str, spec: ToolSpec) -> dict[str, Any] | None:
        before = len(self.errors)
        if not TOOL_NAME.match(name):
            self.errors.append(BAD_TOOL_NAME.format(tool=name))
        if name in self.builtin:
            self.errors.append(NAME_TAKEN.format(tool=name))
        operation = self.operation(f"tools.{name}.operation", spec.operation, must_be_picked=True)
        if spec.risk == "write" and spec.verification is None:
            self.errors.append(WRITE_WITHOUT_VERIFICATION.format(tool=name))
        if operation is None:
            return None
        self.tenant(f"tools.{name}.tenant", spec.tenant, operation)
        args_schema = self.args_schema(name, spec, operation)
        tool_args = set(args_schema["properties"]) | set(spec.set) | {spec.tenant.name}
        if spec.config_patch is not None:
            tool_args |= {spec.config_patch.key, spec.config_patch.value}
        reads: dict[str, Any] = {}
        if spec.precondition is not None:
            reads["precondition"] = self.read(
                f"tools.{name}.precondition", spec.precondition, spec.tenant, tool_args, PRECONDITION_NAMES
            )
        if spec.verification is not None:
            reads["verification"] = self.read(
                f"tools.{name}.verification", spec.verification, spec.tenant, tool_args, VERIFY_NAMES
            )
        for field_name, expression in spec.review.items():
            self.condition(f"tools.{name}.review.{field_name}", expression, REVIEW_NAMES)
        if len(self.errors) > before:
            return None
        return {
            "name": name,
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "operation": operation.to_dict(),
            "args_schema": args_schema,
            "reads": reads,
        }


def contracts_compile(
    text: str, *, catalogue: dict[str, Operation], picked: set[str], builtin: set[str]
) -> dict[str, dict[str, Any]]:
    """Every tool of the contract file, checked against the catalogue and compiled; a ContractError listing every
    problem otherwise."""
    contract = contracts_parse(text)
    compiler = _Compiler(catalogue, picked, builtin)
    compiled = {name: compiler.tool(name, spec) for name, spec in contract.tools.items()}
    if compiler.errors:
        raise ContractError(compiler.errors)
    return {name: definition for name, definition in compiled.items() if definition is not None}
