"""RongCloud template private messages: the rules of a request, the rate limit, and the
signed client.

What the code relies on, by the title of RongCloud's public page:

- 发送单聊模板消息 (Send private template message): ``POST
  /message/private/publish_template.json`` with a JSON body: ``fromUserId``,
  ``toUserId`` (at most 1000 recipients in one request), ``objectName``, ``content``
  (the message JSON as a string, with placeholders such as ``{name}``), and one
  ``values`` map and one ``pushContent`` text per recipient, in ``toUserId``'s order.
  At most 6000 recipients a minute per app, a request to 1000 recipients counting
  1000. Success is ``{"code": 200}``, with ``messageUIDs`` in newer versions; a failure
  is ``{"code", "errorMessage"}``.
- API 调用签名规则 (API signature rules): headers ``App-Key``, ``Nonce``,
  ``Timestamp`` and ``Signature`` = ``hex(SHA1(app secret + nonce + timestamp))``.
- 状态码 (Status codes): 200 success, 1002 parameter error, 1004 signature error
  (HTTP 401), 1005 parameter too long, 1008 rate limit exceeded (HTTP 429).
- The backup domain: RongCloud's official server SDK (rongcloud/server-sdk-go) sends to
  ``api.rong-api.com`` and, when it cannot be reached or answers 5xx, to
  ``api-b.rong-api.com``; the client here fails over once per request in the same way.

Modules: :mod:`.protocol` (endpoint, fields, limits, codes), :mod:`.rules` (validate,
split, render), :mod:`.ratelimit` (the per-app limiter), :mod:`.client` (signing and
sending). Errors are the shared :mod:`sender.errors` classes.
"""

from __future__ import annotations

from .client import PublishResult, RongCloudClient, signature, signed_headers
from .protocol import BUILTIN_OBJECT_NAMES, MAX_RECIPIENTS, PATH, PROVIDER
from .ratelimit import RateLimiter, limiter_for
from .rules import placeholders, preview_template, render, split_template, validate_template

__all__ = [
    "BUILTIN_OBJECT_NAMES",
    "MAX_RECIPIENTS",
    "PATH",
    "PROVIDER",
    "PublishResult",
    "RateLimiter",
    "RongCloudClient",
    "limiter_for",
    "placeholders",
    "preview_template",
    "render",
    "signature",
    "signed_headers",
    "split_template",
    "validate_template",
]
