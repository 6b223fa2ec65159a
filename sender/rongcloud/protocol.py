"""RongCloud server API facts that the rules, the rate limiter and the client import
instead of re-declaring: the endpoint, the body's fields, the limits and the codes.

Sources, by the title of the provider's public page: 发送单聊模板消息 (Send private
template message) for the endpoint, the fields, the 1000 recipients of one request and
the 6000 recipients a minute; 状态码 (Status codes) for the codes; API 调用签名规则
(API signature rules) for the nonce. The 32-character ``objectName``, 64-character
``fromUserId`` and 128 KB message limits, the built-in message types and the domains
are as RongCloud's official server SDKs (rongcloud/server-sdk-go, server-sdk-java) and
Web IM SDK state them.
"""

from __future__ import annotations

from typing import Final

PROVIDER: Final = "rongcloud"

# The Beijing data centre and its backup domain (rongcloud/server-sdk-go).
DEFAULT_API_BASE: Final = "https://api.rong-api.com"
DEFAULT_BACKUP_API_BASE: Final = "https://api-b.rong-api.com"

PATH: Final = "/message/private/publish_template.json"

# --- Limits -----------------------------------------------------------------------
MAX_RECIPIENTS: Final = 1000  # toUserId entries in one request
MAX_CONTENT_BYTES: Final = 128 * 1024  # the whole message
MAX_OBJECT_NAME_CHARS: Final = 32
MAX_USER_ID_CHARS: Final = 64  # fromUserId (the Java SDK's verify.json)
MAX_NONCE_CHARS: Final = 18
# At most 6000 messages a minute, one request to 1000 recipients counting 1000.
RATE_LIMIT: Final = 6000
RATE_PERIOD: Final = 60.0

# --- Codes (状态码): the ``code`` of every answer ----------------------------------
SUCCESS: Final = 200
INTERNAL_ERROR: Final = 1000
PARAMETER_ERROR: Final = 1002
SIGNATURE_ERROR: Final = 1004
TOO_LONG: Final = 1005
RATE_LIMITED: Final = 1008

# --- The body of publish_template.json ----------------------------------------------
REQUIRED_FIELDS: Final = (
    "fromUserId",
    "toUserId",
    "objectName",
    "content",
    "values",
    "pushContent",
)
# Arrays of one string per toUserId, cut along with it when a send is split.
PER_RECIPIENT_FIELDS: Final = ("pushContent", "pushData", "pushExt")
# Of those, the ones RongCloud renders with each recipient's values; pushExt goes as is.
TEMPLATE_FIELDS: Final = ("pushContent", "pushData")
BINARY_FLAGS: Final = (
    "isIncludeSender",
    "verifyBlacklist",
    "contentAvailable",
    "needReadReceipt",
    "isCounted",
)
BOOL_FLAGS: Final = ("disablePush", "disableUpdateLastMsg")
OPTIONAL_FIELDS: Final = (
    "pushData",
    "pushExt",
    *BINARY_FLAGS,
    *BOOL_FLAGS,
    "busChannel",
    "msgRandom",
)
FIELDS: Final = frozenset((*REQUIRED_FIELDS, *OPTIONAL_FIELDS))

# The message types RongCloud's own SDKs define (the Web IM SDK's registry of RC:
# types). Only these may start with "RC:"; any other RC: name is taken to be a custom
# type misnamed, which RongCloud forbids (it would clash with its own types).
BUILTIN_OBJECT_NAMES: Final = frozenset(
    {
        # content messages
        "RC:TxtMsg",
        "RC:ImgMsg",
        "RC:VcMsg",
        "RC:HQVCMsg",
        "RC:ImgTextMsg",
        "RC:FileMsg",
        "RC:LBSMsg",
        "RC:SightMsg",
        "RC:GIFMsg",
        "RC:CombineMsg",
        "RC:ReferenceMsg",
        "RC:PSImgTxtMsg",
        "RC:PSMultiImgTxtMsg",
        # notifications and commands
        "RC:InfoNtf",
        "RC:ContactNtf",
        "RC:ProfileNtf",
        "RC:CmdNtf",
        "RC:GrpNtf",
        "RC:RcNtf",
        "RC:CmdMsg",
        "RC:RcCmd",
        "RC:ReadNtf",
        "RC:TypSts",
        "RC:SRSMsg",
        "RC:RRReqMsg",
        "RC:RRRspMsg",
        "RC:chrmKVNotiMsg",
        "RC:MsgExMsg",
    }
)
