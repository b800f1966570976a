"""django-q2 schedules, created idempotently after every migrate, and worker start-up hooks."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

HEARTBEAT = "videojobs: worker heartbeat"


def ensure_schedules(**kwargs) -> None:
    """post_migrate handler: one row per schedule, however often migrate runs."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=HEARTBEAT,
        defaults={
            "func": "jobs.tasks.worker_heartbeat",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def on_worker_spawn(sender, proc_name: str, **kwargs) -> None:
    """A worker process started: record that a cluster is alive."""
    from django.db import DatabaseError

    from jobs.models import WorkerBeat

    try:
        WorkerBeat.record()
    except DatabaseError:
        logger.exception("could not record the worker beat")
