"""Exports: every item of a message's timeline or targets as CSV or NDJSON, streamed.

Items are read in keyset batches through the same read functions the paged API uses
(so every filter of the API applies), each batch in a transaction of its own: memory
stays bounded by one batch, and a slow download holds no snapshot or connection open
between batches. CSV columns are derived from the pydantic item models, so a field
added to them later becomes a column without a change here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from sender.ums.protocol import Stage

from . import read
from .keyset import Page
from .schemas.messages import Event, Target

Format = Literal["csv", "ndjson"]
What = Literal["targets", "events"]
FORMATS: Final = ("csv", "ndjson")
MEDIA_TYPES: Final[dict[str, str]] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
# Rows per read: small enough that one batch of items stays well under a megabyte or
# two, large enough that a 100,000-row export takes a few hundred short queries.
BATCH: Final = 500
# Dict fields whose keys are known although their type does not say so: each key
# becomes a group of columns, so the header is the same whichever keys a row has.
KNOWN_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "stages": tuple(stage.name.lower() for stage in Stage)
}
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Export:
    """What one export reads: its item model and the read function that pages it."""

    model: type[BaseModel]
    list_page: Callable[..., Page[Any]]


EXPORTS: Final[dict[str, Export]] = {
    "targets": Export(Target, read.targets),
    "events": Export(Event, read.timeline),
}


def message_export(
    *, session: Session, msgid: str, what: str, fmt: Format, **filters: Any
) -> Iterator[str] | None:
    """One message's ``what`` (targets or events) matching ``filters``, as ``fmt`` text
    chunks; None when nothing at all is known of the message."""
    export = EXPORTS[what]
    first = export.list_page(session=session, msgid=msgid, limit=BATCH, cursor=None, **filters)
    if not first.items and not read.message_known(session=session, msgid=msgid):
        return None
    rows = items(export.list_page, session=session, first=first, msgid=msgid, **filters)
    return chunks(fmt, export.model, rows)


def items(
    list_page: Callable[..., Page[Any]],
    *,
    session: Session,
    batch: int = BATCH,
    first: Page[Any] | None = None,
    **filters: Any,
) -> Iterator[BaseModel]:
    """Every item ``list_page`` lists with ``filters``, read ``batch`` at a time (from
    ``first``, a first page already read, when given)."""
    page = first or list_page(session=session, limit=batch, cursor=None, **filters)
    while True:
        # End the read's transaction: nothing is held while the client downloads.
        session.rollback()
        yield from page.items
        if page.next_cursor is None:
            return
        page = list_page(session=session, limit=batch, cursor=page.next_cursor, **filters)


def columns(model: type[BaseModel]) -> list[str]:
    """The CSV header of ``model``'s items: nested models as dotted columns."""
    return [
        column
        for name, field in model.model_fields.items()
        for column in _columns(name, field.annotation)
    ]


def csv_chunks(model: type[BaseModel], rows: Iterable[BaseModel]) -> Iterator[str]:
    """CSV text of ``rows``: a byte order mark and the header, then one line per row,
    yielded a batch at a time."""
    header = columns(model)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # The mark tells spreadsheets the file is UTF-8, so Chinese text opens intact.
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow(cells(header, row))
        if count % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def ndjson_chunks(rows: Iterable[BaseModel]) -> Iterator[str]:
    """One JSON object a line, each exactly as the paged API shows the item."""
    lines: list[str] = []
    for row in rows:
        lines.append(row.model_dump_json())
        if len(lines) == BATCH:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def chunks(fmt: Format, model: type[BaseModel], rows: Iterable[BaseModel]) -> Iterator[str]:
    """The export of ``rows`` in ``fmt``."""
    return csv_chunks(model, rows) if fmt == "csv" else ndjson_chunks(rows)


def cells(header: list[str], item: BaseModel) -> list[str]:
    """One CSV row of ``item`` under ``header``: missing or null values are empty."""
    data = item.model_dump(mode="json")
    return [_cell(_at(data, column.split("."))) for column in header]


def filename(msgid: str, what: str, fmt: str) -> str:
    """A download name for one message's export: msgids hold ":", which some file
    systems refuse, so anything but letters, digits, ".", "_" and "-" becomes "_"."""
    return f"{_UNSAFE_FILENAME.sub('_', msgid).strip('.') or 'message'}-{what}.{fmt}"


def _columns(prefix: str, annotation: Any) -> list[str]:
    model = _model_in(annotation)
    if model is not None:
        return [
            column
            for name, field in model.model_fields.items()
            for column in _columns(f"{prefix}.{name}", field.annotation)
        ]
    keyed = _keyed_values(prefix.rsplit(".", 1)[-1], annotation)
    if keyed is not None:
        keys, value = keyed
        return [column for key in keys for column in _columns(f"{prefix}.{key}", value)]
    return [prefix]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model ``annotation`` names, alone or as ``Model | None``."""
    options = _options(annotation)
    found = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
    return found[0] if len(found) == 1 and len(options) == 1 else None


def _keyed_values(name: str, annotation: Any) -> tuple[tuple[str, ...], Any] | None:
    """The keys and value type of a dict field whose keys are known (a Literal key type,
    or a name in KNOWN_KEYS) and whose values are models; None for any other field."""
    options = _options(annotation)
    if len(options) != 1 or typing.get_origin(options[0]) not in (dict, Mapping):
        return None
    key, value = typing.get_args(options[0]) or (None, None)
    if _model_in(value) is None:
        return None
    if typing.get_origin(key) is Literal:
        return tuple(str(k) for k in typing.get_args(key)), value
    return (KNOWN_KEYS[name], value) if name in KNOWN_KEYS else None


def _options(annotation: Any) -> list[Any]:
    """The types of a union without None (the type itself when it is no union)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _at(data: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str):
        # A leading quote makes a spreadsheet show the text instead of running it.
        return f"'{value}" if value.startswith(_FORMULA_START) else value
    return str(value)
