"""Sending through the providers: validate, split, send, and record every request.

:mod:`.request` (the UMS send request model), :mod:`.outcome` (the result shapes both
providers share, and SendFailedError), :mod:`.record` (one request's row and events),
:mod:`.ums` and :mod:`.rongcloud` (the senders)."""
