"""SQLite writers of the service queue on a lock file instead of polling SQLite."""

from __future__ import annotations

import fcntl
import os
import threading

from receiver import create_app
from tests.helpers import CHANNELS_ENV, events, post, record


def test_writer_waits_its_turn_past_the_busy_timeout(tmp_path, engine_for_sqlite):
    url, engine = engine_for_sqlite
    app = create_app({"DATABASE_URL": url, "SQLITE_BUSY_TIMEOUT_MS": "100", **CHANNELS_ENV})
    holder = os.open(f"{tmp_path}/umstrack.db.writer-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another writer is in the middle of a batch
    answers: list[int] = []
    poster = threading.Thread(
        target=lambda: answers.append(post(app.test_client(), [record(4)]).status_code)
    )
    poster.start()
    poster.join(timeout=1.0)  # ten times the busy timeout
    assert poster.is_alive() and answers == []  # queued: neither failed nor written
    assert events(engine) == []

    os.close(holder)  # that writer is done
    poster.join(timeout=10)
    assert answers == [200]
    assert len(events(engine)) == 1
    app.extensions["umstrack.engine"].dispose()
