"""The OpenAPI 3.1 document of this service, served at ``GET /openapi.json``.

Written by hand from the contract (shared API.md) and the code that answers; the
tests check it against the routes the app registers and the answers it gives.
"""

from __future__ import annotations

import functools
from importlib.metadata import version
from typing import Any

from flask import Blueprint, Response, jsonify

from sender.ums.protocol import STATUSES

from .read import DEFAULT_LIMIT, MAX_LIMIT

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document; public, as it holds no data."""
    return jsonify(document())


def _ref(kind: str, name: str) -> dict[str, str]:
    """A reference to ``#/components/<kind>/<name>``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    """A reference to a schema in components."""
    return _ref("schemas", name)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error response in the one error shape, with optional headers."""
    response = _json(_schema("Error"), description)
    if headers:
        response["headers"] = headers
    return response


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_PARAMS = {
    "type": ["object", "null"],
    "description": "The sender's callback params (callback.params), passed back unchanged.",
}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document, built once."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "umstrack",
            "version": version("umstrack"),
            "summary": "Takes in Jiguang UMS status callbacks and serves status timelines.",
            "description": (
                "Every JSON error has one shape: "
                '`{"error": "<short code>", "message": "<human sentence>"}`. '
                "Timestamps are ISO 8601 with a UTC offset. Cursors are opaque strings: "
                "pass a `next_cursor` back unchanged to get the next page; `null` means "
                "the last page."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "callbacks", "description": "Called by UMS: URL check and status records."},
            {"name": "messages", "description": "Read API: summaries, timelines, targets."},
            {"name": "service", "description": "Health and this document."},
        ],
        "paths": {
            "/callbacks/ums": {
                "get": {
                    "tags": ["callbacks"],
                    "operationId": "verifyCallbackUrl",
                    "summary": "UMS console URL check: echo echostr back",
                    "security": [{"umsChannel": []}],
                    "parameters": [
                        {
                            "name": "echostr",
                            "in": "query",
                            "required": True,
                            "description": "Random string from UMS, answered back verbatim.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The echostr value, exactly.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "400": _error("No echostr query parameter (error `missing_echostr`)."),
                        "401": _ref("responses", "ChannelUnauthorized"),
                    },
                },
                "post": {
                    "tags": ["callbacks"],
                    "operationId": "receiveCallbacks",
                    "summary": "Take in a batch of UMS status records",
                    "description": (
                        "Authentication is checked before the body is read. Valid records "
                        "are stored; unusable ones (no msgid, type not 0-8, wrong field "
                        "types, a channelkey other than the authenticated one, ...) are kept "
                        "in quarantine with the reason, never dropped, and the rest of the "
                        "batch is stored. A record delivered again is counted as a "
                        "duplicate and not stored twice. Records for msgids this service "
                        "never sent are stored too."
                    ),
                    "security": [{"umsChannel": []}],
                    "requestBody": {
                        "required": True,
                        "description": "A JSON array of records; a single record object too.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"type": "array", "items": _schema("CallbackRecord")},
                                        _schema("CallbackRecord"),
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_schema("BatchResult"), "The batch was handled."),
                        "400": _error(
                            "The body is not JSON, or neither an array nor an object "
                            "(error `bad_request`); the raw body was kept in quarantine."
                        ),
                        "401": _ref("responses", "ChannelUnauthorized"),
                        "413": _error(
                            "The body is over the size limit (MAX_BODY_BYTES, default 1 MiB; "
                            "error `request_entity_too_large`)."
                        ),
                        "503": _ref("responses", "DatabaseUnavailable"),
                    },
                },
            },
            "/api/messages": {
                "get": {
                    "tags": ["messages"],
                    "operationId": "listMessages",
                    "summary": "Message summaries, newest first, filtered",
                    "security": [{"bearerToken": []}],
                    "parameters": [
                        {
                            "name": "sendno",
                            "in": "query",
                            "description": "Only messages with this sendno.",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "send_id",
                            "in": "query",
                            "description": "Only the messages (parts) of this send.",
                            "schema": {"type": "string"},
                        },
                        {
                            **_ref("parameters", "Status"),
                            "description": "Only messages with a target in this current status.",
                        },
                        {
                            "name": "since",
                            "in": "query",
                            "description": (
                                "Only messages this service knew of at or after this time "
                                "(created_at, inclusive). ISO 8601; without an offset UTC is "
                                "assumed."
                            ),
                            "schema": _TIME,
                        },
                        {
                            "name": "until",
                            "in": "query",
                            "description": (
                                "Only messages this service knew of before this time "
                                "(created_at, exclusive). ISO 8601; without an offset UTC is "
                                "assumed."
                            ),
                            "schema": _TIME,
                        },
                        {
                            "name": "param",
                            "in": "query",
                            "description": (
                                "Filters on the message's params: each query parameter "
                                "`param.<key>=<value>` keeps only messages whose params hold "
                                "`<key>` with that value (compared as text), e.g. "
                                "`param.order_id=123`. Several are combined with AND. The "
                                "parameter's properties are the query parameter names "
                                "themselves (form style, exploded)."
                            ),
                            "style": "form",
                            "explode": True,
                            "schema": {
                                "type": "object",
                                "propertyNames": {"pattern": r"^param\..+$"},
                                "additionalProperties": {"type": "string"},
                            },
                            "example": {"param.order_id": "123"},
                        },
                        _ref("parameters", "Limit"),
                        _ref("parameters", "Cursor"),
                    ],
                    "responses": {
                        "200": _json(_schema("MessagePage"), "One page of message summaries."),
                        "400": _ref("responses", "BadParameter"),
                        "401": _ref("responses", "TokenUnauthorized"),
                        "503": _ref("responses", "DatabaseUnavailable"),
                    },
                },
                "post": {
                    "tags": ["messages"],
                    "operationId": "sendMessage",
                    "summary": "Send a UMS message through this service",
                    "description": (
                        "Validates the message by every rule of the UMS message format, "
                        "splits an audience over 1000 ids (or personalised contents) into "
                        "several requests, fills in callback.url (PUBLIC_URL + "
                        "/callbacks/ums) and the tracking param umstrack_send, sends, and "
                        "records every request, failures too."
                    ),
                    "security": [{"bearerToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _schema("SendRequest")}},
                    },
                    "responses": {
                        "201": _json(_schema("SendOutcome"), "Sent; one msgid per request."),
                        "400": _json(
                            _schema("SendError"),
                            "Not JSON (error `bad_request`), or a rule of the message format "
                            "broken (error `invalid_message`, with `field` and the UMS "
                            "business `code` UMS would answer); nothing was sent.",
                        ),
                        "401": _ref("responses", "TokenUnauthorized"),
                        "502": _json(
                            _schema("SendError"),
                            "UMS refused a request (error `ums_error`, with UMS's `code` and "
                            "`message` in `ums`) or could not be reached (`ums_unreachable`); "
                            "`sent` lists the requests that went out before it.",
                        ),
                        "503": _json(
                            _schema("SendError"),
                            "No UMS channel is configured (error `not_configured`).",
                        ),
                        "504": _json(
                            _schema("SendError"),
                            "No answer from UMS after the request left (error "
                            "`unknown_outcome`): it may or may not have been sent, so it "
                            "was not retried.",
                        ),
                    },
                },
            },
            "/api/messages/{msgid}": {
                "parameters": [_ref("parameters", "Msgid")],
                "get": {
                    "tags": ["messages"],
                    "operationId": "getMessage",
                    "summary": "One message's summary",
                    "security": [{"bearerToken": []}],
                    "responses": {
                        "200": _json(_schema("MessageSummary"), "The message's summary."),
                        "401": _ref("responses", "TokenUnauthorized"),
                        "404": _ref("responses", "MessageNotFound"),
                        "503": _ref("responses", "DatabaseUnavailable"),
                    },
                },
            },
            "/api/messages/{msgid}/timeline": {
                "parameters": [_ref("parameters", "Msgid")],
                "get": {
                    "tags": ["messages"],
                    "operationId": "getTimeline",
                    "summary": "One message's events in time order",
                    "description": "Ordered by occurred_at, then arrival, then type (lifecycle).",
                    "security": [{"bearerToken": []}],
                    "parameters": [_ref("parameters", "Limit"), _ref("parameters", "Cursor")],
                    "responses": {
                        "200": _json(_schema("TimelinePage"), "One page of the timeline."),
                        "400": _ref("responses", "BadParameter"),
                        "401": _ref("responses", "TokenUnauthorized"),
                        "404": _ref("responses", "MessageNotFound"),
                        "503": _ref("responses", "DatabaseUnavailable"),
                    },
                },
            },
            "/api/messages/{msgid}/targets": {
                "parameters": [_ref("parameters", "Msgid")],
                "get": {
                    "tags": ["messages"],
                    "operationId": "listTargets",
                    "summary": "The current status of each of one message's targets",
                    "description": "Ordered by recipient, then sender.",
                    "security": [{"bearerToken": []}],
                    "parameters": [
                        {
                            **_ref("parameters", "Status"),
                            "description": "Only targets whose current status is this one.",
                        },
                        _ref("parameters", "Limit"),
                        _ref("parameters", "Cursor"),
                    ],
                    "responses": {
                        "200": _json(_schema("TargetPage"), "One page of targets."),
                        "400": _ref("responses", "BadParameter"),
                        "401": _ref("responses", "TokenUnauthorized"),
                        "404": _ref("responses", "MessageNotFound"),
                        "503": _ref("responses", "DatabaseUnavailable"),
                    },
                },
            },
            "/healthz": {
                "get": {
                    "tags": ["service"],
                    "operationId": "healthz",
                    "summary": "Health check: does the database answer?",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"status": {"const": "ok"}},
                                "required": ["status"],
                            },
                            "The database answers.",
                        ),
                        "503": _error(
                            "The database does not answer (error `database_unavailable`)."
                        ),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "tags": ["service"],
                    "operationId": "getOpenApiDocument",
                    "summary": "This OpenAPI document",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "umsChannel": {
                    "type": "http",
                    "scheme": "basic",
                    "description": (
                        "base64(channelkey:mastersecret) of a channel configured in "
                        "UMS_CHANNELS, compared in constant time."
                    ),
                },
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "One of the tokens in API_TOKENS. With none configured, the read "
                        "API refuses everyone."
                    ),
                },
            },
            "parameters": {
                "Msgid": {
                    "name": "msgid",
                    "in": "path",
                    "required": True,
                    "description": "The UMS msgid (it contains colons; percent-encode as usual).",
                    "schema": {"type": "string"},
                    "example": "v:1t:1603707455p:27133n:2",
                },
                "Status": {
                    "name": "status",
                    "in": "query",
                    "description": "A status name.",
                    "schema": _schema("Status"),
                },
                "Limit": {
                    "name": "limit",
                    "in": "query",
                    "description": f"Page size, 1 to {MAX_LIMIT}.",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT,
                    },
                },
                "Cursor": {
                    "name": "cursor",
                    "in": "query",
                    "description": "A next_cursor from the previous page of the same list.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                "WwwAuthenticate": {
                    "description": "The scheme the request must authenticate with.",
                    "schema": {"type": "string"},
                },
            },
            "responses": {
                "ChannelUnauthorized": _error(
                    "No or wrong Basic auth of a configured UMS channel (error "
                    "`unauthorized`); nothing was read or stored.",
                    {"WWW-Authenticate": _ref("headers", "WwwAuthenticate")},
                ),
                "TokenUnauthorized": _error(
                    "No valid bearer token (error `unauthorized`).",
                    {"WWW-Authenticate": _ref("headers", "WwwAuthenticate")},
                ),
                "BadParameter": _error(
                    "A query parameter is invalid (error `invalid_parameter`); the message "
                    "starts with the parameter's name."
                ),
                "MessageNotFound": _error("Nothing is known of this msgid (error `not_found`)."),
                "DatabaseUnavailable": _error(
                    "The database is unavailable (error `database_unavailable`); nothing was "
                    "half-written, so a retry is safe.",
                    {"Retry-After": _ref("headers", "RetryAfter")},
                ),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "description": "The one shape of every JSON error.",
                    "properties": {
                        "error": {"type": "string", "description": "Short code."},
                        "message": {"type": "string", "description": "Human sentence."},
                    },
                    "required": ["error", "message"],
                },
                "SendRequest": {
                    "type": "object",
                    "description": (
                        "A UMS message object (aud_xxx, msg_xxx, rule_id, option, callback; "
                        "template_id, template_para, app_para for template sends), plus "
                        "these keys of ours. With `recipients`, the message is a template "
                        "whose strings may hold {name} placeholders, rendered per recipient."
                    ),
                    "properties": {
                        "broadcast": {"type": "boolean", "description": "/v1/broadcast"},
                        "template": {"type": "boolean", "description": "a template send"},
                        "channelkey": {
                            "type": "string",
                            "description": "Channel to send with; default the first one.",
                        },
                        "recipients": {
                            "type": "array",
                            "description": "Personalised send: one entry per recipient.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "to": {
                                        "type": "object",
                                        "description": 'e.g. {"aud_userid": "u1"}',
                                    },
                                    "values": {
                                        "type": "object",
                                        "additionalProperties": {"type": ["string", "number"]},
                                    },
                                },
                                "required": ["to", "values"],
                            },
                        },
                    },
                    "additionalProperties": True,
                },
                "SendPart": {
                    "type": "object",
                    "description": "One request of a send.",
                    "properties": {
                        "part": {"type": "integer", "minimum": 0},
                        "msgid": _NULLABLE_STRING,
                        "sendno": _NULLABLE_STRING,
                        "recipients": {"type": "integer", "minimum": 0},
                        "code": _NULLABLE_INT,
                        "message": _NULLABLE_STRING,
                        "recorded_as": {
                            **_NULLABLE_STRING,
                            "description": "The message id it is recorded under (the "
                            "msgid, or umstrack:<send_id>:<part> when none came back).",
                        },
                        "body": {
                            "type": "object",
                            "description": "On a dry run: the request as it would go out.",
                        },
                    },
                    "required": [
                        "part",
                        "msgid",
                        "sendno",
                        "recipients",
                        "code",
                        "message",
                        "recorded_as",
                    ],
                },
                "SendOutcome": {
                    "type": "object",
                    "properties": {
                        "send_id": {"type": "string"},
                        "kind": {
                            "type": "string",
                            "enum": ["sent", "broadcast", "template_sent", "template_broadcast"],
                        },
                        "channelkey": {"type": "string"},
                        "dry_run": {"type": "boolean"},
                        "msgids": {"type": "array", "items": {"type": "string"}},
                        "parts": {"type": "array", "items": _schema("SendPart")},
                        "messages": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "msgid": {"type": "string"},
                                    "url": {"type": "string", "format": "uri"},
                                },
                                "required": ["msgid", "url"],
                            },
                        },
                    },
                    "required": ["send_id", "kind", "channelkey", "dry_run", "msgids", "parts"],
                },
                "SendError": {
                    "type": "object",
                    "description": "The error shape, with what is known of the send.",
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "The field at fault."},
                        "code": {"type": "integer", "description": "UMS's business code."},
                        "ums": {
                            "type": "object",
                            "properties": {
                                "code": _NULLABLE_INT,
                                "message": {"type": "string"},
                                "http_status": _NULLABLE_INT,
                            },
                        },
                        "sendno": _NULLABLE_STRING,
                        "sent": _schema("SendOutcome"),
                    },
                    "required": ["error", "message"],
                },
                "Status": {
                    "type": "string",
                    "description": (
                        "Status name of a UMS callback type, 0 to 8 in this order: "
                        + ", ".join(STATUSES)
                        + "."
                    ),
                    "enum": list(STATUSES),
                },
                "CallbackRecord": {
                    "type": "object",
                    "description": (
                        "One UMS status record. Fields that do not apply may be missing; "
                        "unknown fields are kept. A record that does not fit is quarantined "
                        "with the reason, not refused."
                    ),
                    "properties": {
                        "type": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 8,
                            "description": (
                                "0 target valid, 1 target invalid, 2 submitted, 3 submit "
                                "failed, 4 delivered, 5 delivery failed, 6 clicked, "
                                "7 withdrawn, 8 withdraw failed."
                            ),
                        },
                        "channelkey": {
                            "type": ["string", "null"],
                            "description": "Empty, or the authenticated channel's key.",
                        },
                        "msgid": {"type": "string", "minLength": 1},
                        "userid": {
                            "type": ["string", "null"],
                            "description": "UMS userid; empty for custom channel IDs.",
                        },
                        "sender_id": {
                            "type": ["string", "null"],
                            "description": "Channel registration ID (e.g. a phone number).",
                        },
                        "sender": {
                            "type": ["integer", "null"],
                            "description": (
                                "Channel: 0 UMS, 1 app, 2 WeChat OA, 3 WeChat mini-program, "
                                "4 email, 5 SMS, 6 DingTalk, 7 Alipay Life, 8-10 5G / WeCom; "
                                "unknown values are kept."
                            ),
                        },
                        "wechatwk_sender": {
                            "type": ["integer", "null"],
                            "description": "WeCom only: 0 internal API, 1 linked-corp API.",
                        },
                        "app_platform": {
                            "type": ["integer", "string", "null"],
                            "description": (
                                "App only: 0 android, 1 ios, 2 web, 3 quickapp, 4 hmos, or a name."
                            ),
                        },
                        "app_sender": {
                            "type": ["integer", "null"],
                            "description": (
                                "App only: vendor channel, 0 Jiguang, 1 Huawei, 2 OPPO, "
                                "3 vivo, 4 Xiaomi, 5 Meizu, 6 FCM, 8 APNs."
                            ),
                        },
                        "sent_time": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "description": "Unix time of the record, seconds or milliseconds.",
                        },
                        "error": {
                            "type": ["object", "null"],
                            "description": "Failure reason; types 1, 3, 5 and 8 only.",
                            "properties": {
                                "code": {
                                    "type": ["integer", "string", "null"],
                                    "description": "An integer (a string of digits is read).",
                                },
                                "message": {"type": ["string", "null"]},
                            },
                        },
                        "params": {
                            "type": ["object", "null"],
                            "description": "The sender's callback.params, passed back.",
                        },
                    },
                    "required": ["type", "msgid"],
                    "additionalProperties": True,
                },
                "BatchResult": {
                    "type": "object",
                    "description": "What became of one posted batch.",
                    "properties": {
                        "received": {"type": "integer", "minimum": 0},
                        "stored": {"type": "integer", "minimum": 0},
                        "duplicates": {"type": "integer", "minimum": 0},
                        "quarantined": {"type": "integer", "minimum": 0},
                    },
                    "required": ["received", "stored", "duplicates", "quarantined"],
                },
                "StatusCounts": {
                    "type": "object",
                    "description": "A count for each of the nine status names.",
                    "properties": {s: {"type": "integer", "minimum": 0} for s in STATUSES},
                    "required": list(STATUSES),
                    "additionalProperties": False,
                },
                "MessageSummary": {
                    "type": "object",
                    "properties": {
                        "msgid": {"type": "string"},
                        "provider": {"type": "string", "description": "ums or rongcloud."},
                        "channelkey": _NULLABLE_STRING,
                        "sendno": _NULLABLE_STRING,
                        "params": _PARAMS,
                        "created_at": {
                            **_TIME,
                            "description": "When this service first knew of the message.",
                        },
                        "sent_at": {
                            **_NULLABLE_TIME,
                            "description": "When this service sent it; null if it did not.",
                        },
                        "send": {
                            "type": ["object", "null"],
                            "description": (
                                "The provider's answer to the send; null if this service "
                                "did not send it. code is null when no answer came (the "
                                "message says why: never sent, or outcome unknown)."
                            ),
                            "properties": {
                                "code": _NULLABLE_INT,
                                "message": _NULLABLE_STRING,
                            },
                            "required": ["code", "message"],
                        },
                        "send_id": {
                            **_NULLABLE_STRING,
                            "description": (
                                "The send this message is a part of (callback param "
                                "umstrack_send); a send over 1000 recipients, or with "
                                "personalised contents, has several parts."
                            ),
                        },
                        "part": {
                            **_NULLABLE_INT,
                            "description": "The part's number within its send, from 0.",
                        },
                        "counts": {
                            **_schema("StatusCounts"),
                            "description": "Events per status name.",
                        },
                        "targets": {
                            "type": "object",
                            "description": "Targets and their current statuses.",
                            "properties": {
                                "total": {"type": "integer", "minimum": 0},
                                "by_status": _schema("StatusCounts"),
                            },
                            "required": ["total", "by_status"],
                        },
                        "first_event_at": _NULLABLE_TIME,
                        "last_event_at": _NULLABLE_TIME,
                    },
                    "required": [
                        "msgid",
                        "provider",
                        "channelkey",
                        "sendno",
                        "params",
                        "created_at",
                        "sent_at",
                        "send",
                        "send_id",
                        "part",
                        "counts",
                        "targets",
                        "first_event_at",
                        "last_event_at",
                    ],
                },
                "Event": {
                    "type": "object",
                    "description": "One stored callback record.",
                    "properties": {
                        "type": {"type": "integer", "minimum": 0, "maximum": 8},
                        "status": _schema("Status"),
                        "userid": _NULLABLE_STRING,
                        "sender_id": _NULLABLE_STRING,
                        "sender": _NULLABLE_INT,
                        "channel": {
                            **_NULLABLE_STRING,
                            "description": (
                                "Channel name of sender: ums, app, wechatoa, wechatmp, email, "
                                "sms, dingtalk_cc, alipay_life, 5g, wechatwk, or unknown:<n>."
                            ),
                        },
                        "app_platform": {
                            **_NULLABLE_STRING,
                            "description": (
                                "android, ios, web, quickapp, hmos, or the value UMS gave."
                            ),
                        },
                        "app_vendor": {
                            **_NULLABLE_STRING,
                            "description": (
                                "Name of app_sender: jiguang, huawei, oppo, vivo, xiaomi, "
                                "meizu, fcm, apns, or unknown:<n>."
                            ),
                        },
                        "occurred_at": {
                            **_TIME,
                            "description": "From sent_time; the arrival time if UMS gave none.",
                        },
                        "received_at": _TIME,
                        "error": {
                            "type": ["object", "null"],
                            "properties": {
                                "code": _NULLABLE_INT,
                                "message": _NULLABLE_STRING,
                            },
                            "required": ["code", "message"],
                        },
                        "params": _PARAMS,
                    },
                    "required": [
                        "type",
                        "status",
                        "userid",
                        "sender_id",
                        "sender",
                        "channel",
                        "app_platform",
                        "app_vendor",
                        "occurred_at",
                        "received_at",
                        "error",
                        "params",
                    ],
                },
                "Target": {
                    "type": "object",
                    "description": (
                        "One recipient of one message on one channel, and its status. A "
                        "recipient's records from UMS itself (sender 0: validation) count "
                        "as a target of their own only until a channel reports on them."
                    ),
                    "properties": {
                        "recipient": {
                            "type": "string",
                            "description": "userid when UMS gives one, else sender_id.",
                        },
                        "userid": _NULLABLE_STRING,
                        "sender_id": _NULLABLE_STRING,
                        "sender": {
                            **_NULLABLE_INT,
                            "description": "null when the records name no sender.",
                        },
                        "channel": _NULLABLE_STRING,
                        "status": {
                            **_schema("Status"),
                            "description": "Current status: by stage, never by arrival order.",
                        },
                        "reached_at": {
                            **_TIME,
                            "description": "When the current status was first reached.",
                        },
                        "event_count": {"type": "integer", "minimum": 0},
                    },
                    "required": [
                        "recipient",
                        "userid",
                        "sender_id",
                        "sender",
                        "channel",
                        "status",
                        "reached_at",
                        "event_count",
                    ],
                },
                "TimelinePage": {
                    "type": "object",
                    "properties": {
                        "msgid": {"type": "string"},
                        "events": {"type": "array", "items": _schema("Event")},
                        "next_cursor": _NULLABLE_STRING,
                    },
                    "required": ["msgid", "events", "next_cursor"],
                },
                "TargetPage": {
                    "type": "object",
                    "properties": {
                        "msgid": {"type": "string"},
                        "targets": {"type": "array", "items": _schema("Target")},
                        "next_cursor": _NULLABLE_STRING,
                    },
                    "required": ["msgid", "targets", "next_cursor"],
                },
                "MessagePage": {
                    "type": "object",
                    "properties": {
                        "messages": {"type": "array", "items": _schema("MessageSummary")},
                        "next_cursor": _NULLABLE_STRING,
                    },
                    "required": ["messages", "next_cursor"],
                },
            },
        },
    }
