"""How many ZIP downloads one user may stream at once (MAX_DOWNLOADS_PER_USER).

A download holds every file of its selection open while it streams (jobs.archive), for as long as the
client takes to read it: without a bound, one user with many slow connections could use up the web
process's file descriptors. Each user has MAX_DOWNLOADS_PER_USER slots, one lock file each under
DATA_DIR/downloads; a download holds an exclusive flock on one of them. The locks are shared by every
thread and web process on the machine, and the kernel releases them when their holder ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from django.conf import settings


class NoSlot(Exception):
    """The user already streams MAX_DOWNLOADS_PER_USER downloads."""


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


def take(user_id: int) -> Slot:
    """A free slot of the user's; NoSlot when every one is held."""
    folder = Path(settings.DATA_DIR) / "downloads"
    folder.mkdir(mode=0o700, exist_ok=True)
    for number in range(settings.MAX_DOWNLOADS_PER_USER):
        descriptor = os.open(folder / f"{user_id}.{number}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        return Slot(descriptor)
    raise NoSlot(
        f"you are already downloading {settings.MAX_DOWNLOADS_PER_USER} ZIPs at once, the most allowed "
        "(MAX_DOWNLOADS_PER_USER); wait for one to finish"
    )
