"""The OpenAPI 3.1 document, made from the routes the app serves and the pydantic models
they answer with: no second copy of any shape.

Each view declares its operation with :func:`documented`; :func:`document` walks the
app's URL map, so a route without a declaration fails loudly instead of drifting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .schemas.common import Error
from .schemas.queries import PageQuery

View = TypeVar("View", bound=Callable[..., Any])
Security = Literal["umsChannel", "bearerToken", "metricsToken"] | None
_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Reply:
    """One documented answer: a JSON body of ``model``, another media type with a raw
    ``schema``, or (``ref``) one of the shared answers in ``components.responses``."""

    description: str = ""
    model: type[BaseModel] | None = Error
    media: str = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: tuple[str, ...] = ()
    ref: str | None = None
    # Further media types the same answer may come in (media type -> raw schema).
    also: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Body:
    """A documented request body: ``model`` (validated as input), or a raw ``schema``
    that may refer to models listed in ``uses``."""

    description: str = ""
    model: type[BaseModel] | None = None
    schema: Mapping[str, Any] | None = None
    uses: tuple[type[BaseModel], ...] = ()


@dataclass(frozen=True)
class Operation:
    """What a view does, takes and answers."""

    operation_id: str
    summary: str
    tag: str
    security: Security
    replies: Mapping[int, Reply]
    description: str = ""
    query: type[PageQuery] | None = None
    body: Body | None = None
    parameters: tuple[Mapping[str, Any], ...] = field(default=())


def documented(**operation: Any) -> Callable[[View], View]:
    """Attach an :class:`Operation` to a view function."""

    def attach(view: View) -> View:
        view.__openapi__ = Operation(**operation)  # type: ignore[attr-defined]
        return view

    return attach


# --- the answers several operations share -------------------------------------------------

CHANNEL_UNAUTHORIZED = Reply(ref="ChannelUnauthorized")
TOKEN_UNAUTHORIZED = Reply(ref="TokenUnauthorized")
BAD_PARAMETER = Reply(ref="BadParameter")
MESSAGE_NOT_FOUND = Reply(ref="MessageNotFound")
DATABASE_UNAVAILABLE = Reply(ref="DatabaseUnavailable")

_SHARED: dict[str, Reply] = {
    "ChannelUnauthorized": Reply(
        "No or wrong Basic auth of a configured UMS channel (error `unauthorized`); "
        "nothing was read or stored.",
        headers=("WWW-Authenticate",),
    ),
    "TokenUnauthorized": Reply(
        "No valid bearer token (error `unauthorized`).", headers=("WWW-Authenticate",)
    ),
    "BadParameter": Reply(
        "A query parameter is invalid, unknown or repeated (error `invalid_parameter`); "
        "the message starts with the parameter's name."
    ),
    "MessageNotFound": Reply("Nothing is known of this msgid (error `not_found`)."),
    "DatabaseUnavailable": Reply(
        "The database is unavailable (error `database_unavailable`); nothing was "
        "half-written, so a retry is safe.",
        headers=("Retry-After",),
    ),
}
_HEADERS = {
    "Idempotent-Replayed": {
        "description": "true: this is the first answer to an earlier request with the "
        "same Idempotency-Key and body, given again; nothing was sent this time.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "The scheme the request must authenticate with.",
        "required": True,
        "schema": {"type": "string"},
    },
}
_SECURITY_SCHEMES = {
    "umsChannel": {
        "type": "http",
        "scheme": "basic",
        "description": "base64(channelkey:mastersecret) of a channel configured in "
        "UMS_CHANNELS, compared in constant time.",
    },
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the tokens in API_TOKENS. With none configured, the API "
        "refuses everyone.",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "METRICS_TOKEN. Unset, GET /metrics needs none on a loopback bind "
        "and is refused on any other.",
    },
}
_PATH_PARAMETERS = {
    "msgid": {
        "name": "msgid",
        "in": "path",
        "required": True,
        "description": "The UMS msgid (it contains colons; percent-encode as usual).",
        "schema": {"type": "string"},
        "example": "v:1t:1603707455p:27133n:2",
    },
    "recipient": {
        "name": "recipient",
        "in": "path",
        "required": True,
        "description": "A userid or a sender_id (a phone number, an e-mail address, an "
        "openid...); an event is the recipient's when either equals it.",
        "schema": {"type": "string"},
        "example": "user1",
    },
}
_TAGS = [
    {"name": "callbacks", "description": "Called by UMS: URL check and status records."},
    {"name": "messages", "description": "Read and send: summaries, timelines, targets."},
    {"name": "service", "description": "Health and this document."},
]


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every route ``app`` serves."""
    operations: list[tuple[str, str, Operation]] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        operation = getattr(app.view_functions[rule.endpoint], "__openapi__", None)
        if operation is None:
            raise RuntimeError(f"route {rule.rule} ({rule.endpoint}) has no @documented")
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.append((path, method.lower(), operation))
    schemas = _Schemas()
    for reply in _SHARED.values():
        schemas.add(reply.model, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in sorted(operations, key=lambda o: o[:2]):
        item = paths.setdefault(path, {})
        names = re.findall(r"{(\w+)}", path)
        if names:
            item["parameters"] = [_PATH_PARAMETERS[name] for name in names]
        item[method] = _operation(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "umstrack",
            "version": version("umstrack"),
            "summary": "Takes in Jiguang UMS status callbacks and serves status timelines.",
            "description": "Every JSON error has one shape: "
            '`{"error": "<short code>", "message": "<human sentence>"}`. Timestamps are '
            "ISO 8601 with a UTC offset. Cursors are opaque strings: pass a `next_cursor` "
            "back unchanged to get the next page; `null` means the last page.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": _TAGS,
        "paths": paths,
        "components": {
            "securitySchemes": _SECURITY_SCHEMES,
            "headers": _HEADERS,
            "responses": {name: _reply(reply, schemas) for name, reply in _SHARED.items()},
            "schemas": schemas.definitions(),
        },
    }


class _Schemas:
    """The models the document refers to, made into ``components.schemas`` at the end."""

    def __init__(self) -> None:
        self._uses: list[tuple[type[BaseModel], JsonSchemaMode, dict[str, Any]]] = []

    def add(self, model: type[BaseModel] | None, mode: JsonSchemaMode) -> dict[str, Any]:
        """Note ``model`` and give the reference to its schema (filled in by
        :meth:`definitions`, once every model is known and named)."""
        reference: dict[str, Any] = {}
        if model is not None:
            self._uses.append((model, mode, reference))
        return reference

    def definitions(self) -> dict[str, Any]:
        """The schemas of every model noted, and each reference made."""
        pairs = list(dict.fromkeys((model, mode) for model, mode, _ in self._uses))
        references, top = models_json_schema(pairs, ref_template=_REF)
        for model, mode, reference in self._uses:
            reference.update(references[model, mode])
        return dict(sorted(top.get("$defs", {}).items()))


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tags": [operation.tag],
        "operationId": operation.operation_id,
        "summary": operation.summary,
    }
    if operation.description:
        result["description"] = operation.description
    result["security"] = [{operation.security: []}] if operation.security else []
    parameters = [*_query_parameters(operation.query), *operation.parameters]
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        body = operation.body
        for model in body.uses:
            schemas.add(model, "validation")
        schema = schemas.add(body.model, "validation") if body.model else dict(body.schema or {})
        result["requestBody"] = {
            "required": True,
            **({"description": body.description} if body.description else {}),
            "content": {"application/json": {"schema": schema}},
        }
    result["responses"] = {
        str(status): _reply(reply, schemas) for status, reply in sorted(operation.replies.items())
    }
    return result


def _reply(reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    if reply.ref is not None:
        return {"$ref": f"#/components/responses/{reply.ref}"}
    schema = (
        dict(reply.schema)
        if reply.schema is not None
        else schemas.add(reply.model, "serialization")
    )
    answer: dict[str, Any] = {
        "description": reply.description,
        "content": {
            reply.media: {"schema": schema},
            **{media: {"schema": dict(other)} for media, other in reply.also.items()},
        },
    }
    if reply.headers:
        answer["headers"] = {
            name: {"$ref": f"#/components/headers/{name}"} for name in reply.headers
        }
    return answer


def _query_parameters(model: type[PageQuery] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    properties = model.model_json_schema()["properties"]
    parameters = []
    for name, schema in properties.items():
        prefix = next((p for p, f in model.exploded.items() if f == name), None)
        schema = _not_null(schema)
        description = schema.pop("description", "")
        schema.pop("title", None)
        if prefix is not None:
            parameters.append(
                {
                    "name": prefix.rstrip("."),
                    "in": "query",
                    "description": f"{description} The parameter's properties are the "
                    "query parameter names themselves (form style, exploded).",
                    "style": "form",
                    "explode": True,
                    "schema": {
                        "type": "object",
                        "propertyNames": {"pattern": rf"^{re.escape(prefix)}.+$"},
                        "additionalProperties": {"type": "string"},
                    },
                    "example": {f"{prefix}order_id": "123"},
                }
            )
            continue
        parameters.append(
            {"name": name, "in": "query", "description": description, "schema": schema}
        )
    return parameters


def _not_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the ``null`` its optional model field allows."""
    result = dict(schema)
    branches = [b for b in result.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        result = {**branches[0], **result}
    elif branches:
        result["anyOf"] = branches
    if result.get("default") is None:
        result.pop("default", None)
    return result
