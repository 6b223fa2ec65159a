"""The emulator: its messages, the send and withdraw operations, start and stop, and
what it shows of itself.

A send is checked by the sender's own message rules (``sender.ums.rules``), so it is
refused with the business code UMS would answer (业务返回码, Business return codes);
an accepted one answers ``{"code": 0, "message": "success", "msgid", "sendno"}`` with a
msgid of UMS's form ``v:1t:<ts>p:<n>n:<n>``. A withdraw works for 24 h after the send
(撤回消息, Withdraw a message); a second one answers 1015055.
"""

from __future__ import annotations

import copy
import hmac
import logging
import random
import secrets
import threading
import time
from types import TracebackType
from typing import Any

from ..http import basic_credentials
from ..ums.protocol import ALREADY_WITHDRAWN, SUCCESS, SendKind
from ..ums.rules import validate_message
from .batching import Outbox
from .config import MESSAGE_NOT_FOUND, WITHDRAW_WINDOW_SECONDS, EmulatorConfig
from .delivery import Delivery
from .messages import Message
from .outcomes import play_send, play_withdraw
from .server import Answer, EmulatorServer

log = logging.getLogger(__name__)


class Emulator:
    """UMS on 127.0.0.1: the REST API in a ThreadingHTTPServer, callbacks from one thread.

    Outcomes come from ``random.Random(f"{seed}:{n}")`` for the n-th send, and faults
    from streams of their own, so a seed replays the same records whatever the timing.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self._node = 10000 + self.seed % 90000  # the msgid's p: part
        self._cond = threading.Condition()
        self._messages: dict[str, Message] = {}
        self._sends = 0
        self._outbox = Outbox(config, self.seed)
        self._delivery = Delivery(config, self._outbox, self._cond)
        self._server: EmulatorServer | None = None
        self._serve_thread: threading.Thread | None = None

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
        self._server = EmulatorServer(("127.0.0.1", self.config.port), self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ums-emulator-http",
            daemon=True,
        )
        self._serve_thread.start()
        self._delivery.start()
        log.info("UMS emulator listening on %s (seed %d)", self.url, self.seed)
        return self

    def stop(self) -> None:
        """Stop serving and delivering; records still pending are abandoned (and logged)."""
        self._delivery.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._serve_thread is not None:
                self._serve_thread.join()
            self._server = self._serve_thread = None
        with self._cond:
            pending = self._pending_records()
        if pending:
            log.warning("UMS emulator stopped with %d record(s) undelivered", pending)

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

    def authenticate(self, authorization: str | None) -> str | None:
        """The channelkey whose Basic credentials ``authorization`` carries, or None."""
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        try:
            key, sep, secret = credentials.decode("utf-8").partition(":")
        except UnicodeDecodeError:
            return None
        expected = self.config.channels.get(key)
        # Compared even for an unknown key, so the time taken says nothing about keys.
        same = hmac.compare_digest(secret.encode(), (expected or "\0").encode())
        return key if sep and expected is not None and same else None

    def send(self, channelkey: str, kind: SendKind, message: Any) -> Answer:
        """Accept a send and play its targets' lifecycles; raise InvalidMessageError
        for a message UMS would refuse."""
        validate_message(message, kind=kind)
        callback = message.get("callback") or {}
        option = message.get("option") or {}
        sendno = None if option.get("sendno") is None else str(option["sendno"])
        url = callback.get("url") or self.config.default_callback_url
        params = callback.get("params")
        with self._cond:
            self._sends += 1
            number = self._sends
        msg = Message(
            msgid=f"v:1t:{int(time.time())}p:{self._node}n:{number}",
            number=number,
            channelkey=channelkey,
            kind=kind,
            sendno=sendno,
            callback_url=url,
            params=copy.deepcopy(params) if isinstance(params, dict) else None,
            created=time.time(),
        )
        played = play_send(
            message,
            kind=kind,
            origin=msg,
            config=self.config,
            rng=random.Random(f"{self.seed}:{number}"),
            now=int(time.time()),
        )
        msg.recipients, msg.targets = played.recipients, played.targets
        with self._cond:
            self._messages[msg.msgid] = msg
            self._put(msg, played.records, f"{self.seed}:{number}:faults")
        log.info(
            "accepted %s from %s: msgid=%s, %d target(s), %d record(s) for %s",
            kind.value,
            channelkey,
            msg.msgid,
            len(msg.targets),
            len(played.records),
            url or "no callback URL",
        )
        answer = {"code": SUCCESS, "message": "success", "msgid": msg.msgid, "sendno": sendno or ""}
        return 200, answer

    def withdraw(self, channelkey: str, msgid: str) -> Answer:
        """Withdraw a message of this channel sent within the last 24 h."""
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
        records = play_withdraw(
            msg.targets,
            origin=msg,
            config=self.config,
            rng=random.Random(f"{self.seed}:{msg.number}:withdraw"),
            now=int(time.time()),
        )
        with self._cond:
            self._put(msg, records, f"{self.seed}:{msg.number}:withdraw-faults")
        log.info("withdrew %s: %d record(s)", msgid, len(records))
        return 200, {"code": SUCCESS, "message": "success"}

    def _put(self, msg: Message, records: list[dict[str, Any]], fault_seed: str) -> None:
        """Hand records to delivery (call with the lock held)."""
        self._outbox.put(msg, records, faults=random.Random(fault_seed), now=time.monotonic())
        self._cond.notify_all()

    # ----------------------------------------------------------------- inspection

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every record is delivered or dropped; False if timeout came first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._delivery.stopping:
                    return False
                self._cond.wait(remaining)
            return True

    def pending(self) -> dict[str, int]:
        """What is still to be delivered: records, batches waiting, POSTs under way."""
        with self._cond:
            return self._pending_unlocked()

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
            messages = self._messages.values()
            return {
                "url": self.url if self._server is not None else None,
                "seed": self.seed,
                "idle": self._idle(),
                "pending": self._pending_unlocked(),
                "records": {
                    "generated": sum(sum(m.generated.values()) for m in messages),
                    "delivered": sum(sum(m.delivered.values()) for m in messages),
                    "dropped": sum(sum(m.dropped.values()) for m in messages),
                    "without_callback_url": self._outbox.records_without_url,
                },
                "batches": self._outbox.batch_totals(),
                "callbacks": [e.as_json() for e in self._outbox.endpoints.values()],
                "messages": {m.msgid: m.as_json() for m in messages},
            }

    def _idle(self) -> bool:
        return self._outbox.empty() and self._delivery.in_flight == 0

    def _pending_records(self) -> int:
        return sum(msg.pending for msg in self._messages.values())

    def _pending_unlocked(self) -> dict[str, int]:
        return {
            "records": self._pending_records(),
            **self._outbox.waiting(),
            "in_flight": self._delivery.in_flight,
        }
