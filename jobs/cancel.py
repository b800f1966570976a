"""The one cancel path, shared by the API, the admin action, the pages and DELETE.

The web side only writes the status. The worker that owns the FFmpeg process
polls the status, stops FFmpeg (q, SIGTERM, SIGKILL) and removes the partial
files; so cancelling works when web and workers are different processes or
machines. A job cancelled while still queued has no worker: its uploads are
removed here.
"""

from __future__ import annotations

import logging
import shutil

from jobs.models import Job, Status

logger = logging.getLogger(__name__)


def cancel_job(job: Job) -> bool:
    """Cancel a queued or processing job. False when it was already terminal (nothing changed)."""
    left = job.request_cancel()
    if left:
        job.close_sources(Status.CANCELLED)  # the page shows the final state at once
    if left == Status.QUEUED:
        shutil.rmtree(job.folder, ignore_errors=True)
    return bool(left)
