"""Settings, read from the environment in this one place (12-factor)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import overload

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sender.rongcloud.protocol import DEFAULT_API_BASE as RONGCLOUD_API_BASE
from sender.rongcloud.protocol import DEFAULT_BACKUP_API_BASE as RONGCLOUD_BACKUP_API_BASE
from sender.ums.protocol import DEFAULT_API_BASE as UMS_API_BASE

DEFAULT_SQLITE_FILE = "umstrack.db"
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_STALE_AFTER_MINUTES = 30
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_SPOOL_DIR = "umstrack-spool"
DEFAULT_SPOOL_MAX_BYTES = 1 << 30
# SPOOL_DIR's value that turns the outage spool off.
SPOOL_OFF = "off"


class ConfigError(ValueError):
    """A setting is present but cannot be understood."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment. Its repr shows no secret: a
    settings object may end up in a log or a traceback."""

    database_url: str
    channels: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sqlite_busy_timeout_ms: int = 5000
    port: int = 8000
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    public_url: str | None = None
    ums_api_base: str = UMS_API_BASE
    rongcloud_app_key: str | None = None
    rongcloud_app_secret: str | None = field(default=None, repr=False)
    rongcloud_api_base: str = RONGCLOUD_API_BASE
    rongcloud_backup_api_base: str | None = RONGCLOUD_BACKUP_API_BASE
    # Signs the web UI's session cookie; unset, each process makes its own.
    secret_key: str | None = field(default=None, repr=False)
    # The address to bind; None: the command's own default (0.0.0.0 for the platform's
    # web process only, 127.0.0.1 for everything run on a laptop).
    host: str | None = None
    # Bearer token of GET /metrics; unset, metrics answer on a loopback bind only.
    metrics_token: str | None = field(default=None, repr=False)
    # Messages older than this many days are purged (``umstrack purge``); None: kept.
    retention_days: int | None = None
    # A target whose last status is not final and has not moved for this long is stale.
    stale_after: timedelta = timedelta(minutes=DEFAULT_STALE_AFTER_MINUTES)
    # Proxies whose X-Forwarded-* headers are believed (addresses, networks or "*").
    forwarded_allow_ips: tuple[str, ...] = ()
    # PostgreSQL statement_timeout of the web app's queries.
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    # Where intake keeps batches while PostgreSQL is unreachable; None: no spool (503).
    # SQLite never spools, whatever this says: its database is the local disk already.
    spool_dir: Path | None = None
    # The most the spool holds; past it, intake answers 503 again.
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES

    def __repr__(self) -> str:
        shown = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.repr and f.name != "database_url"
        ]
        return f"Settings(database_url={safe_url(self.database_url)!r}, {', '.join(shown)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (``os.environ`` by default)."""
        env = os.environ if env is None else env
        return cls(
            database_url=normalize_database_url(env.get("DATABASE_URL", "")),
            channels=parse_channels(env.get("UMS_CHANNELS", "")),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            sqlite_busy_timeout_ms=_int(env, "SQLITE_BUSY_TIMEOUT_MS", 5000),
            port=_int(env, "PORT", 8000),
            api_tokens=_list(env, "API_TOKENS"),
            public_url=env.get("PUBLIC_URL") or None,
            ums_api_base=env.get("UMS_API_BASE") or UMS_API_BASE,
            rongcloud_app_key=env.get("RONGCLOUD_APP_KEY") or None,
            rongcloud_app_secret=env.get("RONGCLOUD_APP_SECRET") or None,
            rongcloud_api_base=env.get("RONGCLOUD_API_BASE") or RONGCLOUD_API_BASE,
            # Set RONGCLOUD_API_BASE alone and there is no backup: a local test server
            # is not to be failed over to the real RongCloud.
            rongcloud_backup_api_base=env.get("RONGCLOUD_BACKUP_API_BASE")
            or (None if env.get("RONGCLOUD_API_BASE") else RONGCLOUD_BACKUP_API_BASE),
            secret_key=env.get("SECRET_KEY") or None,
            host=env.get("HOST", "").strip() or None,
            metrics_token=env.get("METRICS_TOKEN") or None,
            retention_days=_int(env, "RETENTION_DAYS", None),
            stale_after=timedelta(minutes=_int(env, "STALE_AFTER", DEFAULT_STALE_AFTER_MINUTES)),
            forwarded_allow_ips=_addresses(env, "FORWARDED_ALLOW_IPS"),
            statement_timeout_ms=_int(env, "STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS),
            spool_dir=spool_dir(env.get("SPOOL_DIR", "")),
            spool_max_bytes=_int(env, "SPOOL_MAX_BYTES", DEFAULT_SPOOL_MAX_BYTES),
        )


def normalize_database_url(url: str) -> str:
    """Turn ``DATABASE_URL`` into a SQLAlchemy URL: Heroku's ``postgres://`` and plain
    ``postgresql://`` get the psycopg 3 driver; empty means a SQLite file in the working
    directory."""
    url = url.strip()
    if not url:
        return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def spool_dir(value: str) -> Path | None:
    """``SPOOL_DIR``: empty means ``umstrack-spool`` in the working directory (beside
    the default SQLite file), ``off`` means no spool."""
    value = value.strip()
    if value == SPOOL_OFF:
        return None
    return Path(value).absolute() if value else Path.cwd() / DEFAULT_SPOOL_DIR


def safe_url(url: str) -> str:
    """A database URL fit for a log line: its password, if any, masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL at all: say nothing of it but its scheme
        return url.partition("://")[0] + "://..." if "://" in url else "(not a URL)"


def parse_channels(value: str) -> dict[str, str]:
    """Parse ``UMS_CHANNELS``: ``channelkey:mastersecret`` pairs, comma-separated. An
    error names a malformed item by its position, never by its text: that may be a
    secret."""
    channels: dict[str, str] = {}
    items = [item.strip() for item in value.split(",")]
    for position, item in enumerate(items, start=1):
        if not item:
            continue
        key, sep, secret = item.partition(":")
        if not sep or not key or not secret:
            missing = "no ':'" if not sep else "no channelkey" if not key else "no mastersecret"
            raise ConfigError(
                f"UMS_CHANNELS: item {position} of {len(items)} has {missing} "
                "(expected channelkey:mastersecret, comma-separated)"
            )
        channels[key] = secret
    return channels


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A list of addresses and networks (or ``*``), each checked."""
    items = _list(env, name)
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an address, a network or *") from None
    return items


@overload
def _int(env: Mapping[str, str], name: str, default: int) -> int: ...
@overload
def _int(env: Mapping[str, str], name: str, default: None) -> int | None: ...
def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value
