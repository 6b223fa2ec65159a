"""``umstrack bench --during-purge N``: intake alone, then intake while a purge removes N
expired events with their targets; prints both rates and their ratio. The expired set
is stored through the intake itself, as the callbacks of broadcasts of 60 days ago
(1,000 recipients each, over three days); on PostgreSQL those days get their
partitions first, as they would have had when their callbacks came.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from sender.http import basic_auth_header

from .bench import BenchOptions, Figures, Workload, post_all
from .config import Settings
from .db import make_engine, write_transaction
from .intake import record_batch
from .partitions import ensure_partitions, today
from .retention import PurgeResult, purge

log = logging.getLogger(__name__)

EXPIRED_DAYS_AGO = 60
KEEP_DAYS = 30
RECIPIENTS_PER_MESSAGE = 1000
PURGE_WARMUP = 100  # batches posted untimed first
PURGE_BATCHES = 300  # batches timed alone, and at most as many during the purge


@dataclass
class PurgeFigures:
    """Intake alone, intake during a purge, and the purge."""

    alone: Figures
    during: Figures
    purge: PurgeResult

    def report(self) -> str:
        alone = self.alone.stored / self.alone.seconds
        during = self.during.stored / self.during.seconds
        return "\n".join(
            [
                "intake alone",
                self.alone.report(),
                "intake during the purge",
                self.during.report(),
                f"purge        {self.purge.events} events, {self.purge.targets} targets and "
                f"{self.purge.messages} messages deleted, "
                f"{len(self.purge.partitions_dropped)} partitions dropped, "
                f"in {self.purge.seconds:.2f} s",
                f"ratio        {during / alone:.2f} (events/s during the purge / alone)",
            ]
        )


def fill_expired(engine: Engine, channelkey: str, events: int) -> None:
    """Store ``events`` callback events of broadcasts of 60 days ago."""
    first = today() - EXPIRED_DAYS_AGO
    for day in range(first, first + 3):
        ensure_partitions(engine, day=day)
    size = RECIPIENTS_PER_MESSAGE
    for n, start in enumerate(range(0, events, size)):
        day = first + n % 3
        arrived = datetime.fromtimestamp(day * 86400, UTC) + timedelta(hours=12)
        records: list[dict[str, Any]] = [
            {
                "type": 4,
                "channelkey": channelkey,
                "msgid": f"expired-{n}",
                "userid": f"user{i}",
                "sender": 1,
                "sent_time": int(arrived.timestamp()),
            }
            for i in range(min(size, events - start))
        ]
        with write_transaction(engine) as session:
            record_batch(
                session=session, channelkey=channelkey, records=records, received_at=arrived
            )


def run_during_purge(
    url: str, channel: str, options: BenchOptions, database_url: str, expired: int
) -> PurgeFigures:
    """Intake alone for ``options.batches`` batches (default 300, after 100 untimed),
    then as many batches more while a purge removes ``expired`` expired events (posting
    stops when the purge ends)."""
    channelkey = channel.split(":", 1)[0]
    engine = make_engine(Settings(database_url=database_url))
    try:
        log.info("storing %d expired events", expired)
        fill_expired(engine, channelkey, expired)
        auth = basic_auth_header(*channel.split(":", 1))
        workload = Workload("broadcast", channelkey, options.batch_size, f"{int(time.time())}")
        timed = options.batches or PURGE_BATCHES
        bodies = [workload.body(i) for i in range(PURGE_WARMUP + 2 * timed)]
        post_all(url, auth, bodies[:PURGE_WARMUP], options.posters)
        alone = post_all(url, auth, bodies[PURGE_WARMUP : PURGE_WARMUP + timed], options.posters)
        finished = threading.Event()
        results: list[PurgeResult] = []

        def purging() -> None:
            try:
                results.append(purge(engine, days=KEEP_DAYS))
            finally:
                finished.set()

        purger = threading.Thread(target=purging)
        purger.start()
        during = post_all(
            url, auth, bodies[PURGE_WARMUP + timed :], options.posters, until=finished
        )
        purger.join()
        return PurgeFigures(alone=alone, during=during, purge=results[0])
    finally:
        engine.dispose()
