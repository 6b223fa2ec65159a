"""Case tables of hostile input (issue 11): callback records past a bound, records that
are odd but valid, and read API parameters that must answer 4xx, never 5xx.

A hostile record is JSON *text*: some cases (NUL, lone surrogates, 1e400, a thousand
levels of nesting) cannot be written as a Python value that ``json.dumps`` turns back
into the same text, so every case is the text of one record.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tests.helpers import CHANNEL, MSGID, record

# The text that stands for the hostile value until it is put in place.
_HOLE = '"__hostile_value__"'


@dataclass(frozen=True)
class HostileRecord:
    """One record that must be quarantined; ``field`` is what its reason must name."""

    id: str
    field: str
    text: str


def _hostile(case: str, type_: int = 4, **fields: Any) -> dict[str, Any]:
    # Every hostile record says which case it is: the quarantined raw text shows it.
    base = {"userid": "hostile", "sender_id": "sid-hostile", "hostile_case": case}
    return record(type_, **{**base, **fields})


def value(case: str, field: str, bad: Any, *, type_: int = 4) -> HostileRecord:
    """A record whose ``field`` holds ``bad`` (a Python value)."""
    return HostileRecord(case, field, json.dumps(_hostile(case, type_, **{field: bad})))


def text(case: str, field: str, raw: str, *, type_: int = 4) -> HostileRecord:
    """A record whose ``field`` holds the JSON text ``raw`` as it is."""
    base = json.dumps(_hostile(case, type_, **{field: "__hostile_value__"}))
    return HostileRecord(case, field, base.replace(_HOLE, raw))


def error_value(case: str, part: str, bad: Any) -> HostileRecord:
    """A failure record (type 5) whose ``error.<part>`` holds ``bad``."""
    error = {"code": 3005, "message": "failure", part: bad}
    return HostileRecord(case, f"error.{part}", json.dumps(_hostile(case, 5, error=error)))


def error_text(case: str, part: str, raw: str) -> HostileRecord:
    """A failure record (type 5) whose ``error.<part>`` holds the JSON text ``raw``."""
    error = {"code": 3005, "message": "failure", part: "__hostile_value__"}
    base = json.dumps(_hostile(case, 5, error=error))
    return HostileRecord(case, f"error.{part}", base.replace(_HOLE, raw))


def nested_objects(levels: int, leaf: str = "1") -> str:
    """JSON text of ``levels`` objects, each inside the one before (by concatenation:
    ``json.dumps`` of a thousand levels may hit Python's recursion limit)."""
    return '{"a":' * (levels - 1) + '{"a":' + leaf + "}" + "}" * (levels - 1)


def nested_arrays(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def incompressible(size: int) -> str:
    """Text that does not compress: PostgreSQL compresses long index entries, so a
    repetitive long key would slip under its limit on an index row (about 2.7 kB)."""
    digests = (hashlib.sha256(str(n).encode()).hexdigest() for n in range(size // 64 + 1))
    return "".join(digests)[:size]


def incompressible_wide(size: int) -> str:
    """``size`` characters of four UTF-8 bytes each (CJK Extension B), in no pattern."""
    hexes = incompressible(4 * size)
    return "".join(chr(0x20000 + int(hexes[i : i + 4], 16) % 0xA000) for i in range(0, 4 * size, 4))


LONG_257 = "x" * 257
LONG_3000 = incompressible(3000)

HOSTILE_RECORDS: list[HostileRecord] = [
    # msgid
    value("msgid-int", "msgid", 12),
    value("msgid-bool", "msgid", True),
    value("msgid-null", "msgid", None),
    value("msgid-empty", "msgid", ""),
    value("msgid-blank", "msgid", "   "),
    value("msgid-list", "msgid", [MSGID]),
    value("msgid-object", "msgid", {"id": MSGID}),
    value("msgid-257", "msgid", LONG_257),
    value("msgid-3000", "msgid", LONG_3000),
    value("msgid-257-cjk", "msgid", "消" * 257),
    text("msgid-nul", "msgid", '"v:1\\u0000t:1"'),
    text("msgid-lone-surrogate", "msgid", '"v:1\\ud800"'),
    text("msgid-lone-low-surrogate", "msgid", '"\\udfff"'),
    # type
    value("type-string", "type", "4"),
    value("type-bool", "type", True),
    value("type-float", "type", 4.0),
    value("type-null", "type", None),
    value("type-9", "type", 9),
    value("type-negative", "type", -1),
    value("type-2**15", "type", 2**15),
    value("type-2**63", "type", 2**63),
    value("type-huge", "type", 10**40),
    text("type-1e400", "type", "1e400"),
    # channelkey
    value("channelkey-int", "channelkey", 5),
    value("channelkey-list", "channelkey", [CHANNEL]),
    value("channelkey-257", "channelkey", LONG_257),
    value("channelkey-3000", "channelkey", LONG_3000),
    value("channelkey-unknown", "channelkey", "nosuchchannel"),
    text("channelkey-nul", "channelkey", f'"{CHANNEL}\\u0000"'),
    # userid
    value("userid-int", "userid", 5),
    value("userid-bool", "userid", False),
    value("userid-list", "userid", ["u"]),
    value("userid-257", "userid", LONG_257),
    value("userid-3000", "userid", LONG_3000),
    value("userid-257-emoji", "userid", "🚀" * 257),
    text("userid-nul", "userid", '"a\\u0000b"'),
    text("userid-lone-surrogate", "userid", '"\\ud800"'),
    text("userid-reversed-surrogates", "userid", '"\\udc00\\ud800"'),
    # sender_id
    value("sender_id-int", "sender_id", 13800000000),
    value("sender_id-object", "sender_id", {"phone": "138"}),
    value("sender_id-257", "sender_id", LONG_257),
    value("sender_id-3000", "sender_id", LONG_3000),
    text("sender_id-nul", "sender_id", '"\\u0000"'),
    text("sender_id-lone-surrogate", "sender_id", '"138\\udbff"'),
    # sender, wechatwk_sender, app_sender: SMALLINT
    value("sender-string", "sender", "app"),
    value("sender-digit-string", "sender", "1"),
    value("sender-bool", "sender", True),
    value("sender-float", "sender", 1.0),
    value("sender-2**15", "sender", 2**15),
    value("sender--2**15-1", "sender", -(2**15) - 1),
    value("sender-2**31", "sender", 2**31),
    value("sender-2**63", "sender", 2**63),
    value("sender-huge", "sender", 10**40),
    text("sender-1e400", "sender", "1e400"),
    value("wechatwk_sender-bool", "wechatwk_sender", False),
    value("wechatwk_sender-string", "wechatwk_sender", "0"),
    value("wechatwk_sender-2**15", "wechatwk_sender", 2**15),
    value("wechatwk_sender--2**15-1", "wechatwk_sender", -(2**15) - 1),
    value("app_sender-float", "app_sender", 1.5),
    value("app_sender-2**15", "app_sender", 2**15),
    value("app_sender--2**15-1", "app_sender", -(2**15) - 1),
    value("app_sender-2**63", "app_sender", 2**63),
    # app_platform: an integer or a name of at most 64 characters
    value("app_platform-65", "app_platform", "h" * 65),
    value("app_platform-3000", "app_platform", LONG_3000),
    value("app_platform-bool", "app_platform", True),
    value("app_platform-list", "app_platform", ["android"]),
    text("app_platform-nul", "app_platform", '"and\\u0000roid"'),
    # sent_time: an integer 0..253402128000000
    value("sent_time-string", "sent_time", "1700000000"),
    value("sent_time-float", "sent_time", 1.7e9),
    value("sent_time-bool", "sent_time", True),
    value("sent_time-negative", "sent_time", -1),
    value("sent_time-past-bound", "sent_time", 253_402_128_000_001),
    value("sent_time-9999-12-31", "sent_time", 253_402_300_799_999),
    value("sent_time-2**63", "sent_time", 2**63),
    value("sent_time-2**64", "sent_time", 2**64),
    text("sent_time-1e400", "sent_time", "1e400"),
    text("sent_time-minus-1e400", "sent_time", "-1e400"),
    # error
    value("error-string", "error", "boom"),
    value("error-list", "error", [3005, "boom"]),
    error_value("error.code-float", "code", 3.5),
    error_value("error.code-bool", "code", True),
    error_value("error.code-2**63", "code", 2**63),
    error_value("error.code--2**63-1", "code", -(2**63) - 1),
    error_value("error.code-superscript-two", "code", "²"),
    error_value("error.code-double-minus", "code", "--1"),
    error_value("error.code-arabic-indic", "code", "٣٠٠٥"),
    error_value("error.code-fullwidth", "code", "３００５"),
    error_value("error.code-19-digits", "code", "1" * 19),
    error_value("error.code-4301-digit-string", "code", "1" * 4301),
    error_value("error.code-empty", "code", ""),
    error_value("error.code-plus", "code", "+5"),
    error_value("error.code-spaces", "code", " 5 "),
    error_value("error.code-hex", "code", "0x10"),
    error_value("error.code-list", "code", [5]),
    error_text("error.code-1e400", "code", "1e400"),
    error_value("error.message-int", "message", 5),
    error_value("error.message-4097", "message", "m" * 4097),
    error_value("error.message-4097-cjk", "message", "错" * 4097),
    error_text("error.message-nul", "message", '"fail\\u0000ed"'),
    error_text("error.message-lone-surrogate", "message", '"\\ud83d"'),
    # params: an object of at most 8192 bytes as JSON, nested at most 16 levels
    value("params-list", "params", [1]),
    value("params-string", "params", "order_id=1"),
    value("params-8300-bytes", "params", {"order_id": "p" * 8300}),
    value("params-many-keys", "params", {f"k{i:04d}": i for i in range(1200)}),
    text("params-17-objects", "params", nested_objects(17)),
    text("params-17-levels-arrays", "params", '{"a":' + nested_arrays(16) + "}"),
    text("params-1000-objects", "params", nested_objects(1000)),
    text("params-1000-levels-arrays", "params", '{"a":' + nested_arrays(999) + "}"),
    text("params-nul-key", "params", '{"a\\u0000": 1}'),
    text("params-nul-value", "params", '{"order_id": "1\\u0000"}'),
    text("params-surrogate-key", "params", '{"\\ud800": 1}'),
    text("params-surrogate-value", "params", '{"order_id": "\\udc00"}'),
    text("params-1e400", "params", '{"amount": 1e400}'),
    text("params-minus-1e400-deep", "params", '{"a": {"b": [-1e400]}}'),
]

# A record nested too deep in a field this service does not know: "(anywhere)".
HOSTILE_RECORDS += [
    text("unknown-field-1000-levels", "future", nested_arrays(1000)),
    text("unknown-field-17-objects", "future", nested_objects(17)),
]


@dataclass(frozen=True)
class OddRecord:
    """A record that looks strange but keeps every bound: it must be stored."""

    id: str
    fields: dict[str, Any]
    type_: int = 4


ODD_RECORDS: list[OddRecord] = [
    OddRecord("userid-chinese", {"userid": "用户一号"}),
    OddRecord("userid-emoji-zwj", {"userid": "👩\u200d💻🚀"}),
    OddRecord("userid-rtl-override", {"userid": "\u202euser\u202c"}),
    OddRecord("userid-rtl-mark", {"userid": "\u200fمستخدم\u200f"}),
    OddRecord("userid-bom", {"userid": "\ufeffuser"}),
    OddRecord("userid-combining", {"userid": "e\u0301\u0301\u0301"}),
    OddRecord("userid-noncharacters", {"userid": "\uffff\U0010ffff"}),
    OddRecord("userid-literal-backslash-u0000", {"userid": "\\u0000"}),
    OddRecord("userid-256", {"userid": "u" * 256, "sender_id": "s"}),
    OddRecord("userid-256-emoji", {"userid": "😀" * 256, "sender_id": "s"}),
    OddRecord("msgid-256", {"msgid": "m" * 256}),
    OddRecord(
        "keys-256-wide-incompressible",
        {
            "msgid": incompressible_wide(256),
            "userid": incompressible_wide(256)[::-1],
            "sender_id": incompressible(256),
        },
    ),
    OddRecord("msgid-chinese", {"msgid": "消息:1"}),
    OddRecord("sender_id-256", {"sender_id": "s" * 256}),
    OddRecord("sender_id-email-idn", {"sender_id": "用户@例子.广告"}),
    OddRecord("channelkey-empty", {"channelkey": ""}),
    OddRecord("app_platform-64", {"sender": 1, "app_platform": "p" * 64}),
    OddRecord("app_platform-emoji", {"sender": 1, "app_platform": "📱"}),
    OddRecord("sender-32767", {"sender": 2**15 - 1}),
    OddRecord("sender--32768", {"sender": -(2**15)}),
    OddRecord("app_sender-32767", {"sender": 1, "app_sender": 2**15 - 1}),
    OddRecord("wechatwk_sender--32768", {"sender": 9, "wechatwk_sender": -(2**15)}),
    OddRecord("sent_time-0", {"sent_time": 0}),
    OddRecord("sent_time-last-second", {"sent_time": 10**11 - 1}),
    OddRecord("sent_time-first-millisecond", {"sent_time": 10**11}),
    OddRecord("sent_time-bound", {"sent_time": 253_402_128_000_000}),
    OddRecord("error.code-2**63-1", {"error": {"code": 2**63 - 1, "message": "x"}}, 5),
    OddRecord("error.code--2**63", {"error": {"code": -(2**63), "message": "x"}}, 5),
    OddRecord("error.code-18-digits", {"error": {"code": "-" + "9" * 18, "message": "x"}}, 5),
    OddRecord("error.code-leading-zeros", {"error": {"code": "007", "message": "x"}}, 5),
    OddRecord("error.code-zero-string", {"error": {"code": "0", "message": "x"}}, 5),
    OddRecord("error.message-4096", {"error": {"code": 1, "message": "m" * 4096}}, 5),
    OddRecord("error.message-4096-cjk", {"error": {"code": 1, "message": "错" * 4096}}, 5),
    OddRecord("error-null-parts", {"error": {"code": None, "message": None}}, 5),
    OddRecord("params-chinese", {"params": {"订单": "一二三", "emoji": "🎉"}}),
    OddRecord("params-16-levels", {"params": json.loads(nested_objects(16))}),
    OddRecord("params-7000-bytes", {"params": {"order_id": "p" * 7000}}),
    OddRecord("params-cjk-6000-utf8-bytes", {"params": {"note": "订" * 2000}}),
    OddRecord("params-big-integer", {"params": {"n": 10**30, "m": -(2**63) - 1}}),
    OddRecord("params-empty", {"params": {}}),
    OddRecord("unknown-field-16-levels", {"future": json.loads(nested_arrays(16))}),
]


def cursor(*values: Any) -> str:
    """A cursor as this service writes them: base64url of a JSON list, unpadded."""
    return raw_cursor(json.dumps(list(values), separators=(",", ":")))


def raw_cursor(json_text: str) -> str:
    return base64.urlsafe_b64encode(json_text.encode()).decode().rstrip("=")
