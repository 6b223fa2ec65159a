"""split_message: cut a send whose audience is over UMS's per-request limits into parts.

UMS's page 普通消息发送 v1 (Ordinary message sending v1) takes at most 1000 userids in
one request (more answers business code 1015004) and at most 1000 ids per custom
channel (``aud_sms``, ``aud_email``, ...); tags and segments have no id count to cut.
Every part is the whole message with a share of the ids, so each one passes
validate_message on its own:

- ``aud_userid`` is cut in order; tags and a segment sent beside it go with the first
  part only, so that their users do not get the message once per part.
- Custom channels are cut channel by channel, each id keeping its entry's ``instance``.
  A part keeps only the ``msg_xxx`` of the channels it targets, because with custom
  ids a ``msg_xxx`` without its ``aud_xxx`` is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..protocol import MAX_IDS
from .audience import AUDIENCES, MSG_CHANNELS, MSG_FOR_AUDIENCE, audience_keys
from .checks import as_array, as_object


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _assemble(
    message: Mapping[str, Any], audience: Mapping[str, Any], channels: set[str] | None
) -> dict[str, Any]:
    """A deep copy of message with its audience replaced; channels=None keeps every msg_xxx."""
    part: dict[str, Any] = {}
    for key, value in message.items():
        if key in AUDIENCES:
            if key in audience:
                part[key] = audience[key]
        elif key in MSG_CHANNELS and channels is not None:
            if key in channels:
                part[key] = copy.deepcopy(value)
        else:
            part[key] = copy.deepcopy(value)
    return part


def _custom_chunks(entries: list[Any], limit: int) -> list[list[dict[str, Any]]]:
    """Cut one custom channel's [{instance, data}] into parts of at most limit ids."""
    flat: list[tuple[int, str]] = []
    for i, entry in enumerate(entries):
        flat.extend((i, ident) for ident in entry["data"])
    parts: list[list[dict[str, Any]]] = []
    for chunk in _chunks(flat, limit):
        rebuilt: list[dict[str, Any]] = []
        last = -1
        for source, ident in chunk:
            if source != last:
                extra = {k: copy.deepcopy(v) for k, v in entries[source].items() if k != "data"}
                rebuilt.append({**extra, "data": []})
                last = source
            rebuilt[-1]["data"].append(ident)
        parts.append(rebuilt)
    return parts or [copy.deepcopy(entries)]


def _split_userids(message: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    userids = as_array(message["aud_userid"], "aud_userid", min_len=0)
    if len(userids) <= limit:
        return [copy.deepcopy(dict(message))]
    parts = []
    for n, chunk in enumerate(_chunks(userids, limit)):
        audience: dict[str, Any] = {"aud_userid": chunk}
        if n == 0:
            audience.update(
                {k: copy.deepcopy(message[k]) for k in ("aud_tag", "aud_segment") if k in message}
            )
        parts.append(_assemble(message, audience, None))
    return parts


def _split_customs(
    message: Mapping[str, Any], customs: list[str], limit: int
) -> list[dict[str, Any]]:
    per_channel: dict[str, list[list[dict[str, Any]]]] = {}
    for key in customs:
        entries = as_array(message[key], key, min_len=0)
        for i, entry in enumerate(entries):
            as_array(as_object(entry, f"{key}[{i}]").get("data"), f"{key}[{i}].data", min_len=0)
        per_channel[key] = _custom_chunks(entries, limit)
    count = max(len(chunks) for chunks in per_channel.values())
    if count == 1:
        return [copy.deepcopy(dict(message))]
    parts = []
    for n in range(count):
        audience = {key: chunks[n] for key, chunks in per_channel.items() if n < len(chunks)}
        channels = {MSG_FOR_AUDIENCE[key] for key in audience}
        parts.append(_assemble(message, audience, channels))
    return parts


def split_message(message: Mapping[str, Any], *, limit: int = MAX_IDS) -> list[dict[str, Any]]:
    """Cut a message whose aud_userid or custom-channel ids exceed limit into valid parts."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    as_object(message, "message")
    _, customs = audience_keys(message)
    if "aud_userid" in message:
        return _split_userids(message, limit)
    if customs:
        return _split_customs(message, customs, limit)
    return [copy.deepcopy(dict(message))]
