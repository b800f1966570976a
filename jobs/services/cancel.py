"""Cancelling and deleting a job: the one path shared by the API, the admin and the pages.

The web side only writes the status; the worker that owns the FFmpeg process
sees it and stops FFmpeg itself (docs/architecture/cancelling.md, "Cancelling"). A job
cancelled while still queued has no worker, so its files are settled here.
"""

from __future__ import annotations

import logging

from jobs import storage
from jobs.models import Job, Status
from jobs.services import notify

logger = logging.getLogger(__name__)


def cancel_job(job: Job) -> bool:
    """Cancel a queued or processing job. False when it was already terminal (nothing changed).

    The cancel mark is made before the status changes, where a worker that sees the status, stops and
    settles the job cannot have removed it yet (made after, it could outlive the settle as an orphan); once
    the status has changed it is touched again, without being made again, so that a worker which saw the
    first touch too early asks once more.
    """
    storage.mark_cancel(job.pk)
    try:
        left = job.request_cancel()
    except BaseException:  # e.g. "database is locked": nothing changed
        storage.unmark_cancel(job.pk)
        raise
    if not left:
        storage.unmark_cancel(job.pk)
        return False
    storage.mark_cancel(job.pk, create=False)
    job.close_sources(Status.CANCELLED)  # the page shows the final state at once
    if left == Status.QUEUED:
        # No worker owns it, but an earlier run may have finished variations (a requeued job):
        # they stay, with the uploads (for "make more"); only files no row owns go.
        storage.settle_files(job)
        storage.prune_empty(job.pk)
    notify.job_ended(job.pk)  # its webhook; a cancel is not emailed
    return True


def delete_job_with_files(job: Job) -> None:
    """Cancel it if it runs, then delete its files and rows.

    The job's worker sees the cancel or the missing row, stops FFmpeg, and
    removes whatever it wrote meanwhile (storage.settle_files of a job whose row is gone).
    """
    cancel_job(job)
    storage.delete_job(job)
