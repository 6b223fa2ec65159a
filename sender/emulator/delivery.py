"""The callback thread: checks each callback URL, POSTs due batches, retries, drops.

As UMS does it (消息回调设置, Message callback settings): a URL is first checked with
``GET <url>?echostr=<random>`` and must answer the echostr itself as its body; every
call carries ``Authorization: Basic base64(channelkey:mastersecret)``; a batch is a
bare JSON array of records; only HTTP 200 acknowledges it; a failed batch is retried
every 50 s, at most 3 times, then dropped.

Only a URL that passed its check is POSTed to. An attempt at a batch whose URL has not
passed (yet) checks it first; a failed check is a failed attempt of that batch, retried
like a failed POST, so a receiver that was still starting gets the batch on a later
attempt. A URL that passed is not checked again, as the console checks a URL once,
when it is saved.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from ..http import basic_auth_header
from ..values import excerpt, is_int
from .batching import Batch, Endpoint, Outbox
from .config import EmulatorConfig

log = logging.getLogger(__name__)

# What a receiver's 200 may count (umstrack's answer; "spooled" while its database is away).
_RECEIVER_FIGURES = ("received", "stored", "duplicates", "quarantined", "spooled")


class Delivery:
    """Takes due batches from the outbox and POSTs them, one at a time, on its own thread."""

    def __init__(self, config: EmulatorConfig, outbox: Outbox, cond: threading.Condition) -> None:
        self.config = config
        self.in_flight = 0  # batches taken from the outbox and not yet settled
        self.stopping = False
        self._outbox = outbox
        self._cond = cond  # the emulator's lock, guarding the outbox and the messages
        self._session: requests.Session | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread."""
        self.stopping = False
        self._session = requests.Session()
        self._thread = threading.Thread(
            target=self._run, name="ums-emulator-callbacks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after the call under way, if any; batches waiting stay."""
        with self._cond:
            self.stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = None
                while batch is None:
                    if self.stopping:
                        return
                    now = time.monotonic()
                    self._outbox.seal(now)
                    batch = self._outbox.take_due(now)
                    if batch is None:
                        self._cond.notify_all()  # idle waiters look again
                        wake = self._outbox.next_wake()
                        self._cond.wait(None if wake is None else max(0.0, wake - now))
                self.in_flight += 1
                verified = batch.endpoint.verified
            try:
                if verified or self._check(batch):
                    self._post(batch)
            except Exception:  # the delivery thread must outlive any one batch
                log.exception("delivering batch %d failed unexpectedly", batch.seq)
                with self._cond:
                    self._drop(batch, "an unexpected error in the emulator")
            finally:
                with self._cond:
                    self.in_flight -= 1
                    self._cond.notify_all()

    def _authorization(self, endpoint: Endpoint) -> str:
        return basic_auth_header(endpoint.channelkey, self.config.channels[endpoint.channelkey])

    def _check(self, batch: Batch) -> bool:
        """Check the batch's URL as the UMS console does; a failed check is a failed
        attempt of the batch. Whether the URL passed."""
        endpoint = batch.endpoint
        error = self._echostr_error(endpoint)
        with self._cond:
            endpoint.verify_attempts += 1
            endpoint.verified = error is None
            endpoint.verify_error = error
            if error is not None:
                self._failed(batch, f"callback URL check failed: {error}", unverified=True)
                return False
        log.info("verified callback URL %s (channel %s)", endpoint.url, endpoint.channelkey)
        return True

    def _echostr_error(self, endpoint: Endpoint) -> str | None:
        """GET url?echostr=<random> with the channel's auth: why the URL fails, or None."""
        assert self._session is not None
        echostr = secrets.token_hex(12)
        separator = "&" if urlsplit(endpoint.url).query else "?"
        url = endpoint.url + separator + urlencode({"echostr": echostr})
        error: str | None = None
        try:
            response = self._session.get(
                url,
                headers={"Authorization": self._authorization(endpoint)},
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {excerpt(str(exc), 200)}"
        else:
            with response:
                text = response.content.decode("utf-8", errors="replace")
                status = response.status_code
            if status != 200:
                error = f"HTTP {status}: {excerpt(text, 120)}"
            elif text.strip() != echostr:
                error = f"answered {excerpt(text, 120)} instead of the echostr"
        return error

    def _post(self, batch: Batch) -> None:
        """One attempt at one batch; acknowledged only by HTTP 200."""
        assert self._session is not None
        endpoint = batch.endpoint
        body = json.dumps(
            [entry.record for entry in batch.entries], ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        answer: dict[str, Any]
        stats: Any = None
        try:
            response = self._session.post(
                endpoint.url,
                data=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Authorization": self._authorization(endpoint),
                },
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            answer = {"error": f"{outcome}: {excerpt(str(exc), 120)}"}
            why = answer["error"]
        else:
            with response:
                outcome = str(response.status_code)
                text = response.content.decode("utf-8", errors="replace")
            answer = {"status": response.status_code, "body": excerpt(text, 300)}
            why = f"HTTP {outcome}: {excerpt(text, 120)}"
            try:
                stats = json.loads(text)
            except ValueError:
                stats = None
        with self._cond:
            endpoint.answers[outcome] += 1
            endpoint.last_answer = answer
            if outcome == "200":
                self._count_attempt(batch)
                endpoint.acknowledged += 1
                if isinstance(stats, dict):
                    for name in _RECEIVER_FIGURES:
                        if is_int(stats.get(name)):
                            endpoint.receiver[name] += stats[name]
                for entry in batch.entries:
                    entry.live -= 1
                    if entry.state == "pending":
                        entry.message.settle(entry, "delivered")
            else:
                self._failed(batch, why, unverified=False)

    def _count_attempt(self, batch: Batch) -> None:
        """Count one attempt at a batch, whatever its outcome (call with the lock held)."""
        batch.attempts += 1
        batch.endpoint.attempted += 1

    def _failed(self, batch: Batch, why: str, *, unverified: bool) -> None:
        """Count a failed attempt; put the batch back for a retry, or drop it when its
        retries are used up (call with the lock held). ``unverified``: the attempt
        stopped at the URL check."""
        endpoint = batch.endpoint
        self._count_attempt(batch)
        endpoint.failed += 1
        if unverified:
            endpoint.failed_unverified += 1
        if batch.attempts > self.config.max_retries:
            if unverified:
                endpoint.dropped_unverified += 1
            self._drop(batch, f"{batch.attempts} attempt(s) failed, the last: {why}")
            return
        self._outbox.retry(batch, time.monotonic() + self.config.retry_interval)
        log.warning(
            "batch %d (%d records) to %s: %s; retry %d of %d in %.1f s",
            batch.seq,
            len(batch.entries),
            endpoint.url,
            why,
            batch.attempts,
            self.config.max_retries,
            self.config.retry_interval,
        )

    def _drop(self, batch: Batch, reason: str) -> None:
        """Give a batch up, saying why in the endpoint's figures (call with the lock held)."""
        endpoint = batch.endpoint
        endpoint.dropped += 1
        lost = 0
        for entry in batch.entries:
            entry.live -= 1
            if entry.state == "pending" and entry.live == 0:
                entry.message.settle(entry, "dropped")
                lost += 1
        endpoint.last_drop = {"batch": batch.seq, "records": len(batch.entries), "reason": reason}
        log.error(
            "dropped batch %d (%d records, %d now lost) to %s: %s",
            batch.seq,
            len(batch.entries),
            lost,
            endpoint.url,
            reason,
        )
