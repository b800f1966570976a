"""Process limits the web server raises for itself at start."""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one: every ZIP download holds a file (and a socket)
    open for as long as it streams. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open files limit from %s to %s: %s", soft, hard, exc)
    return soft
