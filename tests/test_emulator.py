"""The UMS emulator: its API answers, callback verification and delivery, and the whole
loop (UmsClient -> emulator -> real receiver -> read API) over real loopback HTTP."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from receiver.config import Settings
from receiver.db import make_engine
from receiver.local import free_port, running_server, wait_until_healthy
from receiver.sending.ums import UmsSender, parse_request
from receiver.status import RANK_BY_TYPE
from sender.emulator import (
    MESSAGE_NOT_FOUND,
    Emulator,
    EmulatorConfig,
    add_arguments,
    config_from_args,
)
from sender.errors import InvalidMessageError, ProviderRefusedError
from sender.ums.client import UmsClient
from sender.ums.protocol import ALREADY_WITHDRAWN, AUTH_FAILED, STATUS_BY_TYPE
from sender.ums.rules import validate_message
from tests.helpers import CHANNEL, CHANNELS_ENV, OTHER_CHANNEL, OTHER_SECRET, SECRET, bearer

CHANNELS = {CHANNEL: SECRET, OTHER_CHANNEL: OTHER_SECRET}
MSGID_FORMAT = re.compile(r"v:1t:(\d+)p:\d+n:\d+")
HTTP_TIMEOUT = (2.0, 10.0)
APP = [{"platform": "all", "notification": {"alert": "Your order shipped"}}]
SMS = [{"sign_id": 1, "temp_id": 2, "temp_para": {"code": "1234"}}]
EMAIL = [{"subject": "Order 42", "text": "It shipped."}]
WECOM = [{"msgtype": "text", "text": {"content": "It shipped."}}]
# Record fields every record carries, and those that depend on the channel.
BASE_FIELDS = {"type", "channelkey", "msgid", "userid", "sender_id", "sender", "sent_time"}
APP_FIELDS = {"app_platform", "app_sender"}


def auth_header(channelkey: str = CHANNEL, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{channelkey}:{secret}".encode()).decode()


def config(**overrides: Any) -> EmulatorConfig:
    """Emulator settings for tests: UMS's rules with intervals cut to fractions of a second."""
    settings: dict[str, Any] = {
        "channels": CHANNELS,
        "flush_interval": 0.05,
        "retry_interval": 0.2,
        "seed": 20240601,
        "timeout": (1.0, 5.0),
    }
    return EmulatorConfig(**{**settings, **overrides})


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(config()) as em:
        yield em


# --------------------------------------------------------------------------- a callback receiver


@dataclass(frozen=True)
class Post:
    """One callback POST as it arrived."""

    at: float
    authorization: str | None
    content_type: str | None
    body: Any


class Callbacks:
    """A callback URL on loopback that records what arrives and answers as scripted."""

    def __init__(self, *, echo: bool = True, statuses: Sequence[int] = (), default: int = 200):
        self.echo = echo
        self.statuses = deque(statuses)  # answers to the first POSTs, then `default`
        self.default = default
        self.gets: list[tuple[float, str | None, dict[str, list[str]]]] = []
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/callbacks/ums"

    def __enter__(self) -> Callbacks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [record for post in self.posts for record in post.body]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                with owner._lock:
                    owner.gets.append((time.monotonic(), self.headers["Authorization"], query))
                echostr = query.get("echostr", [""])[0]
                self._reply(200, (echostr if owner.echo else "not-the-echostr").encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner._lock:
                    owner.posts.append(
                        Post(
                            time.monotonic(),
                            self.headers["Authorization"],
                            self.headers["Content-Type"],
                            body,
                        )
                    )
                    status = owner.statuses.popleft() if owner.statuses else owner.default
                self._reply(status, json.dumps({"received": len(body)}).encode())

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


# --------------------------------------------------------------------------- 1. business codes


def expect_code(
    call: Callable[..., Any], *args: Any, code: int, http: int = 400
) -> ProviderRefusedError:
    with pytest.raises(ProviderRefusedError) as caught:
        call(*args)
    assert (caught.value.code, caught.value.http_status) == (code, http), caught.value
    return caught.value


@pytest.mark.parametrize(
    ("endpoint", "message", "code"),
    [
        ("send", {"aud_userid": [f"u{i}" for i in range(1001)], "msg_sms": SMS}, 1015004),
        ("template_send", {"aud_userid": ["u1"], "template_id": 3, "msg_sms": SMS}, 1015094),
        (
            "send",
            {"aud_userid": ["u1"], "msg_sms": SMS, "option": {"black_id": 1, "white_id": 2}},
            1015097,
        ),
        ("send", {"aud_userid": ["u1"], "msg_sms": SMS, "option": {"priority": 9}}, 4004),
        ("send", {"aud_userid": ["u1"], "msg_app": [{"notification": {"alert": "x"}}]}, 1015084),
        ("broadcast", {"aud_userid": ["u1"], "msg_sms": SMS}, 4004),
    ],
)
def test_invalid_messages_get_the_code_ums_gives(
    emulator: Emulator, endpoint: str, message: dict[str, Any], code: int
) -> None:
    kind = {"send": "sent", "template_send": "template_sent", "broadcast": "broadcast"}[endpoint]
    with pytest.raises(InvalidMessageError) as rules:
        validate_message(message, kind=kind)
    assert rules.value.code == code  # the sender's own rules agree
    with UmsClient(CHANNEL, SECRET, emulator.url) as ums:
        error = expect_code(getattr(ums, endpoint), message, code=code)
    assert rules.value.field in error.message
    assert emulator.state()["messages"] == {}


def test_auth_withdraw_and_success_answers(emulator: Emulator) -> None:
    message = {"aud_userid": ["u1"], "msg_sms": SMS, "option": {"sendno": "order-42"}}
    with UmsClient(CHANNEL, "wrong-secret", emulator.url) as bad:
        expect_code(bad.send, message, code=AUTH_FAILED, http=401)
        expect_code(bad.retract, "v:1t:1p:1n:1", code=AUTH_FAILED, http=401)
    with UmsClient("unknownchannel", SECRET, emulator.url) as unknown:
        expect_code(unknown.send, message, code=AUTH_FAILED, http=401)

    with (
        UmsClient(CHANNEL, SECRET, emulator.url) as ums,
        UmsClient(OTHER_CHANNEL, OTHER_SECRET, emulator.url) as other,
    ):
        sent = ums.send(message)
        match = MSGID_FORMAT.fullmatch(sent.msgid)
        assert match and abs(int(match[1]) - time.time()) < 5
        assert (sent.code, sent.message, sent.sendno) == (0, "success", "order-42")
        assert ums.broadcast({"msg_sms": SMS}).msgid != sent.msgid
        assert ums.template_broadcast({"template_id": 3}).msgid
        assert ums.template_send({"aud_tag": ["vip"], "template_id": 3}).msgid

        # Unknown msgid: 4004 (UMS documents no "message not found" code). A message of
        # another channel is unknown to this one too.
        expect_code(ums.retract, "v:1t:1603707455p:27133n:2", code=MESSAGE_NOT_FOUND)
        expect_code(other.retract, sent.msgid, code=MESSAGE_NOT_FOUND)
        assert ums.retract(sent.msgid).code == 0
        expect_code(ums.retract, sent.msgid, code=ALREADY_WITHDRAWN)

    with requests.Session() as http:
        answers = [
            http.post(f"{emulator.url}/v1/sent", data=b"{not json", timeout=HTTP_TIMEOUT,
                      headers={"Authorization": auth_header()}),
            http.post(f"{emulator.url}/v1/sent", data=b"[]", timeout=HTTP_TIMEOUT,
                      headers={"Authorization": auth_header()}),
            http.post(f"{emulator.url}/v1/nothing", data=b"{}", timeout=HTTP_TIMEOUT,
                      headers={"Authorization": auth_header()}),
            http.get(f"{emulator.url}/v1/sent", timeout=HTTP_TIMEOUT),
        ]  # fmt: skip
        assert [(a.status_code, a.json()["code"]) for a in answers] == [
            (400, 4004),
            (400, 4004),
            (404, 4004),
            (405, 4004),
        ]
    # No callback URL anywhere: the records are made, and counted as undeliverable.
    state = emulator.state()
    assert state["records"]["without_callback_url"] == state["records"]["generated"] > 0
    assert state["messages"][sent.msgid]["withdrawn"] is True


# --------------------------------------------------------------------------- 2. verification


def test_callback_url_is_verified_before_it_is_called(emulator: Emulator) -> None:
    message = {"aud_userid": ["u1", "u2"], "msg_app": APP}
    with (
        Callbacks(echo=False) as bad,
        Callbacks() as good,
        UmsClient(CHANNEL, SECRET, emulator.url) as ums,
    ):
        refused = ums.send(message, callback_url=bad.url).msgid
        assert emulator.wait_idle(10)
        first = ums.send(message, callback_url=good.url).msgid
        assert emulator.wait_idle(10)
        second = ums.send(message, callback_url=good.url).msgid
        assert emulator.wait_idle(10)

    # The failing URL was asked once, with the channel's auth, and never posted to.
    assert len(bad.gets) == 1 and bad.posts == []
    _, authorization, query = bad.gets[0]
    assert authorization == auth_header() and len(query["echostr"][0]) >= 16
    # The good URL was verified once, before its first POST, then used for both messages.
    assert len(good.gets) == 1
    assert good.gets[0][0] < min(post.at for post in good.posts)
    assert {r["msgid"] for r in good.records()} == {first, second}

    state = emulator.state()
    verification = {e["url"]: e["verification"] for e in state["callbacks"]}
    assert verification[good.url] == {"state": "verified", "attempts": 1, "error": None}
    assert verification[bad.url]["state"] == "failed"
    assert "instead of the echostr" in verification[bad.url]["error"]
    lost = state["messages"][refused]
    assert lost["dropped"] == lost["generated"] and sum(lost["delivered"].values()) == 0
    assert state["batches"]["dropped_unverified"] >= 1


# --------------------------------------------------------------------------- batching, retries


def test_batches_are_bare_arrays_of_at_most_100_per_url_and_channel() -> None:
    no_failures = {"invalid_share": 0, "submit_fail_share": 0, "delivery_fail_share": 0}
    with (
        Callbacks() as cb,
        Emulator(config(click_share=0, **no_failures)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
        UmsClient(OTHER_CHANNEL, OTHER_SECRET, em.url, callback_url=cb.url) as other,
    ):
        big = ums.send({"aud_userid": [f"user{i}" for i in range(250)], "msg_sms": SMS}).msgid
        small = other.send({"aud_sms": [{"data": ["13800000000"]}], "msg_sms": SMS}).msgid
        assert em.wait_idle(10)

    assert {len(post.body) for post in cb.posts} <= set(range(1, 101))
    assert sum(len(post.body) == 100 for post in cb.posts) == 7  # 750 records of one channel
    for post in cb.posts:
        assert isinstance(post.body, list)
        assert (post.content_type or "").startswith("application/json")
        channel = {record["channelkey"] for record in post.body}
        assert len(channel) == 1  # one batch per (URL, channel), with that channel's auth
        key = channel.pop()
        assert post.authorization == auth_header(key, CHANNELS[key])
    records = cb.records()
    assert len(records) == len({json.dumps(r, sort_keys=True) for r in records}) == 753
    # Custom channel ids: userid "", sender_id the id, validation by UMS itself (sender 0).
    assert [(r["type"], r["userid"], r["sender_id"], r["sender"]) for r in records
            if r["msgid"] == small] == [(0, "", "13800000000", 0), (2, "", "13800000000", 5),
                                        (4, "", "13800000000", 5)]  # fmt: skip
    assert sum(r["msgid"] == big for r in records) == 750


def test_fewer_than_a_batch_wait_for_the_flush_interval() -> None:
    with (
        Callbacks() as cb,
        Emulator(config(flush_interval=0.6)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
    ):
        started = time.monotonic()
        ums.send({"aud_userid": ["u1"], "msg_sms": SMS})
        assert em.wait_idle(10)
    assert len(cb.posts) == 1
    assert cb.posts[0].at - started >= 0.55


def test_failed_batches_are_retried_then_dropped() -> None:
    settings = config(retry_interval=0.25, max_retries=3)
    with (
        Callbacks(statuses=[503, 500]) as flaky,
        Callbacks(default=500) as broken,
        Emulator(settings) as em,
        UmsClient(CHANNEL, SECRET, em.url) as ums,
    ):
        saved = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}, callback_url=flaky.url)
        assert em.wait_idle(10)
        lost = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}, callback_url=broken.url)
        assert em.wait_idle(10)

    # Two failures, then the same batch again and acknowledged.
    assert len(flaky.posts) == 3 and flaky.posts[0].body == flaky.posts[2].body
    # One attempt and three retries, retry_interval apart, then dropped.
    times = [post.at for post in broken.posts]
    assert len(times) == 4
    assert all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
    state = em.state()
    by_url = {e["url"]: e for e in state["callbacks"]}
    assert by_url[flaky.url]["batches"] == {
        "attempted": 3, "acknowledged": 1, "failed": 2, "dropped": 0, "dropped_unverified": 0,
    }  # fmt: skip
    assert by_url[flaky.url]["answers"] == {"503": 1, "500": 1, "200": 1}
    assert by_url[broken.url]["batches"]["dropped"] == 1
    assert by_url[broken.url]["last_answer"]["status"] == 500
    messages = state["messages"]
    assert messages[saved.msgid]["delivered"] == messages[saved.msgid]["generated"]
    assert messages[lost.msgid]["dropped"] == messages[lost.msgid]["generated"]
    assert sum(messages[lost.msgid]["delivered"].values()) == 0


# --------------------------------------------------------------------------- 3. the loop


def sample_messages() -> list[tuple[str, dict[str, Any]]]:
    """Sends covering every audience kind, the four endpoints and every channel."""
    return [
        ("send", {"aud_userid": [f"user{i}" for i in range(20)], "msg_app": APP, "msg_sms": SMS,
                  "option": {"sendno": "userids"}, "callback": {"params": {"order_id": "42"}}}),
        ("send", {"aud_tag": ["vip", "新客"], "aud_segment": ["seg1"], "msg_email": EMAIL,
                  "msg_wechatwk": WECOM}),
        ("send", {"aud_sms": [{"data": [f"1380000{i:04d}" for i in range(15)]}], "msg_sms": SMS,
                  "aud_email": [{"data": ["a@example.com", "b@example.com"]}], "msg_email": EMAIL}),
        ("send", {"aud_wechatwk_linkedcorp": [{"data": ["wwcorp/u1", "wwcorp/u2"]}],
                  "msg_wechatwk": WECOM}),
        ("broadcast", {"msg_app": APP}),
        ("template_send", {"aud_userid": [f"t{i}" for i in range(10)], "template_id": 3,
                           "template_para": {"name": "Ann"},
                           "app_para": {"platform": ["android"]}}),
    ]  # fmt: skip


def expected_targets(records: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Each target's current status by the stage rule, computed from the records made."""
    best: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r["userid"] or r["sender_id"], r["sender"])
        if key not in best or RANK_BY_TYPE[r["type"]] > RANK_BY_TYPE[best[key]]:
            best[key] = r["type"]
    on_channel = {recipient for recipient, sender in best if sender != 0}
    return {
        key: STATUS_BY_TYPE[t] for key, t in best.items() if key[1] != 0 or key[0] not in on_channel
    }


def keys_with(records: list[dict[str, Any]], *types: int) -> set[tuple[str, int]]:
    """The targets (recipient, sender) that have a record of one of these types."""
    return {(r["userid"] or r["sender_id"], r["sender"]) for r in records if r["type"] in types}


def read_message(http: requests.Session, base: str, msgid: str) -> tuple[dict[str, Any], Any]:
    summary = http.get(f"{base}/api/messages/{msgid}", headers=bearer(), timeout=HTTP_TIMEOUT)
    targets = http.get(
        f"{base}/api/messages/{msgid}/targets",
        params={"limit": 1000},
        headers=bearer(),
        timeout=HTTP_TIMEOUT,
    )
    assert summary.status_code == targets.status_code == 200, (summary.text, targets.text)
    assert targets.json()["next_cursor"] is None
    return summary.json(), targets.json()["targets"]


def check_receiver_has_exactly(em: Emulator, base: str, msgids: list[str]) -> None:
    """The read API's counts per status are the records the emulator delivered, and the
    targets' current statuses follow from those records."""
    state = em.state()
    with requests.Session() as http:
        for msgid in msgids:
            report = state["messages"][msgid]
            assert report["pending"] == 0
            assert sum(report["dropped"].values()) == 0, report
            assert report["delivered"] == report["generated"]
            summary, targets = read_message(http, base, msgid)
            assert summary["counts"] == report["delivered"], msgid
            records = em.records(msgid)
            got = {(t["recipient"], t["sender"] or 0): t["status"] for t in targets}
            assert got == expected_targets(records), msgid
            assert summary["targets"]["total"] == len(got)

            # Clicked is the last stage but withdrawal: a click not withdrawn shows.
            clicked = keys_with(records, 6) - keys_with(records, 7, 8)
            assert all(got[key] == "clicked" for key in clicked)


def receiver_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        **CHANNELS_ENV,
        "API_TOKENS": bearer()["Authorization"].removeprefix("Bearer "),
        "WEB_CONCURRENCY": "2",
    }


def test_every_record_reaches_the_receiver_once_despite_faults(
    database_url: str, tmp_path: Path
) -> None:
    faults = {"duplicate_batches": True, "shuffle": True, "delay_share": 0.2, "delay_seconds": 0.3}
    shares = {"invalid_share": 0.1, "submit_fail_share": 0.1, "delivery_fail_share": 0.2}
    settings = config(click_share=0.4, batch_size=40, **faults, **shares)
    flags = {"send": {}, "broadcast": {"broadcast": True}, "template_send": {"template": True}}
    engine = make_engine(Settings(database_url=database_url))
    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server(receiver_env(database_url), output=log) as base,
        Emulator(settings) as em,
    ):
        # Through the real sender, which also records each send in the database.
        sender = UmsSender(engine=engine, channels={CHANNEL: SECRET}, api_base=em.url,
                           callback_url=f"{base}/callbacks/ums")  # fmt: skip
        outcomes = [
            sender.send(parse_request(message, **flags[endpoint]))
            for endpoint, message in sample_messages()
        ]
        msgids = [msgid for outcome in outcomes for msgid in outcome.msgids]
        assert len(msgids) == len(outcomes)
        assert em.wait_idle(20), em.pending()
        check_receiver_has_exactly(em, base, msgids)
        with requests.Session() as http:
            for outcome, msgid in zip(outcomes, msgids, strict=True):
                summary, _ = read_message(http, base, msgid)
                assert summary["send"] == {"code": 0, "message": "success"}
                assert summary["send_id"] == outcome.send_id
    engine.dispose()

    state = em.state()
    [endpoint] = state["callbacks"]
    generated = state["records"]["generated"]
    assert endpoint["receiver"]["stored"] == generated  # nothing lost, nothing doubled
    assert endpoint["receiver"]["duplicates"] == generated  # every batch came twice
    assert endpoint["receiver"]["quarantined"] == 0
    totals: dict[str, int] = {}
    for report in state["messages"].values():
        for status, n in report["delivered"].items():
            totals[status] = totals.get(status, 0) + n
    assert all(totals[status] > 0 for status in list(STATUS_BY_TYPE.values())[:7]), totals
    # Shuffled: some target's delivery record was made to leave before its submission.
    order = [(r["msgid"], r["userid"], r["sender_id"], r["type"]) for r in em.records()]
    assert any(
        (m, u, s, 4) in order and order.index((m, u, s, 4)) < order.index((m, u, s, 2))
        for m, u, s, t in order
        if t == 2
    )


# --------------------------------------------------------------------------- 4. receiver down


@contextmanager
def serve_on(port: int, env: dict[str, str], log: Any) -> Iterator[str]:
    """``umstrack serve`` on a given port (running_server always picks a new one)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve"],
        env={**os.environ, **env, "PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_healthy(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_nothing_is_lost_while_the_receiver_is_down(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = receiver_env(database_url)
    callback = f"http://127.0.0.1:{port}/callbacks/ums"
    message = {"aud_userid": [f"user{i}" for i in range(30)], "msg_app": APP, "msg_sms": SMS}
    with (
        open(tmp_path / "serve.log", "w") as log,
        Emulator(config(retry_interval=2.0, max_retries=3)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=callback) as ums,
    ):
        with serve_on(port, env, log):
            before = ums.send(message).msgid
            assert em.wait_idle(10)
        during = ums.send(message).msgid  # the receiver is down
        deadline = time.monotonic() + 10
        while em.state()["batches"]["failed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert em.state()["messages"][during]["pending"] > 0
        with serve_on(port, env, log) as base:
            assert em.wait_idle(20), em.pending()
            check_receiver_has_exactly(em, base, [before, during])

    state = em.state()
    [endpoint] = state["callbacks"]
    assert endpoint["batches"]["failed"] >= 1 and endpoint["batches"]["dropped"] == 0
    assert "ConnectionError" in endpoint["answers"]
    assert endpoint["verification"]["attempts"] == 1  # verified once, before the outage


# --------------------------------------------------------------------------- 5. withdraw


def test_withdraw_results_arrive_as_callbacks(database_url: str, tmp_path: Path) -> None:
    settings = config(
        invalid_share=0, submit_fail_share=0.1, click_share=0.3, withdraw_fail_share=0.3
    )
    message = {"aud_userid": [f"user{i}" for i in range(12)], "msg_app": APP, "msg_sms": SMS}
    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server(receiver_env(database_url), output=log) as base,
        Emulator(settings) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=f"{base}/callbacks/ums") as ums,
    ):
        msgid = ums.send(message).msgid
        assert em.wait_idle(10)
        assert em.state()["messages"][msgid]["delivered"]["withdrawn"] == 0
        ums.retract(msgid)
        expect_code(ums.retract, msgid, code=ALREADY_WITHDRAWN)
        assert em.wait_idle(10)
        check_receiver_has_exactly(em, base, [msgid])
        with requests.Session() as http:
            summary, targets = read_message(http, base, msgid)

    records = em.records(msgid)
    withdrawals = [r for r in records if r["type"] in (7, 8)]
    submitted = {(r["userid"], r["sender"]) for r in records if r["type"] == 2}
    # Every target a channel took gets one withdrawal record, and only those.
    assert sorted((r["userid"], r["sender"]) for r in withdrawals) == sorted(submitted)
    assert summary["counts"]["withdrawn"] > 0 and summary["counts"]["withdraw_failed"] > 0
    assert all(("error" in r) == (r["type"] == 8) for r in withdrawals)
    # A delivered SMS cannot be recalled.
    delivered_sms = {key for key in keys_with(records, 4) if key[1] == 5}
    assert delivered_sms and delivered_sms <= keys_with(records, 8)
    statuses = {(t["recipient"], t["sender"]): t["status"] for t in targets}
    assert {statuses[key] for key in submitted} <= {"withdrawn", "withdraw_failed"}


# --------------------------------------------------------------------------- 6. determinism


def play(settings: EmulatorConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One fixed script of sends and a withdraw: (records made, records delivered)."""
    with (
        Callbacks() as cb,
        Emulator(settings) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
    ):
        for n, (endpoint, message) in enumerate(sample_messages()):
            getattr(ums, endpoint)(message, send_id=f"send-{n}")
        first = next(iter(em.state()["messages"]))
        assert em.wait_idle(10)
        ums.retract(first)
        assert em.wait_idle(10)
        return normalized(em.records()), sorted(normalized(cb.records()), key=json.dumps)


def normalized(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without their timestamps (the msgid's t: part, sent_time)."""
    out = []
    for record in records:
        assert isinstance(record["sent_time"], int) and record["sent_time"] < 10**10  # seconds
        rest = {k: v for k, v in record.items() if k != "sent_time"}
        rest["msgid"] = MSGID_FORMAT.sub(lambda m: m[0].replace(m[1], "T"), record["msgid"])
        out.append(rest)
    return out


def test_the_same_seed_gives_the_same_records() -> None:
    settings = config(seed=99, shuffle=True, delay_share=0.1, delay_seconds=0.1, click_share=0.5)
    made, delivered = play(settings)
    assert play(settings) == (made, delivered)
    assert play(config(seed=100, shuffle=True, click_share=0.5))[0] != made
    # Every field of providers.md 1.2, in its form, on every record.
    assert sorted(made, key=json.dumps) == delivered
    for record in made:
        fields = set(record) | {"sent_time"}
        failure = record["type"] in (1, 3, 5, 8)
        assert fields >= BASE_FIELDS and ("error" in fields) == failure
        if failure:
            assert set(record["error"]) == {"code", "message"}
        if record["type"] in (0, 1):
            assert record["sender"] == 0
        assert (fields >= APP_FIELDS) == (record["sender"] == 1)
        assert ("wechatwk_sender" in fields) == (record["sender"] == 10)
        assert record["params"]["umstrack_send"].startswith("send-")
    senders = {r["sender"] for r in made}
    assert senders == {0, 1, 4, 5, 10}
    assert {r["wechatwk_sender"] for r in made if r["sender"] == 10} == {0, 1}
    tag_users = {r["userid"] for r in made if r["userid"].startswith("vip_")}
    assert tag_users == {f"vip_{i}" for i in range(1, 6)}  # 5 made-up users per tag


# --------------------------------------------------------------------------- inspection, CLI


def test_inspection_over_http(emulator: Emulator) -> None:
    with (
        Callbacks() as cb,
        UmsClient(CHANNEL, SECRET, emulator.url) as ums,
        requests.Session() as http,
    ):
        msgid = ums.send({"aud_userid": ["u1"], "msg_app": APP}, callback_url=cb.url).msgid
        idle = http.get(
            f"{emulator.url}/_emulator/idle", params={"timeout": 10}, timeout=HTTP_TIMEOUT
        ).json()
        state = http.get(f"{emulator.url}/_emulator/state", timeout=HTTP_TIMEOUT).json()
        made = http.get(
            f"{emulator.url}/_emulator/records", params={"msgid": msgid}, timeout=HTTP_TIMEOUT
        ).json()
    assert idle["idle"] is True and idle["pending"]["records"] == 0
    assert state["messages"][msgid]["delivered"] == state["messages"][msgid]["generated"]
    assert state["batches"]["acknowledged"] == len(cb.posts) >= 1
    assert made["records"] == cb.records()


def test_command_line_options_and_run(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--seed", "5", "--click-share", "0.5", "--duplicate", "--shuffle", "--flush-interval",
         "0.5", "--callback-url", "http://127.0.0.1:9/cb"]
    )  # fmt: skip
    settings = config_from_args(args, CHANNELS)
    assert (settings.seed, settings.click_share, settings.flush_interval) == (5, 0.5, 0.5)
    assert settings.duplicate_batches and settings.shuffle and args.port == 8001
    assert settings.default_callback_url == "http://127.0.0.1:9/cb"
    assert (settings.retry_interval, settings.max_retries, settings.batch_size) == (50.0, 3, 100)
    with pytest.raises(SystemExit):
        parser.parse_args(["--click-share", "1.5"])

    port = free_port()
    script = (
        "import argparse, logging, sys; from sender.emulator import add_arguments, run; "
        "logging.basicConfig(level=logging.INFO); p = argparse.ArgumentParser(); "
        "add_arguments(p); sys.exit(run(p.parse_args(sys.argv[1:])))"
    )
    empty = subprocess.run(
        [sys.executable, "-c", script, "--port", str(port)],
        env={**os.environ, "UMS_CHANNELS": ""},
        capture_output=True,
        timeout=30,
    )
    assert empty.returncode == 2 and b"UMS_CHANNELS" in empty.stderr
    process = subprocess.Popen(
        [sys.executable, "-c", script, "--port", str(port), "--seed", "1"],
        env={**os.environ, **CHANNELS_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        with requests.Session() as http:
            while True:
                try:
                    state = http.get(f"http://127.0.0.1:{port}/_emulator/state", timeout=(1, 5))
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.1)
        assert state.json()["seed"] == 1
        with UmsClient(CHANNEL, SECRET, f"http://127.0.0.1:{port}") as ums:
            assert MSGID_FORMAT.fullmatch(ums.send({"aud_userid": ["u1"], "msg_sms": SMS}).msgid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
