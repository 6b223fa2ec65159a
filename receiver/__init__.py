"""umstrack receiver: the Flask app that takes in UMS status callbacks.

``create_app`` (in :mod:`receiver.app`) is loaded on first use, so that importing the
package is cheap: the command line sets up its Ctrl-C handling before Flask and
SQLAlchemy load. ``gunicorn 'receiver:create_app()'`` works as ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
