"""The served OpenAPI document: valid OpenAPI 3.1, in step with the routes and the answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import version
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from werkzeug.test import TestResponse

from receiver import create_app
from tests.helpers import MSGID, basic_auth, nine_type_batch, post, record

TOKEN = "t1"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _date_time(value: object) -> bool:
    # Stricter than ISO 8601: the contract promises a UTC offset on every timestamp.
    if not isinstance(value, str):
        return True  # a format only speaks of strings; null is the type's business
    if "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(_date_time)


@pytest.fixture
def api_app(env: dict[str, str]) -> Iterator[Flask]:
    """The app with a read API token configured."""
    app = create_app({**env, "API_TOKENS": TOKEN})
    yield app
    app.extensions["umstrack.engine"].dispose()


def _served(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")  # no credentials: the document is public
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.json
    return doc


def _closed(node: Any) -> Any:
    """A copy of the document in which every object schema that says nothing about other
    properties allows none: an answer carrying an undocumented field then fails."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        closed["additionalProperties"] = False
    return closed


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``#/...`` reference (responses, parameters) within the document."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _check(doc: dict[str, Any], response: TestResponse, path: str, method: str = "get") -> None:
    """Assert that the document describes this answer: its status, media type and body."""
    responses = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, method, response.status_code)
    described = _resolve(doc, responses[str(response.status_code)])
    assert response.mimetype in described["content"], (path, response.mimetype)
    schema = described["content"][response.mimetype]["schema"]
    if response.mimetype == "application/json":
        _validate(doc, schema, response.json)
    for header, declared in described.get("headers", {}).items():
        if _resolve(doc, declared).get("required"):
            assert header in response.headers, (path, response.status_code, header)


def _validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    root = {**schema, "components": doc["components"]}
    Draft202012Validator(root, format_checker=FORMATS).validate(instance)


def _component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_served_document_is_valid_openapi_3_1(client):
    doc = _served(client)
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["info"]["title"] == "umstrack"
    assert doc["info"]["version"] == version("umstrack")


def test_document_lists_exactly_the_routes_the_app_serves(app, client):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    doc = _served(client)
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_document_declares_the_security_of_each_operation(client):
    doc = _served(client)
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS & set(item):
            security = item[method]["security"]
            if path.startswith("/callbacks/"):
                assert security == [{"umsChannel": []}], (path, method)
            elif path.startswith("/api/"):
                assert security == [{"bearerToken": []}], (path, method)
                assert "401" in item[method]["responses"], (path, method)
            elif path == "/metrics":
                assert security == [{"metricsToken": []}], (path, method)
            else:
                assert security == [], (path, method)


def _batch() -> list[dict[str, Any]]:
    """Records that reach every nullable branch of the answers."""
    no_sender = record(0, userid="nosender")
    del no_sender["sender"]
    return [
        *nine_type_batch(30),
        record(5, userid="u-app", sender=1),  # app platform and vendor, an error
        record(4, userid="", sender=5),  # no userid: the target is the sender_id
        record(8, userid="u-nocode", error={"message": "no code given"}),
        record(2, userid="u-notime", sent_time=None),
        no_sender,
        record(4, msgid="v:1t:2p:1n:1", userid="other", params={"order_id": "456"}),
    ]


def test_answers_match_the_documented_schemas(api_app):
    client = api_app.test_client()
    doc = _closed(_served(client))

    batch = _batch()
    request_schema = doc["paths"]["/callbacks/ums"]["post"]["requestBody"]["content"]
    _validate(doc, request_schema["application/json"]["schema"], batch)
    _validate(doc, request_schema["application/json"]["schema"], batch[0])
    response = post(client, batch)
    assert response.status_code == 200 and response.json["stored"] == len(batch)
    _check(doc, response, "/callbacks/ums", "post")

    message = f"/api/messages/{MSGID}"
    response = client.get(message, headers=BEARER)
    assert response.status_code == 200 and response.json["msgid"] == MSGID
    _check(doc, response, "/api/messages/{msgid}")

    cursor = None
    pages = 0
    while True:
        query = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{message}/timeline", headers=BEARER, query_string=query)
        assert response.status_code == 200 and response.json["events"]
        _check(doc, response, "/api/messages/{msgid}/timeline")
        pages += 1
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    assert pages > 1

    for query in ({"limit": 4}, {"status": "delivered"}):
        response = client.get(f"{message}/targets", headers=BEARER, query_string=query)
        assert response.status_code == 200 and response.json["targets"]
        _check(doc, response, "/api/messages/{msgid}/targets")

    for query in (
        {},
        {"limit": 1},
        {"status": "delivery_failed", "since": "2000-01-01T00:00:00", "param.order_id": "123"},
    ):
        response = client.get("/api/messages", headers=BEARER, query_string=query)
        assert response.status_code == 200 and response.json["messages"]
        _check(doc, response, "/api/messages")

    response = client.get("/healthz")
    assert response.status_code == 200
    _check(doc, response, "/healthz")

    response = client.get("/callbacks/ums", headers=basic_auth(), query_string={"echostr": "e"})
    assert response.status_code == 200
    _check(doc, response, "/callbacks/ums")


@pytest.mark.parametrize(
    ("path", "template", "query", "headers", "status"),
    [
        ("/api/messages/unknown", "/api/messages/{msgid}", {}, BEARER, 404),
        ("/api/messages/unknown/timeline", "/api/messages/{msgid}/timeline", {}, BEARER, 404),
        ("/api/messages/unknown/targets", "/api/messages/{msgid}/targets", {}, BEARER, 404),
        (f"/api/messages/{MSGID}", "/api/messages/{msgid}", {}, {}, 401),
        ("/api/messages", "/api/messages", {}, {"Authorization": "Bearer wrong"}, 401),
        ("/api/messages", "/api/messages", {"limit": "0"}, BEARER, 400),
        ("/api/messages", "/api/messages", {"status": "lost"}, BEARER, 400),
        ("/api/messages", "/api/messages", {"since": "yesterday"}, BEARER, 400),
        ("/api/messages/m/targets", "/api/messages/{msgid}/targets", {"cursor": "x"}, BEARER, 400),
        ("/callbacks/ums", "/callbacks/ums", {"echostr": "e"}, {}, 401),
        ("/callbacks/ums", "/callbacks/ums", {}, basic_auth(), 400),
    ],
)
def test_error_answers_match_the_document(api_app, path, template, query, headers, status):
    client = api_app.test_client()
    doc = _closed(_served(client))
    response = client.get(path, headers=headers, query_string=query)
    assert response.status_code == status
    _check(doc, response, template)
    _validate(doc, _component("Error"), response.json)
    if status == 400 and query:
        # A bad parameter's message names the parameter.
        assert response.json["message"].startswith(f"{next(iter(query))}:")


def test_refused_callback_bodies_match_the_document(api_app):
    client = api_app.test_client()
    doc = _closed(_served(client))
    for payload, headers, status in ((b"{not json", None, 400), ([record(4)], {}, 401)):
        response = post(client, payload, headers=headers)
        assert response.status_code == status
        _check(doc, response, "/callbacks/ums", "post")


def test_the_schema_check_catches_undocumented_fields_and_bad_times(client):
    # The answers' checks above must be able to fail.
    doc = _closed(_served(client))
    answer = {"msgid": "m", "events": [], "next_cursor": None}
    _validate(doc, _component("TimelinePage"), answer)
    with pytest.raises(ValidationError, match="Additional properties"):
        _validate(doc, _component("TimelinePage"), {**answer, "extra": 1})
    received_at = {"$ref": "#/components/schemas/Event/properties/received_at"}
    _validate(doc, received_at, "2024-01-01T00:00:00+00:00")
    with pytest.raises(ValidationError, match="is not a 'date-time'"):
        _validate(doc, received_at, "2024-01-01T00:00:00")  # no offset
