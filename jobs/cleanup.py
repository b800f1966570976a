"""Deleting jobs with their files."""

from __future__ import annotations

import logging
import shutil

from jobs.models import Job

logger = logging.getLogger(__name__)


def delete_job(job: Job) -> None:
    """Files first, then rows: a crash in between leaves files for the orphan sweep, never rows without files."""
    if job.folder.exists():
        shutil.rmtree(job.folder)
    job_id = job.pk
    job.delete()
    logger.info("job %s: deleted with its files", job_id)
