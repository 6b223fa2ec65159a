"""The UMS emulator's answers: business codes, auth, withdraw, the records a seed makes,
the inspection endpoints and the ``umstrack emulate`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from receiver.cli import emulate as emulate_cli
from receiver.cli import main
from receiver.local import free_port
from sender.emulator import MESSAGE_NOT_FOUND, Emulator, EmulatorConfig
from sender.errors import InvalidMessageError
from sender.ums.client import UmsClient
from sender.ums.protocol import ALREADY_WITHDRAWN, AUTH_FAILED
from sender.ums.rules import validate_message
from tests.emulator_helpers import (
    APP,
    CHANNELS,
    HTTP_TIMEOUT,
    MSGID_FORMAT,
    SMS,
    Callbacks,
    auth_header,
    config,
    expect_code,
    sample_messages,
)
from tests.helpers import CHANNEL, CHANNELS_ENV, OTHER_CHANNEL, OTHER_SECRET, SECRET

# Record fields every record carries, and those that depend on the channel.
BASE_FIELDS = {"type", "channelkey", "msgid", "userid", "sender_id", "sender", "sent_time"}
APP_FIELDS = {"app_platform", "app_sender"}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(config()) as em:
        yield em


# --------------------------------------------------------------------------- business codes


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
        authorized = {"Authorization": auth_header()}
        answers = [
            http.post(
                f"{emulator.url}/v1/sent",
                data=b"{not json",
                timeout=HTTP_TIMEOUT,
                headers=authorized,
            ),
            http.post(
                f"{emulator.url}/v1/sent", data=b"[]", timeout=HTTP_TIMEOUT, headers=authorized
            ),
            http.post(
                f"{emulator.url}/v1/nothing", data=b"{}", timeout=HTTP_TIMEOUT, headers=authorized
            ),
            http.get(f"{emulator.url}/v1/sent", timeout=HTTP_TIMEOUT),
        ]
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


# --------------------------------------------------------------------------- determinism


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
    # Every field of a UMS callback record, in its form, on every record.
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


# --------------------------------------------------------------------------- inspection


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


# --------------------------------------------------------------------------- umstrack emulate


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[EmulatorConfig]:
    """The settings ``umstrack emulate`` starts emulators with. The stand-in it starts
    raises SIGTERM at once, as a service manager would."""
    configs: list[EmulatorConfig] = []

    class StandIn:
        def __init__(self, config: EmulatorConfig) -> None:
            configs.append(config)

        def start(self) -> StandIn:
            # SIGTERM is caught (the command exits 0) before the emulator starts.
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
            signal.raise_signal(signal.SIGTERM)
            return self

        def stop(self) -> None:
            pass

    monkeypatch.setattr(emulate_cli, "Emulator", StandIn)
    return configs


def test_command_line_options(runner: CliRunner, started: list[EmulatorConfig]) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    options = ["--seed", "5", "--click-share", "0.5", "--duplicate", "--shuffle"]
    options += ["--flush-interval", "0.5", "--callback-url", "http://127.0.0.1:9/cb"]
    result = runner.invoke(main, ["emulate", *options], env=CHANNELS_ENV)
    assert result.exit_code == 0, result.output
    assert signal.getsignal(signal.SIGTERM) == handler  # put back
    [settings] = started
    assert settings.channels == CHANNELS
    assert (settings.seed, settings.click_share, settings.flush_interval) == (5, 0.5, 0.5)
    assert settings.duplicate_batches and settings.shuffle and settings.port == 8001
    assert settings.default_callback_url == "http://127.0.0.1:9/cb"
    assert (settings.retry_interval, settings.max_retries, settings.batch_size) == (50.0, 3, 100)

    # The default callback URL may come from the environment.
    env = {**CHANNELS_ENV, "UMS_EMULATOR_CALLBACK_URL": "http://127.0.0.1:9/env"}
    assert runner.invoke(main, ["emulate"], env=env).exit_code == 0
    assert started[-1].default_callback_url == "http://127.0.0.1:9/env"
    assert started[-1].seed is None


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--click-share", "1.5"], CHANNELS_ENV, "--click-share"),
        (["--batch-size", "0"], CHANNELS_ENV, "--batch-size"),
        (["--flush-interval", "-1"], CHANNELS_ENV, "--flush-interval"),
        (["--callback-url", "ftp://example.com/cb"], CHANNELS_ENV, "default_callback_url"),
        ([], {"UMS_CHANNELS": ""}, "UMS_CHANNELS"),
        ([], {"UMS_CHANNELS": "no-secret"}, "UMS_CHANNELS"),
    ],
)
def test_command_line_refuses_bad_settings(
    runner: CliRunner,
    started: list[EmulatorConfig],
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    result = runner.invoke(main, ["emulate", *args], env=env)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert started == []


def test_command_serves_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "emulate", "--port", str(port), "--seed", "1"],
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
