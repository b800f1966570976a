"""django-q2 schedules, created idempotently after every migrate, and the worker start-up hook.

Imported from JobsConfig.ready(), once the models are loaded.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_q.models import Schedule

from jobs.models import WorkerBeat
from jobs.worker import cleanup

logger = logging.getLogger(__name__)

HEARTBEAT = "videojobs: worker heartbeat and recovery"
CLEANUP = "videojobs: cleanup"


def ensure_schedules(**kwargs) -> None:
    """post_migrate handler: one row per schedule, however often migrate runs."""
    wanted = {
        HEARTBEAT: ("jobs.worker.tasks.worker_heartbeat", 1),
        CLEANUP: ("jobs.worker.tasks.run_cleanup", settings.CLEANUP_MINUTES),
    }
    for name, (func, minutes) in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )


def on_worker_spawn(sender, proc_name: str, **kwargs) -> None:
    """A worker process started: record that a cluster is alive, and resume jobs whose worker died."""
    try:
        WorkerBeat.record()
        cleanup.recover_lost_jobs()
    except Exception:
        logger.exception("start-up recovery failed")
