"""The company's Admin API as described by its OpenAPI 3 document: load it, resolve its references, and turn each
operation into a catalogue entry a tool can be built from.

References (`$ref`, local or to files beside the document) are resolved by prance, which also validates the
document with openapi-spec-validator; nothing here walks references by hand. What this module adds is the reading
of an operation as a tool: path, query and JSON body fields become one flat argument object.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import yaml

from agentconsole.errors import ApplicationError

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
JSON_TYPES = re.compile(r"^application/([\w.+-]+\+)?json$")
FETCH_TIMEOUT_SECONDS = 15.0
MAX_DOCUMENT_BYTES = 5_000_000

NOT_FOUND = "No OpenAPI document at {where}: {error}."
NOT_PARSEABLE = "The OpenAPI document at {where} is neither JSON nor YAML: {error}."
NOT_OPENAPI_3 = "The document at {where} is not OpenAPI 3 (no 'openapi: 3.x' key); Swagger 2 must be converted first."
INVALID_DOCUMENT = "The OpenAPI document at {where} is not valid: {error}"
TOO_LARGE = "The OpenAPI document at {where} is larger than {limit} bytes."
NON_JSON_BODY = "its request body is {types}; only application/json bodies can be sent"
NAME_CLASH = "the argument {name!r} is both a {first} and a {second} field"
BODY_NOT_OBJECT = "its JSON body is not an object, so it has no named fields to pass"


class OpenApiError(ApplicationError):
    """A document that cannot be read, is not OpenAPI 3, or does not validate."""


@dataclass(frozen=True)
class Operation:
    """One operation of the document, as a tool sees it."""

    operation_id: str
    method: str
    path: str
    summary: str = ""
    description: str = ""
    # Argument name -> where it goes: "path", "query", "body" (a top-level field of the JSON body) or "header".
    locations: dict[str, str] = field(default_factory=dict)
    # The arguments as one JSON Schema object (path, query and body fields; headers are the contract's business).
    args_schema: dict[str, Any] = field(default_factory=dict)
    has_body: bool = False
    # The JSON schema of the 2xx answer, when the document gives one: an answer of another shape is a changed API.
    response_schema: dict[str, Any] | None = None
    generated_id: bool = False  # the document gave no operationId: this one is made from method and path
    unsupported: str = ""  # why no tool can call it (a non-JSON body, a name used twice)

    @property
    def fingerprint(self) -> str:
        """Changes when what a caller sends or receives changes."""
        shape = {
            "method": self.method,
            "path": self.path,
            "locations": self.locations,
            "args": self.args_schema,
            "response": self.response_schema,
            "unsupported": self.unsupported,
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Catalogue:
    title: str
    version: str
    operations: dict[str, Operation]
    sha256: str


def _parse_text(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise OpenApiError(NOT_PARSEABLE.format(where=where, error=str(exc).splitlines()[0])) from exc


def document_read(source: str) -> tuple[str, str]:
    """The document's text and where it came from: a file path or an http(s) URL."""
    if re.match(r"^https?://", source):
        try:
            response = httpx.get(source, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OpenApiError(NOT_FOUND.format(where=source, error=str(exc) or type(exc).__name__)) from exc
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise OpenApiError(TOO_LARGE.format(where=source, limit=MAX_DOCUMENT_BYTES))
        return response.text, source
    path = Path(source)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise OpenApiError(TOO_LARGE.format(where=source, limit=MAX_DOCUMENT_BYTES))
        return path.read_text(encoding="utf-8"), str(path.resolve())
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenApiError(NOT_FOUND.format(where=source, error=exc)) from exc


def document_resolve(text: str, where: str) -> dict[str, Any]:
    """Validate the document and resolve every reference (prance with openapi-spec-validator)."""
    import prance
    from prance.util.url import ResolutionError

    raw = _parse_text(text, where)
    if not isinstance(raw, dict) or not str(raw.get("openapi", "")).startswith("3."):
        raise OpenApiError(NOT_OPENAPI_3.format(where=where))
    # A file is read by prance itself, so references to files beside it resolve; other text is resolved alone.
    local = Path(where).is_absolute() and Path(where).is_file()
    source = {"url": where} if local else {"spec_string": json.dumps(raw)}
    try:
        parser = prance.ResolvingParser(
            **source,
            backend="openapi-spec-validator",
            strict=False,  # integer status codes, as many generators write them
            lazy=False,
            recursion_limit_handler=_recursive,
        )
    except (prance.ValidationError, ResolutionError) as exc:
        detail = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        raise OpenApiError(INVALID_DOCUMENT.format(where=where, error=_first_lines(detail))) from exc
    except Exception as exc:  # the validators raise their own types; none of them may become a traceback
        raise OpenApiError(
            INVALID_DOCUMENT.format(where=where, error=_first_lines(f"{type(exc).__name__}: {exc}"))
        ) from exc
    return parser.specification


def _recursive(limit: int, parsed_url: Any, recursions: tuple = ()) -> dict[str, Any]:
    # A schema that contains itself (a tree, a linked list): below the first level it is "any JSON value", which
    # argument and answer checks accept, instead of refusing the whole document.
    return {"description": "(recursive: any value)"}


def _first_lines(message: str, lines: int = 3) -> str:
    return " ".join(message.strip().splitlines()[:lines])[:600]


def generated_operation_id(method: str, path: str) -> str:
    """A name for an operation the document left unnamed: `post_accounts_account_cache_flush`."""
    words = re.findall(r"[A-Za-z0-9]+", path)
    return "_".join([method.lower(), *(w.lower() for w in words)]) or method.lower()


def merged_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema with its allOf parts folded in (properties and required lists joined), so a body written
    as `allOf: [Base, {properties: ...}]` has its fields side by side. Other keywords are kept as they are."""
    if not isinstance(schema, dict) or "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties = dict(merged.get("properties") or {})
    required = list(merged.get("required") or [])
    for part in schema["allOf"]:
        part = merged_schema(part)
        properties.update(part.get("properties") or {})
        required += [name for name in part.get("required") or [] if name not in required]
        if part.get("type") and "type" not in merged:
            merged["type"] = part["type"]
        if part.get("additionalProperties") is False:
            merged["additionalProperties"] = False
    merged["properties"] = properties
    if required:
        merged["required"] = required
    merged.setdefault("type", "object")
    return merged


def _json_content(content: dict[str, Any]) -> dict[str, Any] | None:
    for media_type, body in (content or {}).items():
        if JSON_TYPES.match(media_type.split(";")[0].strip()):
            return body or {}
    return None


def _response_schema(responses: dict[str, Any]) -> dict[str, Any] | None:
    for status in sorted(responses or {}, key=str):
        if str(status).startswith("2"):
            body = _json_content((responses[status] or {}).get("content") or {})
            if body is not None and body.get("schema"):
                return merged_schema(body["schema"])
            return None
    return None


def _operation(path: str, method: str, path_item: dict[str, Any], op: dict[str, Any]) -> Operation:
    operation_id = op.get("operationId") or ""
    generated = not operation_id
    if generated:
        operation_id = generated_operation_id(method, path)
    # Path-level parameters apply to every operation; an operation's own parameter of the same name and place wins.
    parameters: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*(path_item.get("parameters") or []), *(op.get("parameters") or [])]:
        parameters[(param.get("name", ""), param.get("in", ""))] = param
    properties: dict[str, Any] = {}
    required: list[str] = []
    locations: dict[str, str] = {}
    unsupported = ""
    for (name, where), param in parameters.items():
        if where not in ("path", "query", "header"):
            continue
        if where == "header":
            locations[name] = "header"  # e.g. Idempotency-Key: the contract says what to send, never the model
            continue
        schema = dict(param.get("schema") or {"type": "string"})
        if param.get("description") and "description" not in schema:
            schema["description"] = param["description"]
        if name in properties:
            unsupported = unsupported or NAME_CLASH.format(name=name, first=locations[name], second=where)
        properties[name] = schema
        locations[name] = where
        if param.get("required") or where == "path":
            required.append(name)
    has_body = False
    request_body = op.get("requestBody")
    if request_body:
        content = request_body.get("content") or {}
        body = _json_content(content)
        if body is None:
            unsupported = unsupported or NON_JSON_BODY.format(types=", ".join(content) or "of no declared type")
        else:
            has_body = True
            schema = merged_schema(body.get("schema") or {"type": "object"})
            if schema.get("type", "object") != "object":
                unsupported = unsupported or BODY_NOT_OBJECT
            for name, prop in (schema.get("properties") or {}).items():
                if name in properties:
                    unsupported = unsupported or NAME_CLASH.format(name=name, first=locations[name], second="body")
                    continue
                properties[name] = prop
                locations[name] = "body"
            required += [n for n in schema.get("required") or [] if locations.get(n) == "body" and n not in required]
    args_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        args_schema["required"] = required
    return Operation(
        operation_id=operation_id,
        method=method.upper(),
        path=path,
        summary=op.get("summary") or "",
        description=op.get("description") or "",
        locations=locations,
        args_schema=args_schema,
        has_body=has_body,
        response_schema=_response_schema(op.get("responses") or {}),
        generated_id=generated,
        unsupported=unsupported,
    )


def json_schema_from_30(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's null type (3.1 and the model's tool schemas speak JSON
    Schema), everywhere in a schema."""
    if isinstance(schema, list):
        return [json_schema_from_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: json_schema_from_30(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable") is True:
        kind = converted.get("type")
        if isinstance(kind, str):
            converted["type"] = [kind, "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        elif kind is None:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def catalogue_from_document(spec: dict[str, Any], *, sha256: str = "") -> Catalogue:
    """Every operation of a resolved document, by operation id."""
    if str(spec.get("openapi", "")).startswith("3.0"):
        spec = {**spec, "paths": json_schema_from_30(spec.get("paths") or {})}
    operations: dict[str, Operation] = {}
    for path, path_item in (spec.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if method in (path_item or {}):
                operation = _operation(path, method, path_item, path_item[method] or {})
                operation_id = operation.operation_id
                if operation_id in operations:  # two unnamed operations whose paths read alike
                    operation_id = f"{operation_id}_{len(operations)}"
                    operation = Operation.from_dict({**operation.to_dict(), "operation_id": operation_id})
                operations[operation_id] = operation
    info = spec.get("info") or {}
    return Catalogue(
        title=str(info.get("title", "")), version=str(info.get("version", "")), operations=operations, sha256=sha256
    )


def catalogue_load(source: str) -> Catalogue:
    """Read, validate and resolve the document at `source` (file or URL) into a catalogue."""
    text, where = document_read(source)
    return catalogue_parse(text, where)


@lru_cache(maxsize=8)  # validating a document takes most of a second; the same text always gives the same result
def catalogue_parse(text: str, where: str = "(document)") -> Catalogue:
    spec = document_resolve(text, where)
    return catalogue_from_document(spec, sha256=hashlib.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class CatalogueDiff:
    added: list[str]
    removed: list[str]
    changed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        return (
            [f"+ {name} (added)" for name in self.added]
            + [f"- {name} (removed)" for name in self.removed]
            + [f"~ {name} (schema changed)" for name in self.changed]
        )


def catalogue_diff(old: dict[str, str], new: dict[str, Operation]) -> CatalogueDiff:
    """`old`: operation id -> fingerprint of what is stored now."""
    return CatalogueDiff(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(name for name in set(old) & set(new) if old[name] != new[name].fingerprint),
    )
