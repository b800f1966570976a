"""Sending a job to the workers: the one call every producer of work uses (uploads, hand-back, recovery)."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

logger = logging.getLogger(__name__)

PROCESS_JOB_TASK = "jobs.tasks.process_job"


def enqueue_job(job_id: str) -> None:
    """Queue the processing task; call from transaction.on_commit, with the primary key only."""
    async_task(PROCESS_JOB_TASK, job_id, group="jobs")
    logger.info("job %s: queued for a worker", job_id)
