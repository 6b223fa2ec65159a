"""The quarantine (issue 14, point 5): GET /api/quarantine, `umstrack quarantine list`
and `umstrack quarantine replay`, on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text, update
from sqlmodel import Session

from receiver.db import alembic_config, write_transaction
from receiver.intake import quarantine
from receiver.models import Event, Quarantine
from receiver.store import record_send
from tests.cli import invoke
from tests.conftest import fresh_postgres_schema
from tests.helpers import (
    CHANNEL,
    MSGID,
    OTHER_CHANNEL,
    OTHER_SECRET,
    SENT_TIME,
    api_get,
    basic_auth,
    bearer,
    events,
    post,
    quarantined,
    record,
    walk,
)

B_AUTH = basic_auth(OTHER_CHANNEL, OTHER_SECRET)
FOREIGN = "msgid belongs to another channel"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
# A reason that quotes a long value: its cause is cut, so that it can be indexed.
LONG = "record 7: channelkey '" + "é" * 3000 + "' is not the authenticated channel"
LONG_CAUSE = "channelkey '" + "é" * 187 + "…"


def keep(engine, items: list[tuple[str, str]], *, channelkey: str = CHANNEL, at=T0) -> None:
    """Quarantine ``items`` (reason, raw text) as the intake does."""
    with write_transaction(engine) as session:
        quarantine(session=session, channelkey=channelkey, items=items, received_at=at)


def event_count(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Event))


def replay(env, *args: str):
    result = invoke("quarantine", "replay", *args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def a_sends(engine, msgid: str = MSGID) -> None:
    """Channel A's send of ``msgid`` is recorded (it takes the msgid from whoever claimed it)."""
    with write_transaction(engine) as session:
        record_send(
            session,
            msgid=msgid,
            provider="ums",
            channelkey=CHANNEL,
            sendno="a-sendno",
            params={"order_id": "123"},
            request={"aud_userid": ["u1"]},
            code=0,
            message="success",
            send_id="s1",
            part=0,
            sent_at=datetime.now(UTC),
            state="sent",
        )


# --- GET /api/quarantine -------------------------------------------------------------


@pytest.fixture
def kept(engine):
    """Seven inputs: three causes, two channels, received a day apart (T0 .. T0+6d)."""
    for day in range(7):
        reason = ["msgid is missing", "type 9 is not a UMS status type (0-8)"][day % 2]
        if day == 6:
            reason = "body is not JSON: Expecting value"
            raw = "not json"
        else:
            raw = json.dumps({"type": 9, "day": day, "sender": 1})
            reason = f"record {day}: {reason}"
        channelkey = OTHER_CHANNEL if day in (2, 3) else CHANNEL
        keep(engine, [(reason, raw)], channelkey=channelkey, at=T0 + timedelta(days=day))
    return quarantined(engine)


def test_list_is_newest_first_with_counts_by_cause(client, kept):
    response = api_get(client, "/api/quarantine")
    assert response.status_code == 200
    body = response.json
    assert [i["received_at"] for i in body["items"]] == [
        (T0 + timedelta(days=d)).isoformat() for d in range(6, -1, -1)
    ]
    assert body["counts"] == [
        {"reason": "msgid is missing", "count": 3},
        {"reason": "type 9 is not a UMS status type (0-8)", "count": 3},
        {"reason": "body is not JSON: Expecting value", "count": 1},
    ]
    newest, record_item = body["items"][0], body["items"][1]
    assert newest["raw"] == "not json" and newest["channel"] is None
    assert record_item["reason"] == "record 5: type 9 is not a UMS status type (0-8)"
    assert record_item["cause"] == "type 9 is not a UMS status type (0-8)"
    assert record_item["channel"] == "app" and record_item["channelkey"] == CHANNEL
    assert json.loads(record_item["raw"]) == {"type": 9, "day": 5, "sender": 1}
    assert record_item["replayed_at"] is None and record_item["replay_result"] is None
    assert body["next_cursor"] is None


def test_filters_narrow_items_and_counts(client, kept):
    by_reason = api_get(client, "/api/quarantine", reason="msgid is missing").json
    assert [i["reason"] for i in by_reason["items"]] == [
        "record 4: msgid is missing",
        "record 2: msgid is missing",
        "record 0: msgid is missing",
    ]
    assert by_reason["counts"] == [{"reason": "msgid is missing", "count": 3}]

    by_channel = api_get(client, "/api/quarantine", channel=OTHER_CHANNEL).json
    assert [i["reason"][:8] for i in by_channel["items"]] == ["record 3", "record 2"]
    assert {c["reason"]: c["count"] for c in by_channel["counts"]} == {
        "msgid is missing": 1,
        "type 9 is not a UMS status type (0-8)": 1,
    }

    since = (T0 + timedelta(days=4)).isoformat()
    recent = api_get(client, "/api/quarantine", since=since, channel=CHANNEL).json
    assert [i["reason"][:8] for i in recent["items"]] == ["body is ", "record 5", "record 4"]
    assert sum(c["count"] for c in recent["counts"]) == 3
    assert api_get(client, "/api/quarantine", reason="record 4: msgid is missing").json == {
        "items": [],
        "counts": [],
        "next_cursor": None,
    }


def test_pages_follow_the_cursor_without_repeats(client, kept):
    first = api_get(client, "/api/quarantine", limit=3).json
    assert len(first["items"]) == 3 and first["next_cursor"]
    assert sum(c["count"] for c in first["counts"]) == 7  # counts cover every page
    ids = [i["id"] for i in walk(client, "/api/quarantine", "items", limit=2)]
    assert ids == [q.id for q in sorted(kept, key=lambda q: q.received_at, reverse=True)]
    assert len(set(ids)) == 7


def test_same_arrival_time_pages_by_id(client, engine):
    keep(engine, [(f"record {i}: msgid is missing", json.dumps({"i": i})) for i in range(5)])
    ids = [i["id"] for i in walk(client, "/api/quarantine", "items", limit=2)]
    assert ids == sorted((q.id for q in quarantined(engine)), reverse=True)


def test_list_needs_a_token(client, kept):
    response = client.get("/api/quarantine")
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
    wrong = client.get("/api/quarantine", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=delivered", "status"),
        ("reason=a&reason=b", "reason"),
        ("channel=a&channel=b", "channel"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=abc", "cursor"),
        ("reason=%00", "reason"),
    ],
)
def test_bad_parameters_answer_400_naming_them(client, kept, query, parameter):
    response = client.get(f"/api/quarantine?{query}", headers=bearer())
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_parameter"
    assert response.json["message"].startswith(f"{parameter}: ")


def test_a_cursor_of_another_list_is_refused(client, kept):
    post(client, [record(2, userid=f"u{i}") for i in range(3)])
    cursor = api_get(client, f"/api/messages/{MSGID}/targets", limit=1).json["next_cursor"]
    response = api_get(client, "/api/quarantine", cursor=cursor)
    assert response.status_code == 400 and response.json["message"].startswith("cursor: ")


# --- umstrack quarantine list ----------------------------------------------------------


def test_cli_list_escapes_control_characters(client, engine, env):
    hostile = b"\x1b]0;owned\x07\x1b[2J not json"
    assert post(client, hostile).status_code == 400
    result = invoke("quarantine", "list", env=env)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2J not json" in result.stdout
    assert "body is not JSON" in result.stdout


def test_cli_list_filters_and_json(engine, env, kept):
    result = invoke("quarantine", "list", "--reason", "msgid is missing", "--json", env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [i["reason"] for i in body["items"]][0] == "record 4: msgid is missing"
    assert body["counts"] == [{"reason": "msgid is missing", "count": 3}]
    text = invoke("quarantine", "list", "--channel", OTHER_CHANNEL, "--limit", "1", env=env)
    assert text.exit_code == 0
    assert "record 3: type 9" in text.stdout and "record 2" not in text.stdout
    assert "More: --cursor " in text.stdout


def test_cli_list_refuses_a_bad_option(env, kept):
    result = invoke("quarantine", "list", "--since", "soon", env=env)
    assert result.exit_code == 2 and "--since: " in result.stderr


# --- umstrack quarantine replay ----------------------------------------------------------


def test_replay_after_the_owner_is_corrected_stores_once(client, engine, env):
    # B's callback names the msgid first, so A's own records for it are refused...
    b_record = record(2, userid="u9", channelkey=OTHER_CHANNEL)
    assert post(client, [b_record], B_AUTH).json["stored"] == 1
    a_records = [record(2, userid="u1"), record(4, userid="u1", sent_time=SENT_TIME + 5)]
    assert post(client, a_records).json["quarantined"] == 2
    # ... until A's send of it is recorded (UMS answered after its first callbacks came).
    a_sends(engine)
    before = event_count(engine)

    first = replay(env, "--reason", FOREIGN)
    assert first == {
        "replayed": 2,
        "stored": 2,
        "duplicates": 0,
        "still_quarantined": 0,
        "skipped": 0,
        "dry_run": False,
    }
    assert event_count(engine) == before + 2
    assert api_get(client, f"/api/messages/{MSGID}").json["targets"]["by_status"]["delivered"] == 1

    assert replay(env, "--reason", FOREIGN)["skipped"] == 2  # done already: left alone
    again = replay(env, "--all", "--again")
    assert (again["replayed"], again["stored"], again["duplicates"]) == (2, 0, 2)
    assert event_count(engine) == before + 2  # twice replayed, stored once
    rows = quarantined(engine)
    assert len(rows) == 2  # no second row for the same input
    assert {r.replay_result for r in rows} == {"duplicate"}


def test_replay_of_input_still_unusable_keeps_its_row(client, engine, env):
    assert post(client, b"\xff not json").status_code == 400
    assert post(client, b'"a string"').status_code == 400
    assert post(client, [record(2, userid="u1"), {"type": 2}]).json["quarantined"] == 1
    rows_before = [(q.id, q.quarantine_key) for q in quarantined(engine)]

    summary = replay(env, "--all")
    assert summary["replayed"] == 3 and summary["still_quarantined"] == 3
    assert summary["stored"] == 0
    rows = quarantined(engine)
    assert [(q.id, q.quarantine_key) for q in rows] == rows_before  # no new rows
    results = {q.reason: q.replay_result for q in rows}
    assert results == {
        q.reason: f"quarantined: {q.reason}" for q in rows
    }  # the same reason each time, the record's place in its batch kept
    assert all(q.replayed_at is not None for q in rows)
    # Still unusable is not done: the next replay runs them again, still one row each.
    assert replay(env, "--all")["replayed"] == 3
    assert len(quarantined(engine)) == 3


def test_replay_after_a_fix_stores_what_an_older_version_refused(client, engine, env):
    # Kept by a version whose checks refused platform names (a bug since fixed).
    platform_named = record(4, userid="u1", app_platform="harmony")
    keep(engine, [("record 3: app_platform is not an integer", json.dumps(platform_named))])
    (row,) = quarantined(engine)

    dry = replay(env, "--id", str(row.id), "--dry-run")
    assert (dry["stored"], dry["dry_run"]) == (1, True)
    assert event_count(engine) == 0 and quarantined(engine)[0].replayed_at is None

    assert replay(env, "--id", str(row.id))["stored"] == 1
    (stored,) = events(engine)
    assert (stored.msgid, stored.type, stored.app_platform) == (MSGID, 4, "harmony")
    listed = api_get(client, "/api/quarantine").json["items"][0]
    assert listed["replay_result"] == "stored" and listed["replayed_at"] is not None
    # The same record arriving later as a callback is a duplicate, not a second event.
    assert post(client, [platform_named]).json["duplicates"] == 1
    assert replay(env, "--id", str(row.id), "--again")["duplicates"] == 1
    assert event_count(engine) == 1


def test_replay_of_a_kept_body_runs_its_records(engine, env):
    # A whole body kept by an older version (a JSON batch it could not read).
    body = json.dumps([record(2, userid="u1"), record(2, userid="u2"), {"type": 2}])
    keep(engine, [("body is not JSON: unexpected character", body)])
    summary = replay(env, "--all")
    assert (summary["stored"], summary["still_quarantined"]) == (2, 1)
    (row,) = quarantined(engine)
    assert row.replay_result == "quarantined: record 2: msgid is missing"
    assert replay(env, "--all")["duplicates"] == 2  # not done: run again, stored once
    assert event_count(engine) == 2


def test_replay_chooses_by_filters(engine, env):
    keep(engine, [("record 0: x", json.dumps(record(2, userid="u1")))], at=T0)
    keep(engine, [("record 0: x", json.dumps(record(2, userid="u2")))], at=T0 + timedelta(1))
    keep(
        engine,
        [
            (
                "record 0: x",
                json.dumps(record(2, userid="u3", msgid="m-b", channelkey=OTHER_CHANNEL)),
            )
        ],
        channelkey=OTHER_CHANNEL,
        at=T0 + timedelta(2),
    )
    since = (T0 + timedelta(hours=12)).isoformat()
    assert replay(env, "--since", since, "--channel", CHANNEL)["stored"] == 1
    assert {e.userid for e in events(engine)} == {"u2"}
    assert replay(env, "--reason", "x")["replayed"] == 2  # u2's row is done: skipped
    assert {e.userid for e in events(engine)} == {"u1", "u2", "u3"}


@pytest.mark.parametrize(
    "args",
    [(), ("--id", "1", "--all"), ("--id", "1", "--reason", "x"), ("--since", "soon")],
)
def test_replay_needs_a_clear_choice(env, args):
    result = invoke("quarantine", "replay", *args, env=env)
    assert result.exit_code == 2 and result.stdout == ""


def test_a_replayed_row_keeps_its_place_in_the_list(client, engine, env, kept):
    with write_transaction(engine) as session:
        session.execute(update(Quarantine).values(replay_result=None))
    assert [i["id"] for i in walk(client, "/api/quarantine", "items", limit=3)] == [
        q.id for q in sorted(kept, key=lambda q: q.received_at, reverse=True)
    ]


def test_migration_gives_rows_kept_before_it_their_cause(backend, tmp_path):
    def check(url: str) -> None:
        command.upgrade(alembic_config(url), "0005")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                for n, reason in enumerate(
                    ["record 12: msgid is missing", "body is not JSON: x", "record x: odd", LONG]
                ):
                    conn.execute(
                        text(
                            "INSERT INTO quarantine (quarantine_key, channelkey, reason, raw, "
                            "received_at) VALUES (:k, 'c', :r, '{}', :t)"
                        ),
                        {"k": f"k{n}", "r": reason, "t": T0.replace(tzinfo=None)},
                    )
            command.upgrade(alembic_config(url), "head")
            with engine.connect() as conn:
                causes = conn.execute(text("SELECT cause FROM quarantine ORDER BY id")).scalars()
                assert list(causes) == [
                    "msgid is missing",
                    "body is not JSON: x",
                    "record x: odd",
                    LONG_CAUSE,
                ]
        finally:
            engine.dispose()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path}/old.db")
    else:
        with fresh_postgres_schema() as url:
            check(url)


def test_a_long_reason_is_kept_whole_and_counted_by_its_cut_cause(client, engine):
    keep(engine, [(LONG, "{}"), (LONG.replace("record 7", "record 8"), "[]")])
    body = api_get(client, "/api/quarantine", reason=LONG_CAUSE).json
    assert [i["reason"] for i in body["items"]] == [LONG.replace("record 7", "record 8"), LONG]
    assert body["counts"] == [{"reason": LONG_CAUSE, "count": 2}]
    assert len(LONG_CAUSE) == 200
