"""Safe defaults of the web app: security headers on every answer, X-Forwarded-* believed
from the proxies in FORWARDED_ALLOW_IPS only (in the app and under gunicorn), and the
addresses the commands bind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from receiver import create_app
from receiver.config import ConfigError, Settings
from receiver.local import free_port, running_server, stop_server, wait_until_healthy
from receiver.web.security import API_HEADERS, TrustedProxies
from tests.fake_ums import FakeUms
from tests.helpers import CHANNEL, CHANNELS_ENV, SECRET, basic_auth, bearer


def _rules() -> list[tuple[str, str]]:
    """(app, path) of every route the API app and the UI app serve, placeholders filled."""
    app = create_app({"DATABASE_URL": "sqlite://", **CHANNELS_ENV})
    ui = app.extensions["umstrack.ui"]
    found = {("api", rule.rule) for rule in app.url_map.iter_rules()}
    found |= {("ui", rule.rule) for rule in ui.url_map.iter_rules()}
    app.extensions["umstrack.engine"].dispose()
    return sorted((kind, re.sub(r"<(?:[^:>]+:)?[^>]+>", "x", rule)) for kind, rule in found)


@pytest.mark.parametrize(("kind", "path"), _rules())
def test_every_route_answers_with_security_headers(client, kind, path):
    response = client.get(path)  # no credentials: 401s, 405s and redirects included
    response.close()
    assert response.headers["X-Content-Type-Options"] == "nosniff", response.status
    if kind == "api":
        for name, value in API_HEADERS.items():
            assert response.headers[name] == value, (name, response.status)
    elif "/static/" not in path:  # the UI's pages: its own set, never cached
        assert response.headers["Cache-Control"] == "no-store"


def test_ui_static_files_keep_their_caching(client):
    response = client.get("/ui/static/ui.css")
    response.close()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] != "no-store" and response.headers["ETag"]


def test_echostr_answer_is_not_sniffed_or_cached(client):
    response = client.get(
        "/callbacks/ums", query_string={"echostr": "<script>x</script>"}, headers=basic_auth()
    )
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


# --- proxies ------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "track.example.com"}
MESSAGE = {
    "aud_userid": ["user1"],
    "msg_sms": [{"temp_id": 1, "temp_para": {"code": "1234"}}],
    "option": {"sendno": "proxy"},
}


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as fake:
        yield fake


def _summary_url(env: dict[str, str], remote: str) -> str:
    app = create_app(env)
    try:
        response = app.test_client().post(
            "/api/messages",
            json=MESSAGE,
            headers={**bearer(), **FORWARDED},
            environ_base={"REMOTE_ADDR": remote},
        )
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert response.status_code == 201, response.json
    url: str = response.json["messages"][0]["url"]
    return url


def test_forwarded_headers_are_ignored_by_default(env, fake):
    env = {**env, "UMS_API_BASE": fake.url}
    assert _summary_url(env, "10.1.2.3").startswith("http://localhost/api/messages/")
    assert _summary_url(env, "127.0.0.1").startswith("http://localhost/api/messages/")


def test_forwarded_headers_are_believed_from_an_allowed_proxy(env, fake):
    env = {**env, "UMS_API_BASE": fake.url, "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.0.2.7"}
    assert _summary_url(env, "10.1.2.3").startswith("https://track.example.com/api/messages/")
    assert _summary_url(env, "192.0.2.7").startswith("https://track.example.com/api/messages/")
    assert _summary_url(env, "192.0.2.8").startswith("http://localhost/api/messages/")


def test_a_star_believes_every_proxy(env, fake):
    env = {**env, "UMS_API_BASE": fake.url, "FORWARDED_ALLOW_IPS": "*"}
    assert _summary_url(env, "203.0.113.9").startswith("https://track.example.com/")


def test_the_ui_cookie_is_secure_behind_an_allowed_https_proxy(env):
    for allowed, secure in (("", False), ("10.0.0.1", True)):
        app = create_app({**env, "FORWARDED_ALLOW_IPS": allowed})
        response = app.test_client().get(
            "/ui/sign-in", headers=FORWARDED, environ_base={"REMOTE_ADDR": "10.0.0.1"}
        )
        app.extensions["umstrack.engine"].dispose()
        assert ("Secure" in response.headers["Set-Cookie"]) is secure


def test_a_malformed_allowed_address_is_a_configuration_error():
    with pytest.raises(ConfigError, match=r"FORWARDED_ALLOW_IPS: '10\.0\.0\.300'"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.300"})


def test_trusted_proxies_match_addresses_and_networks():
    proxies = TrustedProxies(lambda e, s: [], ("10.0.0.0/8", "::1"))
    assert proxies.trusts("10.200.0.1") and proxies.trusts("::1")
    assert not proxies.trusts("11.0.0.1") and not proxies.trusts(None)
    assert not proxies.trusts("not-an-address")
    assert not TrustedProxies(lambda e, s: [], ()).trusts("127.0.0.1")


@pytest.mark.parametrize(("allowed", "secure"), [(None, False), ("127.0.0.1", True)])
def test_gunicorn_believes_only_the_allowed_proxies(tmp_path, allowed, secure):
    # Gunicorn by itself believes X-Forwarded-Proto from 127.0.0.1: served here, it
    # believes nobody, and the app believes those in FORWARDED_ALLOW_IPS.
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/proxy.db", "WEB_CONCURRENCY": "1"}
    if allowed:
        env["FORWARDED_ALLOW_IPS"] = allowed
    saved = os.environ.pop("FORWARDED_ALLOW_IPS", None)
    try:
        with running_server(env) as url:
            response = requests.get(f"{url}/ui/sign-in", headers=FORWARDED, timeout=(2, 10))
    finally:
        if saved is not None:
            os.environ["FORWARDED_ALLOW_IPS"] = saved
    assert response.status_code == 200
    assert ("Secure" in response.headers["Set-Cookie"]) is secure


# --- the addresses bound -------------------------------------------------------------


def _gunicorn_bind(env: dict[str, str]) -> str:
    code = "import receiver.gunicorn_config as c; print(c.bind, repr(c.forwarded_allow_ips))"
    base = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def test_the_platform_web_process_binds_every_interface_unless_host_says():
    assert _gunicorn_bind({"PORT": "5000"}) == "0.0.0.0:5000 ''"
    assert _gunicorn_bind({"PORT": "5000", "HOST": "10.0.0.2"}) == "10.0.0.2:5000 ''"
    assert _gunicorn_bind({"PORT": "5000", "HOST": "::"}) == "[::]:5000 ''"


@pytest.mark.parametrize(
    ("host", "shown"),
    [(None, "http://127.0.0.1:{port}"), ("0.0.0.0", "(listening on every interface)")],
)
def test_serve_binds_loopback_unless_host_says(tmp_path, host, shown):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOST"}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/host.db", "WEB_CONCURRENCY": "1"}
    if host:
        env["HOST"] = host
    with open(tmp_path / "serve.log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "receiver.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_healthy(port, process)
            # gunicorn (serve exec'd it) and so the app see the address chosen.
            with open(f"/proc/{process.pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
            assert f"HOST={host or '127.0.0.1'}".encode() in variables
            ready = ""
            while "umstrack: ready on" not in ready:  # said once the first worker answers
                log.seek(0)
                ready = log.read()
        finally:
            stop_server(process, quick=True)
    [line] = [line for line in ready.splitlines() if "umstrack: ready on" in line]
    assert line.endswith(shown.format(port=port)), line
