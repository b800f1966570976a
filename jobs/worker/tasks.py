"""django-q2 entry points (the schedules that call two of them: schedules.py). Tasks get primary keys only."""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django_q.exceptions import TimeoutException

from jobs.models import WorkerBeat
from jobs.services.enqueue import cluster_stopping, enqueue_job, enqueue_part
from jobs.worker import cleanup, runner

logger = logging.getLogger(__name__)


def process_job(job_id: str) -> None:
    """The task sent for a job. Idempotent: its first step is the conditional claim."""
    resend = lambda: enqueue_job(job_id)  # noqa: E731 - for the next cluster; a duplicate does nothing (the claim)
    if cluster_stopping():
        resend()
        logger.info("job %s: cluster stopping; task sent back to the queue", job_id)
        return
    _stoppable(lambda: runner.run_job(job_id), resend)


def process_job_part(job_id: str, attempt: int) -> None:
    """A helper task: runs queued parts (videos) of the job's run of `attempt` (jobs.worker.video_run)."""
    resend = lambda: enqueue_part(job_id, attempt)  # noqa: E731
    if cluster_stopping():
        resend()
        return
    _stoppable(lambda: runner.run_helper(job_id, attempt), resend)


def _stoppable(run, resend) -> None:
    """Run a job's work so that SIGTERM stops it cleanly.

    While it runs, SIGTERM (`manage.py runworker` stopping, e.g. Ctrl-C on
    `make run`) raises WorkerStopping: FFmpeg is stopped and reaped, the
    partial files go, and the part (the job, when no other worker is on it)
    is requeued instead of waiting for the stale-heartbeat recovery.

    The task is also sent again (`resend`): a stop that lands before the claim,
    or before the hand-back could, must not lose it; a duplicate does nothing.
    The task then returns, and the worker process lives on until django-q2's
    stop reaches it: it must take the tasks its cluster fetched ahead (and
    send them back, see cluster_stopping), or the cluster's stop waits forever
    on a full queue.
    """
    WorkerBeat.record()
    started = time.monotonic()

    def stop_worker(signum, frame) -> None:
        # django-q2's sentinel also SIGTERMs a worker whose task ran out of time, at about the moment the
        # worker's own timeout fires: that is a timeout (the job fails), not a shutdown (the job is handed
        # back), or a job too long for its timeout would be handed back and time out forever.
        if time.monotonic() - started >= settings.JOB_TIMEOUT_SECONDS - TIMEOUT_SLACK_SECONDS:
            raise TimeoutException(f"Task exceeded maximum timeout value ({settings.JOB_TIMEOUT_SECONDS} seconds)")
        raise runner.WorkerStopping(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop_worker)
    try:
        run()
    except runner.WorkerStopping:
        resend()
        logger.info("worker stopping: its work was handed back and its task sent again")
    finally:
        signal.signal(signal.SIGTERM, previous)


TIMEOUT_SLACK_SECONDS = 5


def worker_heartbeat() -> None:
    """Scheduled every minute: /api/health/ sees a live cluster, and lost jobs resume within minutes."""
    WorkerBeat.record()
    cleanup.recover_lost_jobs()


def run_cleanup() -> str:
    """Scheduled every CLEANUP_MINUTES: the same pass as `manage.py cleanup`."""
    WorkerBeat.record()
    return cleanup.run().line()
