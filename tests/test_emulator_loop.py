"""The whole loop over real loopback HTTP: the sender or UmsClient, the UMS emulator, the
real receiver (gunicorn) and its read API; faults, an outage and a withdraw included."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from receiver.config import Settings
from receiver.db import make_engine
from receiver.local import free_port, running_server
from receiver.sending.request import parse_request
from receiver.sending.ums import UmsSender
from receiver.status import RANK_BY_TYPE
from sender.emulator import Emulator
from sender.ums.client import UmsClient
from sender.ums.protocol import ALREADY_WITHDRAWN, STATUS_BY_TYPE
from tests.emulator_helpers import (
    APP,
    HTTP_TIMEOUT,
    SMS,
    config,
    expect_code,
    sample_messages,
)
from tests.helpers import CHANNEL, CHANNELS_ENV, SECRET, bearer


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
    """A message's summary and every one of its targets (page after page)."""
    summary = http.get(f"{base}/api/messages/{msgid}", headers=bearer(), timeout=HTTP_TIMEOUT)
    assert summary.status_code == 200, summary.text
    targets: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = http.get(
            f"{base}/api/messages/{msgid}/targets",
            params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
            headers=bearer(),
            timeout=HTTP_TIMEOUT,
        )
        assert page.status_code == 200, page.text
        targets += page.json()["targets"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return summary.json(), targets


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
    flags: dict[str, dict[str, Any]] = {
        "send": {},
        "broadcast": {"broadcast": True},
        "template_send": {"template": True},
    }
    engine = make_engine(Settings(database_url=database_url))
    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server(receiver_env(database_url), output=log) as base,
        Emulator(settings) as em,
    ):
        # Through the real sender, which also records each send in the database.
        sender = UmsSender(
            engine=engine,
            channels={CHANNEL: SECRET},
            api_base=em.url,
            callback_url=f"{base}/callbacks/ums",
        )
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
                assert summary["send"] == {"outcome": "sent", "code": 0, "message": "success"}
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


# --------------------------------------------------------------------------- receiver down


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
        with running_server(env, output=log, port=port):
            before = ums.send(message).msgid
            assert em.wait_idle(10)
        during = ums.send(message).msgid  # the receiver is down
        deadline = time.monotonic() + 10
        while em.state()["batches"]["failed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert em.state()["messages"][during]["pending"] > 0
        with running_server(env, output=log, port=port) as base:
            assert em.wait_idle(20), em.pending()
            check_receiver_has_exactly(em, base, [before, during])

    state = em.state()
    [endpoint] = state["callbacks"]
    assert endpoint["batches"]["failed"] >= 1 and endpoint["batches"]["dropped"] == 0
    assert "ConnectionError" in endpoint["answers"]
    assert endpoint["verification"]["attempts"] == 1  # verified once, before the outage


def test_a_receiver_still_starting_gets_every_callback(database_url: str, tmp_path: Path) -> None:
    # The send goes out before `umstrack serve` answers: its URL check fails until the
    # receiver is up, and the batch waits for it under the retry rules.
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callbacks/ums"
    message = {"aud_userid": [f"user{i}" for i in range(5)], "msg_sms": SMS}
    with (
        open(tmp_path / "serve.log", "w") as log,
        Emulator(config(retry_interval=0.2, max_retries=300)) as em,  # a minute of retries
        UmsClient(CHANNEL, SECRET, em.url, callback_url=callback) as ums,
    ):
        msgid = ums.send(message).msgid
        deadline = time.monotonic() + 10
        while em.state()["batches"]["failed_unverified"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert em.state()["batches"]["failed_unverified"] >= 1
        with running_server(receiver_env(database_url), output=log, port=port) as base:
            assert em.wait_idle(30), em.pending()
            check_receiver_has_exactly(em, base, [msgid])

    [endpoint] = em.state()["callbacks"]
    assert endpoint["verification"]["state"] == "verified"
    assert endpoint["batches"]["acknowledged"] == 1 and endpoint["batches"]["dropped"] == 0
    assert endpoint["answers"] == {"200": 1}  # nothing was posted before the check passed


# --------------------------------------------------------------------------- withdraw


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
