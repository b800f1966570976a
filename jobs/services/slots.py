"""How many ZIP downloads (MAX_DOWNLOADS_PER_USER), uploads (MAX_UPLOADS_PER_USER) and event streams
(MAX_STREAMS_PER_USER) one user may have going at once.

A download holds every file of its selection open while it streams (jobs.web.archive), and an upload a web
thread and its spooled file, for as long as the client takes: without a bound, one user with many slow
connections could use up the web process's threads, file descriptors or disk. Each user has that many
slots of each kind, one lock file each under DATA_DIR/slots; a request holds an exclusive flock on one of
them. The locks are shared by every thread and web process (on a network file system, by every machine
that mounts it), and they are released when their holder ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from django.conf import settings


class NoSlot(Exception):
    """The user already has every slot of the kind."""


class Slot:
    """One held slot; release() (or the end of the process) frees it."""

    def __init__(self, descriptor: int):
        self._descriptor: int | None = descriptor

    def __del__(self):  # a response that was never closed (never in a WSGI server): its slot all the same
        self.release()

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the descriptor drops its flock
            self._descriptor = None


DOWNLOADS, UPLOADS, STREAMS = "downloads", "uploads", "streams"
WHAT = {
    DOWNLOADS: ("downloading", "ZIPs", "MAX_DOWNLOADS_PER_USER"),
    UPLOADS: ("uploading", "jobs", "MAX_UPLOADS_PER_USER"),
    STREAMS: ("following", "event streams", "MAX_STREAMS_PER_USER"),
}


def take(kind: str, user_id: int, limit: int) -> Slot:
    """A free slot of the user's of this kind; NoSlot when all `limit` are held."""
    folder = Path(settings.DATA_DIR) / "slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    for number in range(limit):
        descriptor = os.open(folder / f"{kind}-{user_id}.{number}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        return Slot(descriptor)
    doing, things, setting = WHAT[kind]
    raise NoSlot(
        f"you are already {doing} {limit} {things} at once, the most allowed ({setting}); wait for one to finish"
    )
