"""The django-q2 schedules made by migrate, and recovery when a worker process starts."""

from __future__ import annotations

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from jobs.models import Job, Status, WorkerBeat
from jobs.worker import schedules


def test_each_schedule_exists_once_after_migrate_twice(transactional_db, settings):
    settings.CLEANUP_MINUTES = 7
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    cleanup = Schedule.objects.get(func="jobs.worker.tasks.run_cleanup")
    assert cleanup.minutes == 7 and cleanup.repeats == -1
    heartbeat = Schedule.objects.get(func="jobs.worker.tasks.worker_heartbeat")
    assert heartbeat.minutes == 1


def test_recovery_runs_when_a_worker_starts(make_job):
    lost = make_job(status=Status.PROCESSING, outputs=0, claims=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    schedules.on_worker_spawn(sender="django_q", proc_name="Process-1")
    assert Job.objects.get(pk=lost.pk).status == Status.QUEUED
    assert WorkerBeat.objects.filter(name="cluster").exists()
