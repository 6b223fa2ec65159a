"""Sending through the providers: validate, record, send, and complete every request.

:mod:`.request` (the UMS send request model), :mod:`.outcome` (the result shapes both
providers share, and SendFailedError), :mod:`.record` (the outbox: each request recorded
before it leaves, completed when answered), :mod:`.idempotency` (``Idempotency-Key``),
:mod:`.ums` and :mod:`.rongcloud` (the senders), :mod:`.withdraw` (UMS withdraws)."""
