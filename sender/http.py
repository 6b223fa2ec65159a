"""What every provider client shares: one HTTP session that never retries by itself,
closed with the client."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class ProviderClient:
    """Base of the provider clients: ``self._session`` for their calls; a context
    manager that closes it."""

    def __init__(self) -> None:
        self._closed = False
        self._session = requests.Session()
        # Retries are decided by the client, not by urllib3: Retry(0, read=False) turns
        # every failure into an exception on the first attempt.
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "umstrack"})

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        self._closed = True
        self._session.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
