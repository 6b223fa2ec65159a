"""The README's emulator section, run as written: its shell block, in bash, in a fresh
directory, from ``msg.json`` (made by the first command of "Sending through UMS") to
``umstrack status`` showing every callback the emulator made.

The block is read from README.md, so the test breaks when the README changes without
it. One thing is changed in it: the ports. Every ``8000`` (the receiver) and ``8001``
(the emulator), as whole numbers, becomes a port free on this machine, so that the
test can run beside anything listening on the README's ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlmodel import Session

from receiver import read as queries
from receiver.local import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
RECEIVER_PORT, EMULATOR_PORT = "8000", "8001"
# Settings a developer's shell or the test run may carry that the block assumes unset.
UNSET = (
    "DATABASE_URL",
    "PORT",
    "UMS_API_BASE",
    "PUBLIC_URL",
    "UMS_CHANNELS",
    "API_TOKENS",
    "UMS_EMULATOR_CALLBACK_URL",
)


def shell_blocks(section: str) -> list[str]:
    """The ```sh blocks of the README section whose heading is ``section``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : None if end < 0 else end]
    return re.findall(r"^```sh\n(.*?)^```$", body, re.MULTILINE | re.DOTALL)


def make_msg_json() -> str:
    """The lines of "Sending through UMS" that write msg.json, and only those: the others
    would send to the real UMS."""
    lines = shell_blocks("## Sending through UMS")[0].splitlines()
    end = next(i for i, line in enumerate(lines) if line.rstrip().endswith("> msg.json"))
    return "\n".join(lines[: end + 1]) + "\n"


def loop_block(receiver: int, emulator: int) -> str:
    """The emulator section's block with its ports replaced."""
    block = shell_blocks("## The UMS emulator")[0]
    for readme_port in (RECEIVER_PORT, EMULATOR_PORT):
        assert re.search(rf"\b{readme_port}\b", block), f"the block no longer uses :{readme_port}"
    block = re.sub(rf"\b{RECEIVER_PORT}\b", str(receiver), block)
    return re.sub(rf"\b{EMULATOR_PORT}\b", str(emulator), block)


def venv_here(directory: Path) -> None:
    """``.venv`` in ``directory`` as the Quick start leaves it: this interpreter's."""
    if sys.prefix != sys.base_prefix:
        (directory / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        return
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    umstrack = shutil.which("umstrack", path=str(Path(sys.executable).parent))
    assert umstrack, "umstrack is installed next to this interpreter"
    (bin_dir / "umstrack").symlink_to(umstrack)
    (bin_dir / "python").symlink_to(sys.executable)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_readme_emulator_loop_runs_as_written(tmp_path: Path) -> None:
    receiver = emulator = free_port()
    while emulator == receiver:
        emulator = free_port()
    venv_here(tmp_path)
    script = tmp_path / "loop.sh"
    script.write_text(make_msg_json() + loop_block(receiver, emulator), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["WEB_CONCURRENCY"] = "2"  # not one worker per core of a big machine

    # -e and pipefail: a line that fails fails the test. A session of its own, so that
    # whatever the block leaves running can be found and stopped.
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=180)
    finally:
        try:
            os.killpg(process.pid, 0)
            left_behind = True
        except ProcessLookupError:
            left_behind = False
        if left_behind:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, output[-5000:]
    assert not left_behind, "the block's own kill and wait should stop everything"
    assert not listening(receiver) and not listening(emulator)

    # What the emulator made for the message ...
    [msgid] = json.loads((tmp_path / "sent.json").read_text(encoding="utf-8"))["msgids"]
    made = re.search(rf"msgid={re.escape(msgid)}, \d+ target\(s\), (\d+) record\(s\)", output)
    assert made, output[-5000:]
    records = int(made.group(1))
    assert records > 0
    assert "dropped batch" not in output and "undelivered" not in output, output[-5000:]
    # ... all reached the receiver: `umstrack status` showed them, and they are stored.
    assert f"Timeline ({records} of {records})" in output, output[-5000:]
    engine = create_engine(f"sqlite:///{tmp_path / 'umstrack.db'}")
    try:
        with Session(engine) as session:
            summary = queries.message_summary(session=session, msgid=msgid)
    finally:
        engine.dispose()
    assert summary is not None
    assert sum(summary.counts.model_dump().values()) == records
    assert summary.send is not None and summary.send.code == 0  # recorded by the sender
