"""Exports: a message's targets and timeline as CSV or NDJSON, from the API and the
command line, streamed in bounded memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from typing import Any

import pytest
from pydantic import BaseModel

from receiver import export
from receiver.schemas.messages import Event, EventError, Target
from tests.cli import invoke
from tests.helpers import MSGID, SENT_TIME, api_get, bearer, post, record, walk

TARGETS = f"/api/messages/{MSGID}/targets"
TIMELINE = f"/api/messages/{MSGID}/timeline"
AWKWARD = 'a, "quoted"\nline'


def _csv(response: Any) -> list[list[str]]:
    body = response.data
    assert body.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte order mark"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _ndjson(data: bytes) -> list[dict[str, Any]]:
    text = data.decode("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _post_all(client, records: list[dict]) -> None:
    for start in range(0, len(records), 1000):
        batch = records[start : start + 1000]
        assert post(client, batch).json["stored"] == len(batch)


def _mixed(client) -> None:
    _post_all(
        client,
        [
            record(4, userid="张三", params={"订单": "一二三", "note": "=HYPERLINK(1)"}),
            record(5, userid="=cmd|' /C calc'!A0", sender=5),
            record(2, userid=AWKWARD, sender=2),
            record(6, userid="+1 555", sender=1),
            record(3, userid="@sum", sender=3),
        ],
    )


def test_csv_is_utf8_with_bom_header_and_safe_cells(client):
    _mixed(client)
    response = api_get(client, TARGETS, format="csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="v_1t_1603707455p_27133n_2-targets.csv"'
    )
    header, *rows = _csv(response)
    assert header == export.columns(Target)
    by_userid = {row[header.index("userid")]: row for row in rows}
    assert len(rows) == 5
    assert AWKWARD in by_userid  # comma, quotes and a newline survive csv.reader
    assert "张三" in by_userid
    # A cell a spreadsheet would run as a formula is shown as text.
    assert {"'=cmd|' /C calc'!A0", "'+1 555", "'@sum"} <= set(by_userid)
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_csv_flattens_nested_values_to_dotted_columns(client):
    _mixed(client)
    header, *rows = _csv(api_get(client, TIMELINE, format="csv"))
    assert header == export.columns(Event)
    assert {"error.code", "error.message", "params"} <= set(header)
    assert "error" not in header
    failed = next(r for r in rows if r[header.index("status")] == "delivery_failed")
    assert failed[header.index("error.code")] == "3005"
    assert failed[header.index("error.message")] == "failure of type 5"
    chinese = next(r for r in rows if r[header.index("userid")] == "张三")
    assert chinese[header.index("error.code")] == ""
    # params as compact JSON text, Chinese intact (its "=" value is inside the JSON).
    assert json.loads(chinese[header.index("params")]) == {
        "订单": "一二三",
        "note": "=HYPERLINK(1)",
    }
    assert '"订单":"一二三"' in chinese[header.index("params")]  # compact, not escaped


class _Stage(BaseModel):
    status: str
    at: str
    error: EventError | None


class _StagedTarget(Target):
    stages: dict[str, _Stage]


def test_stage_columns_are_fixed_whichever_stages_a_row_has():
    # Fields added to the item models later become columns: stages by their five
    # names, so the header does not depend on the first row.
    header = export.columns(_StagedTarget)
    stage_columns = [c for c in header if c.startswith("stages.")]
    assert len(stage_columns) == 20
    assert stage_columns[:4] == [
        "stages.validation.status",
        "stages.validation.at",
        "stages.validation.error.code",
        "stages.validation.error.message",
    ]
    assert "stages.withdrawal.error.message" in stage_columns
    item = _StagedTarget(
        recipient="u",
        userid="u",
        sender_id=None,
        sender=1,
        channel="app",
        status="delivery_failed",
        reached_at="2026-01-01T00:00:00+00:00",
        event_count=2,
        stages={
            "delivery": _Stage(
                status="delivery_failed", at="x", error=EventError(code=5, message="m")
            )
        },
    )
    row = dict(zip(header, export.cells(header, item), strict=True))
    assert row["stages.delivery.status"] == "delivery_failed"
    assert row["stages.delivery.error.code"] == "5"
    assert row["stages.validation.status"] == ""
    assert row["sender_id"] == ""


def test_ndjson_lines_are_the_paged_items(client):
    _post_all(
        client,
        [record(t, userid=f"u{i}", sent_time=SENT_TIME + i) for i in range(120) for t in (2, 4)],
    )
    for path, items, name in ((TARGETS, "targets", "targets"), (TIMELINE, "events", "events")):
        response = api_get(client, path, format="ndjson")
        assert response.status_code == 200
        assert response.mimetype == "application/x-ndjson"
        assert response.headers["Content-Disposition"].endswith(f'-{name}.ndjson"')
        assert _ndjson(response.data) == walk(client, path, items, limit=7)


def test_five_thousand_targets_export_as_walked(client):
    _post_all(client, [record(4, userid=f"user{i:05d}", sender=1 + i % 3) for i in range(5000)])
    walked = walk(client, TARGETS, "targets", limit=1000)
    assert len(walked) == 5000
    assert _ndjson(api_get(client, TARGETS, format="ndjson").data) == walked
    header, *rows = _csv(api_get(client, TARGETS, format="csv"))
    assert rows == [export.cells(header, Target.model_validate(t)) for t in walked]


def test_filters_apply_to_exports(client):
    _mixed(client)
    walked = walk(client, TARGETS, "targets", status="delivered")
    assert [t["status"] for t in walked] == ["delivered"]
    exported = _ndjson(api_get(client, TARGETS, format="ndjson", status="delivered").data)
    assert exported == walked
    header, *rows = _csv(api_get(client, TARGETS, format="csv", status="delivery_failed"))
    assert [r[header.index("status")] for r in rows] == ["delivery_failed"]


@pytest.mark.parametrize("path", [TARGETS, TIMELINE])
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"format": "csv", "limit": "10"}, "limit"),
        ({"format": "ndjson", "cursor": "abc"}, "cursor"),
        ({"format": "xlsx"}, "format"),
        ({"format": "csv", "format2": "x"}, "format2"),
    ],
)
def test_exports_refuse_paging_and_unknown_formats(client, path, query, parameter):
    _mixed(client)
    response = api_get(client, path, **query)
    assert response.status_code == 400
    assert response.json["message"].startswith(f"{parameter}:"), response.json


def test_export_of_an_unknown_message_is_404(client):
    for path in ("/api/messages/nope/targets", "/api/messages/nope/timeline"):
        response = api_get(client, path, format="csv")
        assert response.status_code == 404
        assert response.json["error"] == "not_found"


def test_export_needs_a_token(client):
    _mixed(client)
    assert client.get(TARGETS, query_string={"format": "csv"}).status_code == 401


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize(("what", "path"), [("targets", TARGETS), ("events", TIMELINE)])
def test_the_command_writes_what_the_api_exports(client, database_url, tmp_path, fmt, what, path):
    _mixed(client)
    expected = api_get(client, path, format=fmt).data
    env = {"DATABASE_URL": database_url}
    result = invoke("export", MSGID, "--what", what, "--format", fmt, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected
    output = tmp_path / "out"
    result = invoke(
        "export", MSGID, "--what", what, "--format", fmt, "--output", str(output), env=env
    )
    assert result.exit_code == 0, result.stderr
    assert output.read_bytes() == expected


def test_the_command_refuses_an_unknown_message(client, database_url):
    result = invoke("export", "nope", env={"DATABASE_URL": database_url})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["umstrack: no message 'nope' is known"]


def test_the_command_help_names_its_setting():
    result = invoke("export", "--help", env={})
    assert result.exit_code == 0
    assert "DATABASE_URL" in result.stdout
    assert "--what" in result.stdout and "--format" in result.stdout


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_an_export_streams_in_bounded_memory(client, fmt):
    # 20,000 events: built whole, their items and text take tens of megabytes.
    _post_all(
        client,
        [
            record(t, userid=f"user{i:05d}", sent_time=SENT_TIME + i)
            for i in range(10_000)
            for t in (2, 4)
        ],
    )
    tracemalloc.start()
    try:
        response = client.get(
            TIMELINE, query_string={"format": fmt}, headers=bearer(), buffered=False
        )
        assert response.status_code == 200
        size = lines = 0
        tracemalloc.reset_peak()
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines >= 20_000
    assert size > 2_500_000  # the whole export went through
    # About 4 MB in batches of 500; read whole, 9 MB (CSV) and 19 MB (NDJSON).
    assert peak < 6_000_000, f"peak {peak} bytes while streaming"
