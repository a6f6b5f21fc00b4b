"""The first layer in front of run_sql: a pure check of the model's SQL text, with no database involved.

check_sql() parses the query with sqlglot and walks the whole tree against allow-lists: one statement, SELECT and
set operations only, tables that are support views (or CTEs of the same query), harmless functions and casts. It
returns the query regenerated from the tree it checked, and that regenerated text is what runs: the database never
sees text the guard did not understand (comments, quoting tricks, anything sqlglot reads differently from
PostgreSQL or SQLite). Parse errors are refusals, never guesses.

The guard is one layer of several (see docs/sql-guard.md); the database role, the read-only transaction, the signed
tenant binding and the SQLite authorizer each hold without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, SqlglotError

from agentconsole.errors import ApplicationError

MAX_QUERY_LENGTH = 4000

EMPTY_QUERY = "The query is empty. Send one SELECT statement over the support views: {views}."
QUERY_TOO_LONG = "The query is {length} characters long; at most {limit} are allowed. Send a shorter SELECT."
PARSE_ERROR = (
    "The query could not be parsed, so it was refused ({error}). Send one plain SELECT statement over the "
    "support views: {views}."
)
COMMENTS_REFUSED = "Comments (-- or /* */) are not allowed in queries. Remove them and send the bare SELECT."
MULTIPLE_STATEMENTS = "Only one statement per call is allowed; the query has {count}. Send a single SELECT."
NOT_A_SELECT = (
    "Only read queries are allowed: one SELECT, optionally combined with UNION, INTERSECT or EXCEPT. "
    "{kind} is refused; the support views are read-only and nothing else is reachable."
)
WRITE_REFUSED = (
    "{kind} inside a query is refused: the support views are read-only. Use SELECT (and CTEs made of SELECTs) only."
)
SELECT_INTO_REFUSED = "SELECT ... INTO creates a table and is refused. Drop the INTO clause; results come back as rows."
LOCKING_REFUSED = (
    "Locking clauses (FOR UPDATE, FOR SHARE and the like) are refused: the support views are read-only. "
    "Drop the clause."
)
RECURSIVE_REFUSED = "WITH RECURSIVE is not allowed. Use plain CTEs (WITH name AS (SELECT ...)) over the support views."
CTE_BODY_REFUSED = "The body of CTE {name!r} must be a SELECT; {kind} is refused."
TABLE_REFUSED = "{name!r} is not one of the support views. Only these may be queried: {views}."
QUOTED_TABLE_REFUSED = (
    "{name!r} is not one of the support views (quoted names are case-sensitive; write view names unquoted, "
    "in lower case). Only these may be queried: {views}."
)
CATALOG_REFUSED = "System catalog {name!r} is off limits. Only the support views may be queried: {views}."
SCHEMA_REFUSED = (
    "Schema-qualified name {name!r} is refused: the support views live in the default schema. Name them without a "
    "schema: {views}."
)
FROM_ITEM_REFUSED = "Only support views, subqueries and CTEs may appear in FROM or JOIN; {kind} is refused."
FUNCTION_REFUSED = "The function {name} is not allowed. Allowed functions: {functions}."
CAST_REFUSED = "Casting to {type} is not allowed. Allowed types: {types}."
CONSTRUCT_REFUSED = (
    "This is not allowed in support queries: {construct}. Use SELECT ... FROM <view> with joins, WHERE, GROUP BY, "
    "HAVING, ORDER BY, LIMIT, subqueries, CTEs and UNION/INTERSECT/EXCEPT."
)
IDENTIFIER_REFUSED = (
    "{name!r} is not a plain name (parameters like $1, ?, :name or @name are not supported). Write literal values, "
    "and quote unusual column aliases with double quotes."
)
NOT_REPRODUCIBLE = (
    "The query could not be checked reliably ({error}). Rewrite it as a plainer SELECT over the support views."
)

# Where unqualified names resolve. Qualifying a view with this schema is allowed; any other schema is refused. On
# SQLite the views are read from TEMP copies of the tenant's rows, so a qualified name (main.view) is refused.
DEFAULT_SCHEMAS: dict[str, str | None] = {"postgres": "public", "sqlite": None}
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "temp", "pg_temp"})
SYSTEM_PREFIXES = ("pg_", "sqlite_")

# Harmless scalar, aggregate and window functions, as sqlglot types them, with the names the model knows them by.
ALLOWED_FUNCTIONS: dict[type[exp.Func], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
    exp.Coalesce: "coalesce/ifnull",
    exp.Nullif: "nullif",
    exp.Lower: "lower",
    exp.Upper: "upper",
    exp.Length: "length",
    exp.Trim: "trim",
    exp.Substring: "substring/substr",
    exp.Replace: "replace",
    exp.Concat: "concat",
    exp.Left: "left",
    exp.Right: "right",
    exp.StrPosition: "position/strpos/instr",
    exp.SplitPart: "split_part",
    exp.Abs: "abs",
    exp.Round: "round",
    exp.Floor: "floor",
    exp.Ceil: "ceil",
    exp.Greatest: "greatest",
    exp.Least: "least",
    exp.TimestampTrunc: "date_trunc",
    exp.DateTrunc: "date_trunc",
    exp.Extract: "extract/date_part",
    exp.CurrentTimestamp: "now/current_timestamp",
    exp.CurrentDate: "current_date",
    exp.Date: "date",
    exp.Datetime: "datetime",
    exp.TimeToStr: "to_char/strftime",
    exp.ToChar: "to_char",
    exp.TsOrDsToTimestamp: "strftime",
    exp.GroupConcat: "string_agg/group_concat",
    exp.LogicalAnd: "bool_and",
    exp.LogicalOr: "bool_or",
    exp.RowNumber: "row_number",
    exp.Rank: "rank",
    exp.DenseRank: "dense_rank",
    exp.If: "iif",  # also the WHEN branches of CASE
    exp.Cast: "cast",
}
# Functions sqlglot does not type (exp.Anonymous), by name.
# A name one database lacks fails there as an unknown function, which is harmless and tells the model.
ALLOWED_ANONYMOUS_FUNCTIONS = frozenset({"age", "date_part", "datetime", "julianday", "now", "strftime", "total"})
ALLOWED_FUNCTION_NAMES = ", ".join(sorted({*ALLOWED_FUNCTIONS.values(), *ALLOWED_ANONYMOUS_FUNCTIONS}))

ALLOWED_CAST_TYPES: dict[exp.DataType.Type, str] = {
    exp.DataType.Type.TEXT: "text",
    exp.DataType.Type.VARCHAR: "varchar",
    exp.DataType.Type.CHAR: "char",
    exp.DataType.Type.SMALLINT: "smallint",
    exp.DataType.Type.INT: "integer",
    exp.DataType.Type.BIGINT: "bigint",
    exp.DataType.Type.DECIMAL: "numeric",
    exp.DataType.Type.FLOAT: "real",
    exp.DataType.Type.DOUBLE: "double precision",
    exp.DataType.Type.BOOLEAN: "boolean",
    exp.DataType.Type.DATE: "date",
    exp.DataType.Type.TIME: "time",
    exp.DataType.Type.TIMESTAMP: "timestamp",
    exp.DataType.Type.TIMESTAMPTZ: "timestamptz",
    exp.DataType.Type.INTERVAL: "interval",
}
ALLOWED_CAST_NAMES = ", ".join(ALLOWED_CAST_TYPES.values())

# Every other node of the tree: the grammar of a read query, and nothing that reaches outside the views.
ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Select,
    exp.Union,
    exp.Intersect,
    exp.Except,
    exp.Subquery,
    exp.With,
    exp.CTE,
    exp.From,
    exp.Join,
    exp.Where,
    exp.Group,
    exp.Having,
    exp.Order,
    exp.Ordered,
    exp.Limit,
    exp.Offset,
    exp.Fetch,
    exp.Distinct,
    exp.Window,
    exp.WindowSpec,
    exp.Filter,
    exp.Table,
    exp.TableAlias,
    exp.Alias,
    exp.Column,
    exp.Identifier,
    exp.Star,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Var,
    exp.Interval,
    exp.DataType,
    exp.DataTypeParam,
    exp.Tuple,
    exp.Paren,
    exp.Case,
    exp.And,
    exp.Or,
    exp.Not,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Escape,
    exp.Exists,
    exp.Any,
    exp.All,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Neg,
    exp.DPipe,
)

# An unquoted name: a letter or underscore, then letters, digits, underscores. SQLite reads "$1" or ":x" as
# parameters where sqlglot sees a column, so anything else unquoted is refused.
PLAIN_NAME = re.compile(r"[^\W\d]\w*")

WRITES: tuple[type[exp.Expression], ...] = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


class SqlRefused(ApplicationError):
    """The guard will not let this SQL run; the message tells the model what was refused and what is allowed."""

    status_code = 403


@dataclass(frozen=True)
class GuardedQuery:
    sql: str  # regenerated from the checked tree; run this, never the original text
    views: frozenset[str]  # the support views the query reads


def check_sql(sql: str, *, allowed_views: set[str], dialect: str) -> GuardedQuery:
    """Return the query as it may run, or raise SqlRefused with a message the model can act on."""
    if dialect not in DEFAULT_SCHEMAS:
        raise ValueError(f"Unsupported SQL dialect {dialect!r}.")
    views = frozenset(view.lower() for view in allowed_views)
    listing = ", ".join(sorted(views))
    if not sql.strip():
        raise SqlRefused(EMPTY_QUERY.format(views=listing))
    if len(sql) > MAX_QUERY_LENGTH:
        raise SqlRefused(QUERY_TOO_LONG.format(length=len(sql), limit=MAX_QUERY_LENGTH))
    tree = _parse_one(sql, dialect=dialect, listing=listing)
    read = _check_tree(tree, views=views, dialect=dialect, listing=listing)
    normalized = _generate(tree, dialect=dialect)
    # The regenerated text must read back to itself and pass again; otherwise sqlglot and the database might not
    # agree on what it means.
    again = _parse_one(normalized, dialect=dialect, listing=listing)
    _check_tree(again, views=views, dialect=dialect, listing=listing)
    if _generate(again, dialect=dialect) != normalized:
        raise SqlRefused(NOT_REPRODUCIBLE.format(error="the query does not survive a round trip"))
    return GuardedQuery(sql=normalized, views=frozenset(read))


def _parse_one(sql: str, *, dialect: str, listing: str) -> exp.Expression:
    parser_dialect = Dialect.get_or_raise(dialect)
    try:
        tokens = parser_dialect.tokenize(sql)
        if any(token.comments for token in tokens):
            raise SqlRefused(COMMENTS_REFUSED)
        statements = [s for s in parser_dialect.parse(sql) if s is not None]
    except SqlglotError as exc:
        raise SqlRefused(PARSE_ERROR.format(error=_first_line(exc), views=listing)) from None
    if not statements:
        raise SqlRefused(EMPTY_QUERY.format(views=listing))
    if len(statements) > 1:
        raise SqlRefused(MULTIPLE_STATEMENTS.format(count=len(statements)))
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise SqlRefused(NOT_A_SELECT.format(kind=_statement_kind(tree, first_word=tokens[0].text)))
    return tree


def _generate(tree: exp.Expression, *, dialect: str) -> str:
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise SqlRefused(NOT_REPRODUCIBLE.format(error=_first_line(exc))) from None


def _check_tree(tree: exp.Expression, *, views: frozenset[str], dialect: str, listing: str) -> set[str]:
    read: set[str] = set()
    for node in tree.walk():
        if isinstance(node, WRITES):
            raise SqlRefused(WRITE_REFUSED.format(kind=_statement_kind(node)))
        if isinstance(node, exp.Into):
            raise SqlRefused(SELECT_INTO_REFUSED)
        if isinstance(node, exp.Lock):
            raise SqlRefused(LOCKING_REFUSED)
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise SqlRefused(RECURSIVE_REFUSED)
        if isinstance(node, exp.CTE) and not isinstance(node.this, exp.Select | exp.SetOperation):
            raise SqlRefused(CTE_BODY_REFUSED.format(name=node.alias, kind=_statement_kind(node.this)))
        if isinstance(node, exp.Table):
            view = _check_table(node, views=views, dialect=dialect, listing=listing)
            if view:
                read.add(view)
        elif isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            # pg_catalog.pg_sleep(1): a schema-qualified function is never one of the allowed ones.
            name = f"{node.this.sql(dialect=dialect)}.{_function_name(node.expression)}"
            raise SqlRefused(FUNCTION_REFUSED.format(name=name, functions=ALLOWED_FUNCTION_NAMES))
        elif isinstance(node, exp.Identifier):
            if not node.quoted and not PLAIN_NAME.fullmatch(node.name):
                raise SqlRefused(IDENTIFIER_REFUSED.format(name=node.name))
        elif isinstance(node, exp.DataType | exp.ObjectIdentifier):
            _check_type(node, dialect=dialect)
        elif isinstance(node, ALLOWED_NODES):
            continue
        elif isinstance(node, exp.Func):
            _check_function(node)
        else:
            raise SqlRefused(CONSTRUCT_REFUSED.format(construct=_construct_label(node, dialect=dialect)))
    return read


def _check_type(node: exp.DataType | exp.ObjectIdentifier, *, dialect: str) -> None:
    """Casts to plain scalar types only (VARCHAR(10) and NUMERIC(10, 2) included); no reg* lookups, no arrays."""
    if (
        isinstance(node, exp.DataType)
        and node.this in ALLOWED_CAST_TYPES
        and all(isinstance(p, exp.DataTypeParam) and isinstance(p.this, exp.Literal) for p in node.expressions)
    ):
        return
    raise SqlRefused(CAST_REFUSED.format(type=node.sql(dialect=dialect), types=ALLOWED_CAST_NAMES))


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        if node.name.lower() in ALLOWED_ANONYMOUS_FUNCTIONS:
            return
    elif type(node) in ALLOWED_FUNCTIONS:
        return
    raise SqlRefused(FUNCTION_REFUSED.format(name=_function_name(node), functions=ALLOWED_FUNCTION_NAMES))


def _check_table(node: exp.Table, *, views: frozenset[str], dialect: str, listing: str) -> str | None:
    """Return the view a table reference reads, or None for a CTE of the query; refuse anything else."""
    if not isinstance(node.this, exp.Identifier):
        raise SqlRefused(FROM_ITEM_REFUSED.format(kind=_construct_label(node.this, dialect=dialect)))
    name = _normalized(node.this)
    catalog, schema = node.args.get("catalog"), node.args.get("db")
    shown = node.sql(dialect=dialect)
    if catalog is not None:
        raise SqlRefused(SCHEMA_REFUSED.format(name=shown, views=listing))
    if schema is not None:
        schema_name = _normalized(schema)
        if _is_system_name(schema_name):
            raise SqlRefused(CATALOG_REFUSED.format(name=shown, views=listing))
        if schema_name != DEFAULT_SCHEMAS[dialect]:
            raise SqlRefused(SCHEMA_REFUSED.format(name=shown, views=listing))
    elif name in _ctes_in_scope(node):
        return None
    if name in views:
        return name
    if _is_system_name(name.lower()):
        raise SqlRefused(CATALOG_REFUSED.format(name=shown, views=listing))
    template = QUOTED_TABLE_REFUSED if node.this.quoted else TABLE_REFUSED
    raise SqlRefused(template.format(name=node.this.name, views=listing))


def _ctes_in_scope(table: exp.Table) -> set[str]:
    """The CTE names a table reference can resolve to.

    Lexical scoping as PostgreSQL does it without RECURSIVE: a CTE body sees only the CTEs listed before it, the
    rest of its query sees all of them, inner queries see those of outer ones. Never more than the database sees:
    a name the guard took for a CTE while the database resolves it to a table would skip the table check.
    """
    names: set[str] = set()
    child: exp.Expression = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            for cte in parent.expressions:
                if cte is child:
                    break
                names.add(_normalized(cte.args["alias"].this))
        else:
            with_ = next((value for value in parent.args.values() if isinstance(value, exp.With)), None)
            if with_ is not None and with_ is not child:
                names.update(_normalized(cte.args["alias"].this) for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


def _normalized(identifier: exp.Expression) -> str:
    """Unquoted names fold to lower case (as in PostgreSQL); quoted names keep their case."""
    if isinstance(identifier, exp.Identifier) and identifier.quoted:
        return identifier.name
    return identifier.name.lower()


def _is_system_name(name: str) -> bool:
    return name in SYSTEM_SCHEMAS or name.startswith(SYSTEM_PREFIXES)


STATEMENT_LABELS: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.Merge: "MERGE",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.TruncateTable: "TRUNCATE",
    exp.Grant: "GRANT",
    exp.Revoke: "REVOKE",
    exp.Copy: "COPY",
    exp.Set: "SET",
    exp.Pragma: "PRAGMA",
    exp.Attach: "ATTACH",
    exp.Values: "VALUES",
}


def _statement_kind(node: exp.Expression | None, *, first_word: str = "") -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    for node_type, label in STATEMENT_LABELS.items():
        if isinstance(node, node_type):
            return label
    return first_word.upper() or (node.key.upper() if node is not None else "An empty statement")


def _construct_label(node: exp.Expression, *, dialect: str) -> str:
    if isinstance(node, exp.Func):
        return f"the function {_function_name(node)}"
    return f"{node.key.replace('_', ' ').upper()} ({node.sql(dialect=dialect)[:60]})"


def _function_name(node: exp.Func) -> str:
    return f"{(node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()}()"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
