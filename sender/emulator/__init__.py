"""A local UMS: the send and withdraw APIs, and status callbacks delivered the way UMS does.

The emulator answers ``POST /v1/sent``, ``/v1/broadcast``, ``/v1/template/sent``,
``/v1/template/broadcast`` and ``/v1/retract/{msgid}`` like UMS (Basic auth of a
configured channel, the business codes of ``sender.ums_rules``), plays each target's
lifecycle with a seeded random outcome, and POSTs the status records to the callback
URL in UMS's batches, with UMS's echostr verification and retry rules
(providers.md sections 1-4). Inspection, on the same port and without auth:
``GET /_emulator/state`` (what was sent, what the receivers answered),
``GET /_emulator/idle?timeout=S`` (waits until nothing is pending) and
``GET /_emulator/records?msgid=M`` (the records made, in order).

Decisions where UMS's documents are silent:

- A withdraw of a msgid this channel never sent (or sent over 24 h ago) answers HTTP 400
  with 4004 (invalid parameter): UMS documents no "message not found" code.
- ``error.code`` values inside records are made up (1001, 3001, 5001, 8001-8003): no
  public table exists.
- Targets: each aud_userid, and ``users_per_tag`` made-up users per tag and per segment
  (``broadcast_users`` for a broadcast), on one channel per msg_xxx; custom channel ids
  are their own targets (userid ""). A template send reaches ``template_channels``
  (default SMS and e-mail), plus APP when ``app_para`` is given.
- Withdraw: every target a channel took gets withdrawn (7) or withdraw failed (8); a
  clicked target, or a delivered SMS or e-mail, cannot be taken back.
- A callback URL that fails verification is not called; its records are dropped. The
  next send naming it verifies it again, as saving it again in the console would.
- Outcomes come from ``random.Random(f"{seed}:{n}")`` for the n-th send, and faults from
  a stream of their own, so a seed replays the same records whatever the timing.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import requests

from ..errors import InvalidMessageError
from ..ums.protocol import (
    ALREADY_WITHDRAWN,
    AUTH_FAILED,
    FAILURE_TYPES,
    INVALID_PARAMETER,
    SERVER_ERROR,
    STATUS_BY_TYPE,
    SendKind,
)
from ..ums.rules import CUSTOM_AUDIENCES, MSG_CHANNELS, validate_message

logger = logging.getLogger(__name__)

# UMS documents no code for "no such message"; 4004 (invalid parameter) is the closest.
MESSAGE_NOT_FOUND: Final = INVALID_PARAMETER
WITHDRAW_WINDOW_SECONDS: Final = 24 * 3600
MAX_REQUEST_BYTES: Final = 16 << 20
MAX_IDLE_WAIT_SECONDS: Final = 300.0
DEFAULT_PORT: Final = 8001
CALLBACK_URL_ENV: Final = "UMS_EMULATOR_CALLBACK_URL"

TARGET_VALID, TARGET_INVALID, SUBMITTED, SUBMIT_FAILED = 0, 1, 2, 3
DELIVERED, DELIVERY_FAILED, CLICKED, WITHDRAWN, WITHDRAW_FAILED = 4, 5, 6, 7, 8

_SEND_PATHS: Final[Mapping[str, SendKind]] = {
    "/v1/sent": SendKind.SENT,
    "/v1/broadcast": SendKind.BROADCAST,
    "/v1/template/sent": SendKind.TEMPLATE_SENT,
    "/v1/template/broadcast": SendKind.TEMPLATE_BROADCAST,
}
_RETRACT_PREFIX: Final = "/v1/retract/"


@dataclass(frozen=True)
class Channel:
    """A UMS delivery channel as records name it: ``sender`` (and ``wechatwk_sender``)."""

    name: str
    sender: int
    wechatwk_sender: int | None = None


# providers.md 1.2; WeCom is 10 as in the SDK's code (its comment says 9).
CHANNELS: Final[Mapping[str, Channel]] = {
    "app": Channel("app", 1),
    "wechatoa": Channel("wechatoa", 2),
    "wechatmp": Channel("wechatmp", 3),
    "email": Channel("email", 4),
    "sms": Channel("sms", 5),
    "dingtalk_cc": Channel("dingtalk_cc", 6),
    "alipay_life": Channel("alipay_life", 7),
    "wechatwk": Channel("wechatwk", 10, 0),
    "wechatwk_linkedcorp": Channel("wechatwk_linkedcorp", 10, 1),
}
UMS_SENDER: Final = 0  # records UMS makes itself (validation, types 0 and 1)
_CHANNEL_BY_AUDIENCE: Final[Mapping[str, Channel]] = {
    aud: CHANNELS[aud.removeprefix("aud_")] for aud in CUSTOM_AUDIENCES
}
_CHANNEL_BY_MSG: Final[Mapping[str, Channel]] = {
    msg: CHANNELS[msg.removeprefix("msg_")] for msg in MSG_CHANNELS
}
# app_platform as the SDK indexes it, and the vendor channels (app_sender) per platform.
_PLATFORMS: Final[Mapping[str, int]] = {
    "android": 0,
    "ios": 1,
    "web": 2,
    "quickapp": 3,
    "hmos": 4,
}
_VENDORS: Final[Mapping[str, tuple[int, ...]]] = {
    "android": (0, 1, 2, 3, 4),  # Jiguang, Huawei, OPPO, vivo, Xiaomi
    "ios": (8,),  # APNs
    "web": (0,),
    "quickapp": (0,),
    "hmos": (1,),
}
# Made-up error objects per failure type: UMS publishes no table of them.
_ERRORS: Final[Mapping[int, tuple[int, str]]] = {
    TARGET_INVALID: (1001, "target invalid: unknown user or id, or nothing bound for the channel"),
    SUBMIT_FAILED: (3001, "submit failed: the channel refused the message"),
    DELIVERY_FAILED: (5001, "delivery failed: the channel could not reach the recipient"),
    WITHDRAW_FAILED: (8001, "withdraw failed: the channel refused to withdraw"),
}
_WITHDRAW_TOO_LATE: Final = (8002, "withdraw failed: already delivered, the channel cannot recall")
_WITHDRAW_CLICKED: Final = (8003, "withdraw failed: the recipient has already opened it")
# Channels that cannot take back what they delivered (providers.md 4.1: SMS only stops
# UMS's undelivered copies).
_NO_RECALL: Final = frozenset({"sms", "email"})


def _share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves: channels, UMS's delivery timing, outcome mix, faults."""

    channels: Mapping[str, str]
    port: int = 0  # 0: a free port
    flush_interval: float = 10.0  # seconds a batch gathers records before it goes
    retry_interval: float = 50.0  # seconds between attempts of a failed batch
    max_retries: int = 3  # retries of a failed batch before it is dropped
    batch_size: int = 100  # records per POST at most
    seed: int | None = None  # None: a random seed, shown in state()
    invalid_share: float = 0.05
    submit_fail_share: float = 0.05
    delivery_fail_share: float = 0.1
    click_share: float = 0.3
    withdraw_fail_share: float = 0.2
    users_per_tag: int = 5  # made-up users per aud_tag tag and per aud_segment segment
    broadcast_users: int = 10  # made-up users a broadcast reaches
    template_channels: tuple[str, ...] = ("sms", "email")  # plus app when app_para is given
    duplicate_batches: bool = False  # fault: POST every batch twice
    shuffle: bool = False  # fault: records and batches leave in random order
    delay_share: float = 0.0  # fault: share of records held back ...
    delay_seconds: float = 15.0  # ... this long before they join a batch
    default_callback_url: str | None = None  # for messages without callback.url
    timeout: tuple[float, float] = (3.05, 10.0)  # (connect, read) of every callback call

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("at least one channel (channelkey: mastersecret) is required")
        for key, secret in self.channels.items():
            if not key or ":" in key or not secret:
                raise ValueError(f"bad channel {key!r}: need a channelkey without ':' and a secret")
        for name in (
            "invalid_share",
            "submit_fail_share",
            "delivery_fail_share",
            "click_share",
            "withdraw_fail_share",
            "delay_share",
        ):
            _share(name, getattr(self, name))
        for name in ("flush_interval", "retry_interval", "delay_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("max_retries", "users_per_tag", "broadcast_users", "port"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        unknown = [name for name in self.template_channels if name not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown template channel(s): {', '.join(unknown)}")
        if min(self.timeout) <= 0:
            raise ValueError("timeouts must be positive (connect, read) seconds")
        if self.default_callback_url is not None and not _is_http_url(self.default_callback_url):
            raise ValueError(
                f"default_callback_url must be an http(s) URL, got {self.default_callback_url!r}"
            )


# --------------------------------------------------------------------------- state


@dataclass
class _Entry:
    """One generated record and what became of it."""

    rid: int
    msgid: str
    record: dict[str, Any]
    live: int = 0  # batches holding it that are not finished
    state: str = "pending"  # pending | delivered | dropped


@dataclass
class _Target:
    """One recipient on one channel, and how far its lifecycle got."""

    userid: str
    sender_id: str
    channel: Channel
    fields: dict[str, int]
    reached: set[int] = field(default_factory=set)


@dataclass
class _Message:
    """An accepted send."""

    msgid: str
    number: int
    channelkey: str
    kind: SendKind
    sendno: str | None
    callback_url: str | None
    params: dict[str, Any] | None
    created: float  # wall clock
    recipients: int = 0
    targets: list[_Target] = field(default_factory=list)
    records: list[_Entry] = field(default_factory=list)
    withdrawn: bool = False
    generated: Counter[int] = field(default_factory=Counter)
    delivered: Counter[int] = field(default_factory=Counter)
    dropped: Counter[int] = field(default_factory=Counter)
    pending: int = 0


@dataclass
class _Batch:
    """Records going to one (callback URL, channel) in one POST."""

    key: tuple[str, str]
    entries: list[_Entry]
    seq: int
    copy: bool = False  # the second POST of the duplicate fault
    attempts: int = 0
    due: float = 0.0


@dataclass
class _Endpoint:
    """One (callback URL, channel): its verification, gathering batch and figures."""

    url: str
    channelkey: str
    verified: bool | None = None  # None: not verified yet (or to be verified again)
    verify_attempts: int = 0
    verify_error: str | None = None
    gathering: list[_Entry] = field(default_factory=list)
    deadline: float | None = None
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    dropped: int = 0
    dropped_unverified: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    receiver: Counter[str] = field(default_factory=Counter)
    last_answer: dict[str, Any] | None = None


# --------------------------------------------------------------------------- emulator


class Emulator:
    """UMS on 127.0.0.1: the REST API in a ThreadingHTTPServer, callbacks from one thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self._node = 10000 + self.seed % 90000  # the msgid's p: part
        self._cond = threading.Condition()
        self._messages: dict[str, _Message] = {}
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._delayed: list[tuple[float, _Entry, tuple[str, str]]] = []
        self._scheduled: list[_Batch] = []
        self._inflight = 0
        self._sends = 0
        self._rids = 0
        self._batch_seq = 0
        self._records_without_url = 0
        self._batch_rng = random.Random(f"{self.seed}:batches")
        self._stopping = False
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._delivery_thread: threading.Thread | None = None
        self._session: requests.Session | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The port the API listens on (after start())."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the API, for UMS_API_BASE or UmsClient(base_url=...)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        """Listen on 127.0.0.1 and start delivering callbacks."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping = False
        self._server = _Server(("127.0.0.1", self.config.port), self)
        self._session = requests.Session()
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ums-emulator-http",
            daemon=True,
        )
        self._delivery_thread = threading.Thread(
            target=self._deliver_forever, name="ums-emulator-callbacks", daemon=True
        )
        self._serve_thread.start()
        self._delivery_thread.start()
        logger.info("UMS emulator listening on %s (seed %d)", self.url, self.seed)
        return self

    def stop(self) -> None:
        """Stop serving and delivering; records still pending are abandoned (and logged)."""
        with self._cond:
            self._stopping = True
            pending = self._pending_records()
            self._cond.notify_all()
        if self._delivery_thread is not None:
            self._delivery_thread.join()
            self._delivery_thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._serve_thread is not None:
                self._serve_thread.join()
            self._server = self._serve_thread = None
        if self._session is not None:
            self._session.close()
            self._session = None
        if pending:
            logger.warning("UMS emulator stopped with %d record(s) undelivered", pending)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- API

    def handle(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one UMS API request: (HTTP status, JSON answer)."""
        kind = _SEND_PATHS.get(path)
        retract = path.startswith(_RETRACT_PREFIX) and len(path) > len(_RETRACT_PREFIX)
        if kind is None and not retract:
            return 404, {"code": INVALID_PARAMETER, "message": f"no such API: {path}"}
        if method != "POST":
            return 405, {"code": INVALID_PARAMETER, "message": f"{path} takes POST"}
        channelkey = self._authenticate(authorization)
        if channelkey is None:
            return 401, {"code": AUTH_FAILED, "message": "authentication failed"}
        try:
            if kind is None:
                msgid = unquote(path[len(_RETRACT_PREFIX) :])
                return self._withdraw(channelkey, msgid)
            return self._send(channelkey, kind, body)
        except InvalidMessageError as exc:
            return 400, {"code": exc.code, "message": str(exc)}

    def _authenticate(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        key, sep, secret = decoded.partition(":")
        expected = self.config.channels.get(key)
        # Compared even for an unknown key, so the time taken says nothing about keys.
        same = hmac.compare_digest(secret.encode(), (expected or "\0").encode())
        return key if sep and expected is not None and same else None

    def _send(self, channelkey: str, kind: SendKind, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            message = json.loads(body.decode("utf-8"))
        except ValueError:
            raise InvalidMessageError("body", "is not JSON") from None
        validate_message(message, kind=kind)
        callback = message.get("callback") or {}
        option = message.get("option") or {}
        sendno = None if option.get("sendno") is None else str(option["sendno"])
        url = callback.get("url") or self.config.default_callback_url
        params = callback.get("params")
        with self._cond:
            self._sends += 1
            number = self._sends
        msg = _Message(
            msgid=f"v:1t:{int(time.time())}p:{self._node}n:{number}",
            number=number,
            channelkey=channelkey,
            kind=kind,
            sendno=sendno,
            callback_url=url,
            params=copy.deepcopy(params) if isinstance(params, dict) else None,
            created=time.time(),
        )
        records = self._play_send(msg, message)
        with self._cond:
            self._messages[msg.msgid] = msg
            self._enqueue(msg, records, f"{self.seed}:{number}:faults")
        logger.info(
            "accepted %s from %s: msgid=%s, %d target(s), %d record(s) for %s",
            kind.value,
            channelkey,
            msg.msgid,
            len(msg.targets),
            len(records),
            url or "no callback URL",
        )
        return 200, {"code": 0, "message": "success", "msgid": msg.msgid, "sendno": sendno or ""}

    def _withdraw(self, channelkey: str, msgid: str) -> tuple[int, dict[str, Any]]:
        with self._cond:
            msg = self._messages.get(msgid)
            if msg is None or msg.channelkey != channelkey:
                # Another channel's message is "not found" too: nothing is revealed.
                return 400, {"code": MESSAGE_NOT_FOUND, "message": f"no message {msgid}"}
            if time.time() - msg.created > WITHDRAW_WINDOW_SECONDS:
                return 400, {
                    "code": MESSAGE_NOT_FOUND,
                    "message": "only messages of the last 24 h can be withdrawn",
                }
            if msg.withdrawn:
                return 400, {"code": ALREADY_WITHDRAWN, "message": "message already withdrawn"}
            msg.withdrawn = True
        records = self._play_withdraw(msg)
        with self._cond:
            self._enqueue(msg, records, f"{self.seed}:{msg.number}:withdraw-faults")
        logger.info("withdrew %s: %d record(s)", msgid, len(records))
        return 200, {"code": 0, "message": "success"}

    # ----------------------------------------------------------------- lifecycles

    def _play_send(self, msg: _Message, message: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every target's records for this send, from the message's own random stream."""
        cfg = self.config
        rng = random.Random(f"{self.seed}:{msg.number}")
        recipients = _recipients(message, msg.kind, cfg)
        msg.recipients = len(recipients)
        platforms = _app_platforms(message)
        now = int(time.time())
        records: list[dict[str, Any]] = []

        def emit(target: _Target, type_: int) -> None:
            target.reached.add(type_)
            records.append(
                _record(
                    msg,
                    type_,
                    target.userid,
                    target.sender_id,
                    target.channel.sender,
                    target.fields,
                    now,
                )
            )

        for userid, validation_id, channels in recipients:
            valid = rng.random() >= cfg.invalid_share
            validation = TARGET_VALID if valid else TARGET_INVALID
            records.append(_record(msg, validation, userid, validation_id, UMS_SENDER, {}, now))
            if not valid:
                continue
            for channel, sender_id in channels:
                target = _Target(
                    userid, sender_id, channel, _channel_fields(channel, platforms, rng)
                )
                msg.targets.append(target)
                if rng.random() < cfg.submit_fail_share:
                    emit(target, SUBMIT_FAILED)
                    continue
                emit(target, SUBMITTED)
                if rng.random() < cfg.delivery_fail_share:
                    emit(target, DELIVERY_FAILED)
                    continue
                emit(target, DELIVERED)
                if rng.random() < cfg.click_share:
                    emit(target, CLICKED)
        return records

    def _play_withdraw(self, msg: _Message) -> list[dict[str, Any]]:
        """Withdrawn or withdraw-failed for every target a channel took."""
        rng = random.Random(f"{self.seed}:{msg.number}:withdraw")
        now = int(time.time())
        records = []
        for target in msg.targets:
            if SUBMITTED not in target.reached:
                continue  # invalid or never submitted: nothing to take back
            error: tuple[int, str] | None = None
            if CLICKED in target.reached:
                error = _WITHDRAW_CLICKED
            elif DELIVERED in target.reached and target.channel.name in _NO_RECALL:
                error = _WITHDRAW_TOO_LATE
            elif rng.random() < self.config.withdraw_fail_share:
                error = _ERRORS[WITHDRAW_FAILED]
            type_ = WITHDRAW_FAILED if error else WITHDRAWN
            target.reached.add(type_)
            record = _record(
                msg,
                type_,
                target.userid,
                target.sender_id,
                target.channel.sender,
                target.fields,
                now,
            )
            if error:
                record["error"] = {"code": error[0], "message": error[1]}
            records.append(record)
        return records

    # ----------------------------------------------------------------- queueing

    def _enqueue(self, msg: _Message, records: list[dict[str, Any]], fault_seed: str) -> None:
        """Hand a send's or withdraw's records to delivery (call with the lock held)."""
        cfg = self.config
        faults = random.Random(fault_seed)
        if cfg.shuffle:
            faults.shuffle(records)  # e.g. delivered before submitted
        now = time.monotonic()
        key = None
        if msg.callback_url:
            key = (msg.callback_url, msg.channelkey)
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = _Endpoint(msg.callback_url, msg.channelkey)
            elif endpoint.verified is False:
                endpoint.verified = None  # like saving the URL again in the console
        for record in records:
            self._rids += 1
            entry = _Entry(self._rids, msg.msgid, record)
            msg.records.append(entry)
            msg.generated[record["type"]] += 1
            if key is None:
                entry.state = "dropped"
                msg.dropped[record["type"]] += 1
                self._records_without_url += 1
                continue
            msg.pending += 1
            if cfg.delay_share and faults.random() < cfg.delay_share:
                self._delayed.append((now + cfg.delay_seconds, entry, key))
            else:
                self._gather(entry, key, now)
        if key is None and records:
            logger.warning(
                "%s: no callback URL (no callback.url, no default): %d record(s) not delivered",
                msg.msgid,
                len(records),
            )
        self._cond.notify_all()

    def _gather(self, entry: _Entry, key: tuple[str, str], now: float) -> None:
        endpoint = self._endpoints[key]
        if not endpoint.gathering:
            endpoint.deadline = now + self.config.flush_interval
        endpoint.gathering.append(entry)

    def _seal(self, now: float) -> None:
        """Turn due delayed records and full or timed-out gatherings into batches."""
        still = []
        for due, entry, key in self._delayed:
            if due <= now:
                self._gather(entry, key, now)
            else:
                still.append((due, entry, key))
        self._delayed = still
        size = self.config.batch_size
        for key, endpoint in self._endpoints.items():
            while len(endpoint.gathering) >= size:
                self._schedule(key, endpoint.gathering[:size], now)
                del endpoint.gathering[:size]
            if endpoint.gathering and endpoint.deadline is not None and endpoint.deadline <= now:
                self._schedule(key, endpoint.gathering, now)
                endpoint.gathering = []
            if not endpoint.gathering:
                endpoint.deadline = None

    def _schedule(self, key: tuple[str, str], entries: list[_Entry], now: float) -> None:
        copies = 2 if self.config.duplicate_batches else 1
        for n in range(copies):
            self._batch_seq += 1
            for entry in entries:
                entry.live += 1
            self._scheduled.append(_Batch(key, list(entries), self._batch_seq, copy=n > 0, due=now))

    def _take_due(self, now: float) -> _Batch | None:
        due = [batch for batch in self._scheduled if batch.due <= now]
        if not due:
            return None
        if self.config.shuffle:
            batch = self._batch_rng.choice(due)
        else:
            batch = min(due, key=lambda b: (b.due, b.seq))
        self._scheduled.remove(batch)
        return batch

    def _next_wake(self) -> float | None:
        times = [due for due, _, _ in self._delayed]
        times += [e.deadline for e in self._endpoints.values() if e.deadline is not None]
        times += [batch.due for batch in self._scheduled]
        return min(times, default=None)

    def _pending_records(self) -> int:
        return sum(msg.pending for msg in self._messages.values())

    def _idle(self) -> bool:
        return (
            not self._delayed
            and not self._scheduled
            and self._inflight == 0
            and not any(e.gathering for e in self._endpoints.values())
        )

    # ----------------------------------------------------------------- delivery

    def _deliver_forever(self) -> None:
        while True:
            with self._cond:
                batch = None
                while batch is None:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    self._seal(now)
                    batch = self._take_due(now)
                    if batch is None:
                        self._cond.notify_all()  # idle waiters look again
                        wake = self._next_wake()
                        self._cond.wait(None if wake is None else max(0.0, wake - now))
                self._inflight += 1
                endpoint = self._endpoints[batch.key]
                verified = endpoint.verified
            try:
                if verified is None:
                    verified = self._verify(endpoint)
                if verified:
                    self._post(batch, endpoint)
                else:
                    with self._cond:
                        endpoint.dropped_unverified += 1
                        self._drop(batch, endpoint, "its callback URL failed verification")
            except Exception:  # the delivery thread must outlive any one batch
                logger.exception("delivering batch %d failed unexpectedly", batch.seq)
                with self._cond:
                    self._drop(batch, endpoint, "an unexpected error")
            finally:
                with self._cond:
                    self._inflight -= 1
                    self._cond.notify_all()

    def _verify(self, endpoint: _Endpoint) -> bool:
        """GET url?echostr=<random> with the channel's auth, as the UMS console does."""
        assert self._session is not None
        echostr = secrets.token_hex(12)
        separator = "&" if urlsplit(endpoint.url).query else "?"
        url = endpoint.url + separator + urlencode({"echostr": echostr})
        error: str | None = None
        try:
            response = self._session.get(
                url,
                auth=(endpoint.channelkey, self.config.channels[endpoint.channelkey]),
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            with response:
                text = response.content.decode("utf-8", errors="replace")
                status = response.status_code
            if status != 200:
                error = f"HTTP {status}: {_excerpt(text)}"
            elif text.strip() != echostr:
                error = f"answered {_excerpt(text)} instead of the echostr"
        with self._cond:
            endpoint.verify_attempts += 1
            endpoint.verified = error is None
            endpoint.verify_error = error
        if error is None:
            logger.info("verified callback URL %s (channel %s)", endpoint.url, endpoint.channelkey)
        else:
            logger.error(
                "callback URL %s (channel %s) failed verification, it will not be called: %s",
                endpoint.url,
                endpoint.channelkey,
                error,
            )
        return error is None

    def _post(self, batch: _Batch, endpoint: _Endpoint) -> None:
        """One attempt at one batch; acknowledged only by HTTP 200."""
        assert self._session is not None
        body = json.dumps(
            [entry.record for entry in batch.entries], ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        answer: dict[str, Any]
        stats: Any = None
        try:
            response = self._session.post(
                endpoint.url,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                auth=(endpoint.channelkey, self.config.channels[endpoint.channelkey]),
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            answer = {"error": f"{outcome}: {_excerpt(str(exc))}"}
        else:
            with response:
                outcome = str(response.status_code)
                text = response.content.decode("utf-8", errors="replace")
            answer = {"status": response.status_code, "body": _excerpt(text, 300)}
            try:
                stats = json.loads(text)
            except ValueError:
                stats = None
        ok = outcome == "200"
        with self._cond:
            batch.attempts += 1
            endpoint.attempted += 1
            endpoint.answers[outcome] += 1
            endpoint.last_answer = answer
            if ok:
                endpoint.acknowledged += 1
                if isinstance(stats, dict):
                    for name in ("received", "stored", "duplicates", "quarantined"):
                        if isinstance(stats.get(name), int):
                            endpoint.receiver[name] += stats[name]
                for entry in batch.entries:
                    entry.live -= 1
                    if entry.state == "pending":
                        self._settle(entry, "delivered")
                return
            endpoint.failed += 1
            if batch.attempts > self.config.max_retries:
                self._drop(batch, endpoint, f"{batch.attempts} attempts failed, last {outcome}")
                return
            batch.due = time.monotonic() + self.config.retry_interval
            self._scheduled.append(batch)
        logger.warning(
            "batch %d (%d records) to %s: %s; retry %d of %d in %.1f s",
            batch.seq,
            len(batch.entries),
            endpoint.url,
            answer,
            batch.attempts,
            self.config.max_retries,
            self.config.retry_interval,
        )

    def _drop(self, batch: _Batch, endpoint: _Endpoint, reason: str) -> None:
        """Give a batch up (call with the lock held)."""
        endpoint.dropped += 1
        lost = 0
        for entry in batch.entries:
            entry.live -= 1
            if entry.state == "pending" and entry.live == 0:
                self._settle(entry, "dropped")
                lost += 1
        logger.error(
            "dropped batch %d (%d records, %d now lost) to %s: %s",
            batch.seq,
            len(batch.entries),
            lost,
            endpoint.url,
            reason,
        )

    def _settle(self, entry: _Entry, state: str) -> None:
        msg = self._messages[entry.msgid]
        entry.state = state
        msg.pending -= 1
        counts = msg.delivered if state == "delivered" else msg.dropped
        counts[entry.record["type"]] += 1

    # ----------------------------------------------------------------- inspection

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every record is delivered or dropped; False if timeout came first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._cond.wait(remaining)
            return True

    def pending(self) -> dict[str, int]:
        """What is still to be delivered: records, batches waiting, POSTs under way."""
        with self._cond:
            return self._pending_unlocked()

    def _pending_unlocked(self) -> dict[str, int]:
        return {
            "records": self._pending_records(),
            "delayed_records": len(self._delayed),
            "gathering_records": sum(len(e.gathering) for e in self._endpoints.values()),
            "batches": len(self._scheduled),
            "in_flight": self._inflight,
        }

    def records(self, msgid: str | None = None) -> list[dict[str, Any]]:
        """Copies of the records made, in the order made (of one msgid, or all)."""
        with self._cond:
            messages = (
                list(self._messages.values())
                if msgid is None
                else [m for m in (self._messages.get(msgid),) if m is not None]
            )
            return [copy.deepcopy(e.record) for m in messages for e in m.records]

    def state(self) -> dict[str, Any]:
        """What was sent and what the receivers answered, as JSON-ready data."""
        with self._cond:
            endpoints = [_endpoint_json(e) for e in self._endpoints.values()]
            totals: Counter[str] = Counter()
            for e in self._endpoints.values():
                totals.update(
                    attempted=e.attempted,
                    acknowledged=e.acknowledged,
                    failed=e.failed,
                    dropped=e.dropped,
                    dropped_unverified=e.dropped_unverified,
                )
            return {
                "url": self.url if self._server is not None else None,
                "seed": self.seed,
                "idle": self._idle(),
                "pending": self._pending_unlocked(),
                "records": {
                    "generated": sum(sum(m.generated.values()) for m in self._messages.values()),
                    "delivered": sum(sum(m.delivered.values()) for m in self._messages.values()),
                    "dropped": sum(sum(m.dropped.values()) for m in self._messages.values()),
                    "without_callback_url": self._records_without_url,
                },
                "batches": {
                    name: totals[name]
                    for name in (
                        "attempted",
                        "acknowledged",
                        "failed",
                        "dropped",
                        "dropped_unverified",
                    )
                },
                "callbacks": endpoints,
                "messages": {m.msgid: _message_json(m) for m in self._messages.values()},
            }


# --------------------------------------------------------------------------- targets


def _recipients(
    message: Mapping[str, Any], kind: SendKind, cfg: EmulatorConfig
) -> list[tuple[str, str, list[tuple[Channel, str]]]]:
    """(userid, validation sender_id, [(channel, sender_id)]) per recipient, in order."""
    customs = [aud for aud in CUSTOM_AUDIENCES if aud in message]
    if customs:
        # Custom channel ids: userid "", sender_id the id, one validation record per id.
        by_id: dict[str, list[tuple[Channel, str]]] = {}
        for aud in customs:
            channel = _CHANNEL_BY_AUDIENCE[aud]
            for entry in message[aud]:
                for ident in entry["data"]:
                    reached = by_id.setdefault(ident, [])
                    if (channel, ident) not in reached:
                        reached.append((channel, ident))
        return [("", ident, reached) for ident, reached in by_id.items()]
    userids: list[str] = []
    if kind.is_broadcast:
        userids += [f"broadcast_{i}" for i in range(1, cfg.broadcast_users + 1)]
    else:
        userids += message.get("aud_userid") or []
        for tag in message.get("aud_tag") or []:
            userids += [f"{tag}_{i}" for i in range(1, cfg.users_per_tag + 1)]
        for segment in message.get("aud_segment") or []:
            userids += [f"segment_{segment}_{i}" for i in range(1, cfg.users_per_tag + 1)]
    channels = _message_channels(message, kind, cfg)
    return [
        (userid, "", [(channel, _made_up_id(channel, userid)) for channel in channels])
        for userid in dict.fromkeys(userids)
    ]


def _message_channels(
    message: Mapping[str, Any], kind: SendKind, cfg: EmulatorConfig
) -> list[Channel]:
    if not kind.is_template:
        return [_CHANNEL_BY_MSG[key] for key in MSG_CHANNELS if key in message]
    # The template's channels are set up in the UMS console; app_para means it has APP.
    names = list(cfg.template_channels)
    if message.get("app_para") is not None and "app" not in names:
        names.insert(0, "app")
    return [CHANNELS[name] for name in names]


def _made_up_id(channel: Channel, userid: str) -> str:
    """A stable channel id for a user: registration id, phone, e-mail, openid, ..."""
    h = hashlib.sha256(f"{channel.name}:{userid}".encode()).hexdigest()
    digits = str(int(h[:16], 16))
    if channel.name == "app":
        return h[:19]  # like a JPush RegistrationID
    if channel.name == "sms":
        return "13" + digits[:9].rjust(9, "0")
    if channel.name == "email":
        local = re.sub(r"[^A-Za-z0-9._-]", "", userid) or h[:10]
        return f"{local}@example.com"
    if channel.name in ("wechatoa", "wechatmp"):
        return "o" + h[:27]  # like an openid
    if channel.name == "alipay_life":
        return "2088" + digits[:12].rjust(12, "0")
    if channel.name == "dingtalk_cc":
        return digits[:12]
    if channel.name == "wechatwk_linkedcorp":
        return f"ww{h[:16]}/{userid}"
    return userid  # WeCom: the member's userid


def _app_platforms(message: Mapping[str, Any]) -> list[str]:
    """The platforms a message's APP content names ("all": Android and iOS)."""
    values = [entry.get("platform") for entry in message.get("msg_app") or []]
    if message.get("app_para") is not None:
        values.append(message["app_para"].get("platform"))
    platforms: list[str] = []
    for value in values:
        if value == "all":
            platforms += ["android", "ios"]
        elif isinstance(value, str):
            platforms.append(value)
        elif isinstance(value, list):
            platforms += [p for p in value if isinstance(p, str)]
    return [p for p in dict.fromkeys(platforms) if p in _PLATFORMS] or ["android"]


def _channel_fields(
    channel: Channel, platforms: Sequence[str], rng: random.Random
) -> dict[str, int]:
    if channel.name == "app":
        platform = rng.choice(platforms)
        return {"app_platform": _PLATFORMS[platform], "app_sender": rng.choice(_VENDORS[platform])}
    if channel.wechatwk_sender is not None:
        return {"wechatwk_sender": channel.wechatwk_sender}
    return {}


def _record(
    msg: _Message,
    type_: int,
    userid: str,
    sender_id: str,
    sender: int,
    fields: Mapping[str, int],
    sent_time: int,
) -> dict[str, Any]:
    """One callback record with the fields of providers.md 1.2."""
    record: dict[str, Any] = {
        "type": type_,
        "channelkey": msg.channelkey,
        "msgid": msg.msgid,
        "userid": userid,
        "sender_id": sender_id,
        "sender": sender,
        **fields,
        "sent_time": sent_time,
    }
    if type_ in FAILURE_TYPES:
        code, text = _ERRORS[type_]
        record["error"] = {"code": code, "message": text}
    if msg.params is not None:
        record["params"] = copy.deepcopy(msg.params)
    return record


# --------------------------------------------------------------------------- JSON views


def _counts(counter: Counter[int]) -> dict[str, int]:
    return {STATUS_BY_TYPE[t]: counter[t] for t in sorted(STATUS_BY_TYPE)}


def _message_json(msg: _Message) -> dict[str, Any]:
    return {
        "channelkey": msg.channelkey,
        "kind": msg.kind.value,
        "sendno": msg.sendno,
        "callback_url": msg.callback_url,
        "recipients": msg.recipients,
        "targets": len(msg.targets),
        "withdrawn": msg.withdrawn,
        "generated": _counts(msg.generated),
        "delivered": _counts(msg.delivered),
        "dropped": _counts(msg.dropped),
        "pending": msg.pending,
    }


def _endpoint_json(e: _Endpoint) -> dict[str, Any]:
    return {
        "url": e.url,
        "channelkey": e.channelkey,
        "verification": {
            "state": {None: "unverified", True: "verified", False: "failed"}[e.verified],
            "attempts": e.verify_attempts,
            "error": e.verify_error,
        },
        "batches": {
            "attempted": e.attempted,
            "acknowledged": e.acknowledged,
            "failed": e.failed,
            "dropped": e.dropped,
            "dropped_unverified": e.dropped_unverified,
        },
        "answers": dict(e.answers),
        "receiver": dict(e.receiver),
        "last_answer": e.last_answer,
        "gathering": len(e.gathering),
    }


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended badly", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server_version = "ums-emulator/1"

    @property
    def emulator(self) -> Emulator:
        return cast(_Server, self.server).emulator

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        args = parse_qs(query)
        if path == "/_emulator/state":
            self._answer(200, self.emulator.state())
        elif path == "/_emulator/idle":
            try:
                timeout = float(args.get("timeout", ["0"])[0])
            except ValueError:
                self._answer(400, {"error": "bad_timeout", "message": "timeout: not a number"})
                return
            idle = self.emulator.wait_idle(min(max(timeout, 0.0), MAX_IDLE_WAIT_SECONDS))
            self._answer(200, {"idle": idle, "pending": self.emulator.pending()})
        elif path == "/_emulator/records":
            msgid = args.get("msgid", [None])[0]
            self._answer(200, {"records": self.emulator.records(msgid)})
        else:
            self._api("GET", path, b"")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._answer(413, {"code": INVALID_PARAMETER, "message": "bad or too large body"})
            return
        # Read before answering: closing a socket with unread data resets the connection.
        body = self.rfile.read(length)
        self._api("POST", self.path.partition("?")[0], body)

    def _api(self, method: str, path: str, body: bytes) -> None:
        try:
            status, answer = self.emulator.handle(
                method, path, self.headers.get("Authorization"), body
            )
        except Exception:
            logger.exception("UMS emulator: %s %s failed", method, path)
            status, answer = 500, {"code": SERVER_ERROR, "message": "server error"}
        self._answer(status, answer)

    def _answer(self, status: int, answer: Any) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------- CLI


def _share_arg(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds_arg(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _count_arg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_arg(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``emulate`` command's options on its sub-parser."""
    d = argparse.Namespace(**{f.name: f.default for f in fields(EmulatorConfig)})
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--callback-url",
        help=f"callback URL of messages without callback.url (default ${CALLBACK_URL_ENV})",
    )
    parser.add_argument(
        "--flush-interval",
        type=_seconds_arg,
        default=d.flush_interval,
        help=f"seconds a batch of under --batch-size records waits (default {d.flush_interval})",
    )
    parser.add_argument(
        "--retry-interval",
        type=_seconds_arg,
        default=d.retry_interval,
        help=f"seconds between attempts of a failed batch (default {d.retry_interval})",
    )
    parser.add_argument(
        "--max-retries",
        type=_count_arg,
        default=d.max_retries,
        help=f"retries of a failed batch before it is dropped (default {d.max_retries})",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_arg,
        default=d.batch_size,
        help=f"records per callback POST at most (default {d.batch_size})",
    )
    parser.add_argument("--seed", type=int, help="seed of the outcomes (default: random)")
    for name, what in (
        ("invalid", "targets that are invalid"),
        ("submit-fail", "targets whose submission fails"),
        ("delivery-fail", "submitted targets whose delivery fails"),
        ("click", "delivered targets that click"),
        ("withdraw-fail", "withdrawals that fail"),
    ):
        default = getattr(d, name.replace("-", "_") + "_share")
        parser.add_argument(
            f"--{name}-share",
            type=_share_arg,
            default=default,
            help=f"share of {what}, 0-1 (default {default})",
        )
    parser.add_argument(
        "--users-per-tag",
        type=_count_arg,
        default=d.users_per_tag,
        help=f"made-up users per tag or segment (default {d.users_per_tag})",
    )
    parser.add_argument(
        "--broadcast-users",
        type=_count_arg,
        default=d.broadcast_users,
        help=f"made-up users a broadcast reaches (default {d.broadcast_users})",
    )
    parser.add_argument("--duplicate", action="store_true", help="fault: POST every batch twice")
    parser.add_argument(
        "--shuffle", action="store_true", help="fault: records and batches in random order"
    )
    parser.add_argument(
        "--delay-share",
        type=_share_arg,
        default=d.delay_share,
        help="fault: share of records held back --delay-seconds (default 0)",
    )
    parser.add_argument(
        "--delay-seconds",
        type=_seconds_arg,
        default=d.delay_seconds,
        help=f"how long delayed records are held back (default {d.delay_seconds})",
    )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, channels: Mapping[str, str]) -> EmulatorConfig:
    """The emulator configuration the command-line options describe."""
    return EmulatorConfig(
        channels=channels,
        port=args.port,
        flush_interval=args.flush_interval,
        retry_interval=args.retry_interval,
        max_retries=args.max_retries,
        batch_size=args.batch_size,
        seed=args.seed,
        invalid_share=args.invalid_share,
        submit_fail_share=args.submit_fail_share,
        delivery_fail_share=args.delivery_fail_share,
        click_share=args.click_share,
        withdraw_fail_share=args.withdraw_fail_share,
        users_per_tag=args.users_per_tag,
        broadcast_users=args.broadcast_users,
        duplicate_batches=args.duplicate,
        shuffle=args.shuffle,
        delay_share=args.delay_share,
        delay_seconds=args.delay_seconds,
        default_callback_url=args.callback_url or os.environ.get(CALLBACK_URL_ENV) or None,
    )


def run(args: argparse.Namespace) -> int:
    """``umstrack emulate``: serve the emulator until SIGINT or SIGTERM."""
    from receiver.config import Settings  # the one place settings come from the environment

    channels = Settings.from_env().channels
    if not channels:
        logger.error("UMS_CHANNELS is empty: give the emulator channelkey:mastersecret pairs")
        return 2
    try:
        config = config_from_args(args, channels)
    except ValueError as exc:
        logger.error("bad emulator settings: %s", exc)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator = Emulator(config).start()
        except OSError as exc:
            logger.error("cannot listen on 127.0.0.1:%d: %s", config.port, exc)
            return 1
        try:
            logger.info(
                "UMS emulator for channel(s) %s; callbacks to %s; Ctrl-C stops it",
                ", ".join(channels),
                config.default_callback_url or "each message's callback.url",
            )
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("UMS emulator stopped")
    return 0
