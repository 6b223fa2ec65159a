"""Tables. Event and target keys all start with ``msgid`` so that both tables can be
partitioned or distributed by message. On PostgreSQL they are partitioned by ``day``,
the UTC day their message was first stored (:mod:`receiver.partitions`), so that
expiring a day's rows drops whole partitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, SmallInteger, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints, so that later migrations can refer to them on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Queryable JSON: JSONB on PostgreSQL (containment filters on params).
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def belongs_on(obj: Any, dialect: str) -> bool:
    """Whether a schema object is created on ``dialect`` (Alembic's include_object):
    objects made conditional with ``ddl_if(dialect=...)`` exist on that one only."""
    condition = getattr(obj, "_ddl_if", None)
    wanted = getattr(condition, "dialect", None)
    return wanted is None or wanted == dialect or (isinstance(wanted, tuple) and dialect in wanted)


def _utc_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kwargs))


def day_of(moment: datetime) -> int:
    """The UTC day of ``moment``, counted in days since 1970-01-01."""
    return int(moment.timestamp() // 86400)


def _day_of_created_at(context: Any) -> int:
    # The column default of message.day: the day of the row's created_at, in every
    # INSERT (one row or many). Never updated after: a message's rows keep their day.
    return day_of(context.get_current_parameters()["created_at"])


def _day_key() -> Any:
    # Part of every key of the event and target tables: on PostgreSQL they are
    # partitioned by it, and a partitioned table's keys must hold its partition key.
    return Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


def _stage_type() -> Any:
    return Field(default=None, sa_column=Column(SmallInteger))


def _error_code() -> Any:
    return Field(default=None, sa_column=Column(BigInteger))


def _error_message() -> Any:
    return Field(default=None, sa_column=Column(Text))


class Message(SQLModel, table=True):
    """A message this service sent or has heard of through callbacks."""

    __tablename__ = "message"
    __table_args__ = (
        # The message list: newest first, keyset pages.
        Index("ix_message_created_at_msgid", "created_at", "msgid"),
        Index("ix_message_sendno", "sendno"),
        Index("ix_message_send_id", "send_id"),
        # Retention: the oldest days' messages first.
        Index("ix_message_day", "day", "msgid"),
        # Filters on callback params (param.order_id=123) by JSONB containment.
        Index(
            "ix_message_params",
            "params",
            postgresql_using="gin",
            postgresql_ops={"params": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    msgid: str = Field(sa_column=Column(Text, primary_key=True))
    provider: str = Field(sa_column=Column(Text, nullable=False))  # "ums", "rongcloud"
    channelkey: str | None = Field(default=None, sa_column=Column(Text))
    sendno: str | None = Field(default=None, sa_column=Column(Text))
    # The sender's callback params (for messages heard of first through callbacks,
    # those the first callback echoed).
    params: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONDocument))
    # Set when this service sent the message: what it sent and what came back.
    request: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    sent_at: datetime | None = _utc_column()
    send_code: int | None = Field(default=None, sa_column=Column(BigInteger))
    send_message: str | None = Field(default=None, sa_column=Column(Text))
    # One send of this service may need several requests (audiences over 1000 ids,
    # personalised contents): they share send_id (also the callbacks' umstrack_send
    # param) and are numbered by part.
    send_id: str | None = Field(default=None, sa_column=Column(Text))
    part: int | None = Field(default=None, sa_column=Column(Integer))
    # A send is recorded before it leaves ("pending", under umstrack:<send_id>:<part>
    # until UMS names a msgid) and completed when the provider answers: "sent",
    # "refused", "not_sent" or "unknown". A row still pending after send_deadline (the
    # longest its request can take) was cut off by a crash: its outcome is unknown.
    send_state: str | None = Field(default=None, sa_column=Column(Text))
    send_deadline: datetime | None = _utc_column()
    # A withdraw through this service (POST /v1/retract/{msgid}): recorded before it
    # leaves ("pending"), then "accepted", "refused" or "unknown", with UMS's answer.
    withdraw_state: str | None = Field(default=None, sa_column=Column(Text))
    withdraw_requested_at: datetime | None = _utc_column()
    withdraw_deadline: datetime | None = _utc_column()  # pending after it: unknown
    withdraw_answered_at: datetime | None = _utc_column()
    withdraw_code: int | None = Field(default=None, sa_column=Column(BigInteger))
    withdraw_message: str | None = Field(default=None, sa_column=Column(Text))
    # When this service first knew of the message (sent it, or heard of it).
    created_at: datetime = _utc_column(nullable=False)
    # The UTC day of created_at when the row was first stored (days since 1970-01-01),
    # never changed after: the day its events and targets are kept under, and expire by.
    day: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=False, default=_day_of_created_at)
    )


class Event(SQLModel, table=True):
    """One status callback record, stored once however often UMS delivers it."""

    __tablename__ = "event"
    __table_args__ = (
        # Timelines: one message's events in time order, read by keyset pages. As it
        # holds the type, a summary's counts come from the index alone on PostgreSQL.
        # day (one per message) after msgid: a read that names the message's day (to
        # read one partition) still finds everything it needs in the index.
        Index(
            "ix_event_timeline", "msgid", "day", "occurred_at", "received_at", "type", "event_key"
        ),
        # A recipient's history across messages, newest first (by userid or sender_id).
        Index("ix_event_userid", "userid", "occurred_at"),
        Index("ix_event_sender_id", "sender_id", "occurred_at"),
        {"postgresql_partition_by": "RANGE (day)"},
    )

    msgid: str = Field(sa_column=Column(Text, primary_key=True))
    # Digest of the record's canonical JSON: a provider retry has the same key.
    event_key: str = Field(sa_column=Column(Text, primary_key=True))
    type: int = Field(sa_column=Column(SmallInteger, nullable=False))
    channelkey: str = Field(sa_column=Column(Text, nullable=False))
    userid: str | None = Field(default=None, sa_column=Column(Text))
    sender_id: str | None = Field(default=None, sa_column=Column(Text))
    sender: int | None = Field(default=None, sa_column=Column(SmallInteger))
    wechatwk_sender: int | None = Field(default=None, sa_column=Column(SmallInteger))
    # The SDK sends an int index, the doc may send a name: kept as given, as text.
    app_platform: str | None = Field(default=None, sa_column=Column(Text))
    app_sender: int | None = Field(default=None, sa_column=Column(SmallInteger))
    sent_time: int | None = Field(default=None, sa_column=Column(BigInteger))
    # From sent_time (seconds or milliseconds); the arrival time when UMS gave none.
    occurred_at: datetime = _utc_column(nullable=False)
    error_code: int | None = Field(default=None, sa_column=Column(BigInteger))
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    params: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONDocument))
    raw: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime = _utc_column(nullable=False)
    day: int = _day_key()  # its message's


class Target(SQLModel, table=True):
    """The current status of one recipient of one message on one channel."""

    __tablename__ = "target"
    __table_args__ = (
        # A message's targets in one status (filters, counts by status).
        Index("ix_target_status", "msgid", "day", "type", "recipient", "sender"),
        {"postgresql_partition_by": "RANGE (day)"},
    )

    msgid: str = Field(sa_column=Column(Text, primary_key=True))
    # userid when UMS gives one, else sender_id.
    recipient: str = Field(sa_column=Column(Text, primary_key=True))
    # UMS `sender` (channel); -1 when the records name none.
    sender: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    userid: str | None = Field(default=None, sa_column=Column(Text))
    sender_id: str | None = Field(default=None, sa_column=Column(Text))
    # Set when any of its records had it: tells WeCom from 5G messaging (both sender 9).
    wechatwk_sender: int | None = Field(default=None, sa_column=Column(SmallInteger))
    type: int = Field(sa_column=Column(SmallInteger, nullable=False))
    rank: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # When the current status was first reached.
    reached_at: datetime = _utc_column(nullable=False)
    event_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _utc_column(nullable=False)
    # Each stage's outcome, merged by the same rule as the current status (a success
    # beats a failure; an equal status keeps the earlier time): the type reached (null:
    # never heard of), when, and the error of a failure. Engagement has no failure.
    validation_type: int | None = _stage_type()
    validation_at: datetime | None = _utc_column()
    validation_error_code: int | None = _error_code()
    validation_error_message: str | None = _error_message()
    submission_type: int | None = _stage_type()
    submission_at: datetime | None = _utc_column()
    submission_error_code: int | None = _error_code()
    submission_error_message: str | None = _error_message()
    delivery_type: int | None = _stage_type()
    delivery_at: datetime | None = _utc_column()
    delivery_error_code: int | None = _error_code()
    delivery_error_message: str | None = _error_message()
    engagement_type: int | None = _stage_type()
    engagement_at: datetime | None = _utc_column()
    withdrawal_type: int | None = _stage_type()
    withdrawal_at: datetime | None = _utc_column()
    withdrawal_error_code: int | None = _error_code()
    withdrawal_error_message: str | None = _error_message()
    day: int = _day_key()  # its message's


class Quarantine(SQLModel, table=True):
    """Input the intake could not use, kept verbatim with the reason."""

    __tablename__ = "quarantine"
    __table_args__ = (
        # The quarantine list: newest first, keyset pages, by cause or channel.
        Index("ix_quarantine_received_at_id", "received_at", "id"),
        Index("ix_quarantine_cause", "cause", "received_at", "id"),
        Index("ix_quarantine_channelkey", "channelkey", "received_at", "id"),
    )

    # SQLite only auto-increments a column declared INTEGER PRIMARY KEY.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    # Digest of reason and raw text: a retried bad batch is not kept twice.
    quarantine_key: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    channelkey: str | None = Field(default=None, sa_column=Column(Text))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    # The reason without the record's place in its batch ("record 3: "): what the
    # list filters and counts by.
    cause: str = Field(sa_column=Column(Text, nullable=False))
    raw: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = _utc_column(nullable=False)
    # Set by `umstrack quarantine replay`: when the input was last run through the
    # intake again, and what came of it (stored, duplicate, or quarantined: <reason>).
    replayed_at: datetime | None = _utc_column()
    replay_result: str | None = Field(default=None, sa_column=Column(Text))


class IdempotencyKey(SQLModel, table=True):
    """An ``Idempotency-Key`` of ``POST /api/messages``: the body it came with, the send
    it started (claimed in the transaction that records the send before it leaves) and,
    once known, the answer, given again to every retry with that key."""

    __tablename__ = "idempotency_key"

    key: str = Field(sa_column=Column(Text, primary_key=True))
    body_digest: str = Field(sa_column=Column(Text, nullable=False))
    send_id: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _utc_column(nullable=False)
    status: int | None = Field(default=None, sa_column=Column(SmallInteger))
    answer: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    answered_at: datetime | None = _utc_column()


class MessageActivity(SQLModel, table=True):
    """How many batches stored new events of a message, counted in slots (one per
    database session, by its server process on PostgreSQL) so that concurrent batches
    of one broadcast seldom wait on one row. The sum only grows while the message is
    kept: a summary kept with the sum read before it was computed is current as long
    as the sum is unchanged (see receiver.kept)."""

    __tablename__ = "message_activity"

    msgid: str = Field(sa_column=Column(Text, primary_key=True))
    slot: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    batches: int = Field(sa_column=Column(BigInteger, nullable=False))


class KeptSummary(SQLModel, table=True):
    """A big message's summary figures (counts, funnel, top errors, stage timings),
    kept once computed, with the activity sum read before they were: a read while the
    sum is unchanged takes them from here instead of reading every target again."""

    __tablename__ = "kept_summary"

    msgid: str = Field(sa_column=Column(Text, primary_key=True))
    activity: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The figures as JSON text (receiver.kept.Figures).
    figures: str = Field(sa_column=Column(Text, nullable=False))
    computed_at: datetime = _utc_column(nullable=False)
