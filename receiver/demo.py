"""``umstrack demo``: the whole loop on one machine, for a newcomer.

Starts the receiver (gunicorn, SQLite) and the UMS emulator on free ports of 127.0.0.1,
sends sample messages through the real sender (one per channel kind, one personalised,
one big enough to be split), waits for the status callbacks and reports each message's
target statuses, the URL of its timeline and its page in the web UI. The read API (and
the UI's sign-in) takes a token made for the run. A stop asked for at any step (the
``stop`` event) ends the demo within seconds, with both servers stopped.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from receiver.config import Settings, normalize_database_url
from receiver.db import make_engine, migrate
from receiver.local import Stopped, running_server
from sender.emulator import Emulator, EmulatorConfig
from sender.ums.protocol import STATUSES

from .sending.outcome import UmsOutcome, summary_path
from .sending.request import parse_request
from .sending.ums import UmsSender

log = logging.getLogger(__name__)

CHANNEL = "demochannel0000000000000a"
SECRET = "demosecret0000000000000000"
DEFAULT_DATABASE = "umstrack-demo.db"
DEFAULT_SEED = 7
TIMEOUT = (2.0, 10.0)
CALLBACK_WAIT_SECONDS = 60


def samples() -> Iterator[tuple[str, dict[str, Any]]]:
    """(title, send request body) of each sample send."""
    yield (
        "app push",
        {
            "aud_userid": ["alice", "bob", "carol"],
            "msg_app": [{"platform": "all", "notification": {"alert": "Your order has shipped"}}],
            "option": {"sendno": "demo-app"},
            "callback": {"params": {"order_id": "1001"}},
        },
    )
    yield (
        "sms to phone numbers",
        {
            "aud_sms": [{"data": ["13800000001", "13800000002"]}],
            "msg_sms": [{"sign_id": "1", "temp_id": 1, "temp_para": {"code": "4711"}}],
            "option": {"sendno": "demo-sms"},
        },
    )
    yield (
        "email",
        {
            "aud_email": [{"data": ["alice@example.com", "bob@example.com"]}],
            "msg_email": [{"subject": "Your receipt", "text": "Thank you for your order."}],
        },
    )
    yield (
        "wechat official account",
        {
            "aud_userid": ["alice", "dave"],
            "msg_wechatoa": [
                {
                    "type": 0,
                    "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
                    "data": {"first": {"value": "Order shipped"}, "remark": {"value": "Thanks!"}},
                }
            ],
        },
    )
    yield (
        "dingtalk",
        {
            "aud_dingtalk_cc": [{"data": ["manager1", "manager2"]}],
            "msg_dingtalk_cc": [{"msg": {"msgtype": "text", "text": {"content": "Stock low"}}}],
        },
    )
    yield (
        "wecom",
        {
            "aud_wechatwk": [{"data": ["zhangsan", "lisi"]}],
            "msg_wechatwk": [{"msgtype": "text", "text": {"content": "Parcel at the front desk"}}],
        },
    )
    yield (
        "tag broadcast-style",
        {
            "aud_tag": ["vip"],
            "msg_sms": [{"content": "VIP sale starts tomorrow"}],
        },
    )
    yield (
        "personalised (one content per recipient)",
        {
            "msg_sms": [{"temp_id": 2, "temp_para": {"name": "{name}", "points": "{points}"}}],
            "recipients": [
                {"to": {"aud_userid": "tom"}, "values": {"name": "Tom", "points": 2}},
                {"to": {"aud_userid": "jerry"}, "values": {"name": "Jerry", "points": 5}},
                {"to": {"aud_userid": "rose"}, "values": {"name": "Rose", "points": 10}},
            ],
        },
    )
    yield (
        "2,500 users (split into 3 requests)",
        {
            "aud_userid": [f"member{i:04d}" for i in range(2500)],
            "msg_email": [{"subject": "Newsletter", "text": "News of the month."}],
            "option": {"sendno": "demo-newsletter"},
        },
    )


@dataclass(frozen=True)
class Demo:
    """A demo under way: where the receiver and the emulator serve, the read API's token,
    the database, what the sends came to."""

    receiver: str  # base URL
    emulator: str  # base URL
    token: str  # bearer token of the read API, made for this run
    database_url: str
    report: str  # each sample's messages: summary counts, timeline URL, UI page

    def hint(self) -> str:
        """What to try while the demo serves on."""
        return (
            f"\nServing on {self.receiver}, the UMS emulator on {self.emulator} "
            "(127.0.0.1 only; Ctrl-C stops). Try:\n"
            f"  open {self.receiver}/ui/ in a browser and sign in with the token {self.token}\n"
            f"  curl -H 'Authorization: Bearer {self.token}' {self.receiver}/api/messages\n"
            f"  curl {self.emulator}/_emulator/state\n"
            f"  DATABASE_URL={self.database_url} umstrack status <msgid>"
        )


@contextmanager
def running_demo(
    *,
    database_url: str | None = None,
    seed: int = DEFAULT_SEED,
    stop: threading.Event | None = None,
) -> Iterator[Demo]:
    """Start the receiver and the emulator, send the samples and wait for their
    callbacks; both serve on until the ``with`` block ends. ``stop`` set before that
    raises :class:`receiver.local.Stopped`, after stopping both."""
    stop = stop or threading.Event()
    database_url = _fresh_database(database_url)
    token = secrets.token_urlsafe(16)
    channels = {CHANNEL: SECRET}
    config = EmulatorConfig(channels=channels, flush_interval=0.5, retry_interval=2.0, seed=seed)
    with ExitStack() as stack:
        env = {
            "DATABASE_URL": database_url,
            "UMS_CHANNELS": f"{CHANNEL}:{SECRET}",
            "API_TOKENS": token,
            # Two workers: the UI's session key must be the same in both.
            "SECRET_KEY": secrets.token_urlsafe(32),
            "WEB_CONCURRENCY": "2",
            "GUNICORN_ACCESSLOG": "",
        }
        log.info("starting the receiver and the UMS emulator (database %s)", database_url)
        receiver = stack.enter_context(running_server(env, stop=stop))
        # Entered after the receiver, so stopped before it: no callback goes to a
        # receiver on its way out.
        emulator = stack.enter_context(Emulator(config))
        log.info("receiver %s, UMS emulator %s", receiver, emulator.url)
        engine = make_engine(Settings(database_url=database_url))
        stack.callback(engine.dispose)
        sender = UmsSender(
            engine=engine,
            channels=channels,
            api_base=emulator.url,
            callback_url=f"{receiver}/callbacks/ums",
        )
        sent = []
        for title, body in samples():
            _go_on_unless(stop)
            sent.append((title, sender.send(parse_request(body))))
        _wait_for_callbacks(emulator, stop)
        _go_on_unless(stop)
        report = _report(receiver, token, sent)
        yield Demo(receiver, emulator.url, token, database_url, report)


def _go_on_unless(stop: threading.Event) -> None:
    """Raise Stopped when a stop was asked for: the demo's steps look between them."""
    if stop.is_set():
        raise Stopped("the demo was stopped")


def _wait_for_callbacks(emulator: Emulator, stop: threading.Event) -> None:
    """Wait until the emulator has delivered everything, a stop or the time limit."""
    deadline = time.monotonic() + CALLBACK_WAIT_SECONDS
    # Short waits: a stop is seen within a quarter of a second.
    while not emulator.wait_idle(0.25):
        _go_on_unless(stop)
        if time.monotonic() >= deadline:
            log.warning("not every callback was delivered within %d s", CALLBACK_WAIT_SECONDS)
            return


def _fresh_database(url: str | None) -> str:
    """The demo's database, migrated; the default SQLite file starts empty each run."""
    if url is None:
        path = Path.cwd() / DEFAULT_DATABASE
        for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            stale.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    url = normalize_database_url(url)
    migrate(url)
    return url


def _report(receiver: str, token: str, sent: list[tuple[str, UmsOutcome]]) -> str:
    """Each sample's messages: summary counts, the timeline URL and the UI page."""
    lines = []
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        for title, outcome in sent:
            lines.append(f"\n{title} (send {outcome.send_id}, {len(outcome.msgids)} message(s))")
            for msgid in outcome.msgids:
                url = receiver + summary_path(msgid)
                summary = http.get(url, timeout=TIMEOUT).json()
                targets = summary["targets"]["by_status"]
                now = ", ".join(f"{targets[s]} {s}" for s in STATUSES if targets[s])
                events = sum(summary["counts"].values())
                total = summary["targets"]["total"]
                lines.append(f"  {msgid}: {total} target(s) ({now}), {events} events")
                lines.append(f"    timeline: {url}/timeline")
                # The UI's message page sits where the API's summary does, under /ui.
                lines.append(f"    page: {receiver}/ui{summary_path(msgid).removeprefix('/api')}")
    return "\n".join(lines)
