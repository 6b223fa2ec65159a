"""``Idempotency-Key`` for sends: the same key with the same body gets the first answer
again and never sends again; the same key with another body is refused.

A key is claimed in the transaction that records a send before it leaves (so a send
and its key are recorded together or not at all), and its answer is kept once known.
A request that is refused before anything is recorded (an invalid message, no
channel) claims nothing: the key stays free for the corrected request, as Stripe's
idempotent requests do it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..models import IdempotencyKey

KEYS: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
MAX_KEY_CHARS: Final = 255
# How long a retry waits for the first request's answer before saying it is in flight.
WAIT_SECONDS: Final = 10.0
_POLL_SECONDS: Final = 0.05

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A key and the digest of the body it came with."""

    key: str
    body_digest: str

    @classmethod
    def of(cls, key: str, body: Any) -> Claim:
        """The claim of ``key`` for a parsed JSON body (its canonical form: key order and
        spacing do not make another body)."""
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(key=key, body_digest=digest)


@dataclass(frozen=True)
class Replay:
    """What the first request with a key left: its answer, or only its send when the
    answer is not known (still in flight, or cut off by a crash or the database)."""

    send_id: str
    status: int | None
    answer: dict[str, Any] | None


class KeyTakenError(Exception):
    """Another request claimed the key first (raced, or came before)."""


class KeyReusedError(Exception):
    """The key was used before with another body."""


def key_problem(key: str) -> str | None:
    """Why a header value cannot be a key, or None."""
    if not key or len(key) > MAX_KEY_CHARS:
        return f"must be 1 to {MAX_KEY_CHARS} characters"
    if not key.isascii() or not key.isprintable():
        return "must be printable ASCII"
    return None


def claim_key(session: Session, claim: Claim, *, send_id: str, now: datetime) -> None:
    """Claim the key for ``send_id`` in the session's transaction; KeyTakenError when it
    is already claimed."""
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[
        session.get_bind().dialect.name
    ]
    row = {"key": claim.key, "body_digest": claim.body_digest, "send_id": send_id}
    statement = (
        insert(KEYS).values(created_at=now, **row).on_conflict_do_nothing().returning(KEYS.c.key)
    )
    if session.execute(statement).first() is None:
        raise KeyTakenError(claim.key)


def replay(engine: Engine, claim: Claim, *, wait: float = WAIT_SECONDS) -> Replay | None:
    """What the first request with this key left, or None when the key is new; waits up
    to ``wait`` seconds for an answer still in flight. KeyReusedError for another body."""
    deadline = time.monotonic() + wait
    while True:
        with Session(engine) as session:
            row = session.execute(select(KEYS).where(KEYS.c.key == claim.key)).mappings().first()
        if row is None:
            return None
        if row["body_digest"] != claim.body_digest:
            raise KeyReusedError(claim.key)
        if row["status"] is not None or time.monotonic() >= deadline:
            return Replay(send_id=row["send_id"], status=row["status"], answer=row["answer"])
        time.sleep(_POLL_SECONDS)


def remember(engine: Engine, claim: Claim, *, status: int, answer: dict[str, Any]) -> None:
    """Keep the first answer for every retry; if the database fails now, retries learn
    only that the send may have gone out (never that it did not)."""
    try:
        with write_transaction(engine) as session:
            session.execute(
                update(KEYS)
                .where(KEYS.c.key == claim.key, KEYS.c.status.is_(None))
                .values(status=status, answer=answer, answered_at=datetime.now(UTC))
            )
    except SQLAlchemyError as exc:
        log.error(
            "could not keep the answer for an Idempotency-Key (%s): retries will be told "
            "the outcome is unknown",
            type(exc).__name__,
        )
