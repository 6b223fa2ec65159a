"""Recording a request of a send, whichever provider it went to: its ``message`` row
and, where the provider sends no status callbacks, one event per recipient."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ..db import write_transaction
from ..intake import record_batch
from ..store import record_send
from .outcome import SendPart

log = logging.getLogger(__name__)


def record_part(
    engine: Engine,
    *,
    provider: str,
    channelkey: str,
    send_id: str,
    part: SendPart,
    request: dict[str, Any],
    params: dict[str, Any] | None,
    sent_at: datetime,
    sendno: str | None = None,
    events: Sequence[dict[str, Any]] = (),
) -> None:
    """Record one request under ``part.recorded_as``, with ``events`` (records shaped like
    UMS callback records), in one transaction."""
    assert part.recorded_as is not None, "a part that was not sent is not recorded"
    with write_transaction(engine) as session:
        # First, so that the row is ours, not one made for the events.
        record_send(
            session,
            msgid=part.recorded_as,
            provider=provider,
            channelkey=channelkey,
            sendno=sendno,
            params=params,
            request=request,  # auth travels in headers: the body holds no secret
            code=part.code,
            message=part.message,
            send_id=send_id,
            part=part.number,
            sent_at=sent_at,
        )
        quarantined = 0
        if events:
            batch = record_batch(
                session=session, channelkey=channelkey, records=events, received_at=sent_at
            )
            quarantined = batch.quarantined
    if quarantined:
        log.warning(
            "%s send %s part %d: %d recipient events could not be stored (kept in quarantine)",
            provider,
            send_id,
            part.number,
            quarantined,
        )
