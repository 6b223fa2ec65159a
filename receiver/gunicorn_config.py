"""Gunicorn settings for the web dyno (``gunicorn -c python:receiver.gunicorn_config``)."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Heroku sets WEB_CONCURRENCY to suit the dyno size.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
# Threads keep connections alive between a poster's batches and overlap one
# request's database wait with another's parsing.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
keepalive = 75
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
# gunicorn 27's control socket sits at one path per user: several servers on one
# machine (tests, bench) would fight over it, and the platform manages us by signals.
control_socket_disable = True
