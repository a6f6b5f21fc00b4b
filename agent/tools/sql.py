"""run_sql: read-only SQL over the support views, bound to the ticket's tenant.

The guard is agent/tools/sql_guard.py, the executors agent/tools/sql_executor.py, and what the model is told of
the views agent/tools/sql_catalogue.py.

Layers, each holding without the others (docs/sql-guard.md):
1. the guard (sql_guard.check_sql) lets only a SELECT over the support views through, regenerated from its tree;
2. PostgreSQL: a connection of its own as SUPPORT_SQL_ROLE, which may SELECT the six views and nothing else, in a
   READ ONLY transaction with a statement timeout, one statement per call (extended protocol), at most ROW_CAP + 1
   rows fetched; the views filter on a tenant binding signed with a key the role cannot read, so changing the
   setting from inside a query binds nothing;
3. SQLite: the file opened read-only, the tenant's view rows copied into TEMP tables of the same names, an
   authorizer that allows SELECT, reads of those copies and allow-listed functions (no read of the database file
   itself), a progress handler for the timeout, the same row cap."""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.policy import Risk
from agent.tools import register
from agent.tools._summary import clip, count, plain
from agent.tools.base import ErrorType, Observation, Tool, ToolContext
from agent.tools.sql_catalogue import run_sql_description
from agent.tools.sql_executor import SqlExecutionError, support_sql_executor
from agent.tools.sql_guard import MAX_QUERY_LENGTH, SqlRefused, check_sql
from agent.tools.sql_views import View, view_catalogue

logger = logging.getLogger(__name__)

NO_TENANT = "This ticket is not linked to a tenant, so there is nothing run_sql may read."


class RunSqlArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_LENGTH,
        description="One SELECT statement over the support views, without comments or a trailing second statement.",
    )


_FROM_VIEW = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


@register
class RunSql(Tool):
    name = "run_sql"
    description = run_sql_description()
    args_schema = RunSqlArgs
    risk = Risk.READ
    tenant_arg = ""  # bound by the connection (docs/sql-guard.md): the query names no tenant
    query_arg = "query"
    query_language = "sql"
    _held_spec: tuple[list[View] | None, dict[str, Any]] | None = None

    def spec(self) -> dict[str, Any]:
        """As the model sees it: the configured views with the columns and comments the database holds now (cached
        a few minutes per process; agent/tools/sql_views.py)."""
        try:
            views: list[View] | None = view_catalogue(support_sql_executor())
        except SqlExecutionError:  # misconfigured: the views by name, and run() says what is wrong
            views = None
        # The catalogue hands out the same list until it reads the views again: so does this, the same spec.
        held = self._held_spec
        if held is not None and views is not None and held[0] is views:
            return held[1]
        spec = {**super().spec(), "description": run_sql_description(views)}
        self._held_spec = (views, spec)
        return spec

    def template_quote(self, arg: str, text: str) -> str:
        """A runbook's query holds filled-in values inside SQL string literals ('{requester_email}')."""
        return text.replace("'", "''") if arg == self.query_arg else text

    def run(self, args: RunSqlArgs, ctx: ToolContext) -> Observation:
        if not ctx.tenant_id:
            return Observation.failure(ErrorType.REFUSED, NO_TENANT)
        try:
            executor = support_sql_executor()
            guarded = check_sql(args.query, allowed_views=set(executor.views), dialect=executor.dialect)
            result = executor.run(guarded.sql, tenant_id=ctx.tenant_id)
        except SqlRefused as exc:
            return Observation.failure(ErrorType.REFUSED, exc.message)
        except SqlExecutionError as exc:
            if exc.error_type is ErrorType.INTERNAL:
                logger.error("run_sql cannot run: %s", exc.message)
            return Observation.failure(exc.error_type, exc.message, retryable=exc.retryable)
        return Observation.success(result.as_data(), views=sorted(guarded.views))

    def summarize(self, args: dict[str, Any], data: Any) -> str:
        if not isinstance(data, dict):
            return super().summarize(args, data)
        views = _FROM_VIEW.findall(str(args.get("query", ""))) or ["the support views"]
        columns, rows = list(data.get("columns") or []), list(data.get("rows") or [])
        source = ", ".join(dict.fromkeys(view.lower() for view in views))
        if not rows:
            return f"{source}: no matching rows"
        shown = [", ".join(f"{col} {plain(val)}" for col, val in zip(columns, row, strict=False)) for row in rows[:3]]
        more = len(rows) - len(shown)
        tail = f"; … and {more} more" + (" (capped)" if data.get("truncated") else "") if more > 0 else ""
        return clip(f"{source}: {count(len(rows), 'row')} — " + "; ".join(shown) + tail)
