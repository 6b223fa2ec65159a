"""`umstrack demo`: emulator, gunicorn receiver and real sends, on one machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlmodel import Session

from receiver import read as queries
from receiver.cli import main
from receiver.demo import samples


def test_demo_runs_the_whole_loop(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/demo.db"
    result = runner.invoke(
        main,
        ["demo", "--exit", "--database-url", url],
        # The demo brings its own channel and database.
        env={"UMS_CHANNELS": "", "DATABASE_URL": "sqlite:////nonexistent/x.db"},
    )
    assert result.exit_code == 0, result.stderr[-3000:]

    titles = [title for title, _ in samples()]
    headings = [line for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert [heading.split(" (send ")[0] for heading in headings] == titles
    msgids = re.findall(r"^  (v:1t:\S+): ", result.stdout, re.MULTILINE)
    assert len(msgids) == len(titles) - 2 + 3 + 3  # personalised: 3 contents; 2,500: 3 parts
    timelines = re.findall(r"timeline: (http://127\.0\.0\.1:\d+/api/messages/\S+)", result.stdout)
    assert [t.split("/api/messages/")[1] for t in timelines] == [f"{m}/timeline" for m in msgids]
    assert "Serving on" not in result.stdout  # --exit: no serving on

    engine = create_engine(url)
    try:
        with Session(engine) as session:
            found = [queries.message_summary(session=session, msgid=m) for m in msgids]
    finally:
        engine.dispose()
    summaries = [summary.model_dump(mode="json") for summary in found if summary is not None]
    assert len(summaries) == len(msgids)
    for summary in summaries:
        assert summary["send"] == {"outcome": "sent", "code": 0, "message": "success"}
        assert summary["send_id"] and summary["sent_at"]
        assert sum(summary["counts"].values()) > 0  # and the callbacks came back
        assert summary["params"]["umstrack_send"] == summary["send_id"]
    split = [s for s in summaries if s["sendno"] == "demo-newsletter"]
    assert sorted(s["part"] for s in split) == [0, 1, 2]
    assert sum(s["targets"]["total"] for s in split) == 2500
