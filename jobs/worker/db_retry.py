"""Retrying a worker's small writes (heartbeats, progress) through a transient database error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, close_old_connections, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")


TRANSIENT_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)  # seconds; about 8 s in all, well inside STALE_AFTER


def retry_transient(write: Callable[[], T]) -> T:
    """Run a small heartbeat or progress write, retrying with backoff on transient database errors.

    "database is locked" after SQLite's busy timeout, or a PostgreSQL connection
    that dropped, should not fail a job that is encoding fine. A dropped
    connection is closed so that the next try opens a new one.
    """
    for delay in TRANSIENT_RETRY_DELAYS:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            logger.warning("transient database error, retrying in %.1f s: %s", delay, exc)
            if not connection.in_atomic_block:  # a broken connection is replaced; a transaction is not ours to end
                close_old_connections()
            time.sleep(delay)
    return write()
