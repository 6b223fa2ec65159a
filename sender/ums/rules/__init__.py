"""The rules of UMS's message format, shared by the sender and the UMS emulator.

Pure functions, no I/O: :func:`validate_message` raises the InvalidMessageError (with
UMS's business code) that UMS would answer for a send body, :func:`split_message` cuts
a send over the per-request id limits into parts, and :func:`render_personalised`
renders one message per distinct content from a template with placeholders.

Modules: ``checks`` (typed field checks), ``audience`` (``aud_xxx``), ``channels`` and
``wechatwk`` (``msg_xxx``), ``message`` (the whole body: keys, template fields,
``rule_id``, ``option``, ``callback``), ``split`` and ``personalise``. Each module's
docstring gives the facts of UMS's public pages it relies on.
"""

from .audience import (
    AUDIENCES,
    CUSTOM_AUDIENCES,
    MAX_TAG_BYTES,
    MAX_TAGS,
    MAX_USERID_CHARS,
    MSG_CHANNELS,
    MSG_FOR_AUDIENCE,
    USER_AUDIENCES,
)
from .channels import CHANNEL_RULES, JPUSH_PLATFORMS
from .message import MAX_APP_TTL_SECONDS, validate_message
from .personalise import PERSONAL_AUDIENCES, PLACEHOLDER_RE, render_personalised
from .split import split_message
from .wechatwk import MAX_WECHATWK_DUPLICATE_CHECK_SECONDS

__all__ = [
    "AUDIENCES",
    "CHANNEL_RULES",
    "CUSTOM_AUDIENCES",
    "JPUSH_PLATFORMS",
    "MAX_APP_TTL_SECONDS",
    "MAX_TAGS",
    "MAX_TAG_BYTES",
    "MAX_USERID_CHARS",
    "MAX_WECHATWK_DUPLICATE_CHECK_SECONDS",
    "MSG_CHANNELS",
    "MSG_FOR_AUDIENCE",
    "PERSONAL_AUDIENCES",
    "PLACEHOLDER_RE",
    "USER_AUDIENCES",
    "render_personalised",
    "split_message",
    "validate_message",
]
