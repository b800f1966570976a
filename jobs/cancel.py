"""Cancelling and deleting a job: the one path shared by the API, the admin and the pages.

The web side only writes the status; the worker that owns the FFmpeg process
sees it and stops FFmpeg itself (docs/architecture.md, "Cancelling"). A job
cancelled while still queued has no worker, so its files are settled here.
"""

from __future__ import annotations

import logging

from jobs import storage
from jobs.models import Job, Status

logger = logging.getLogger(__name__)


def cancel_job(job: Job) -> bool:
    """Cancel a queued or processing job. False when it was already terminal (nothing changed)."""
    left = job.request_cancel()
    if left:
        job.close_sources(Status.CANCELLED)  # the page shows the final state at once
    if left == Status.QUEUED:
        # No worker owns it, but an earlier run may have finished variations (a requeued job):
        # they stay, with the uploads (for "make more"); only files no row owns go.
        storage.settle_files(job)
        storage.prune_empty(job.pk)
    return bool(left)


def delete_job_with_files(job: Job) -> None:
    """Cancel it if it runs, then delete its files and rows.

    The job's worker sees the cancel or the missing row, stops FFmpeg, and
    removes whatever it wrote meanwhile (storage.settle_files of a job whose row is gone).
    """
    cancel_job(job)
    storage.delete_job(job)
