"""`umstrack demo`: emulator, gunicorn receiver and real sends, on one machine, on
127.0.0.1; Ctrl-C at any moment stops it at once, leaving nothing behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlmodel import Session

from receiver import read as queries
from receiver.cli import main
from receiver.demo import samples


def test_demo_runs_the_whole_loop(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/demo.db"
    result = runner.invoke(
        main,
        ["demo", "--exit", "--database-url", url],
        # The demo brings its own channel and database.
        env={"UMS_CHANNELS": "", "DATABASE_URL": "sqlite:////nonexistent/x.db"},
    )
    assert result.exit_code == 0, result.stderr[-3000:]

    titles = [title for title, _ in samples()]
    headings = [line for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert [heading.split(" (send ")[0] for heading in headings] == titles
    msgids = re.findall(r"^  (v:1t:\S+): ", result.stdout, re.MULTILINE)
    assert len(msgids) == len(titles) - 2 + 3 + 3  # personalised: 3 contents; 2,500: 3 parts
    timelines = re.findall(r"timeline: (http://127\.0\.0\.1:\d+/api/messages/\S+)", result.stdout)
    assert [t.split("/api/messages/")[1] for t in timelines] == [f"{m}/timeline" for m in msgids]
    pages = re.findall(r"page: (http://127\.0\.0\.1:\d+/ui/messages/\S+)", result.stdout)
    assert [p.split("/ui/messages/")[1] for p in pages] == msgids
    assert "Serving on" not in result.stdout  # --exit: no serving on

    engine = create_engine(url)
    try:
        with Session(engine) as session:
            found = [queries.message_summary(session=session, msgid=m) for m in msgids]
    finally:
        engine.dispose()
    summaries = [summary.model_dump(mode="json") for summary in found if summary is not None]
    assert len(summaries) == len(msgids)
    for summary in summaries:
        assert summary["send"] == {"outcome": "sent", "code": 0, "message": "success"}
        assert summary["send_id"] and summary["sent_at"]
        assert sum(summary["counts"].values()) > 0  # and the callbacks came back
        assert summary["params"]["umstrack_send"] == summary["send_id"]
    split = [s for s in summaries if s["sendno"] == "demo-newsletter"]
    assert sorted(s["part"] for s in split) == [0, 1, 2]
    assert sum(s["targets"]["total"] for s in split) == 2500


# --------------------------------------------------------------------------- Ctrl-C

# When SIGINT comes, by the line the demo has just written: the receiver starting, the
# samples going out, the report just printed, serving (with a connection kept alive).
MOMENTS = {
    "receiver starting": r"^starting the receiver",
    "sending": r"^accepted sent from ",  # the emulator took the first sample
    "report printed": r"^app push \(send ",
    "serving": r"umstrack status <msgid>$",
}
LINE_WAIT_SECONDS = 120


class Lines:
    """What a child process writes, read line by line on a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._lines.append("")  # end of output
            self._cond.notify_all()

    def wait_for(self, pattern: str) -> str:
        """The first line matching ``pattern``, once written (bounded wait)."""
        deadline = time.monotonic() + LINE_WAIT_SECONDS
        with self._cond:
            while True:
                for line in self._lines:
                    if re.search(pattern, line.rstrip("\n")):
                        return line
                assert "" not in self._lines, f"ended before {pattern!r}: {self.text()[-3000:]}"
                left = deadline - time.monotonic()
                assert left > 0, f"no {pattern!r} within {LINE_WAIT_SECONDS} s"
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def close(self) -> None:
        self._thread.join()
        self._stream.close()


def _processes(tmp_path: Path, groups: set[int]) -> dict[int, str]:
    """Processes (state included: Z is a zombie) in one of ``groups`` or whose
    environment names ``tmp_path``: the demo's, its receiver's and their workers."""
    found = {}
    marker = str(tmp_path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        state, _, pgid = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgid) in groups or marker in environ:
            found[int(entry.name)] = f"{state} {stat.split(')')[0]})"
    return found


def _listening_on(port: int) -> set[str]:
    """The local addresses something listens on at ``port`` (IPv4, as /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        host, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
    return addresses


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_stops_the_demo_at_any_moment(tmp_path: Path, moment: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    assert demo.stdout is not None
    output = Lines(demo.stdout)
    kept_alive = requests.Session()
    groups = {demo.pid}
    try:
        output.wait_for(MOMENTS[moment])
        if moment == "serving":
            receiver = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", output.text())
            emulator = re.search(r"UMS emulator on http://127\.0\.0\.1:(\d+)", output.text())
            assert receiver and emulator, output.text()[-3000:]
            for port in (int(receiver.group(1)), int(emulator.group(1))):
                assert _listening_on(port) == {"127.0.0.1"}
            url = f"http://127.0.0.1:{receiver.group(1)}/healthz"
            assert kept_alive.get(url, timeout=(2, 10)).status_code == 200
        # The receiver's process group, to look for what it might leave behind.
        groups |= {int(pid) for pid in _processes(tmp_path, groups)}
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C does to a terminal's foreground job
        demo.wait(timeout=5)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        kept_alive.close()
        output.close()
        leftovers = _processes(tmp_path, groups)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    text = output.text()
    assert demo.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert leftovers == {}, text[-3000:]
    for port in re.findall(r"http://127\.0\.0\.1:(\d+)", text):
        assert _listening_on(int(port)) == set()


@pytest.mark.parametrize("command", ["umstrack", "module"])
# From 0.4 s: the interpreter's own start-up (about 0.1 s, site imports included) comes
# before any code of ours can take Ctrl-C over.
@pytest.mark.parametrize("delay", [0.4, 0.9, 1.6])
def test_ctrl_c_while_the_demo_is_still_loading_stops_it_quietly(
    tmp_path: Path, delay: float, command: str
) -> None:
    """Before any line is written: Python is still importing click, Flask, SQLAlchemy."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    script = str(Path(sys.executable).with_name("umstrack"))
    argv = (
        [script, "demo"]
        if command == "umstrack"
        else [sys.executable, "-m", "receiver.cli", "demo"]
    )
    demo = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    time.sleep(delay)
    os.killpg(demo.pid, signal.SIGINT)
    try:
        text, _ = demo.communicate(timeout=5)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert _processes(tmp_path, {demo.pid}) == {}
