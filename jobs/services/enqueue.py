"""Sending a job to the workers: the one call every producer of work uses (uploads, hand-back, recovery).

Also how a worker knows that its cluster is stopping (`manage.py runworker` says so through a file named
in the cluster's environment): it then sends a task it is handed back to the broker instead of starting it.
"""

from __future__ import annotations

import logging
import os

from django_q.tasks import async_task

logger = logging.getLogger(__name__)

PROCESS_JOB_TASK = "jobs.worker.tasks.process_job"
PROCESS_PART_TASK = "jobs.worker.tasks.process_job_part"


def enqueue_job(job_id: str) -> bool:
    """Queue the processing task; call from transaction.on_commit, with the primary key only.

    A broker that fails (Redis down, a locked database) does not fail the
    caller: the job is queued in the database already, and the cleanup pass
    sends the task again for a queued job that waited longer than
    QUEUE_RESEND_SECONDS. Returns whether the task was sent.
    """
    try:
        async_task(PROCESS_JOB_TASK, job_id, group="jobs")
    except Exception:
        logger.exception("job %s: the task could not be queued; the cleanup pass will send it again", job_id)
        return False
    logger.info("job %s: queued for a worker", job_id)
    return True


def enqueue_part(job_id: str, attempt: int) -> bool:
    """Queue a helper task for a job's run of `attempt`: it claims queued parts of that run (jobs.worker.video_run).

    A lost helper costs only speed: the run's other workers claim the parts it
    would have taken, and recovery sends it again for a part whose worker was lost.
    """
    try:
        async_task(PROCESS_PART_TASK, job_id, attempt, group="jobs")
    except Exception:
        logger.exception("job %s: a helper task could not be queued", job_id)
        return False
    return True


STOP_FILE_ENV = "VIDEOJOBS_STOP_FILE"  # set by runworker for its cluster; the file exists once it is stopping


def cluster_stopping() -> bool:
    """Whether this worker's cluster is stopping (runworker made its stop file): start nothing new."""
    stop_file = os.environ.get(STOP_FILE_ENV)
    return bool(stop_file) and os.path.exists(stop_file)
