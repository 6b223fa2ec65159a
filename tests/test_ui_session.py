"""Without SECRET_KEY, one ``umstrack serve`` gives all its workers one session key, so
a web UI sign-in holds whichever worker answers (real gunicorn, several workers)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from receiver.local import running_server
from tests.helpers import API_TOKEN, CHANNELS_ENV

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_sign_in_holds_on_every_worker_without_secret_key(database_url, tmp_path: Path):
    env = {
        **CHANNELS_ENV,
        "DATABASE_URL": database_url,
        "API_TOKENS": API_TOKEN,
        "SECRET_KEY": "",
        "WEB_CONCURRENCY": "3",
    }
    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server(env, output=log) as url,
        requests.Session() as browser,
    ):
        form = browser.get(f"{url}/ui/sign-in", timeout=10).text
        [token] = CSRF.findall(form)
        signed = browser.post(
            f"{url}/ui/sign-in",
            data={"csrf_token": token, "token": API_TOKEN},
            allow_redirects=False,
            timeout=10,
        )
        assert signed.status_code in (302, 303), signed.text[:500]
        # A new connection each time: the requests spread over the workers.
        for _ in range(30):
            page = browser.get(
                f"{url}/ui/", headers={"Connection": "close"}, allow_redirects=False, timeout=10
            )
            assert page.status_code == 200, page.headers.get("Location")
    log_text = (tmp_path / "serve.log").read_text()
    assert "SECRET_KEY is not set" in log_text
    assert "key of this process" not in log_text  # no worker made a key of its own
