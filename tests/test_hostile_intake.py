"""Hostile input at the callback intake (issue 11): every record past a bound is
quarantined with a reason naming its field and the rest of its batch is stored; a
batch is refused whole only for auth, size, a body that is not an array/object, or
more than 1000 records. Never a 5xx. Every test runs on every backend."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from werkzeug.test import EnvironBuilder, run_wsgi_app

from receiver import create_app
from receiver.local import running_server
from tests.helpers import (
    CHANNEL,
    MSGID,
    SENT_TIME,
    basic_auth,
    events,
    post,
    quarantined,
    record,
    targets,
)
from tests.hostile_cases import HOSTILE_RECORDS, ODD_RECORDS, HostileRecord, OddRecord

GOOD_BEFORE = record(4, userid="good-before")
GOOD_AFTER = record(4, userid="good-after")
LIMIT = 4096  # MAX_BODY_BYTES of the apps the size tests make


def between_good(record_text: str) -> str:
    """A batch of three as JSON text: a good record, the one given, a good record."""
    return f"[{json.dumps(GOOD_BEFORE)},{record_text},{json.dumps(GOOD_AFTER)}]"


def assert_only_good_stored(engine) -> None:
    assert sorted(e.userid for e in events(engine)) == ["good-after", "good-before"]
    assert sorted(recipient for _, recipient, _ in targets(engine)) == [
        "good-after",
        "good-before",
    ]


def test_the_corpus_is_large_enough():
    assert len(HOSTILE_RECORDS) >= 60 and len(ODD_RECORDS) >= 20
    assert len({case.id for case in HOSTILE_RECORDS}) == len(HOSTILE_RECORDS)
    for case in HOSTILE_RECORDS:  # each case's text is one record carrying its id
        assert f'"hostile_case": "{case.id}"' in case.text


@pytest.mark.parametrize("case", HOSTILE_RECORDS, ids=lambda case: case.id)
def test_hostile_record_is_quarantined_and_its_batch_stored(client, engine, case: HostileRecord):
    response = post(client, between_good(case.text))

    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.json == {"received": 3, "stored": 2, "duplicates": 0, "quarantined": 1}
    assert_only_good_stored(engine)
    (kept,) = quarantined(engine)
    assert kept.reason.startswith("record 1: "), kept.reason[:300]
    assert case.field in kept.reason.removeprefix("record 1: "), kept.reason[:300]
    assert kept.channelkey == CHANNEL
    assert case.id in kept.raw  # the hostile record itself is what was kept


@pytest.mark.parametrize("case", HOSTILE_RECORDS, ids=lambda case: case.id)
def test_hostile_record_posted_again_is_quarantined_once(client, engine, case: HostileRecord):
    body = between_good(case.text)
    post(client, body)
    again = post(client, body)
    assert again.status_code == 200
    assert again.json == {"received": 3, "stored": 0, "duplicates": 2, "quarantined": 1}
    assert len(quarantined(engine)) == 1 and len(events(engine)) == 2


def test_every_hostile_record_in_one_batch(client, engine):
    """The whole corpus in one batch, a good record after each hostile one: each reason
    carries its record's own index."""
    texts, goods = [], []
    for n, case in enumerate(HOSTILE_RECORDS):
        good = record(4, userid=f"good-{n:03d}")
        texts += [case.text, json.dumps(good)]
        goods.append(good["userid"])
    response = post(client, "[" + ",".join(texts) + "]")

    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    count = len(HOSTILE_RECORDS)
    assert response.json == {
        "received": 2 * count,
        "stored": count,
        "duplicates": 0,
        "quarantined": count,
    }
    assert sorted(e.userid for e in events(engine)) == goods
    kept = {q.reason.split(":", 1)[0]: q for q in quarantined(engine)}
    assert sorted(kept) == sorted(f"record {2 * n}" for n in range(count))
    for n, case in enumerate(HOSTILE_RECORDS):
        assert case.id in kept[f"record {2 * n}"].raw


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        pytest.param("[1, 2]", "an array", id="array"),
        pytest.param('"x"', "a string", id="string"),
        pytest.param("null", "null", id="null"),
        pytest.param("42", "a number", id="number"),
        pytest.param("true", "a boolean", id="bool"),
        pytest.param("1e400", "a number", id="1e400"),
    ],
)
def test_record_that_is_not_an_object_is_quarantined(client, engine, raw, kind):
    response = post(client, between_good(raw))
    assert response.status_code == 200
    assert response.json["quarantined"] == 1 and response.json["stored"] == 2
    assert_only_good_stored(engine)
    (kept,) = quarantined(engine)
    assert kept.reason == f"record 1: not a JSON object but {kind}"


@pytest.mark.parametrize("case", ODD_RECORDS, ids=lambda case: case.id)
def test_odd_but_valid_record_is_stored(client, engine, case: OddRecord):
    odd = record(case.type_, **{"userid": "odd", **case.fields})
    response = post(client, [GOOD_BEFORE, odd, GOOD_AFTER])

    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert quarantined(engine) == []
    assert response.json == {"received": 3, "stored": 3, "duplicates": 0, "quarantined": 0}
    (event,) = [e for e in events(engine) if e.userid not in ("good-before", "good-after")]
    assert event.raw == odd
    assert event.msgid == odd["msgid"] and event.userid == odd["userid"]
    assert event.sender_id == odd["sender_id"] and event.sender == odd["sender"]
    assert event.channelkey == CHANNEL and event.params == odd["params"]
    assert event.app_sender == odd.get("app_sender")
    assert event.wechatwk_sender == odd.get("wechatwk_sender")
    if "app_platform" in odd:
        assert event.app_platform == str(odd["app_platform"])
    assert event.sent_time == odd["sent_time"]
    error = odd.get("error") or {}
    code = error.get("code")
    assert event.error_code == (None if code is None else int(code))
    assert event.error_message == error.get("message")
    assert (odd["msgid"], odd["userid"], odd["sender"]) in targets(engine)


@pytest.mark.parametrize(
    ("sent_time", "occurred_at"),
    [
        pytest.param(0, datetime(1970, 1, 1, tzinfo=UTC), id="zero"),
        pytest.param(10**11 - 1, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC), id="last-second"),
        pytest.param(10**11, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC), id="first-millisecond"),
        pytest.param(253_402_128_000_000, datetime(9999, 12, 30, tzinfo=UTC), id="bound"),
    ],
)
def test_sent_time_at_the_edges_reads_back(client, engine, sent_time, occurred_at):
    assert post(client, [record(4, sent_time=sent_time)]).json["stored"] == 1
    (event,) = events(engine)
    assert event.occurred_at == occurred_at
    assert targets(engine)[(MSGID, "user1", 1)].reached_at == occurred_at


# Batch-level refusals.


@pytest.fixture
def small_app(env) -> Iterator:
    app = create_app({**env, "MAX_BODY_BYTES": str(LIMIT)})
    yield app
    app.extensions["umstrack.engine"].dispose()


def padded_batch(size: int) -> bytes:
    """Two good records as a JSON body of exactly ``size`` bytes (trailing spaces)."""
    body = json.dumps([GOOD_BEFORE, GOOD_AFTER]).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_body_at_the_size_limit_is_taken(small_app, engine):
    response = post(small_app.test_client(), padded_batch(LIMIT))
    assert response.status_code == 200 and response.json["stored"] == 2
    assert_only_good_stored(engine)


def test_body_over_the_size_limit_is_413(small_app, engine):
    response = post(small_app.test_client(), padded_batch(LIMIT + 1))
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert events(engine) == [] and quarantined(engine) == []


def chunked_post(app, body: bytes) -> tuple[int, dict]:
    """POST ``body`` to ``app`` as a server hands a chunked one over: no Content-Length,
    and ``wsgi.input_terminated`` set (gunicorn sets it for chunked bodies). Straight to
    the WSGI app: the test client would put a Content-Length back."""
    environ = EnvironBuilder(
        path="/callbacks/ums",
        method="POST",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**basic_auth(), "Transfer-Encoding": "chunked"},
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    answer, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(answer))


def test_chunked_body_under_the_limit_is_taken(small_app, engine):
    status, answer = chunked_post(small_app, padded_batch(LIMIT))
    assert (status, answer["stored"]) == (200, 2)
    assert_only_good_stored(engine)


@pytest.mark.parametrize("size", [LIMIT + 1, 100 * LIMIT], ids=["limit+1", "100x"])
def test_chunked_body_over_the_limit_is_413(small_app, engine, size):
    status, answer = chunked_post(small_app, padded_batch(size))
    assert status == 413, answer
    assert answer["error"] == "request_entity_too_large"
    assert events(engine) == [] and quarantined(engine) == []


@pytest.fixture
def small_server(env, tmp_path) -> Iterator[str]:
    served = {**env, "MAX_BODY_BYTES": str(LIMIT), "WEB_CONCURRENCY": "1"}
    with open(tmp_path / "serve.log", "w") as log, running_server(served, output=log) as url:
        yield url


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_bodies_over_real_http(small_server, engine):
    url = f"{small_server}/callbacks/ums"
    headers = {**basic_auth(), "Content-Type": "application/json"}
    with requests.Session() as http:
        small = http.post(url, data=chunks(padded_batch(LIMIT)), headers=headers, timeout=30)
        assert small.request.headers.get("Transfer-Encoding") == "chunked"
        assert small.status_code == 200 and small.json()["stored"] == 2
        big = http.post(url, data=chunks(padded_batch(50 * LIMIT)), headers=headers, timeout=30)
        assert big.request.headers.get("Transfer-Encoding") == "chunked"
        assert big.status_code == 413, big.text[:300]
        assert big.json()["error"] == "request_entity_too_large"
    assert_only_good_stored(engine)
    assert quarantined(engine) == []


def test_1000_records_are_one_batch(client, engine):
    batch = [record(4, userid=f"u{i:04d}") for i in range(1000)]
    response = post(client, batch)
    assert response.status_code == 200
    assert response.json == {"received": 1000, "stored": 1000, "duplicates": 0, "quarantined": 0}
    assert len(events(engine)) == 1000


def test_1001_records_are_refused_and_kept_once(client, engine):
    body = json.dumps([record(4, userid=f"u{i:04d}") for i in range(1001)])
    for _ in range(2):  # UMS retries a refused batch: still one row
        response = post(client, body)
        assert response.status_code == 400
        assert response.json["error"] == "bad_request"
        assert "1000" in response.json["message"]
    assert events(engine) == [] and targets(engine) == {}
    (kept,) = quarantined(engine)
    assert "1000" in kept.reason and kept.channelkey == CHANNEL
    assert kept.raw == body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "not JSON", id="broken"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"[{]", "not JSON", id="broken-array"),
        pytest.param(b'[{"type": 4, "msgid": "\xff\xfe"}]', "not JSON", id="invalid-utf8"),
        pytest.param(b"\x00\x00\x00[", "not JSON", id="nul-bytes"),
        pytest.param(b'[{"type": 4, "msgid": "m", "x": Infinity}]', "not valid JSON", id="inf"),
        pytest.param(b"42", "neither a JSON array nor an object", id="number"),
        pytest.param(b"1e400", "neither a JSON array nor an object", id="1e400"),
        pytest.param(b"null", "neither a JSON array nor an object", id="null"),
        pytest.param(b"true", "neither a JSON array nor an object", id="true"),
        pytest.param(b'"[]"', "neither a JSON array nor an object", id="string"),
    ],
)
def test_unusable_body_is_400_and_kept_once(client, engine, body, reason):
    for _ in range(2):
        response = post(client, body)
        assert response.status_code == 400
        assert response.json["error"] == "bad_request" and reason in response.json["message"]
    (kept,) = quarantined(engine)
    assert reason in kept.reason and kept.channelkey == CHANNEL
    assert events(engine) == []


@pytest.mark.parametrize("levels", [1000, 100_000], ids=["1000", "100000"])
def test_deeply_nested_array_body_is_never_a_server_error(client, engine, levels):
    # A batch whose one record is an array nested very deep: quarantined as a record
    # (200) or refused as a body (400), but kept once and never a 500.
    response = post(client, "[" * levels + "]" * levels)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    if response.status_code == 200:
        assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    else:
        assert response.json["error"] == "bad_request"
    assert events(engine) == []
    assert len(quarantined(engine)) == 1


def test_single_record_object_nested_1000_levels_is_quarantined(client, engine):
    body = json.dumps(record(4, params={"x": "__deep__"})).replace(
        '"__deep__"', '{"a":' * 1000 + "1" + "}" * 1000
    )
    response = post(client, body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    (kept,) = quarantined(engine)
    assert kept.reason.startswith("record 0: params")
    assert events(engine) == []


def test_a_good_record_after_a_hostile_batch_is_stored(client, engine):
    # Nothing of a hostile batch lingers: the next batch is stored as usual.
    post(client, "[" + ",".join(case.text for case in HOSTILE_RECORDS) + "]")
    response = post(client, [record(4, sent_time=SENT_TIME + 1)])
    assert response.json == {"received": 1, "stored": 1, "duplicates": 0, "quarantined": 0}
    assert [e.userid for e in events(engine)] == ["user1"]
