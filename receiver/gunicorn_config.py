"""Gunicorn settings for the web dyno (``gunicorn -c python:receiver.gunicorn_config``).

Once the first worker has loaded the app (migrations were applied before gunicorn
started), the log says ``umstrack: ready on <URL>``, once, so that a person or a script
knows the service answers. Without ``SECRET_KEY``, the server makes one session key for
all its workers (else a web UI sign-in would hold on one worker only).

Metrics: unless ``PROMETHEUS_MULTIPROC_DIR`` names one, the server makes a fresh
directory where its workers count (prometheus-client's multiprocess mode), before any
worker is forked and so before any loads prometheus-client, and removes it when it
stops; a dead worker's gauges are dropped, its counts kept. The app loads in each
worker (no ``preload_app``), after the directory is set.
"""

import gc
import glob
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
from typing import Any

# A platform's web process listens on every interface unless HOST says otherwise.
_host = os.environ.get("HOST", "").strip() or "0.0.0.0"
bind = (f"[{_host}]" if ":" in _host else _host) + f":{os.environ.get('PORT', '8000')}"
# Gunicorn believes no proxy: the app itself believes those in FORWARDED_ALLOW_IPS.
forwarded_allow_ips = ""
# Heroku sets WEB_CONCURRENCY to suit the dyno size.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
# Threads keep connections alive between a poster's batches and overlap one
# request's database wait with another's parsing. A keep-alive connection stays with
# the worker that accepted it, and a worker may hold more connections than another:
# with 4 threads, one that holds 3 or 4 busy posters serves them at once instead of
# making one wait a whole batch (8 posters on 5 workers: p99 130-170 ms against
# 160-250 ms with 2 threads, on a loaded 2-core machine). Each thread holds at most
# one of the worker's pooled connections (pool_size 5).
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
keepalive = 75
# The app logs one JSON line per request (receiver.web.observe): gunicorn's access log
# is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# gunicorn 27's control socket sits at one path per user: several servers on one
# machine (tests, bench) would fight over it, and the platform manages us by signals.
control_socket_disable = True

# The worker's garbage collector: a young collection every 20,000 objects made, an
# older one every 20 of those, the oldest every 20 of those (see post_worker_init).
GC_THRESHOLDS = (20_000, 20, 20)

# The read end of a pipe holding one byte, made before the workers are forked: the
# worker that reads the byte is the first ready, and the others find the pipe empty.
_ready_token: int | None = None
# The metrics directory this server made (and removes at exit); None: the operator's.
_metrics_dir: str | None = None
_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server: Any) -> None:
    """Give the workers a metrics directory of this server's, empty."""
    global _metrics_dir
    if "prometheus_client" in sys.modules:  # loaded before the directory was set
        server.log.warning(
            "the app was loaded before the workers were forked (preload_app): each worker "
            "counts its own metrics and a scrape shows one worker's"
        )
    given = os.environ.get(_MULTIPROC_DIR)
    if given:
        os.makedirs(given, exist_ok=True)
        # The counts of an earlier run would be added to this one's.
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
    else:
        _metrics_dir = tempfile.mkdtemp(prefix="umstrack-metrics-")
        os.environ[_MULTIPROC_DIR] = _metrics_dir


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counts stay in the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory this server made."""
    if _metrics_dir is not None:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def when_ready(server: Any) -> None:
    """Leave the one "ready" byte for the workers about to be forked, and give them one
    session key when none is configured."""
    global _ready_token
    if not os.environ.get("SECRET_KEY"):
        # Set before the workers are forked: every worker, and any that replaces one,
        # inherits it.
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
        server.log.warning(
            "SECRET_KEY is not set: the web UI's sign-ins use a key made for this server "
            "and end when it stops; set SECRET_KEY to keep them across restarts"
        )
    read_end, write_end = os.pipe()
    os.write(write_end, b".")
    os.close(write_end)
    _ready_token = read_end


def post_worker_init(worker: Any) -> None:
    """Freeze what the worker holds once its app is loaded, start its outage-spool
    drainer (PostgreSQL only), and say ``umstrack: ready on <URL>`` if this is the first
    worker ready to answer."""
    # The app's modules, models and statements (about 100,000 objects) live as long
    # as the worker: moved out of the collector's reach, its full collections no
    # longer walk them, a pause of 80-100 ms that a request caught in it waited out.
    gc.freeze()
    # A page of 100 targets makes thousands of objects: at Python's default (a young
    # collection every 700, an older one every 10 of those) every page paid for several,
    # and the slowest pages for the older ones (`bench read` at 10 million events,
    # alternated: failed-targets pages p99 10.8 ms at the default, 6.0 ms at these).
    gc.set_threshold(*GC_THRESHOLDS)
    drainer = getattr(worker.wsgi, "extensions", {}).get("umstrack.drainer")
    if drainer is not None:
        drainer.start()
    if _ready_token is not None and os.read(_ready_token, 1):
        worker.log.info("umstrack: ready on %s", ", ".join(_where(s) for s in worker.sockets))


def _where(listener: Any) -> str:
    """The URL a listening socket answers on; for every interface, the loopback one."""
    address = listener.getsockname()
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address[0], address[1]
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
    return url if local == host else f"{url} (listening on every interface)"
