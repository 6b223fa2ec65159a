"""One JSON log line per request, with its X-Request-ID (taken when sane, else made, and
echoed); no secret, token, query string or personal data in any line."""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import pytest
import requests

from receiver.local import running_server
from receiver.logs import JsonFormatter
from tests.helpers import (
    API_TOKEN,
    CHANNEL,
    SECRET,
    api_get,
    basic_auth,
    bearer,
    nine_type_batch,
    post,
)
from tests.test_ui import sign_in

GENERATED = re.compile(r"[0-9a-f]{32}")


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The request lines logged so far, as the JSON a server writes."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "umstrack.request"]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def test_a_sane_request_id_is_kept_echoed_and_logged(client, caplog):
    given = "req-42.a:B_c-" + "x" * 100
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given
    [line] = request_lines(caplog)
    assert line["request_id"] == given


@pytest.mark.parametrize(
    "given",
    ["x" * 129, "two words", "semi;colon", "naïve", "<script>", '{"level":"error"}', ""],
    ids=["too-long", "space", "semicolon", "non-ascii", "markup", "json", "empty"],
)
def test_an_odd_request_id_is_replaced_by_a_new_one(client, caplog, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    made = response.headers["X-Request-ID"]
    assert GENERATED.fullmatch(made) and made != given
    [line] = request_lines(caplog)
    assert line["request_id"] == made


def test_without_a_request_id_each_request_gets_its_own(client, caplog):
    made = [client.get("/healthz").headers["X-Request-ID"] for _ in range(3)]
    assert all(GENERATED.fullmatch(m) for m in made) and len(set(made)) == 3
    assert [line["request_id"] for line in request_lines(caplog)] == made


def test_a_callback_line_has_its_channel_counts_and_timing(client, caplog):
    batch = nine_type_batch(9) + [{"type": 1}]  # no msgid: quarantined
    response = post(client, batch, headers={**basic_auth(), "X-Request-ID": "cb-1"})
    assert response.status_code == 200
    [line] = request_lines(caplog)
    assert line | {"ts": "-", "duration_ms": 0, "remote": "-", "pid": 0} == {
        "ts": "-",
        "level": "info",
        "logger": "umstrack.request",
        "request_id": "cb-1",
        "message": "POST /callbacks/ums 200",
        "method": "POST",
        "route": "/callbacks/ums",
        "path": "/callbacks/ums",
        "status": 200,
        "duration_ms": 0,
        "remote": "-",
        "pid": 0,
        "channelkey": CHANNEL,
        "received": 10,
        "stored": 9,
        "duplicates": 0,
        "quarantined": 1,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"])
    assert line["duration_ms"] > 0 and line["remote"] == "127.0.0.1"


def test_a_refused_request_is_logged_without_its_credentials(client, caplog):
    assert post(client, [], headers=basic_auth(CHANNEL, "not-the-secret")).status_code == 401
    [line] = request_lines(caplog)
    assert (line["status"], line["route"]) == (401, "/callbacks/ums")
    assert "channelkey" not in line  # not authenticated: nothing known of the sender
    assert "not-the-secret" not in json.dumps(line)


def test_the_path_is_logged_without_query_and_with_personal_data_masked(client, caplog):
    phone = "13800138000"
    api_get(client, f"/api/recipients/{phone}/events", limit=5, token="query-secret-token")
    [line] = request_lines(caplog)
    assert line["route"] == "/api/recipients/<recipient>/events"
    assert line["path"] == "/api/recipients/138***/events"
    text = JsonFormatter().format(caplog.records[-1])
    assert phone not in text and "query-secret-token" not in text and "limit" not in text


@pytest.mark.parametrize("served", ["api", "ui"])
def test_an_unhandled_error_is_logged_by_route_not_by_path(app, caplog, served):
    phone = "13800138000"
    target = app if served == "api" else app.extensions["umstrack.ui"]
    prefix = "" if served == "api" else "/ui"

    def broken(recipient: str) -> str:
        raise RuntimeError("a bug")

    target.add_url_rule(f"{prefix}/broken/<recipient>", "broken", broken)
    client = app.test_client()
    if served == "ui":
        assert sign_in(client).status_code == 302
    caplog.clear()
    response = client.get(f"{prefix}/broken/{phone}")
    assert response.status_code == 500
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == f"Exception on {prefix}/broken/<recipient> [GET]"
    assert error.exc_info is not None
    assert all(phone not in JsonFormatter().format(r) for r in caplog.records)


def test_unmatched_paths_share_one_route(client, caplog):
    client.get("/wp-admin/setup.php")
    [line] = request_lines(caplog)
    assert (line["route"], line["status"], line["path"]) == (
        "unmatched",
        404,
        "/wp-admin/setup.php",
    )


def test_the_web_ui_requests_are_logged_too(client, caplog):
    response = client.get("/ui/sign-in", headers={"X-Request-ID": "ui-1"})
    assert response.headers["X-Request-ID"] == "ui-1"
    [line] = request_lines(caplog)
    assert (line["route"], line["request_id"]) == ("/ui/sign-in", "ui-1")


def test_a_real_server_logs_one_json_line_per_request_and_no_secret(database_url, tmp_path):
    metrics_token, secret_key = "metrics-secret-token-42", "session-secret-key-42"
    env = {
        "DATABASE_URL": database_url,
        "UMS_CHANNELS": f"{CHANNEL}:{SECRET}",
        "API_TOKENS": API_TOKEN,
        "METRICS_TOKEN": metrics_token,
        "SECRET_KEY": secret_key,
        "WEB_CONCURRENCY": "2",
    }
    log_path = tmp_path / "serve.log"
    sent: list[str] = []
    with (
        open(log_path, "w") as log,
        running_server(env, output=log) as url,
        requests.Session() as http,
    ):

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            rid = f"t-{len(sent)}"
            sent.append(rid)
            headers = {**kwargs.pop("headers", {}), "X-Request-ID": rid}
            response = http.request(method, url + path, headers=headers, timeout=(2, 30), **kwargs)
            assert response.headers["X-Request-ID"] == rid
            return response

        batch = [*nine_type_batch(9), {"type": 1}]  # no msgid: quarantined, with a warning
        assert call("POST", "/callbacks/ums", json=batch, headers=basic_auth()).ok
        call("POST", "/callbacks/ums", json=[], headers=basic_auth(CHANNEL, "wrong-secret-99"))
        call("GET", "/callbacks/ums?echostr=echo-secret-77", headers=basic_auth())
        call("GET", "/api/messages?token=query-token-55", headers=bearer())
        call("GET", "/metrics", headers=bearer(metrics_token))
        call("POST", "/ui/sign-in", data={"token": API_TOKEN, "password": "form-password-33"})
    output = log_path.read_text()

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests_logged = [  # but the health checks of running_server's start
        line
        for line in lines
        if line["logger"] == "umstrack.request" and line["route"] != "/healthz"
    ]
    assert [line["request_id"] for line in requests_logged] == sent  # one each, in order
    # A line logged while answering a request carries the request's id.
    [warning] = [
        line for line in lines if line["level"] == "warning" and "quarantined" in line["message"]
    ]
    assert warning["request_id"] == sent[0]
    basic = base64.b64encode(f"{CHANNEL}:{SECRET}".encode()).decode()
    for secret in (
        SECRET,
        basic,
        "wrong-secret-99",
        API_TOKEN,
        metrics_token,
        secret_key,
        "query-token-55",
        "echo-secret-77",
        "form-password-33",
        "Authorization",
    ):
        assert secret not in output, secret
