"""django-q2 entry points and schedules. Tasks get primary keys, never instances."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

from jobs import processor
from jobs.models import WorkerBeat

logger = logging.getLogger(__name__)


def enqueue_job(job_id: str) -> None:
    """Queue the processing task; call from transaction.on_commit."""
    async_task("jobs.tasks.process_job", job_id, group="jobs")
    logger.info("job %s: queued for a worker", job_id)


def process_job(job_id: str) -> None:
    """The task. Idempotent: its first step is the conditional claim."""
    WorkerBeat.record()
    processor.run_job(job_id)


def worker_heartbeat() -> None:
    """Scheduled every minute so /api/health/ can tell a cluster is alive."""
    WorkerBeat.record()
