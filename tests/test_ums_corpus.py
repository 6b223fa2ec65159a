"""Real UMS request bodies (tests/ums_corpus) through the real command line.

Every body under ``valid/`` (from UMS's pages, from the Go SDK cavlabs/jiguang-sdk-go,
from a Java client) must pass ``umstrack send --dry-run``, and each request it would post
must pass the emulator's check too; every body under ``forbidden/`` must be refused with
exit 2, naming the field UMS would refuse and its business code. Each file is
``{"source", "kind", "body"}``, plus ``"field"`` and ``"code"`` when forbidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sender.emulator import emulator
from sender.ums.protocol import SendKind
from sender.ums.rules import AUDIENCES, MSG_CHANNELS, validate_message
from tests.cli import invoke

CORPUS = Path(__file__).parent / "ums_corpus"
FLAGS = {
    SendKind.SENT: (),
    SendKind.BROADCAST: ("--broadcast",),
    SendKind.TEMPLATE_SENT: ("--template",),
    SendKind.TEMPLATE_BROADCAST: ("--broadcast", "--template"),
}


def _load(folder: str) -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((CORPUS / folder).glob("*.json"))
    }


VALID = _load("valid")
FORBIDDEN = _load("forbidden")


def _dry_run(entry: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(entry["body"], ensure_ascii=False), encoding="utf-8")
    env = {
        "UMS_CHANNELS": "ck:secret",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "PUBLIC_URL": None,
        "UMS_API_BASE": None,
    }
    return invoke("send", "--dry-run", *FLAGS[SendKind(entry["kind"])], str(path), env=env)


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_real_body_passes_the_command_line_and_the_emulator(name: str, tmp_path: Path) -> None:
    entry = VALID[name]
    result = _dry_run(entry, tmp_path)
    assert result.exit_code == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    assert parts and all(part["body"] for part in parts)
    for part in parts:
        # What the sender would post, checked as the emulator checks what it receives.
        emulator.validate_message(part["body"], kind=entry["kind"])


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_a_forbidden_body_is_refused_naming_its_field(name: str, tmp_path: Path) -> None:
    entry = FORBIDDEN[name]
    result = _dry_run(entry, tmp_path)
    assert result.exit_code == 2, result.stdout
    assert f"invalid message: {entry['field']}: " in result.stderr
    assert f"(UMS would answer {entry['code']})" in result.stderr
    assert result.stdout == ""


def test_the_emulator_checks_with_the_senders_rules() -> None:
    # One rule set: the emulator never accepts what the sender refuses, nor the reverse.
    assert emulator.validate_message is validate_message


def test_every_entry_says_where_it_comes_from() -> None:
    for name, entry in {**VALID, **FORBIDDEN}.items():
        keys = {"source", "kind", "body"} | ({"field", "code"} if name in FORBIDDEN else set())
        assert set(entry) == keys, name
        assert entry["source"].strip() and SendKind(entry["kind"]), name
        assert isinstance(entry["body"], dict), name


def test_the_corpus_covers_every_kind_channel_and_audience() -> None:
    assert len(VALID) >= 30 and len(FORBIDDEN) >= 20
    bodies = [entry["body"] for entry in VALID.values()]
    assert {SendKind(entry["kind"]) for entry in VALID.values()} == set(SendKind)
    assert {key for body in bodies for key in body if key in MSG_CHANNELS} == set(MSG_CHANNELS)
    assert {key for body in bodies for key in body if key in AUDIENCES} == set(AUDIENCES)
    sources = " ".join(entry["source"] for entry in VALID.values())
    for origin in ("普通消息发送 v1", "模板消息发送 v1", "cavlabs/jiguang-sdk-go", "rebue/scx"):
        assert origin in sources
