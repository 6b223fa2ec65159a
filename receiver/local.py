"""Run the service in a child process on a loopback port (bench, tests, demos), and wait
for local services to answer.

``python -m receiver.local URL...`` waits until each URL answers HTTP 200 (60 s at most
in all; ``--timeout`` says otherwise) and exits 0, or exits 1 saying which did not: a
shell waits with it for a server started in the background.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any, Final

log = logging.getLogger(__name__)

# gunicorn's arbiter sees a signal within 1 s, and a graceful stop lets kept-alive
# connections linger 2 s; past this, the server's whole process group is killed.
STOP_GRACE_SECONDS: Final = 4.0
# A server stopped before it answered has served nothing; and a worker still booting
# may miss the SIGTERM its arbiter passes on, so that only SIGKILL ends it.
UNSTARTED_GRACE_SECONDS: Final = 1.0


class Stopped(Exception):
    """A stop was asked for (the ``stop`` event was set) while waiting."""


@contextmanager
def running_server(
    env: Mapping[str, str],
    *,
    args: tuple[str, ...] = (),
    output: IO[Any] | int | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """``umstrack serve`` with ``env`` added to this process's environment, on 127.0.0.1
    (``port``, or a free one); yields its base URL once it is healthy, stops it on exit.
    Its log goes to ``output`` (discarded by default); ``stop`` set while it starts
    raises :class:`Stopped`."""
    with running_server_process(env, args=args, output=output, port=port, stop=stop) as (url, _):
        yield url


@contextmanager
def running_server_process(
    env: Mapping[str, str],
    *,
    args: tuple[str, ...] = (),
    output: IO[Any] | int | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`running_server`, yielding the server's process too (gunicorn's arbiter,
    the leader of the server's process group): for a test that kills it or its workers."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", "--host", "127.0.0.1", *args],
        env={**os.environ, **env, "PORT": str(port)},
        stdout=subprocess.DEVNULL if output is None else output,
        stderr=subprocess.STDOUT,
        # A group of its own: a Ctrl-C meant for the caller does not hit it half-way
        # through its start or stop (the caller stops it), and stop_server can reach
        # every worker.
        start_new_session=True,
    )
    answered = False
    try:
        wait_until_healthy(port, process, stop=stop)
        answered = True
        yield f"http://127.0.0.1:{port}", process
    finally:
        if answered:
            stop_server(process, quick=True)
        else:
            stop_server(process, grace=UNSTARTED_GRACE_SECONDS)


def stop_server(
    process: subprocess.Popen[Any], *, quick: bool = False, grace: float = STOP_GRACE_SECONDS
) -> None:
    """Stop a server started like :func:`running_server` does it: SIGTERM, gunicorn's
    graceful stop, or with ``quick`` SIGINT, its quick one; SIGKILL to its process group
    after ``grace`` s. No process of it is left."""
    if process.poll() is None:
        # SIGINT only once gunicorn answers: before, it may be a Python still starting,
        # which SIGTERM ends without a word and SIGINT with a traceback.
        process.send_signal(signal.SIGINT if quick else signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("server (pid %d) still running after %g s: killing it", process.pid, grace)
    # Also after a clean exit: a worker its arbiter left behind is in the group too.
    with contextlib.suppress(ProcessLookupError):  # nothing of it is left
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(
    port: int,
    process: subprocess.Popen[Any],
    timeout: float = 60,
    stop: threading.Event | None = None,
) -> None:
    """Wait for 127.0.0.1:``port``/healthz to answer 200; fail if ``process`` exits first,
    raise :class:`Stopped` when ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise Stopped("stopped while the server was starting")
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not healthy after {timeout} s")


def wait_for(urls: Sequence[str], *, timeout: float = 60) -> None:
    """Wait until each URL in turn answers HTTP 200; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    for url in urls:
        while not _answers_200(url, deadline):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s")
            time.sleep(0.1)


def _answers_200(url: str, deadline: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=max(deadline - time.monotonic(), 0.1)) as answer:
            return int(answer.status) == 200
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, not 2xx
        return False


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m receiver.local URL...``: wait until each URL answers 200."""
    parser = argparse.ArgumentParser(
        prog="python -m receiver.local", description="Wait until each URL answers HTTP 200."
    )
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--timeout", type=float, default=60, help="seconds in all (default 60)")
    options = parser.parse_args(argv)
    try:
        wait_for(options.urls, timeout=options.timeout)
    except TimeoutError as exc:
        raise SystemExit(f"receiver.local: {exc}") from None


if __name__ == "__main__":
    main()
