"""The PostgreSQL intake's server-side function: the one the intake's rules build, as
the newest migration made it, and claiming messages as the SQLite path does."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from receiver.models import Message, day_of
from receiver.store.postgresql import STORE_FUNCTION, function_body
from tests.helpers import CHANNEL, events, post, record


def test_the_migrated_function_is_the_one_the_rules_build(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL function")
    # A change of the rules (receiver.store) needs a migration that replaces the
    # function with the new body: the database runs what migrations made.
    with engine.connect() as conn:
        source, config = conn.execute(
            text(
                "SELECT prosrc, proconfig FROM pg_proc WHERE proname = :name"
                " AND pronamespace = CAST(current_schema() AS regnamespace)"
            ),
            {"name": STORE_FUNCTION},
        ).one()
    assert source == function_body()
    assert config == ["plan_cache_mode=force_generic_plan"]


def test_a_batch_of_new_messages_claims_each_with_its_first_params(client, engine) -> None:
    # Out of msgid order, the first record of m-2 without params, m-1's tracking param
    # not a string: each message takes the first params its records echo, and the send
    # it names when that is a string.
    batch = [
        record(2, msgid="m-2", userid="u1", params=None),
        record(0, msgid="m-1", userid="u1", params={"umstrack_send": 7}),
        record(2, msgid="m-2", userid="u2", params={"umstrack_send": "s-2", "n": 1}),
        record(4, msgid="m-2", userid="u1", params={"umstrack_send": "s-other"}),
        record(2, msgid="m-1", userid="u2", params={"order_id": "later"}),
    ]
    response = post(client, batch)
    assert response.status_code == 200, response.json
    assert response.json == {"received": 5, "stored": 5, "duplicates": 0, "quarantined": 0}
    with Session(engine) as session:
        rows = {m.msgid: m for m in session.exec(select(Message))}
    assert rows.keys() == {"m-1", "m-2"}
    assert rows["m-1"].params == {"umstrack_send": 7} and rows["m-1"].send_id is None
    assert rows["m-2"].params == {"umstrack_send": "s-2", "n": 1}
    assert rows["m-2"].send_id == "s-2"
    for row in rows.values():
        assert row.provider == "ums" and row.channelkey == CHANNEL
        assert row.day == day_of(row.created_at)
    assert sorted((e.msgid, e.day) for e in events(engine)) == sorted(
        (r["msgid"], rows[r["msgid"]].day) for r in batch
    )
