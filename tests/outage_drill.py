"""The outage drill: PostgreSQL really stopped for longer than UMS's retry window while
the emulator, with UMS's own timing, sends callbacks; then started again.

    python -m tests.outage_drill [--outage 160] [--targets 1000]

It starts a PostgreSQL server of its own (initdb in a temporary directory, a free
port; run as root it runs the server as the ``postgres`` user), ``umstrack serve`` on
it with an outage spool, and the UMS emulator at UMS's timing (a batch of at most 100
records or 10 s of them; a failed batch retried every 50 s, 3 times, then dropped).
Three messages are sent: one before the outage, two while the server is stopped
(``pg_ctl stop -m fast``) for ``--outage`` seconds; a share of every message's records
is held back by the emulator so that callbacks go on arriving through the outage and
after it. Then it checks that every record the emulator made is stored exactly once,
that every target is where the stage rule puts it, that the emulator saw no answer but
200 and dropped nothing, and that the spool is empty; and prints the figures.

Exit 0 when every check holds, 1 otherwise. CI runs it beside the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from receiver.local import free_port, running_server
from sender.emulator import Emulator, EmulatorConfig
from sender.ums.client import UmsClient
from tests.emulator_helpers import APP, SMS
from tests.helpers import CHANNEL, CHANNELS_ENV, SECRET, bearer
from tests.test_emulator_loop import check_receiver_has_exactly

# UMS gives a batch up after 3 retries 50 s apart: an outage past this loses batches.
UMS_RETRY_WINDOW = 150.0


def _pg_bin() -> Path:
    """The directory of PostgreSQL's server programs (Debian keeps them off the PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise SystemExit("outage drill: no PostgreSQL server programs (pg_ctl) found")
    return versions[-1].parent


class PrivateServer:
    """A PostgreSQL server of the drill's own, which it may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.bin = _pg_bin()
        self.data = directory / "data"
        self.port = free_port()
        self.log = directory / "postgres.log"
        # The server refuses to run as root: it runs as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(directory, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_server(directory: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(directory)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()


def message(prefix: str, targets: int) -> dict[str, object]:
    return {"aud_userid": [f"{prefix}{i}" for i in range(targets)], "msg_app": APP, "msg_sms": SMS}


def drill(outage: float, targets: int, workdir: Path) -> list[str]:
    """Run the drill; the checks that failed (none: it held)."""
    failed: list[str] = []
    with private_server(workdir) as pg:
        env = {
            "DATABASE_URL": pg.url,
            **CHANNELS_ENV,
            "API_TOKENS": bearer()["Authorization"].removeprefix("Bearer "),
            "SPOOL_DIR": str(workdir / "spool"),
            "WEB_CONCURRENCY": "2",
        }
        # UMS's timing; a fifth of the records held back for up to the outage and more,
        # so that batches go on arriving while the database is away and after.
        settings = EmulatorConfig(
            channels={CHANNEL: SECRET}, seed=15, delay_share=0.2, delay_seconds=outage + 20
        )
        with (
            open(workdir / "serve.log", "w") as log,
            running_server(env, output=log) as base,
            Emulator(settings) as em,
            UmsClient(CHANNEL, SECRET, em.url, callback_url=f"{base}/callbacks/ums") as ums,
        ):
            started = time.monotonic()
            msgids = [ums.send(message("before", targets)).msgid]
            time.sleep(12)  # its first batches are stored as they come
            pg.stop()
            stopped = time.monotonic()
            print(f"PostgreSQL stopped {stopped - started:.0f} s in", flush=True)
            msgids += [ums.send(message(f"during{n}_", targets)).msgid for n in (1, 2)]
            time.sleep(max(outage - (time.monotonic() - stopped), 0))
            spool = workdir / "spool" / "ready"
            waiting = sum(1 for _ in spool.iterdir()) if spool.exists() else 0
            pg.start()
            back = time.monotonic()
            print(
                f"PostgreSQL started again after {back - stopped:.0f} s; "
                f"{waiting} batches in the spool",
                flush=True,
            )
            while spool.exists() and any(spool.iterdir()) and time.monotonic() - back < 60:
                time.sleep(0.1)
            print(f"the spool drained {time.monotonic() - back:.1f} s later", flush=True)
            if not em.wait_idle(outage + 180):
                failed.append(f"the emulator never went idle: {em.pending()}")
            state = em.state()
            [endpoint] = state["callbacks"]
            answers = endpoint["answers"]
            spooled = endpoint["receiver"].get("spooled", 0)
            print(
                f"records made {state['records']['generated']}, delivered "
                f"{state['records']['delivered']}, dropped {state['records']['dropped']}; "
                f"answers {answers}; records spooled {spooled}",
                flush=True,
            )
            if set(answers) != {"200"}:
                failed.append(f"the emulator saw answers other than 200: {answers}")
            if spooled == 0:
                failed.append("no batch was spooled: the outage missed the callbacks")
            if spool.exists() and any(spool.iterdir()):
                failed.append("the spool is not empty")
            try:
                check_receiver_has_exactly(em, base, msgids)
            except AssertionError:
                failed.append(
                    "the receiver differs from the emulator's records:\n" + traceback.format_exc()
                )
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--outage", type=float, default=UMS_RETRY_WINDOW + 10, help="seconds PostgreSQL is down"
    )
    parser.add_argument(
        "--targets",
        type=int,
        default=1000,
        choices=range(1, 1001),
        metavar="1..1000",
        help="recipients per message (UMS takes at most 1000 userids a send)",
    )
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="umstrack-drill-"))
    try:
        failed = drill(options.outage, options.targets, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    print("outage drill: " + ("FAILED" if failed else "every check held"), flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
