"""``umstrack emulate``: serve the local UMS emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any, Final

import click

from sender.emulator import DEFAULT_PORT, Emulator, EmulatorConfig

from ..config import Settings
from .common import StopSignals, configure_logging, fail

log = logging.getLogger(__name__)

CALLBACK_URL_ENV: Final = "UMS_EMULATOR_CALLBACK_URL"
_DEFAULTS: Final[dict[str, Any]] = {f.name: f.default for f in fields(EmulatorConfig)}
_SHARE: Final = click.FloatRange(0.0, 1.0)
_SECONDS: Final = click.FloatRange(min=0.0)
_COUNT: Final = click.IntRange(min=0)


def _share(name: str, what: str) -> dict[str, Any]:
    """The type, default and help of a --xxx-share option."""
    default = _DEFAULTS[name]
    return {"type": _SHARE, "default": default, "help": f"share of {what}, 0-1 (default {default})"}


@click.command(
    "emulate",
    epilog=f"Reads UMS_CHANNELS (the channels it accepts; required) and {CALLBACK_URL_ENV}. "
    "Exit 0 after SIGINT or SIGTERM, 1 when the port cannot be listened on, 2 for bad "
    "settings.",
)
@click.option(
    "--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})"
)
@click.option(
    "--callback-url",
    envvar=CALLBACK_URL_ENV,
    help=f"callback URL of messages without callback.url (default ${CALLBACK_URL_ENV})",
)
@click.option(
    "--flush-interval",
    type=_SECONDS,
    default=_DEFAULTS["flush_interval"],
    help="seconds a batch of under --batch-size records waits "
    f"(default {_DEFAULTS['flush_interval']})",
)
@click.option(
    "--retry-interval",
    type=_SECONDS,
    default=_DEFAULTS["retry_interval"],
    help=f"seconds between attempts of a failed batch (default {_DEFAULTS['retry_interval']})",
)
@click.option(
    "--max-retries",
    type=_COUNT,
    default=_DEFAULTS["max_retries"],
    help=f"retries of a failed batch before it is dropped (default {_DEFAULTS['max_retries']})",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS["batch_size"],
    help=f"records per callback POST at most (default {_DEFAULTS['batch_size']})",
)
@click.option("--seed", type=int, help="seed of the outcomes (default: random)")
@click.option("--invalid-share", **_share("invalid_share", "targets that are invalid"))
@click.option(
    "--submit-fail-share", **_share("submit_fail_share", "targets whose submission fails")
)
@click.option(
    "--delivery-fail-share",
    **_share("delivery_fail_share", "submitted targets whose delivery fails"),
)
@click.option("--click-share", **_share("click_share", "delivered targets that click"))
@click.option("--withdraw-fail-share", **_share("withdraw_fail_share", "withdrawals that fail"))
@click.option(
    "--users-per-tag",
    type=_COUNT,
    default=_DEFAULTS["users_per_tag"],
    help=f"made-up users per tag or segment (default {_DEFAULTS['users_per_tag']})",
)
@click.option(
    "--broadcast-users",
    type=_COUNT,
    default=_DEFAULTS["broadcast_users"],
    help=f"made-up users a broadcast reaches (default {_DEFAULTS['broadcast_users']})",
)
@click.option("--duplicate", is_flag=True, help="fault: POST every batch twice")
@click.option("--shuffle", is_flag=True, help="fault: records and batches in random order")
@click.option(
    "--delay-share",
    type=_SHARE,
    default=_DEFAULTS["delay_share"],
    help="fault: share of records held back --delay-seconds (default 0)",
)
@click.option(
    "--delay-seconds",
    type=_SECONDS,
    default=_DEFAULTS["delay_seconds"],
    help=f"how long delayed records are held back (default {_DEFAULTS['delay_seconds']})",
)
def command(
    port: int,
    callback_url: str | None,
    flush_interval: float,
    retry_interval: float,
    max_retries: int,
    batch_size: int,
    seed: int | None,
    invalid_share: float,
    submit_fail_share: float,
    delivery_fail_share: float,
    click_share: float,
    withdraw_fail_share: float,
    users_per_tag: int,
    broadcast_users: int,
    duplicate: bool,
    shuffle: bool,
    delay_share: float,
    delay_seconds: float,
) -> None:
    """Serve a local stand-in for UMS on 127.0.0.1: its send and withdraw APIs, and
    status callbacks delivered as UMS delivers them, until Ctrl-C."""
    configure_logging(result_on_stdout=False)
    channels = Settings.from_env().channels
    if not channels:
        fail("UMS_CHANNELS is empty: give the emulator channelkey:mastersecret pairs", code=2)
    try:
        config = EmulatorConfig(
            channels=channels,
            port=port,
            flush_interval=flush_interval,
            retry_interval=retry_interval,
            max_retries=max_retries,
            batch_size=batch_size,
            seed=seed,
            invalid_share=invalid_share,
            submit_fail_share=submit_fail_share,
            delivery_fail_share=delivery_fail_share,
            click_share=click_share,
            withdraw_fail_share=withdraw_fail_share,
            users_per_tag=users_per_tag,
            broadcast_users=broadcast_users,
            duplicate_batches=duplicate,
            shuffle=shuffle,
            delay_share=delay_share,
            delay_seconds=delay_seconds,
            default_callback_url=callback_url or None,
        )
    except ValueError as exc:
        fail(f"bad emulator settings: {exc}", code=2)
    with StopSignals() as stop:
        try:
            emulator = Emulator(config).start()
        except OSError as exc:
            fail(f"cannot listen on 127.0.0.1:{port}: {exc}", code=1)
        try:
            log.info(
                "UMS emulator for channel(s) %s; callbacks to %s; Ctrl-C stops it",
                ", ".join(channels),
                config.default_callback_url or "each message's callback.url",
            )
            stop.wait()
        finally:
            emulator.stop()
    log.info("UMS emulator stopped")
