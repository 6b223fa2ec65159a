"""render_personalised: one UMS message per distinct content, from a template with
``{name}`` placeholders and each recipient's values.

UMS sends one content to every target of a request (普通消息发送 v1 / Ordinary message
sending v1), and a template send carries one ``template_para`` per request (模板消息发送
v1 / Template message sending v1). A content personalised per recipient is therefore
rendered here, and the recipients whose rendered content is identical are sent together
in one message: ``aud_userid`` or one custom channel's ids, the two kinds of target that
name single recipients.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ...values import is_int
from .audience import AUDIENCES, CUSTOM_AUDIENCES
from .checks import as_object, as_string, fail, required

PLACEHOLDER_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PERSONAL_AUDIENCES: Final = ("aud_userid",) + CUSTOM_AUDIENCES


def _value_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if is_int(value) or isinstance(value, float):
        return str(value)
    fail(field, "must be a string or a number")


def _render(node: Any, values: Mapping[str, Any], index: int, rendered: list[str]) -> Any:
    """Copy node with each string's {placeholders} filled in; rendered collects the results."""
    if isinstance(node, str):
        if not PLACEHOLDER_RE.search(node):
            return node

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            field = f"recipients[{index}].values.{name}"
            if name not in values:
                fail(field, f"no value for placeholder {{{name}}}")
            return _value_text(values[name], field)

        # One pass of re.sub: text coming from a value is never scanned again.
        text = PLACEHOLDER_RE.sub(fill, node)
        rendered.append(text)
        return text
    if isinstance(node, Mapping):
        return {key: _render(value, values, index, rendered) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_render(value, values, index, rendered) for value in node]
    return copy.deepcopy(node)


def _recipient(item: Any, index: int) -> tuple[str, str, Mapping[str, Any]]:
    at = f"recipients[{index}]"
    recipient = as_object(item, at)
    to = as_object(required(recipient, "to", at), f"{at}.to")
    if len(to) != 1 or next(iter(to)) not in PERSONAL_AUDIENCES:
        fail(f"{at}.to", "must be exactly one of aud_userid or a custom channel (aud_sms, ...)")
    key = next(iter(to))
    ident = as_string(to[key], f"{at}.to.{key}")
    values = as_object(recipient.get("values") or {}, f"{at}.values")
    return key, ident, values


def render_personalised(
    template: Mapping[str, Any], recipients: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Render one message per distinct content and group the recipients who share it.

    ``template`` is a UMS message without aud_xxx (msg_xxx, rule_id, option, callback, or
    template_id/template_para for a template send) in which any string value (not keys)
    may hold ``{name}`` placeholders, ``name`` being an identifier; other braces are kept
    as they are. ``recipients`` is a list of
    ``{"to": {"aud_userid": "u1"}, "values": {"name": "Tom"}}``, where ``to`` names one
    recipient by aud_userid or by one custom channel id (``{"aud_sms": "138..."}``), the
    same kind for every recipient, and ``values`` maps placeholders to strings or numbers.

    Returns messages in order of first appearance, each with every id (first occurrence,
    duplicates dropped) whose rendered content is identical: ``aud_userid: [ids]``, or
    ``aud_xxx: [{"data": [ids]}]`` for a custom channel. A placeholder without a value
    raises InvalidMessageError on ``recipients[i].values.<name>`` before anything is returned.
    Each message still goes through split_message and validate_message.
    """
    as_object(template, "template")
    for key in template:
        if key in AUDIENCES:
            fail(f"template.{key}", "the audience comes from recipients[].to")
    if isinstance(recipients, str | bytes) or not isinstance(recipients, Sequence):
        fail("recipients", "must be an array")
    if not recipients:
        fail("recipients", "at least one recipient is required")

    audience_key: str | None = None
    groups: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, None]]] = {}
    for index, item in enumerate(recipients):
        key, ident, values = _recipient(item, index)
        if audience_key is None:
            audience_key = key
        elif key != audience_key:
            fail(f"recipients[{index}].to", f"every recipient must use {audience_key}")
        rendered: list[str] = []
        message = _render(template, values, index, rendered)
        # Every recipient's message has the template's shape, so the rendered strings
        # alone tell whether two contents are identical.
        # A dict keeps the ids in first-seen order and drops repeats in O(1).
        groups.setdefault(tuple(rendered), (message, {}))[1].setdefault(ident, None)

    assert audience_key is not None
    out: list[dict[str, Any]] = []
    for message, seen in groups.values():
        ids = list(seen)
        audience: Any = ids if audience_key == "aud_userid" else [{"data": ids}]
        out.append({audience_key: audience, **message})
    return out
