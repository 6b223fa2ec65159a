"""What makes a file's new name survive a power loss, for the outage spool and for
SQLite's WAL alike."""

from __future__ import annotations

import os


def sync_directory(folder: str | os.PathLike[str]) -> None:
    """Wait until ``folder``'s entries (a file made or renamed into it) are on the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
