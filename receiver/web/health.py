"""Health checks for the platform: ``/healthz`` (liveness: the process answers) and
``/readyz`` (readiness: what the service needs to work, each check named)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, Field

from ..db import get_engine, head_revision, known_revisions, schema_revision
from ..errors import error_response
from ..openapi import Reply, documented
from ..spool import Spool
from .common import answer

bp = Blueprint("health", __name__)


class Health(BaseModel):
    """The liveness answer."""

    status: Literal["ok"]


class Ready(BaseModel):
    """The readiness answer: what each check found."""

    status: Literal["ready"]
    checks: dict[str, str] = Field(
        description='Each check and what it found: `database` "ok", `schema` the '
        'database\'s migration revision, `spool` "off", "empty" or what the outage spool '
        "holds (entries, bytes, the oldest one's age)."
    )


class NotReady(BaseModel):
    """Not ready (error `not_ready`): the message names what fails."""

    error: Literal["not_ready"]
    message: str
    checks: dict[str, str] = Field(
        description="Each check that ran and what it found (`unavailable`, `behind` ...)."
    )


@dataclass(frozen=True)
class Check:
    """One readiness check's finding: ``problem`` says why the service is not ready."""

    name: str
    found: str
    problem: str | None = None


def database_checks() -> Iterator[Check]:
    """The database answers, and its schema is at the bundled migrations' head (or at a
    revision this release does not know: a newer release's, which migrated first)."""
    try:
        revision = schema_revision(get_engine())
    except Exception:  # any failure to answer means "not ready"
        yield Check("database", "unavailable", "the database does not answer")
        return
    yield Check("database", "ok")
    head = head_revision()
    if revision is None:
        yield Check("schema", "none", f"the database has no schema (head is {head})")
    elif revision != head and revision in known_revisions():
        yield Check(
            "schema", f"behind: {revision}", f"the schema is at {revision}, behind head {head}"
        )
    else:
        yield Check("schema", revision)


def spool_checks() -> Iterator[Check]:
    """What the outage spool holds: reported, never a reason not to be ready (a spool
    that holds batches is one that works; the drainers empty it once the database is
    back)."""
    spool: Spool | None = current_app.extensions["umstrack.spool"]
    if spool is None:
        yield Check("spool", "off")
        return
    try:
        status = spool.status()
    except OSError as exc:
        yield Check("spool", f"unreadable: {exc.strerror}")
        return
    if not status.entries and not status.held:
        yield Check("spool", "empty")
        return
    found = (
        f"{status.entries} entries, {status.bytes} bytes, oldest "
        f"{status.age_seconds(datetime.now(UTC)):.0f} s"
    )
    if status.held:
        found += f", {status.held} held"
    yield Check("spool", found + (", draining" if status.draining else ""))


# Each readiness check in turn; a check of another dependency is added here.
READINESS: tuple[Callable[[], Iterator[Check]], ...] = (database_checks, spool_checks)


@bp.get("/healthz")
@documented(
    operation_id="healthz",
    summary="Liveness: the process answers (nothing else is checked)",
    tag="service",
    security=None,
    replies={200: Reply("The process answers.", Health)},
)
def healthz() -> Response:
    """200 whenever the process answers: a platform restarts the process when it does not."""
    return answer(Health(status="ok"))


@bp.get("/readyz")
@documented(
    operation_id="readyz",
    summary="Readiness: the database answers and its schema is at the migrations' head "
    "(and what the outage spool holds)",
    tag="service",
    security=None,
    replies={
        200: Reply("Ready: every check passed.", Ready),
        503: Reply("Not ready (error `not_ready`); the message names what fails.", NotReady),
    },
)
def readyz() -> Response:
    """200 when every readiness check passes, else 503 naming the ones that fail."""
    checks = [check for run in READINESS for check in run()]
    found = {check.name: check.found for check in checks}
    problems = [check.problem for check in checks if check.problem]
    if problems:
        message = "Not ready: " + "; ".join(problems) + "."
        return error_response(503, "not_ready", message, details={"checks": found})
    return answer(Ready(status="ready", checks=found))
