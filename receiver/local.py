"""Run the service in a child process on a free loopback port (bench, tests, demos)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any


@contextmanager
def running_server(
    env: Mapping[str, str], *, args: tuple[str, ...] = (), output: IO[Any] | int | None = None
) -> Iterator[str]:
    """``umstrack serve`` with ``env`` added to this process's environment, on a free
    port of 127.0.0.1; yields its base URL once it is healthy, stops it on exit.
    Its log goes to ``output`` (discarded by default)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", *args],
        env={**os.environ, **env, "PORT": str(port)},
        stdout=subprocess.DEVNULL if output is None else output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(port, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(port: int, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Wait for 127.0.0.1:``port``/healthz to answer 200; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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
