"""django-q2 entry points (the schedules that call two of them: jobs/schedules.py). Tasks get primary keys only."""

from __future__ import annotations

import signal

from jobs import cleanup, processor
from jobs.models import WorkerBeat


def process_job(job_id: str) -> None:
    """The task. Idempotent: its first step is the conditional claim.

    While it runs, SIGTERM (e.g. Ctrl-C on `make run`, which signals the
    whole cluster) raises WorkerStopping: FFmpeg is stopped and reaped, the
    partial files go, and the job is requeued instead of waiting for the
    stale-heartbeat recovery. The worker process then exits, as SIGTERM asked.
    """
    WorkerBeat.record()
    previous = signal.signal(signal.SIGTERM, _stop_worker)
    try:
        processor.run_job(job_id)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_worker(signum, frame) -> None:
    raise processor.WorkerStopping(128 + signum)


def worker_heartbeat() -> None:
    """Scheduled every minute: /api/health/ sees a live cluster, and lost jobs resume within minutes."""
    WorkerBeat.record()
    cleanup.recover_lost_jobs()


def run_cleanup() -> str:
    """Scheduled every CLEANUP_MINUTES: the same pass as `manage.py cleanup`."""
    WorkerBeat.record()
    return cleanup.run().line()
