"""A local UMS: the send and withdraw APIs, and status callbacks delivered the way UMS does.

The emulator answers ``POST /v1/sent``, ``/v1/broadcast``, ``/v1/template/sent``,
``/v1/template/broadcast`` and ``/v1/retract/{msgid}`` like UMS (Basic auth of a
configured channel, the business codes of ``sender.ums.rules``), plays each target's
lifecycle with a seeded random outcome, and POSTs the status records to the callback
URL in UMS's batches, with UMS's echostr check and retry rules. Inspection, on
the same port and without auth: ``GET /_emulator/state``, ``GET /_emulator/idle`` and
``GET /_emulator/records``.

Modules, each one part:

- ``config``: :class:`EmulatorConfig` and the emulator's constants.
- ``channels``: the channels records name, with their ``sender`` numbers.
- ``outcomes``: which records each target gets for a send and for a withdraw.
- ``messages``: accepted messages, their records and what became of each.
- ``batching``: records gathering into batches per callback URL and channel.
- ``delivery``: URL verification, POSTs, retries and drops, on one thread.
- ``server``: the HTTP handler and its routes.
- ``emulator``: :class:`Emulator`, tying them together: start, stop, send, withdraw,
  inspection.

Decisions where UMS's documents are silent:

- A withdraw of a msgid this channel never sent (or sent over 24 h ago) answers HTTP 400
  with 4004 (invalid parameter): UMS documents no "message not found" code.
- ``error.code`` values inside records are made up; targets and channels of tag,
  segment, broadcast and template sends are made up too (``outcomes``).
- Only a callback URL that passed the echostr check is POSTed to. A batch whose URL has
  not passed (never checked, or its last check failed: the receiver may still be
  starting) counts as a failed attempt and is retried under the rules of a failed POST
  (every ``retry_interval``, at most ``max_retries`` times), the URL checked again
  before each attempt; when the retries run out the batch is dropped and logged, and
  ``/_emulator/state`` says why (the callback URL's ``last_drop``; its batch figures
  ``failed_unverified`` and ``dropped_unverified``). UMS checks a URL when it is saved
  in the console and says nothing of sends made before it passes. A URL that passed is
  not checked again.
- Outcomes come from ``random.Random(f"{seed}:{n}")`` for the n-th send, and faults from
  a stream of their own, so a seed replays the same records whatever the timing.
"""

from .channels import CHANNELS, Channel
from .config import (
    DEFAULT_PORT,
    MAX_IDLE_WAIT_SECONDS,
    MAX_REQUEST_BYTES,
    MESSAGE_NOT_FOUND,
    WITHDRAW_WINDOW_SECONDS,
    EmulatorConfig,
)
from .emulator import Emulator

__all__ = [
    "CHANNELS",
    "DEFAULT_PORT",
    "MAX_IDLE_WAIT_SECONDS",
    "MAX_REQUEST_BYTES",
    "MESSAGE_NOT_FOUND",
    "WITHDRAW_WINDOW_SECONDS",
    "Channel",
    "Emulator",
    "EmulatorConfig",
]
