"""One record the database refuses costs that record alone; 503 only when the database
cannot serve; a chunked body past the limit is 413."""

from __future__ import annotations

import http.client
import os
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from receiver import create_app
from receiver.errors import database_unreachable
from receiver.local import free_port, running_server
from receiver.schemas.bounds import MAX_SENT_TIME
from tests.helpers import (
    API_TOKEN,
    CHANNEL,
    CHANNELS_ENV,
    MSGID,
    api_get,
    basic_auth,
    events,
    post,
    quarantined,
    record,
)

FORBIDDEN = "refused-by-the-database"


def _refuse_one_userid(engine: Engine) -> None:
    """A rule of the database's own that the intake's checks do not know: the database,
    not a stand-in, refuses the record."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    f"ALTER TABLE event ADD CONSTRAINT no_forbidden CHECK (userid <> '{FORBIDDEN}')"
                )
            )  # noqa: E501
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER no_forbidden BEFORE INSERT ON event "
                    f"WHEN NEW.userid = '{FORBIDDEN}' BEGIN SELECT RAISE(ABORT, 'no'); END"
                )
            )


def test_a_record_the_database_refuses_is_quarantined_and_the_rest_stored(client, engine):
    _refuse_one_userid(engine)
    batch = [record(2, userid="a"), record(4, userid=FORBIDDEN), record(4, userid="b")]

    response = post(client, batch)

    assert response.status_code == 200
    assert response.json == {"received": 3, "stored": 2, "duplicates": 0, "quarantined": 1}
    assert sorted(e.userid for e in events(engine)) == ["a", "b"]
    [kept] = quarantined(engine)
    assert kept.reason.startswith("record 1: the database refused it (")
    assert FORBIDDEN not in kept.reason  # the class of error, never the values
    assert FORBIDDEN in kept.raw
    # The same batch again: the good records are duplicates, the refused one kept once.
    again = post(client, batch).json
    assert again == {"received": 3, "stored": 0, "duplicates": 2, "quarantined": 1}
    assert len(quarantined(engine)) == 1


def _error(engine: Engine, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text(statement))
    return caught.value


def test_only_a_database_that_cannot_serve_is_unreachable(engine, backend):
    assert not database_unreachable(_error(engine, "SELECT * FROM no_such_table"))
    if backend == "postgresql":
        assert not database_unreachable(_error(engine, "SELECT 1 / 0"))  # 22012
        assert not database_unreachable(_error(engine, "SELECT repeat('x', 3000)::char(2)::int"))
        # The server ends this very session (57P01): it may serve the next one.
        pid = _error(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
        assert database_unreachable(pid)
    refused = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    try:
        assert database_unreachable(_error(refused, "SELECT 1"))  # connection refused
    finally:
        refused.dispose()


def test_a_chunked_body_past_the_limit_is_413(tmp_path):
    env = {**CHANNELS_ENV, "DATABASE_URL": f"sqlite:///{tmp_path}/db", "MAX_BODY_BYTES": "4096"}
    with running_server(env) as url:
        port = int(url.rsplit(":", 1)[1])

        def chunked(body: bytes) -> tuple[int, Any]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                headers = {**basic_auth(), "Content-Type": "application/json"}
                conn.request("POST", "/callbacks/ums", iter([body]), headers, encode_chunked=True)
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        small = f'[{{"type": 4, "msgid": "m", "channelkey": "{CHANNEL}"}}]'.encode()
        assert chunked(small)[0] == 200
        padding = b" " * 5000  # white space: still JSON, only too long
        status, answer = chunked(small[:-1] + padding + b"]")
        assert status == 413, answer


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL only")
def test_the_bounds_keep_postgresql_from_refusing_long_keys(client, engine, backend):
    if backend != "postgresql":
        pytest.skip("PostgreSQL's index row limit")
    batch = [
        record(4, userid="x" * 256, sender_id="s" * 256),
        record(4, userid="y" * 3000, sender_id="s"),
        record(4, userid="z"),
    ]
    response = post(client, batch)
    assert response.json["stored"] == 2 and response.json["quarantined"] == 1
    assert quarantined(engine)[0].reason == "record 1: userid is over 256 characters"


def test_times_read_back_in_any_server_time_zone(database_url, backend):
    """A record at the bound is stored and read back on a server whose zone is ahead
    of UTC (the year 10000 would begin there first); one past the bound is kept out."""
    if backend != "postgresql":
        pytest.skip("a server time zone is PostgreSQL's")
    url = make_url(database_url)
    options = url.query.get("options", "")
    shanghai = url.update_query_dict({"options": f"{options} -cTimeZone=Asia/Shanghai".strip()})
    app = create_app(
        {
            **CHANNELS_ENV,
            "DATABASE_URL": shanghai.render_as_string(hide_password=False),
            "API_TOKENS": API_TOKEN,
        }
    )
    try:
        client = app.test_client()
        at_bound = record(4, userid="last", sent_time=MAX_SENT_TIME)
        past = record(4, userid="past", sent_time=253_402_300_799_999)  # 9999-12-31T23:59:59.999
        answer = post(client, [at_bound, past]).json
        assert (answer["stored"], answer["quarantined"]) == (1, 1)
        for path in ("", "/timeline", "/targets"):
            assert api_get(client, f"/api/messages/{MSGID}{path}").status_code == 200
        listed = api_get(client, "/api/messages").json["messages"]
        assert [m["msgid"] for m in listed] == [MSGID]
        [event] = api_get(client, f"/api/messages/{MSGID}/timeline").json["events"]
        assert event["occurred_at"] == "9999-12-30T00:00:00+00:00"
    finally:
        app.extensions["umstrack.engine"].dispose()
