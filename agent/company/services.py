"""Writes of the company's configuration: importing its OpenAPI catalogue and its effect contracts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from agent.company.contracts import ContractError, contracts_compile
from agent.company.openapi import Catalogue, CatalogueDiff, Operation, catalogue_diff
from agent.company.selectors import contract_tools_forget
from agent.models import ApiOperation, ToolContract
from agentconsole.errors import ApplicationError
from audit.services import audit_event_record

UNKNOWN_PICK = "Cannot pick {names}: the document has no such operation. Its operations: {known}."
UNSUPPORTED_PICK = "Cannot pick {name}: {reason}."


@dataclass(frozen=True)
class CatalogueImport:
    diff: CatalogueDiff
    picked: list[str]
    unpicked_in_use: list[str] = field(default_factory=list)  # removed operations that active contracts still call
    applied: bool = False


def _builtin_tool_names() -> set[str]:
    from agent.tools import builtin_tools

    return set(builtin_tools())


def stored_catalogue() -> tuple[dict[str, Operation], set[str]]:
    """The imported operations and the ids of those picked."""
    operations, picked = {}, set()
    for row in ApiOperation.objects.all():
        operations[row.operation_id] = Operation.from_dict(row.definition)
        if row.picked:
            picked.add(row.operation_id)
    return operations, picked


@transaction.atomic
def catalogue_import(
    *, catalogue: Catalogue, source: str, pick: list[str] | None = None, apply: bool = False
) -> CatalogueImport:
    """Compare the document with what is stored; with `apply`, store it: operations added or changed are written,
    removed ones deleted, and `pick` (operation ids, or ["all"]) marked as picked. Earlier picks are kept."""
    stored = {row.operation_id: row for row in ApiOperation.objects.select_for_update()}
    diff = catalogue_diff({k: row.fingerprint for k, row in stored.items()}, catalogue.operations)
    wanted = list(catalogue.operations) if pick == ["all"] else list(pick or [])
    unknown = [name for name in wanted if name not in catalogue.operations]
    if unknown:
        raise ApplicationError(
            UNKNOWN_PICK.format(names=", ".join(unknown), known=", ".join(sorted(catalogue.operations)))
        )
    if pick != ["all"]:
        for name in wanted:
            if catalogue.operations[name].unsupported:
                raise ApplicationError(
                    UNSUPPORTED_PICK.format(name=name, reason=catalogue.operations[name].unsupported)
                )
    wanted = [name for name in wanted if not catalogue.operations[name].unsupported]
    in_use = sorted(
        set(ToolContract.objects.filter(active=True, operation_id__in=diff.removed).values_list("name", flat=True))
    )
    picked = sorted(set(wanted) | {k for k, row in stored.items() if row.picked and k in catalogue.operations})
    if not apply:
        return CatalogueImport(diff=diff, picked=picked, unpicked_in_use=in_use)
    for row in ApiOperation.objects.filter(operation_id__in=diff.removed):
        audit_event_record(verb="company.operation_removed", obj=row, payload={"source": source})
    ApiOperation.objects.filter(operation_id__in=diff.removed).delete()
    for operation_id, operation in catalogue.operations.items():
        row, _ = ApiOperation.objects.update_or_create(
            operation_id=operation_id,
            defaults={
                "method": operation.method,
                "path": operation.path[:500],
                "summary": operation.summary[:500],
                "definition": operation.to_dict(),
                "fingerprint": operation.fingerprint,
                "picked": operation_id in picked,
                "unsupported": operation.unsupported[:500],
                "source": source[:1000],
            },
        )
        if operation_id in diff.added or operation_id in diff.changed:
            audit_event_record(
                verb="company.operation_imported",
                obj=row,
                payload={"source": source, "fingerprint": operation.fingerprint, "sha256": catalogue.sha256},
            )
    transaction.on_commit(contract_tools_forget)
    contract_tools_forget()
    return CatalogueImport(diff=diff, picked=picked, unpicked_in_use=in_use, applied=True)


@dataclass(frozen=True)
class ContractChange:
    name: str
    version: int
    change: str  # "new", "changed", "unchanged", "retired"

    def line(self) -> str:
        mark = {"new": "+", "changed": "~", "unchanged": "=", "retired": "-"}[self.change]
        return f"{mark} {self.name} v{self.version} ({self.change})"


def _same(row: ToolContract, compiled: dict[str, Any]) -> bool:
    return row.spec == compiled["spec"] and row.compiled == compiled


@transaction.atomic
def contracts_import(*, text: str, source: str, apply: bool = True) -> list[ContractChange]:
    """Check the contract file against the catalogue and, with `apply`, store a new version of every tool whose
    contract changed; tools no longer in the file are retired. A file with any problem stores nothing."""
    operations, picked = stored_catalogue()
    compiled = contracts_compile(text, catalogue=operations, picked=picked, builtin=_builtin_tool_names())
    current = {row.name: row for row in ToolContract.objects.select_for_update().filter(active=True)}
    latest = {}
    for name, version in ToolContract.objects.values_list("name", "version"):
        latest[name] = max(version, latest.get(name, 0))
    changes: list[ContractChange] = []
    for name, definition in compiled.items():
        row = current.get(name)
        if row is not None and _same(row, definition):
            changes.append(ContractChange(name, row.version, "unchanged"))
            continue
        version = latest.get(name, 0) + 1
        changes.append(ContractChange(name, version, "changed" if name in latest else "new"))
        if apply:
            if row is not None:
                row.active = False
                row.save(update_fields=["active"])
            created = ToolContract(
                name=name,
                version=version,
                operation_id=definition["operation"]["operation_id"],
                risk=definition["spec"]["risk"],
                spec=definition["spec"],
                compiled=definition,
                source=source[:1000],
            )
            created.full_clean()
            created.save()
            audit_event_record(
                verb="company.contract_imported", obj=created, payload={"source": source, "version": version}
            )
    for name, row in current.items():
        if name not in compiled:
            changes.append(ContractChange(name, row.version, "retired"))
            if apply:
                row.active = False
                row.save(update_fields=["active"])
    if apply:
        transaction.on_commit(contract_tools_forget)
        contract_tools_forget()
    return changes


__all__ = ["ContractError", "catalogue_import", "contracts_import", "stored_catalogue"]
