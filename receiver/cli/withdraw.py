"""``umstrack withdraw MSGID``: withdraw a UMS message and record the withdraw."""

from __future__ import annotations

import click

from ..config import ConfigError, Settings
from ..db import migrate
from ..sending.withdraw import (
    MessageNotFoundError,
    NotWithdrawableError,
    Withdrawer,
    WithdrawError,
    WithdrawOutcome,
)
from .common import configure_logging, fail, missing_sqlite_file, print_json
from .database import opened_database


@click.command(
    "withdraw",
    epilog="Reads UMS_CHANNELS, UMS_API_BASE and DATABASE_URL (the message is looked up "
    "and the withdraw recorded there). Exit 0 UMS accepted it; 1 UMS refused it, could not "
    "be reached or did not answer, it was already withdrawn or a withdraw is in flight, or "
    "the database failed; 2 unknown msgid, a msgid UMS never accepted, or configuration.",
)
@click.argument("msgid")
def command(msgid: str) -> None:
    """Withdraw MSGID (sent within the last 24 hours) through the channel that sent it;
    print UMS's answer as JSON. Each target's outcome arrives later as callbacks."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    if database := missing_sqlite_file(settings):
        fail(f"no database at {database} (set DATABASE_URL), so no message is known", code=2)
    with opened_database(settings) as engine:
        migrate(settings.database_url)  # the withdraw is recorded beside the message
        outcome = _withdraw(Withdrawer.from_settings(settings, engine=engine), msgid)
    print_json(outcome.model_dump(mode="json"))


def _withdraw(withdrawer: Withdrawer, msgid: str) -> WithdrawOutcome:
    """The accepted withdraw; otherwise say why and exit (printing what is known)."""
    try:
        return withdrawer.withdraw(msgid)
    except ConfigError as exc:
        fail(f"cannot withdraw: {exc}", code=2)
    except (MessageNotFoundError, NotWithdrawableError) as exc:
        fail(exc.message, code=2)
    except WithdrawError as exc:
        print_json({**exc.details(), "error": exc.error, "message": exc.message})
        fail(exc.message, code=1)
